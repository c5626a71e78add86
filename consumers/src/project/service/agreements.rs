//! Following the agreements directory: reloading it when it changes, and announcing agreements
//! that end on their recipients' feeds.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Instant,
};

use bluelight_avro::{Codec, records::Timestamp};
use rdkafka::producer::BaseRecord;

use super::{ProjectConfig, STATE_TOPIC, feeds::encode_feed, metrics::METRICS, state};
use crate::{
    Error, Result,
    eos::Runner,
    policy::{Policy, load_dir},
    project::{Ended, sharing_ended},
};

pub(super) fn announce_changes(old: &Policy, new: &Policy) {
    for a in &old.agreements {
        match new.agreements.iter().find(|b| b.id == a.id) {
            None => {
                tracing::warn!(agreement = %a.id, recipient = %a.recipient.org, "agreement withdrawn: disclosures to this recipient stopped")
            }
            Some(b) if b.version != a.version => {
                tracing::info!(agreement = %a.id, from = %a.version, to = %b.version, "agreement changed")
            }
            Some(_) => {}
        }
    }
    for b in &new.agreements {
        if !old.agreements.iter().any(|a| a.id == b.id) {
            tracing::info!(agreement = %b.id, recipient = %b.recipient.org, "agreement added");
        }
    }
}

pub(super) struct Watch {
    last_check: Instant,
    fingerprint: Vec<(String, std::time::SystemTime, u64)>,
    last_day: jiff::civil::Date,
}

impl Watch {
    pub(super) fn new(cfg: &ProjectConfig) -> Self {
        Watch {
            last_check: Instant::now(),
            fingerprint: fingerprint(&cfg.agreements),
            last_day: jiff::Zoned::now().date(),
        }
    }

    pub(super) fn changed(
        &mut self,
        cfg: &ProjectConfig,
        today: jiff::civil::Date,
    ) -> Option<Arc<Policy>> {
        if self.last_check.elapsed() < cfg.reload_every {
            return None;
        }
        self.last_check = Instant::now();
        let now = fingerprint(&cfg.agreements);
        // A new day can end an agreement (valid_to): reload so the expiry is logged and checked.
        if now == self.fingerprint && today == self.last_day {
            return None;
        }
        self.fingerprint = now;
        self.last_day = today;
        match load_policy(&cfg.agreements, today) {
            Ok(p) => {
                METRICS.reloads.with_label_values(&["applied"]).inc();
                tracing::info!(policy_version = %p.version, agreements = p.agreements.len(), "agreements reloaded");
                Some(Arc::new(p))
            }
            Err(e) => {
                METRICS.reloads.with_label_values(&["refused"]).inc();
                tracing::error!(error = %e, "agreements changed but do not load; the previous set stays in force");
                None
            }
        }
    }
}

pub(super) fn load_policy(dir: &std::path::Path, today: jiff::civil::Date) -> Result<Policy> {
    let policy = load_dir(dir, jiff::civil::Date::MIN)?;
    for a in &policy.agreements {
        if let Some(to) = a.valid_to.filter(|to| *to < today) {
            tracing::warn!(agreement = %a.id, file = %a.file, "expired on {to}: not in force; remove the file after review");
        }
    }
    Ok(policy)
}

fn fingerprint(dir: &std::path::Path) -> Vec<(String, std::time::SystemTime, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                meta.modified().ok()?,
                meta.len(),
            ))
        })
        .collect();
    out.sort();
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn settle(
    cfg: &ProjectConfig,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    runner: &Runner,
    policy: &Policy,
    marks: &mut state::Marks,
    today: jiff::civil::Date,
    stop: &AtomicBool,
) -> Result<()> {
    let mut changes: Vec<Ended> = Vec::new();
    for mark in marks.values().filter(|m| m.in_force) {
        let still = policy
            .agreements
            .iter()
            .any(|a| a.id == mark.id && a.in_force(today));
        if !still {
            changes.push(Ended {
                in_force: false,
                ..mark.clone()
            });
        }
    }
    for a in policy.agreements.iter().filter(|a| a.in_force(today)) {
        let now = Ended::of(a);
        if marks.get(&a.id) != Some(&now) {
            changes.push(now);
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    runner.begin()?;
    let now = Timestamp::now();
    let mut out = Vec::new();
    for change in &changes {
        if !change.in_force {
            for (topic, key, record) in sharing_ended(change, now)? {
                encode_feed(codec, rt, &topic, &record, &mut out)?;
                runner.send(
                    BaseRecord::to(&topic)
                        .key(key.as_bytes())
                        .payload(out.as_slice()),
                    stop,
                )?;
            }
            METRICS
                .agreements_ended
                .with_label_values(&[&change.id])
                .inc();
            tracing::warn!(agreement = %change.id, recipient = %change.recipient, "agreement ended: the recipient is told on its feeds");
        }
        let value = serde_json::to_vec(change).map_err(|e| Error::Config(e.to_string()))?;
        let key = state::mark_key(&change.id);
        let headers = state::headers(cfg);
        runner.send(
            BaseRecord::to(STATE_TOPIC)
                .key(key.as_bytes())
                .payload(&value)
                .headers(headers),
            stop,
        )?;
    }
    runner.commit_alone(stop)?;
    tracing::info!(
        in_force = changes.iter().filter(|c| c.in_force).count(),
        ended = changes.iter().filter(|c| !c.in_force).count(),
        "agreement marks written to {STATE_TOPIC}"
    );
    for change in changes {
        marks.insert(change.id.clone(), change);
    }
    Ok(())
}

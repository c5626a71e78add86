//! Reading `state.disclosures.v1` into [`Receipts`]: in full on start, then following the
//! writes of other instances, so a partition that moves here arrives with its history.

use std::sync::atomic::AtomicBool;

use rdkafka::{
    Message,
    message::{BorrowedMessage, OwnedHeaders},
};

use super::{STATE_TOPIC, config::ProjectConfig};
use crate::{
    Result,
    eos::header,
    project::{Ended, Receipts},
};

/// Agreements this service has seen in force, by id: their end is announced once.
pub(crate) type Marks = std::collections::BTreeMap<String, Ended>;

/// The state key of an agreement's mark.
pub(crate) fn mark_key(id: &str) -> String {
    format!("agreement/{id}")
}

/// Headers of every state record (see [`crate::eos::state_headers`]).
pub(crate) fn headers(cfg: &ProjectConfig) -> OwnedHeaders {
    crate::eos::state_headers(&cfg.eos)
}

/// `state.disclosures.v1`, followed: records of this group only, and not our own echoes once
/// running (our writes are already in memory, and newer there than their echo).
pub(crate) struct Follower(crate::eos::Follower);

impl Follower {
    /// Reads every partition of the state topic from the beginning to the end.
    pub(crate) fn start(
        cfg: &ProjectConfig,
        receipts: &mut Receipts,
        marks: &mut Marks,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let follower = crate::eos::Follower::start(
            cfg.state_config()?,
            STATE_TOPIC,
            cfg.eos.timeout,
            stop,
            |m| {
                if header(m, "bl-group").is_none_or(|g| g == cfg.eos.group.as_bytes()) {
                    apply_one(receipts, marks, m);
                }
            },
        )?;
        Ok(Follower(follower))
    }

    /// Applies what other instances wrote since the last call.
    pub(crate) fn apply(
        &self,
        receipts: &mut Receipts,
        marks: &mut Marks,
        cfg: &ProjectConfig,
    ) -> usize {
        self.0.apply(|m| others(receipts, marks, cfg, m))
    }

    /// Reads up to the state topic's current end: the last owner of a moved partition
    /// committed before we could read it.
    pub(crate) fn catch_up(&self, receipts: &mut Receipts, marks: &mut Marks, cfg: &ProjectConfig) {
        let started = std::time::Instant::now();
        self.0.catch_up(|m| others(receipts, marks, cfg, m));
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            "receipts caught up after an assignment"
        );
    }
}

fn others(
    receipts: &mut Receipts,
    marks: &mut Marks,
    cfg: &ProjectConfig,
    m: &BorrowedMessage<'_>,
) {
    let mine = header(m, "bl-writer") == Some(cfg.eos.transactional_id.as_bytes());
    let ours = header(m, "bl-group").is_none_or(|g| g == cfg.eos.group.as_bytes());
    if ours && !mine {
        apply_one(receipts, marks, m);
    }
}

fn apply_one(receipts: &mut Receipts, marks: &mut Marks, m: &BorrowedMessage<'_>) {
    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    if let Some(id) = key.strip_prefix("agreement/") {
        match m.payload().map(serde_json::from_slice::<Ended>) {
            None => {
                marks.remove(id);
            }
            Some(Ok(mark)) => {
                marks.insert(id.to_owned(), mark);
            }
            Some(Err(e)) => tracing::warn!(error = %e, key, "unreadable agreement mark; skipped"),
        }
        return;
    }
    let Some(value) = m.payload() else { return };
    if let Err(e) = receipts.load_entry(key, value) {
        tracing::warn!(error = %e, partition = m.partition(), offset = m.offset(), "unreadable receipt in {STATE_TOPIC}; skipped");
    }
}

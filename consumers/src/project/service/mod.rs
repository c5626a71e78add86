//! `bluelight project`: the exactly-once Kafka service around the [`Projector`].
//!
//! Each batch from the canonical topics (read_committed) becomes one Kafka transaction holding
//! every feed record, its audit record, the subjects' receipts on `state.disclosures.v1`, any dead
//! letters, and the batch's consumer offsets ([`crate::eos::Runner`] does the Kafka side). A crash
//! before the commit leaves nothing visible downstream and the batch is read again; after it,
//! everything is there once. An abort rolls the in-memory receipts back.
//!
//! - `config.rs`: settings, and feed topic creation;
//! - `feeds.rs`: writing feed and audit records; registering feed schemas;
//! - `agreements.rs`: following the agreements directory; announcing ended agreements;
//! - `context.rs`: following `state.context.v1` for context blocks, when an agreement asks;
//! - `state.rs`: reading `state.disclosures.v1` back into [`Receipts`] on start and following
//!   other instances' writes;
//! - `metrics.rs`: the Prometheus series.

mod agreements;
mod config;
mod context;
mod feeds;
pub(crate) mod metrics;
mod state;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use bluelight_avro::{Codec, records::Timestamp};
use rdkafka::producer::BaseRecord;

pub use crate::eos::Status;
pub use config::{ContextSettings, ProjectConfig};
use metrics::METRICS;

use super::{Projector, Receipts};
use crate::{
    Error, Result,
    eos::{Input, Runner},
};

pub const AUDIT_TOPIC: &str = "audit.disclosure.v1";
pub const DLQ_TOPIC: &str = "dlq.projector.v1";
pub const STATE_TOPIC: &str = "state.disclosures.v1";
/// Identifies this service in audit records (s62: who disclosed).
pub const DISCLOSED_BY: &str = "bluelight-project";

/// Runs until `stop` is set; returns an error only for what needs an operator (a twin
/// instance with the same id, settings Kafka refuses).
pub fn run(
    cfg: ProjectConfig,
    codec: Arc<Codec>,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    status: Arc<Status>,
) -> Result<()> {
    metrics::init();
    let today = || jiff::Zoned::now().date();
    let policy = Arc::new(agreements::load_policy(&cfg.agreements, today())?);
    status.set(Some(format!(
        "starting: connecting to Kafka at {} (retrying until it answers)",
        cfg.eos.kafka.brokers.trim()
    )));
    let projector_for = |policy| {
        Projector::new(policy, &cfg.secret, DISCLOSED_BY)
            .with_context_rules(cfg.context.rules.clone())
    };
    let mut projector = projector_for(policy.clone());
    let mut context = context::ContextState::new(&cfg);
    feeds::prepare(&cfg, &policy, &codec, &rt, &stop, &status)?;

    status.set(Some("starting: reading state.disclosures.v1".into()));
    let mut receipts = Receipts::new(cfg.receipts_capacity);
    let mut marks = state::Marks::new();
    let follower = state::Follower::start(&cfg, &mut receipts, &mut marks, &stop)?;
    tracing::info!(
        subjects = receipts.len(),
        "receipts rebuilt from {STATE_TOPIC}"
    );
    let mut runner = Runner::start(cfg.eos.clone(), metrics::tx(), &stop, &status)?;
    status.set(None);
    tracing::info!(
        group = %cfg.eos.group,
        transactional_id = %cfg.eos.transactional_id,
        agreements = policy.agreements.len(),
        policy_version = %policy.version,
        "projecting {}",
        cfg.eos.topics.join(", ")
    );

    let mut watch = agreements::Watch::new(&cfg);
    let mut settled = Instant::now() - cfg.reload_every;
    let mut out = Vec::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        if let Some(new) = watch.changed(&cfg, today()) {
            match feeds::prepare(&cfg, &new, &codec, &rt, &stop, &status) {
                Ok(()) => {
                    agreements::announce_changes(projector.policy(), &new);
                    projector = projector_for(new);
                }
                Err(e) => {
                    tracing::error!(error = %e, "agreements changed but cannot be applied; keeping the previous set")
                }
            }
        }
        follower.apply(&mut receipts, &mut marks, &cfg);
        context.step(&cfg, projector.wants_context(), &stop);
        if settled.elapsed() >= cfg.reload_every {
            settled = Instant::now();
            let settle = agreements::settle(
                &cfg,
                &codec,
                &rt,
                &runner,
                projector.policy(),
                &mut marks,
                today(),
                &stop,
            );
            if let Err(e) = settle {
                tracing::warn!(error = %e, "announcing ended agreements failed; retrying");
                runner.recover(&e, &stop, &status)?;
            }
        }
        METRICS
            .receipts
            .set(i64::try_from(receipts.len()).unwrap_or(i64::MAX));
        METRICS
            .receipts_evicted
            .inc_by(receipts.evicted - METRICS.receipts_evicted.get());

        let polling = Instant::now();
        let polled = runner.poll(&stop, &status)?;
        let polled_in = polling.elapsed();
        if polled.batch.is_empty() {
            continue;
        }
        if polled.moved_here {
            // The first records of partitions that moved here: their last owners committed
            // before these offsets became ours, so their receipts are readable now (one
            // catch-up covers every partition assigned so far).
            follower.catch_up(&mut receipts, &mut marks, &cfg);
        }
        let working = Instant::now();
        let result = transact(
            &cfg,
            &runner,
            &projector,
            &codec,
            &rt,
            &mut receipts,
            &context,
            &polled.batch,
            &mut out,
            &stop,
        );
        match result {
            Ok((recorded, committing)) => {
                // Where a batch's time goes: the figures for tuning batch size and commit interval.
                tracing::debug!(
                    events = polled.batch.len(),
                    poll_ms = polled_in.as_millis() as u64,
                    work_ms = (working.elapsed() - committing).as_millis() as u64,
                    commit_ms = committing.as_millis() as u64,
                    "batch committed"
                );
                receipts.commit();
                let now = Timestamp::now().0;
                for at in recorded {
                    METRICS
                        .end_to_end
                        .observe(((now - at).max(0) as f64) / 1000.0);
                }
                status.set(None);
            }
            Err(e) => {
                receipts.rollback();
                tracing::warn!(error = %e, records = polled.batch.len(), "transaction aborted; the batch will be read again");
                runner.recover(&e, &stop, &status)?;
            }
        }
    }
    tracing::info!("stopping: the last transaction is committed");
    Ok(())
}

/// Everything for one batch, in one transaction. Returns when each event was recorded at its
/// source, for the end-to-end latency.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // a frame of its own for profilers (callgrind --toggle-collect)
fn transact(
    cfg: &ProjectConfig,
    runner: &Runner,
    projector: &Projector,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    receipts: &mut Receipts,
    context: &context::ContextState,
    batch: &[Input],
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<(Vec<i64>, std::time::Duration)> {
    runner.begin()?;
    let mut recorded = Vec::with_capacity(batch.len());
    let today = jiff::Zoned::now().date();
    for m in batch {
        let started = Instant::now();
        // The event's span, a child of the ingest span that published it; what it writes carries
        // this span's context on to the gateway.
        let span = tracing::info_span!("project.event", topic = %m.topic, partition = m.partition, offset = m.offset, trace_id = tracing::field::Empty);
        let traceparent = bluelight_topics::trace::link(
            &span,
            m.traceparent
                .as_deref()
                .and_then(|t| std::str::from_utf8(t).ok()),
        );
        let _entered = span.enter();
        if m.payload.is_none() {
            // A tombstone: compaction's delete marker (bl.victim.v1 is compacted). Nothing to
            // decide; counted, not dead-lettered.
            METRICS.tombstones.with_label_values(&[&m.topic]).inc();
            continue;
        }
        let Some(entity) = cfg.entity(&m.topic) else {
            continue;
        };
        let event = match feeds::decode(codec, rt, entity, m) {
            Ok(e) => e,
            Err(Error::Avro(e)) if e.retryable() => return Err(Error::Avro(e)),
            Err(e) => {
                dead_letter(runner, m, "undecodable", &e.to_string(), stop)?;
                continue;
            }
        };
        let now = Timestamp::now();
        recorded.push(event.envelope().recorded_at.0);
        match projector.project_encoded_with(&event, today, now, context) {
            Ok(p) => {
                for &a in &p.above_ceiling {
                    let id = &projector.policy().agreements[a].id;
                    METRICS.ceiling.with_label_values(&[id]).inc();
                }
                for (a, why) in &p.condition_errors {
                    let id = &projector.policy().agreements[*a].id;
                    METRICS.condition_errors.with_label_values(&[id]).inc();
                    tracing::warn!(agreement = %id, event_id = %event.envelope().event_id, "{why}");
                }
                let key = Receipts::key(event.entity(), event.key());
                let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
                // A source that retries sends the same record, and so the same event id, again:
                // a feed that already has it does not get it twice.
                let already = receipts.received(&key, event.envelope().event_id);
                let mut fresh = Vec::with_capacity(p.feeds.len());
                for f in &p.feeds {
                    if already.contains(&f.topic.as_str()) {
                        let a = &projector.policy().agreements[f.agreement];
                        METRICS.repeats.with_label_values(&[&a.id]).inc();
                        continue;
                    }
                    feeds::send_encoded(
                        runner,
                        codec,
                        rt,
                        f,
                        event.entity(),
                        &traceparent,
                        out,
                        stop,
                    )?;
                    let a = &projector.policy().agreements[f.agreement];
                    METRICS
                        .disclosures
                        .with_label_values(&[&a.id, &a.recipient.org])
                        .inc_by(1);
                    if f.context {
                        METRICS.context_blocks.with_label_values(&[&a.id]).inc();
                    }
                    METRICS
                        .fields_withheld
                        .with_label_values(&[&a.id, "not-shared"])
                        .inc_by(projector.withheld(f.agreement, f.clause) as u64);
                    let receipt = projector.receipt(f);
                    entries.push(Receipts::entry(&key, &receipt, &receipt.events[0]));
                    fresh.push(receipt);
                }
                receipts.record_all(&key, fresh);
                // Withdrawals and corrections: tell exactly the earlier recipients.
                let env = event.envelope();
                if env.retracts.is_some()
                    || env.supersedes.is_some()
                    || env.event_type == event.entity().retracted()
                {
                    let mut state = receipts.get(&key);
                    let notices = projector.retract(&event, &mut state, now).map_err(|e| {
                        Error::Projection {
                            event_id: env.event_id.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                    for n in &notices {
                        feeds::send_feed(runner, codec, rt, n, &traceparent, out, stop)?;
                        METRICS
                            .retractions
                            .with_label_values(&[&n.audit.recipient])
                            .inc();
                        let told = n.record.envelope().retracts.as_ref().map(|r| r.event_id);
                        for r in state.iter().filter(|r| r.feed == n.topic) {
                            for sent in r.events.iter().filter(|s| Some(s.event_id) == told) {
                                entries.push(Receipts::entry(&key, r, sent));
                            }
                        }
                    }
                    if !notices.is_empty() {
                        receipts.put(&key, Some(state));
                    }
                    if receipts.is_partial(&key) {
                        dead_letter(
                            runner,
                            m,
                            "unresolved-retraction",
                            "this subject's recipients were partly forgotten (receipts capacity reached); those held were told, check state.disclosures.v1 for the rest",
                            stop,
                        )?;
                    }
                }
                for (entry_key, value) in &entries {
                    runner.send(
                        BaseRecord::to(STATE_TOPIC)
                            .key(entry_key.as_bytes())
                            .payload(value)
                            .headers(state::headers(cfg)),
                        stop,
                    )?;
                }
            }
            Err(e) => dead_letter(runner, m, "projection-failed", &e.to_string(), stop)?,
        }
        METRICS
            .processing
            .observe(metrics::seconds(started.elapsed()));
    }
    let committing = Instant::now();
    runner.commit(batch, stop)?;
    Ok((recorded, committing.elapsed()))
}

fn dead_letter(
    runner: &Runner,
    m: &Input,
    reason: &'static str,
    detail: &str,
    stop: &AtomicBool,
) -> Result<()> {
    METRICS.dead_letters.with_label_values(&[reason]).inc();
    runner.dead_letter(DLQ_TOPIC, m, reason, detail, stop)
}

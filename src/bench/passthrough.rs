//! The limit: the projector's Kafka work with none of its own. The same exactly-once runner
//! (read_committed consumer group, one transaction per batch with the offsets) reads the canonical
//! topics and writes, for each event, as many records as the projector writes for it, each a copy
//! of the event's bytes, spread over as many topics and partitions as the projector writes to
//! (its ten feeds, the audit log and the receipts: twelve topics of six partitions), so each
//! transaction spans as many partitions. No decoding, no policy, no encoding.
//!
//! The harness gives each event's output count in its `traceparent` header (the parent-id field):
//! reading a header is not decoding the record.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use bluelight_consumers::eos::{EosConfig, Runner, Status, TxMetrics};
use bluelight_topics::KafkaArgs;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use rdkafka::producer::BaseRecord;

/// As many as the projector writes to under the bench agreements (10 feeds, audit, receipts).
pub const OUTPUT_TOPICS: usize = 12;

pub fn output_topic(i: usize) -> String {
    format!("bench.passthrough.{i}.v1")
}
pub const CANONICAL: [&str; 3] = ["bl.incident.v1", "bl.case.v1", "bl.victim.v1"];

/// The output count the harness put in a `traceparent`.
pub fn outputs_of(traceparent: &[u8]) -> u32 {
    std::str::from_utf8(traceparent)
        .ok()
        .and_then(|t| t.split('-').nth(2))
        .and_then(|span| u64::from_str_radix(span, 16).ok())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// `traceparent` for event `seq` with `outputs` records: the trace id names the event (so the
/// latency probe finds it on the feeds), the parent id carries the count.
pub fn traceparent(seq: u64, outputs: u32) -> String {
    format!(
        "00-{:032x}-{:016x}-01",
        u128::from(seq) + 1,
        u64::from(outputs).max(1)
    )
}

fn metrics() -> anyhow::Result<TxMetrics> {
    Ok(TxMetrics {
        consumed: IntCounterVec::new(Opts::new("consumed", "consumed"), &["topic"])?,
        commit: Histogram::with_opts(HistogramOpts::new("commit", "commit"))?,
        aborts: IntCounterVec::new(Opts::new("aborts", "aborts"), &["reason"])?,
        lag: IntGaugeVec::new(Opts::new("lag", "lag"), &["topic", "partition"])?,
        paused: IntGauge::new("paused", "paused")?,
        queue_full: IntCounter::new("queue_full", "queue full")?,
        consumer_restarts: IntCounterVec::new(
            Opts::new("consumer_restarts", "consumer restarts"),
            &["reason"],
        )?,
    })
}

/// Runs until SIGTERM or Ctrl-C.
pub fn run(
    kafka: KafkaArgs,
    group: &str,
    batch_max: usize,
    batch_ms: u64,
    queue_max: usize,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::ops::shutdown_signal().await;
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut cfg = EosConfig::new(
        kafka,
        "bench-passthrough",
        group,
        CANONICAL.iter().map(|t| (*t).to_owned()).collect(),
    );
    cfg.batch_max = batch_max;
    cfg.batch_time = std::time::Duration::from_millis(batch_ms);
    cfg.queue_max_messages = queue_max;
    let status = Status::default();
    let topics: Vec<String> = (0..OUTPUT_TOPICS).map(output_topic).collect();
    let mut runner = Runner::start(cfg, metrics()?, &stop, &status)?;
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let polled = runner.poll(&stop, &status)?;
        if polled.batch.is_empty() {
            continue;
        }
        let result = (|| {
            runner.begin()?;
            for m in &polled.batch {
                let n = m.traceparent.as_deref().map_or(0, outputs_of);
                for _ in 0..n {
                    next = (next + 1) % OUTPUT_TOPICS;
                    let mut r = BaseRecord::<[u8], [u8]>::to(&topics[next]);
                    if let Some(k) = &m.key {
                        r = r.key(k.as_slice());
                    }
                    if let Some(p) = &m.payload {
                        r = r.payload(p.as_slice());
                    }
                    runner.send(r, &stop)?;
                }
            }
            runner.commit(&polled.batch, &stop)
        })();
        if let Err(e) = result {
            runner.recover(&e, &stop, &status)?;
        }
    }
    Ok(())
}

//! Exactly-once read-process-write over Kafka, shared by the services that turn one topic's
//! records into others' (the projector; victim updates).
//!
//! - `config.rs`: [`EosConfig`] and the librdkafka settings it becomes;
//! - `runner.rs`: [`Runner`]: poll a batch (read_committed, static group membership), send the
//!   outputs in one transaction with the batch's offsets, and recover: resumed commits, aborts
//!   that retry or replace the producer, rewinds to the committed offsets, a fenced consumer
//!   replaced, a rebalance during a poll dropping the batch;
//! - `follow.rs`: [`Follower`]: a compacted state topic read in full on start and followed;
//! - here: the consumer context (lag, rebalances), readiness, and the metrics a service hands
//!   the runner so its series keep the service's names.

mod config;
mod follow;
mod runner;

use std::{
    collections::BTreeSet,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

pub use config::{Delivery, EosConfig};
pub use follow::Follower;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use rdkafka::{
    Message,
    consumer::{BaseConsumer, ConsumerContext, Rebalance},
    error::KafkaError,
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
};
pub use runner::{Delivered, Input, Polled, Runner, TxProducer, dead_letter_headers};

use crate::{Error, Result};

/// The series a runner updates; each service registers them under its own names.
#[derive(Clone)]
pub struct TxMetrics {
    /// Records consumed, by topic.
    pub consumed: IntCounterVec,
    pub commit: Histogram,
    /// Aborted transactions, by reason.
    pub aborts: IntCounterVec,
    /// Lag per topic and partition, from librdkafka's statistics.
    pub lag: IntGaugeVec,
    pub paused: IntGauge,
    pub queue_full: IntCounter,
    /// Consumers replaced, by reason (failed, rewind, stalled).
    pub consumer_restarts: IntCounterVec,
}

/// What the HTTP side reads: ready, or why not.
#[derive(Debug, Default)]
pub struct Status {
    pub not_ready: Mutex<Option<String>>,
}

impl Status {
    pub fn set(&self, why: Option<String>) {
        if let Ok(mut g) = self.not_ready.lock() {
            *g = why;
        }
    }

    pub fn get(&self) -> Option<String> {
        self.not_ready.lock().ok().and_then(|g| g.clone())
    }
}

/// Publishes librdkafka's per-partition lag (every `statistics.interval.ms`), and notes
/// rebalances and newly assigned partitions.
pub struct EosContext {
    lag: IntGaugeVec,
    /// A rebalance happened since the flag was last taken.
    rebalanced: AtomicBool,
    /// Partitions assigned whose last owner's state may not be in memory yet.
    pending: Mutex<BTreeSet<(String, i32)>>,
}

impl std::fmt::Debug for TxMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxMetrics").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for EosContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EosContext")
            .field("rebalanced", &self.rebalanced)
            .finish_non_exhaustive()
    }
}

impl EosContext {
    fn new(lag: IntGaugeVec) -> Self {
        EosContext {
            lag,
            rebalanced: AtomicBool::new(false),
            pending: Mutex::new(BTreeSet::new()),
        }
    }
}

impl rdkafka::ClientContext for EosContext {
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[topic.as_str(), &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for EosContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::Relaxed);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::Relaxed);
        if let Rebalance::Assign(tpl) = rebalance
            && let Ok(mut pending) = self.pending.lock()
        {
            for e in tpl.elements() {
                pending.insert((e.topic().to_owned(), e.partition()));
            }
        }
    }
}

/// Retries `f` with exponential backoff (to 10 s) while its error is retryable, saying why in
/// the log and in readiness.
pub fn retry_until<T>(
    stop: &AtomicBool,
    status: &Status,
    what: &str,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut wait = Duration::from_millis(200);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && !stop.load(Ordering::Relaxed) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}");
                status.set(Some(format!("{what}: {e}")));
                backoff(stop, wait);
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// How often a repeating consumer or follower error is logged.
pub(crate) const ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// Lets a warning that repeats (every poll while the brokers are away) through at most once per
/// period, so the log says it every few seconds rather than thousands of times a second.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    pub(crate) const fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: Mutex::new(None),
        }
    }

    /// Whether to log now; if so, the period starts again.
    pub(crate) fn ready(&self) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ready = last.is_none_or(|t| t.elapsed() >= self.every);
        if ready {
            *last = Some(Instant::now());
        }
        ready
    }
}

/// Waits up to `total`, returning early when `stop` is set.
/// The value of header `name` on a consumed record.
pub fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    m.headers()
        .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
}

/// The headers of a state record: which deployment (`bl-group`) and which instance
/// (`bl-writer`) wrote it, so deployments sharing a state topic keep apart and an instance
/// can tell its own echoes from other instances' writes.
pub fn state_headers(cfg: &EosConfig) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "bl-group",
            value: Some(cfg.group.as_bytes()),
        })
        .insert(Header {
            key: "bl-writer",
            value: Some(cfg.transactional_id.as_bytes()),
        })
}

pub fn backoff(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn kafka(e: KafkaError) -> Error {
    Error::Kafka(e.to_string())
}

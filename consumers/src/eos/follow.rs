//! Following a compacted state topic outside any consumer group: every partition from the
//! beginning to the end on start, then whatever arrives, so a service's memory is rebuilt from
//! Kafka and kept in step with what other instances write.

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::KafkaError,
    message::BorrowedMessage,
    types::RDKafkaErrorCode,
};

use super::{ERROR_LOG_EVERY, Throttle, kafka};
use crate::{Error, Result};

/// Reaching the end of a partition is how the follower knows it has caught up, and librdkafka
/// reports it as an error event; it is not one, so it is not logged as one.
pub struct FollowContext;

impl ClientContext for FollowContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(%error, reason, "state follower: librdkafka error");
        }
    }
}

impl ConsumerContext for FollowContext {}

pub struct Follower {
    consumer: BaseConsumer<FollowContext>,
    topic: String,
    partitions: Vec<i32>,
    /// Bounds start-up reading and catching up.
    timeout: Duration,
    /// Paces the warning for a read error that repeats.
    errors: Throttle,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Assigns every partition of `topic` from the beginning (read_committed) and hands each
    /// record to `apply` until all are read to their end; fails after four times `timeout`.
    pub fn start(
        mut config: ClientConfig,
        topic: &str,
        timeout: Duration,
        stop: &AtomicBool,
        mut apply: impl FnMut(&BorrowedMessage<'_>),
    ) -> Result<Self> {
        config
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("queued.max.messages.kbytes", "4096");
        let consumer: BaseConsumer<FollowContext> =
            config.create_with_context(FollowContext).map_err(kafka)?;
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(kafka)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::Config(format!(
                "{topic} does not exist; create the catalogue's topics first (bluelight topics apply)"
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(kafka)?;
        }
        consumer.assign(&tpl).map_err(kafka)?;
        let mut at_end = BTreeSet::new();
        let started = Instant::now();
        let mut read = 0u64;
        while at_end.len() < partitions.len() && !stop.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    read += 1;
                    apply(&m);
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading {topic}"),
                None => {}
            }
            if started.elapsed() > timeout * 4 {
                return Err(Error::Kafka(format!(
                    "{topic} not read to its end in {:?} ({read} records, {} of {} partitions)",
                    timeout * 4,
                    at_end.len(),
                    partitions.len()
                )));
            }
        }
        tracing::debug!(
            records = read,
            took_ms = started.elapsed().as_millis() as u64,
            "{topic} read"
        );
        Ok(Follower {
            consumer,
            topic: topic.to_owned(),
            partitions,
            timeout,
            errors: Throttle::new(ERROR_LOG_EVERY),
        })
    }

    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// Hands over what arrived since the last call, without waiting; returns how many records.
    pub fn apply(&self, mut apply: impl FnMut(&BorrowedMessage<'_>)) -> usize {
        let mut n = 0;
        for _ in 0..10_000 {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => {
                    n += 1;
                    apply(&m);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    if self.errors.ready() {
                        tracing::warn!(error = %e, "following {}", self.topic);
                    }
                    break;
                }
                None => break,
            }
        }
        n
    }

    /// Reads up to the topic's current end. An open transaction holds its records back
    /// (read_committed), so a second with nothing new also ends the wait, as does `timeout`.
    pub fn catch_up(&self, mut apply: impl FnMut(&BorrowedMessage<'_>)) {
        let started = Instant::now();
        let ends: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .filter_map(|p| {
                // One budget for all partitions: a broker that is away costs `timeout`, once.
                let left = self.timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return None;
                }
                self.consumer
                    .fetch_watermarks(&self.topic, *p, left)
                    .ok()
                    .map(|(_, high)| (*p, high))
            })
            .collect();
        let mut progress = Instant::now();
        loop {
            if self.apply(&mut apply) > 0 {
                progress = Instant::now();
            }
            let Ok(positions) = self.consumer.position() else {
                break;
            };
            let behind = ends.iter().any(|(p, end)| {
                match positions
                    .find_partition(&self.topic, *p)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(at)) => at < *end,
                    _ => *end > 0,
                }
            });
            if !behind || progress.elapsed() > Duration::from_secs(1) {
                break;
            }
            if started.elapsed() > self.timeout {
                tracing::warn!(
                    "{} not caught up within {:?}; going on",
                    self.topic,
                    self.timeout
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

//! Reading `state.disclosures.v1` into [`Receipts`]: in full on start, then following the
//! writes of other instances, so a partition that moves here arrives with its history.

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::Headers,
};

use super::{STATE_TOPIC, config::ProjectConfig};
use crate::{Error, Result, project::Receipts};

pub(crate) struct Follower {
    consumer: BaseConsumer,
}

impl Follower {
    /// Assigns every partition of the state topic from the beginning and reads up to the end.
    pub(crate) fn start(
        cfg: &ProjectConfig,
        receipts: &mut Receipts,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let mut c = cfg.state_config()?;
        c.set("enable.partition.eof", "true");
        let consumer: BaseConsumer = c.create().map_err(|e| Error::Kafka(e.to_string()))?;
        let metadata = consumer
            .fetch_metadata(Some(STATE_TOPIC), cfg.timeout)
            .map_err(|e| Error::Kafka(e.to_string()))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::Config(format!(
                "{STATE_TOPIC} does not exist; create the catalogue's topics first (bluelight topics apply)"
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(STATE_TOPIC, *p, Offset::Beginning)
                .map_err(|e| Error::Kafka(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::Kafka(e.to_string()))?;
        let mut at_end = BTreeSet::new();
        let started = Instant::now();
        let mut read = 0u64;
        while at_end.len() < partitions.len() && !stop.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    read += 1;
                    apply_one(receipts, &m);
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading {STATE_TOPIC}"),
                None => {}
            }
            if started.elapsed() > cfg.timeout * 4 {
                return Err(Error::Kafka(format!(
                    "{STATE_TOPIC} not read to its end in {:?} ({read} records, {} of {} partitions)",
                    cfg.timeout * 4,
                    at_end.len(),
                    partitions.len()
                )));
            }
        }
        tracing::debug!(
            records = read,
            took_ms = started.elapsed().as_millis() as u64,
            "state read"
        );
        Ok(Follower { consumer })
    }

    /// Applies what other instances wrote since the last call (our own writes are already in
    /// memory, and newer there than their echo).
    pub(crate) fn apply(&self, receipts: &mut Receipts, own: &str) {
        for _ in 0..10_000 {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => {
                    let mine = m.headers().is_some_and(|h| {
                        h.iter()
                            .any(|h| h.key == "bl-writer" && h.value == Some(own.as_bytes()))
                    });
                    if !mine {
                        apply_one(receipts, &m);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "following {STATE_TOPIC}");
                    break;
                }
                None => break,
            }
        }
    }
}

fn apply_one(receipts: &mut Receipts, m: &rdkafka::message::BorrowedMessage<'_>) {
    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    match m.payload() {
        None => receipts.load(key, None),
        Some(bytes) => match Receipts::decode(bytes) {
            Ok(r) => receipts.load(key, Some(r)),
            Err(e) => {
                tracing::warn!(error = %e, partition = m.partition(), offset = m.offset(), "unreadable receipts in {STATE_TOPIC}; skipped")
            }
        },
    }
}

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
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
};

use super::{STATE_TOPIC, config::ProjectConfig};
use crate::{
    Error, Result,
    project::{Ended, Receipts},
};

/// Agreements this service has seen in force, by id: their end is announced once.
pub(crate) type Marks = std::collections::BTreeMap<String, Ended>;

/// The state key of an agreement's mark.
pub(crate) fn mark_key(id: &str) -> String {
    format!("agreement/{id}")
}

/// Headers of every state record: which group (deployment) and which instance wrote it. A
/// state topic shared by two groups (tests, or a blue/green pair) keeps their states apart.
pub(crate) fn headers(cfg: &ProjectConfig) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "bl-group",
            value: Some(cfg.eos.group.as_bytes()),
        })
        .insert(Header {
            key: "bl-writer",
            value: Some(cfg.eos.transactional_id.as_bytes()),
        })
}

fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    m.headers()
        .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
}

pub(crate) struct Follower {
    consumer: BaseConsumer,
    partitions: Vec<i32>,
}

impl Follower {
    /// Assigns every partition of the state topic from the beginning and reads up to the end.
    pub(crate) fn start(
        cfg: &ProjectConfig,
        receipts: &mut Receipts,
        marks: &mut Marks,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let mut c = cfg.state_config()?;
        c.set("enable.partition.eof", "true");
        let consumer: BaseConsumer = c.create().map_err(|e| Error::Kafka(e.to_string()))?;
        let metadata = consumer
            .fetch_metadata(Some(STATE_TOPIC), cfg.eos.timeout)
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
                    if header(&m, "bl-group").is_none_or(|g| g == cfg.eos.group.as_bytes()) {
                        apply_one(receipts, marks, &m);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading {STATE_TOPIC}"),
                None => {}
            }
            if started.elapsed() > cfg.eos.timeout * 4 {
                return Err(Error::Kafka(format!(
                    "{STATE_TOPIC} not read to its end in {:?} ({read} records, {} of {} partitions)",
                    cfg.eos.timeout * 4,
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
        Ok(Follower {
            consumer,
            partitions,
        })
    }

    /// Applies what other instances wrote since the last call (our own writes are already in
    /// memory, and newer there than their echo).
    pub(crate) fn apply(
        &self,
        receipts: &mut Receipts,
        marks: &mut Marks,
        cfg: &ProjectConfig,
    ) -> usize {
        let mut n = 0;
        for _ in 0..10_000 {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => {
                    let mine = header(&m, "bl-writer") == Some(cfg.eos.transactional_id.as_bytes());
                    let ours = header(&m, "bl-group").is_none_or(|g| g == cfg.eos.group.as_bytes());
                    n += 1;
                    if ours && !mine {
                        apply_one(receipts, marks, &m);
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
        n
    }
}

impl Follower {
    /// Reads up to the state topic's current end. Another instance's open transaction holds
    /// its records back (read_committed), so a second with nothing new also ends the wait: the
    /// last owner of a moved partition committed before we could read it.
    pub(crate) fn catch_up(&self, receipts: &mut Receipts, marks: &mut Marks, cfg: &ProjectConfig) {
        let started = Instant::now();
        let ends: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .filter_map(|p| {
                self.consumer
                    .fetch_watermarks(STATE_TOPIC, *p, cfg.eos.timeout)
                    .ok()
                    .map(|(_, high)| (*p, high))
            })
            .collect();
        let mut progress = Instant::now();
        loop {
            if self.apply(receipts, marks, cfg) > 0 {
                progress = Instant::now();
            }
            let Ok(positions) = self.consumer.position() else {
                break;
            };
            let behind = ends.iter().any(|(p, end)| {
                match positions
                    .find_partition(STATE_TOPIC, *p)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(at)) => at < *end,
                    _ => *end > 0,
                }
            });
            if !behind || progress.elapsed() > Duration::from_secs(1) {
                break;
            }
            if started.elapsed() > cfg.eos.timeout {
                tracing::warn!(
                    "{STATE_TOPIC} not caught up within {:?}; going on",
                    cfg.eos.timeout
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            "receipts caught up after an assignment"
        );
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

//! The victim register: every victim's latest preferences from `bl.victim.v1` (compacted), read
//! in full on start and followed while running, so a case event is decided on what the victim
//! last said (an opt-out, a new channel, Enhanced Rights).

use std::{
    collections::{BTreeSet, HashMap},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use bluelight_avro::{Codec, records::VictimEvent};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::BorrowedMessage,
};

use crate::{Error, Result, eos::EosConfig, victims::Preferences};

pub(crate) const VICTIM_TOPIC: &str = "bl.victim.v1";

pub(crate) struct Register {
    consumer: BaseConsumer,
    victims: HashMap<String, Preferences>,
}

impl Register {
    /// Reads `bl.victim.v1` to its end.
    pub(crate) fn start(
        cfg: &EosConfig,
        codec: &Codec,
        rt: &tokio::runtime::Handle,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let mut c = cfg.base()?;
        c.set("group.id", format!("{}-register-reader", cfg.group))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("queued.max.messages.kbytes", "4096");
        let consumer: BaseConsumer = c.create().map_err(|e| Error::Kafka(e.to_string()))?;
        let metadata = consumer
            .fetch_metadata(Some(VICTIM_TOPIC), cfg.timeout)
            .map_err(|e| Error::Kafka(e.to_string()))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::Config(format!(
                "{VICTIM_TOPIC} does not exist; create the catalogue's topics first (bluelight topics apply)"
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(VICTIM_TOPIC, *p, Offset::Beginning)
                .map_err(|e| Error::Kafka(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::Kafka(e.to_string()))?;
        let mut register = Register {
            consumer,
            victims: HashMap::new(),
        };
        let mut at_end = BTreeSet::new();
        let started = Instant::now();
        while at_end.len() < partitions.len() && !stop.load(Ordering::Relaxed) {
            match register.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => apply_one(&mut register.victims, codec, rt, &m),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading {VICTIM_TOPIC}"),
                None => {}
            }
            if started.elapsed() > cfg.timeout * 4 {
                return Err(Error::Kafka(format!(
                    "{VICTIM_TOPIC} not read to its end in {:?}",
                    cfg.timeout * 4
                )));
            }
        }
        Ok(register)
    }

    /// Applies what arrived since the last call.
    pub(crate) fn follow(&mut self, codec: &Codec, rt: &tokio::runtime::Handle) {
        for _ in 0..10_000 {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => apply_one(&mut self.victims, codec, rt, &m),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "following {VICTIM_TOPIC}");
                    break;
                }
                None => break,
            }
        }
    }

    pub(crate) fn get(&self, victim_ref: &str) -> Option<Preferences> {
        self.victims.get(victim_ref).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.victims.len()
    }
}

fn apply_one(
    victims: &mut HashMap<String, Preferences>,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    m: &BorrowedMessage<'_>,
) {
    let Some(payload) = m.payload() else {
        if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
            victims.remove(key);
        }
        return;
    };
    match rt.block_on(codec.decode::<VictimEvent>(payload)) {
        Ok(v) => {
            victims.insert(
                v.victim_ref.clone(),
                Preferences {
                    enhanced_rights: v.enhanced_rights,
                    opted_out: v.contact.opted_out,
                    channel: v.contact.channel,
                },
            );
        }
        // The projector dead-letters what no one can read; here it is only skipped.
        Err(e) => {
            tracing::warn!(error = %e, partition = m.partition(), offset = m.offset(), "unreadable victim record skipped")
        }
    }
}

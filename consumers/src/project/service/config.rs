//! The projector's settings and the librdkafka configuration they become.

use std::{path::PathBuf, time::Duration};

use bluelight_topics::KafkaArgs;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use crate::{Error, Result, policy::Entity};

#[derive(Debug, Clone)]
pub struct ProjectConfig {
    pub kafka: KafkaArgs,
    /// Consumer group: instances with the same group share the canonical partitions.
    pub group: String,
    /// Stable per instance: a restarted instance with the same id fences its predecessor and
    /// aborts whatever transaction it left open, instead of waiting for it to time out.
    pub transactional_id: String,
    pub agreements: PathBuf,
    /// Keys the pseudonyms (HMAC-SHA256, derived per agreement).
    pub secret: Vec<u8>,
    /// Canonical topics read, with their entity.
    pub topics: Vec<(String, Entity)>,
    /// Most events in one transaction.
    pub batch_max: usize,
    /// Longest a batch waits to fill before it commits.
    pub batch_time: Duration,
    /// For transaction calls (init, send offsets, commit, abort).
    pub timeout: Duration,
    /// The producer's queue bound (records); full means pause and drain.
    pub queue_max_messages: usize,
    /// The consumer's prefetch bound per partition (KiB).
    pub prefetch_kbytes: usize,
    pub receipts_capacity: usize,
    pub reload_every: Duration,
    /// For feed topics the projector creates.
    pub feed_partitions: i32,
    /// For feed topics the projector creates; -1 takes the broker's default.
    pub replication_factor: i32,
}

impl ProjectConfig {
    pub fn new(kafka: KafkaArgs, agreements: PathBuf, secret: Vec<u8>) -> Self {
        ProjectConfig {
            kafka,
            group: "bluelight-project".into(),
            transactional_id: "bluelight-project-0".into(),
            agreements,
            secret,
            topics: vec![
                ("bl.incident.v1".into(), Entity::Incident),
                ("bl.case.v1".into(), Entity::Case),
                ("bl.victim.v1".into(), Entity::Victim),
            ],
            batch_max: 2_000,
            batch_time: Duration::from_millis(100),
            timeout: Duration::from_secs(30),
            queue_max_messages: 20_000,
            prefetch_kbytes: 4_096,
            receipts_capacity: 1_000_000,
            reload_every: Duration::from_secs(2),
            feed_partitions: 6,
            replication_factor: -1,
        }
    }

    fn base(&self) -> Result<ClientConfig> {
        self.kafka
            .client_config("project")
            .map_err(|e| Error::Config(e.to_string()))
    }

    pub(crate) fn producer_config(&self) -> Result<ClientConfig> {
        let mut c = self.base()?;
        c.set("transactional.id", &self.transactional_id)
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", ms(self.timeout * 2))
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set("queue.buffering.max.kbytes", "65536")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", ms(self.timeout));
        Ok(c)
    }

    pub(crate) fn consumer_config(&self) -> Result<ClientConfig> {
        let mut c = self.base()?;
        c.set("group.id", &self.group)
            // Static membership: a restarted instance takes its partitions straight back instead
            // of waiting out the dead member's session and a rebalance.
            .set("group.instance.id", &self.transactional_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "queued.max.messages.kbytes",
                self.prefetch_kbytes.to_string(),
            )
            .set("max.poll.interval.ms", "300000")
            // With static membership a dead instance keeps its partitions until its session
            // expires: 10 s bounds how long its partitions wait for another instance.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .set("statistics.interval.ms", "5000");
        Ok(c)
    }

    pub(crate) fn state_config(&self) -> Result<ClientConfig> {
        let mut c = self.base()?;
        c.set("group.id", format!("{}-state-reader", self.group))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("queued.max.messages.kbytes", "4096");
        Ok(c)
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Creates any of `topics` that do not exist (feed topics appear as agreements name recipients).
pub(crate) fn ensure_topics<'a>(
    cfg: &ProjectConfig,
    topics: impl Iterator<Item = &'a str>,
    rt: &tokio::runtime::Handle,
) -> Result<()> {
    let topics: Vec<&str> = topics.collect();
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = cfg
        .base()?
        .create()
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                cfg.feed_partitions,
                TopicReplication::Fixed(cfg.replication_factor),
            )
            .set("retention.ms", "2592000000")
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(cfg.timeout));
    let results = rt
        .block_on(admin.create_topics(&new, &options))
        .map_err(|e| Error::Kafka(e.to_string()))?;
    for r in results {
        match r {
            Ok(t) => tracing::info!(topic = %t, "feed topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(Error::Kafka(format!("creating {t}: {e}"))),
        }
    }
    Ok(())
}

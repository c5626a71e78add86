//! The projector's settings and the librdkafka configuration they become.

use std::{path::PathBuf, time::Duration};

use bluelight_topics::KafkaArgs;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use crate::{Error, Result, eos::EosConfig, policy::Entity};

#[derive(Debug, Clone)]
pub struct ProjectConfig {
    /// The Kafka side: group, instance, batches, timeouts, queues.
    pub eos: EosConfig,
    pub agreements: PathBuf,
    /// Keys the pseudonyms (HMAC-SHA256, derived per agreement).
    pub secret: Vec<u8>,
    /// Canonical topics read, with their entity.
    pub topics: Vec<(String, Entity)>,
    pub receipts_capacity: usize,
    pub reload_every: Duration,
    /// For feed topics the projector creates.
    pub feed_partitions: i32,
    /// For feed topics the projector creates; -1 takes the broker's default.
    pub replication_factor: i32,
    /// Where context blocks come from, for agreements with a context clause.
    pub context: ContextSettings,
}

/// The context service whose state the projector reads for context blocks.
#[derive(Debug, Clone)]
pub struct ContextSettings {
    /// Its flag rules: the same file, so the flags on feeds are the flags it raises.
    pub rules: std::sync::Arc<crate::context::Rules>,
    /// Its consumer group: the records on `state.context.v1` that are its state.
    pub group: String,
    /// Most histories held; past it the least recently seen leave memory.
    pub max_subjects: usize,
}

impl ProjectConfig {
    pub fn new(kafka: KafkaArgs, agreements: PathBuf, secret: Vec<u8>) -> Self {
        let topics = vec![
            ("bl.incident.v1".to_owned(), Entity::Incident),
            ("bl.case.v1".to_owned(), Entity::Case),
            ("bl.victim.v1".to_owned(), Entity::Victim),
        ];
        let names = topics.iter().map(|(t, _)| t.clone()).collect();
        ProjectConfig {
            eos: EosConfig::new(kafka, "project", "bluelight-project", names),
            agreements,
            secret,
            topics,
            receipts_capacity: 1_000_000,
            reload_every: Duration::from_secs(2),
            feed_partitions: 6,
            replication_factor: -1,
            context: ContextSettings {
                rules: std::sync::Arc::new(crate::context::Rules::none()),
                group: "bluelight-context".into(),
                max_subjects: 200_000,
            },
        }
    }

    /// The entity of a canonical topic.
    pub fn entity(&self, topic: &str) -> Option<Entity> {
        self.topics
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, e)| *e)
    }

    pub(crate) fn state_config(&self) -> Result<ClientConfig> {
        let mut c = self.eos.base()?;
        c.set("group.id", format!("{}-state-reader", self.eos.group))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("queued.max.messages.kbytes", "4096");
        Ok(c)
    }
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
        .eos
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
    let options = AdminOptions::new().operation_timeout(Some(cfg.eos.timeout));
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

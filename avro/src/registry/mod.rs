//! The embedded Confluent-compatible schema registry (`bluelight registry`).
//!
//! Schemas live in a compacted, single-partition Kafka topic (`_schemas`) in Confluent Schema
//! Registry's own record format, so the log is the only source of truth: every instance reads it
//! from the beginning into memory and answers from there, and any number of instances can serve
//! the same topic. A write appends a record with an idempotent producer, then waits until this
//! instance's consumer has applied it ("read your write"), so every answer reflects the log. Ids
//! and versions are settled when records are applied, in log order, identically everywhere;
//! a writer that lost a race to another instance retries with fresh numbers.
//!
//! Where things live:
//! - this file: the public API ([`RegistryConfig`], [`Registry`], its status);
//! - `service.rs`: the registry's operations with Confluent's semantics (register, look up,
//!   delete, configure, test compatibility), used by the HTTP layer and callable directly;
//! - `store.rs`: the log's record format and the state machine that applies it; pure;
//! - `kafka.rs`: the producer and the consumer thread;
//! - `compat.rs`: [`CompatibilityLevel`] and the checks behind each level;
//! - `api.rs`: Confluent's REST API on axum ([`router`]);
//! - `metrics.rs`: Prometheus metrics (`bluelight_registry_*`);
//! - `tests.rs`: unit tests of the state machine, the record format and the checks.
//!
//! Only Avro schemas, without schema references, are served; modes, contexts, metadata and rule
//! sets are not implemented.

mod api;
mod compat;
mod kafka;
mod metrics;
mod service;
mod store;
#[cfg(test)]
mod tests;

use std::{
    fmt,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard},
    time::Duration,
};

use rdkafka::ClientConfig;

pub use api::{CONTENT_TYPE, router};
pub use compat::CompatibilityLevel;
pub use service::{Registered, SubjectVersion, VersionSpec};

use crate::{Error, Result};

/// The topic Confluent Schema Registry (and the bluelight topic catalogue) uses.
pub const DEFAULT_TOPIC: &str = "_schemas";

/// How to run a registry instance.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Kafka settings (brokers, TLS, SASL) shared with every bluelight service; the registry adds
    /// its own consumer and producer settings on top.
    pub kafka: ClientConfig,
    /// The registry topic: one partition (one order of ids for every instance), compacted (only
    /// the last record per key is needed to rebuild the state). It must exist.
    pub topic: String,
    /// The compatibility level of subjects without their own, until `PUT /config` sets one.
    pub default_compatibility: CompatibilityLevel,
    /// How long a write may take, broker acknowledgement plus reading it back; past it the
    /// request fails with Confluent's timeout code (50002).
    pub write_timeout: Duration,
    /// How long [`Registry::start`] may take to connect and read the whole topic.
    pub startup_timeout: Duration,
    /// How long a broker call (metadata, watermarks) is retried while it fails transiently: a
    /// topic just created, a leader moving. Also how long `start` takes to report a missing topic
    /// (a topic that exists may not have reached every broker yet).
    pub kafka_timeout: Duration,
    /// Largest request body accepted (413 beyond); schemas are kilobytes, so this only stops abuse.
    pub max_request_bytes: usize,
}

impl RegistryConfig {
    /// Defaults for everything but the Kafka connection: `_schemas`, BACKWARD_TRANSITIVE (an old
    /// event may be replayed against any later schema, not just the previous one), 10 s writes.
    pub fn new(kafka: ClientConfig) -> Self {
        RegistryConfig {
            kafka,
            topic: DEFAULT_TOPIC.to_owned(),
            default_compatibility: CompatibilityLevel::BackwardTransitive,
            write_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(60),
            kafka_timeout: Duration::from_secs(10),
            max_request_bytes: 1024 * 1024,
        }
    }
}

impl fmt::Debug for RegistryConfig {
    /// Leaves out the Kafka settings but the brokers: they may hold credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("brokers", &self.kafka.get("bootstrap.servers"))
            .field("topic", &self.topic)
            .field("default_compatibility", &self.default_compatibility)
            .field("write_timeout", &self.write_timeout)
            .field("startup_timeout", &self.startup_timeout)
            .field("kafka_timeout", &self.kafka_timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish()
    }
}

/// A running registry instance. Cheap to clone (all clones share one instance); the consumer
/// thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<RwLock<store::State>>,
    log: kafka::Log,
    default_compatibility: CompatibilityLevel,
    max_request_bytes: usize,
    /// One write at a time per instance: local writers never race each other through the log,
    /// only other instances' writers do (and those races are settled by log order).
    writes: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("topic", &self.inner.log.topic())
            .field("ready", &self.ready())
            .finish()
    }
}

impl Registry {
    /// Connects, checks the topic, reads it to its end and returns a ready registry; fails if the
    /// broker or the topic is missing, or reading takes longer than `startup_timeout`.
    pub async fn start(config: RegistryConfig) -> Result<Registry> {
        let startup = config.startup_timeout;
        let registry = Registry::connect(config).await?;
        registry.inner.log.wait_caught_up(startup).await?;
        tracing::info!(topic = %registry.inner.log.topic(), "schema registry ready");
        Ok(registry)
    }

    /// Connects and checks the topic, and returns while the topic is still being read: for a
    /// binary that wants to answer health checks during a long catch-up. Requests wait for the
    /// catch-up (up to the write timeout); [`Registry::ready`] tells how far it is.
    pub async fn connect(config: RegistryConfig) -> Result<Registry> {
        let state = Arc::new(RwLock::new(store::State::default()));
        let log_state = state.clone();
        let default_compatibility = config.default_compatibility;
        let max_request_bytes = config.max_request_bytes;
        let log = tokio::task::spawn_blocking(move || kafka::Log::connect(&config, log_state))
            .await
            .map_err(|e| Error::RegistryInternal(format!("connect task: {e}")))??;
        Ok(Registry {
            inner: Arc::new(Inner {
                state,
                log,
                default_compatibility,
                max_request_bytes,
                writes: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// `Ok` when the registry has read its topic and reaches the broker, else why not, e.g.
    /// "catching up with _schemas (offset 10 of 200)" or "cannot reach broker: ...".
    pub fn ready(&self) -> Result<(), String> {
        self.inner.log.ready()
    }

    /// The registry topic's name.
    pub fn topic(&self) -> &str {
        self.inner.log.topic()
    }

    fn state(&self) -> RwLockReadGuard<'_, store::State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

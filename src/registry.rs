//! `bluelight registry`: wiring for the embedded Confluent-compatible schema registry.

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use anyhow::Context;
use bluelight_avro::registry::{self, CompatibilityLevel, Registry, RegistryConfig};
use bluelight_topics::KafkaArgs;
use clap::Args;

use crate::ops;

/// Serve a Confluent Schema Registry compatible REST API, storing schemas in a compacted Kafka
/// topic so ids survive restarts and every instance agrees on them. Confluent clients (Java,
/// Python, Go, librdkafka-based) can use it as they would Confluent's own.
#[derive(Debug, Args)]
pub struct RegistryCommand {
    /// Address to serve the API, /metrics and /health/{live,ready} on.
    #[arg(
        long,
        env = "BLUELIGHT_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8081",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,

    /// The topic holding the schemas: one partition, compacted (the catalogue's `_schemas`).
    #[arg(long, env = "BLUELIGHT_REGISTRY_TOPIC", default_value = registry::DEFAULT_TOPIC, value_name = "TOPIC")]
    topic: String,

    /// Compatibility level for subjects that have none of their own: NONE, BACKWARD,
    /// BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE.
    #[arg(
        long,
        env = "BLUELIGHT_REGISTRY_COMPATIBILITY",
        default_value = "BACKWARD_TRANSITIVE",
        value_name = "LEVEL"
    )]
    compatibility: CompatibilityLevel,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl RegistryCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let mut config = RegistryConfig::new(self.kafka.client_config("registry")?);
        config.topic = self.topic.clone();
        config.default_compatibility = self.compatibility;
        let registry = Registry::connect(config).await.with_context(|| {
            format!(
                "cannot open the registry topic {} on {}",
                self.topic, self.kafka.brokers
            )
        })?;
        let ready = registry.clone();
        let router = registry::router(registry).merge(ops::routes(Arc::new(move || ready.ready())));
        ops::serve(self.listen, router, ops::shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    }
}

//! Where bluelight's data lives on Kafka, and how every service reaches it.
//!
//! - [`catalogue`]: the topic catalogue (`topics/topics.toml`), a typed loader that rejects a bad file
//!   with its line and the reason, and the per-kind rules (audit keeps records, state is compacted).
//! - [`naming`]: the topic naming contract (`bl.<entity>.v<major>`, `feed.<recipient>.<entity>.v<major>`,
//!   `audit.*`, `dlq.*`, `state.*`) that other systems and tests rely on.
//! - [`client`]: the Kafka client settings every service shares (brokers, client id, TLS, SASL, extra
//!   librdkafka properties), as `clap` arguments with environment fallbacks.
//! - [`provision`]: comparing the catalogue with a live cluster and creating what is missing
//!   (`bluelight topics apply` / `list`), never deleting or shrinking anything.
//! - [`tokens`]: bearer tokens kept as hashes and compared in constant time (ingest, gateway).
//! - [`trace`]: W3C `traceparent` across Kafka records, joining each service's span to the trace.
//!
//! This crate knows nothing of Avro or of the services; it is the ground they stand on.

pub mod catalogue;
pub mod client;
mod error;
pub mod naming;
pub mod provision;
pub mod testing;
pub mod tokens;
pub mod trace;

pub use catalogue::{Catalogue, CleanupPolicy, Retention, TopicSpec};
pub use client::KafkaArgs;
pub use error::{Error, ErrorDomain, Problem, Result};
pub use naming::TopicKind;
pub use provision::{Plan, Provisioner, TopicStatus};

/// The catalogue shipped with bluelight, for tools that run outside a checkout.
pub const DEFAULT_CATALOGUE: &str = include_str!("../topics.toml");

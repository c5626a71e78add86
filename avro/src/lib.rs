//! The canonical standard every bluelight topic speaks.
//!
//! - [`records`]: the typed Rust records of the canonical POLE-based standard (envelope, incident,
//!   case, victim, victim update, disclosure, retraction). They are the source of truth: the
//!   `avro/schemas/*.avsc` files are generated from them (`bluelight schemas export`) and a test keeps
//!   the two identical, field for field.
//! - [`schemas`]: which schema belongs to which topic and registry subject, parsed once.
//! - [`codec`]: the Confluent wire format (magic byte, schema id, Avro binary) with schemas resolved
//!   once per id and cached without a lock on the hot path; malformed payloads are typed errors.
//! - [`registry`]: the embedded Confluent-compatible schema registry (`bluelight registry`), storing
//!   schemas in the compacted `_schemas` topic.
//!
//! Nothing here knows about the other bluelight crates; Kafka settings arrive as an
//! `rdkafka::ClientConfig` from whoever starts the registry.

pub mod codec;
mod error;
pub mod records;
pub mod registry;
pub mod schemas;

pub use codec::Codec;
pub use error::{Error, ErrorDomain, Result};

//! The canonical standard every bluelight topic speaks.
//!
//! This crate will hold the POLE-based Avro schemas (`avro/schemas/*.avsc`), the typed Rust records
//! generated from them, the Confluent wire-format codec and the embedded Confluent-compatible schema
//! registry. It depends on nothing else in the workspace, so any service (or an outside tool) can
//! speak the standard without pulling in Kafka plumbing. The schemas arrive with the canonical-standard
//! issue; until then the crate is deliberately empty.

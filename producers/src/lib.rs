//! Getting source systems' data onto the backbone.
//!
//! - [`adapters`]: one module per source format (CAD JSON, MAIT-style XML, RMS CSV, victim CRM
//!   JSON), each translating its input into canonical records with mapping tables loaded from
//!   `producers/mappings/*.toml`, and validating as it goes: a bad record yields [`adapters::Rejected`]
//!   naming the source, the record (CSV line, XML path, JSON pointer), the field and the problem,
//!   and never stops the rest of the batch.
//! - [`validate`]: the field checks adapters share (postcodes, UPRNs, zoned timestamps,
//!   coordinates, coded values).
//!
//! - [`publish`]: the idempotent publisher with admission control, and the dead-letter path.
//!
//! - [`ingest`]: the HTTP ingest API for source systems (hashed bearer tokens, 202/400/401/403/413/415/429/503).
//!
//! - [`simulate`]: deterministic multi-agency scenarios in the sources' own formats.

pub mod adapters;
mod error;
pub mod ingest;
pub mod publish;
pub mod simulate;
pub mod validate;

pub use error::{Error, ErrorDomain, Result};

//! Getting source systems' data onto the backbone.
//!
//! This crate will hold one adapter per source format (CAD JSON, MAIT-style XML, RMS CSV, victim CRM
//! JSON), validation with clear errors, the HTTP ingest API, the idempotent publisher with its
//! dead-letter path, and the scenario simulator. It uses `bluelight-avro` for the standard and
//! `bluelight-topics` for topic names and Kafka client settings. Arrives with the producers issue.

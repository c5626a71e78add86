//! Measurements against the physical limit.
//!
//! This crate will hold the criterion micro-benchmarks (adapters, Avro, agreement evaluation, one
//! projection step) and the end-to-end harness that compares the projector with a plain
//! consume-and-produce passthrough on the same broker. Arrives with the performance issue.

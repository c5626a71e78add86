//! Measurements against the physical limit.
//!
//! - `benches/micro.rs`: criterion micro-benchmarks of the per-event work (adapters, Avro encode
//!   and decode, agreement scope and decision, one whole projection step with 1, 10 and 50
//!   agreements), each in events per second: `cargo bench -p bluelight-benches --bench micro`.
//! - The end-to-end harness that compares the projector with a plain consume-and-produce
//!   passthrough on the same broker arrives with the rest of the performance issue.
//!
//! `README.md` holds the measured figures and the history of each change's effect.

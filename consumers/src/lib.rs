//! Turning canonical events into governed feeds for people and partner systems.
//!
//! This crate will hold the sharing-agreement policy engine, the exactly-once projector that writes
//! per-recipient feeds together with their DPA 2018 s62 audit records, the Victims' Code update
//! service, and the live gateway with its control-room board. Arrives with the projector issue.

//! Turning canonical events into governed feeds for people and partner systems.
//!
//! - [`policy`]: Information Sharing Agreements as files (`agreements/*.toml`), loaded and checked
//!   (field paths against the canonical schemas, CEL conditions parsed and tried on a sample
//!   record, validity dates, overlaps), reporting every problem with its file and line. Default
//!   deny: a field reaches a recipient only when a clause in force names it.
//!
//! The projector, victim updates and the gateway build on these.

mod error;
pub mod policy;

pub use error::{Error, ErrorDomain, Problem, Result};

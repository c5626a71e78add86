//! Turning canonical events into governed feeds for people and partner systems.
//!
//! - [`policy`]: Information Sharing Agreements as files (`agreements/*.toml`), loaded and checked
//!   (field paths against the canonical schemas, CEL conditions parsed and tried on a sample
//!   record, validity dates, overlaps), reporting every problem with its file and line. Default
//!   deny: a field reaches a recipient only when a clause in force names it.
//!
//! - [`eos`]: exactly-once read-process-write over Kafka: batches, transactions, recovery.
//! - [`project`]: the projector: deciding every agreement for each canonical event, building each
//!   recipient's record and its audit record, retraction notices, and `bluelight project`, the
//!   exactly-once Kafka service that writes feeds, audit and state in one transaction.
//!
//! - [`victims`]: the Victims' Code as data, the working-day calendar, the updates a case
//!   event owes its victims, and the deadline tracker that closes them on acknowledgement and
//!   raises alerts when they are due soon or overdue.
//! - [`notify`]: `bluelight notify`, the reference notification client: webhook delivery with
//!   retries and idempotency keys, then the acknowledgement.
//!
//! - [`context`]: the context view (Right Care, Right Person): each person's and place's
//!   contacts across agencies, and flags with their evidence, from `bluelight context`.
//!
//! - [`gateway`]: `bluelight gateway`, the HTTP face for people: bearer-token sign-in, each
//!   recipient's feeds as Server-Sent Events (resumable, bounded per client), the current state of
//!   an incident from a view built from the feeds, every read logged to `audit.consultation.v1`,
//!   and the control-room board as embedded web assets.

pub mod context;
pub mod eos;
mod error;
pub mod gateway;
pub mod notify;
pub mod policy;
pub mod project;
pub mod victims;

pub use error::{Error, ErrorDomain, Problem, Result};

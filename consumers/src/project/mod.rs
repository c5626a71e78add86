//! The projector: canonical events in, governed feeds and their audit records out.
//!
//! - `event.rs`: one canonical event of any entity, typed, with its JSON view;
//! - `plan.rs`: a clause compiled into a projection tree and the field lists its audits quote;
//! - `transform.rs`: keep, redact, keyed pseudonyms and the generalisations;
//! - `decide.rs`: [`Projector`], which decides every agreement for an event (in memory, no I/O)
//!   and builds the feed records, each paired with its audit record, and retraction notices;
//! - `context.rs`: the context block an agreement's `[[context]]` clause adds to its incident
//!   records, from the subjects' histories on `state.context.v1`;
//! - `receipts.rs`: who received what, so retractions reach exactly those recipients; kept on the
//!   compacted `state.disclosures.v1` and rebuilt from it on start;
//! - `service/`: `bluelight project`, the exactly-once Kafka consumer around it.

pub mod context;
mod decide;
mod event;
pub mod plan;
pub mod receipts;
pub mod service;
pub mod transform;
mod write;

pub use context::{Block, ContextSource, NoContext};
pub use decide::{
    Encoded, Ended, FeedRecord, Projection, Projector, Verdict, feed_topic, sharing_ended,
};
pub use event::Event;
pub use receipts::{Receipt, Receipts};

#[cfg(test)]
mod context_tests;
#[cfg(test)]
mod tests;

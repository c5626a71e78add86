//! The context view (Right Care, Right Person): a call seen in the light of the person and the
//! place, across agencies. Who has called before, about whom, which agency helped, which cases
//! are open, which markers are recorded, and which patterns (rules as data) a control room
//! should be shown, each flag carrying its evidence as counts and event ids.
//!
//! - `rules.rs`: the flag rules (`consumers/context-rules.toml`), loaded and checked;
//! - `history.rs`: one subject's rolling history (90 days, bounded) and its [`Summary`] as of a
//!   moment; the same observations in any order across incidents give the same history;
//! - `extract.rs`: canonical incident and case events to [`Observation`]s, one per subject,
//!   keyed by pseudonymous [`SubjectKeys`] (never a person reference or a UPRN);
//! - `service/`: `bluelight context`: routing canonical events to subjects, and folding each
//!   subject's observations into its history on the compacted `state.context.v1`, both exactly
//!   once, scaled out by subject key.

pub mod extract;
pub mod history;
pub mod rules;
pub mod service;

pub use extract::SubjectKeys;
pub use history::{Contact, Flag, History, Observation, SubjectState, Summary};
pub use rules::{Rule, Rules, SubjectKind};

#[cfg(test)]
mod tests;

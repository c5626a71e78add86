//! Victim updates: the Victims' Code as data, turned into the updates each victim is owed.
//!
//! - `code.rs`: the entitlements (`consumers/victims-code.toml`): triggers, deadlines in working
//!   days for standard and Enhanced Rights victims, templates and the facts they may show;
//! - `calendar.rs`: working days in England and Wales (`consumers/calendars/`), Europe/London;
//! - `decide.rs`: which updates a case event owes its victims, and opt-outs, with no I/O.
//!
//! - `service/`: `bluelight victim-updates`, the exactly-once service writing
//!   `feed.victim-update.v1` and its audit records.

mod calendar;
mod code;
mod decide;
pub mod service;

pub use calendar::Calendar;
pub use code::{Entitlement, FACTS, VictimsCode};
pub use decide::{Owed, Preferences, owed};

#[cfg(test)]
mod tests;

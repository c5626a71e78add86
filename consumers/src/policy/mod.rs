//! Information Sharing Agreements: who may receive which fields of which events, and why.
//!
//! - `agreement.rs`: the file format (written for information-governance officers) and the
//!   validated [`Agreement`];
//! - `load.rs`: loading a directory, checking every rule and reporting every problem with its file
//!   and line: unknown field paths, CEL that does not parse or does not give true/false on a
//!   sample record, validity dates, expired and overlapping agreements;
//! - `fields.rs`: the field paths each canonical entity has.

mod agreement;
pub mod fields;
mod load;

pub use agreement::{
    Agreement, Clause, ContextClause, ContextPart, FieldRule, Generalisation, Recipient, Transform,
};
pub use fields::Entity;
pub use load::{Policy, load_dir, load_str};

//! Compatibility levels and the checks behind them.
//!
//! The directions follow Confluent: BACKWARD means consumers on the *new* schema can read data
//! written with the old one (reader = new, writer = old); FORWARD means consumers still on the old
//! schema can read data written with the new one; FULL is both. The plain levels compare with the
//! latest live version only, the `_TRANSITIVE` ones with every live (not soft-deleted) version.
//! The Avro resolution rules themselves are `apache_avro`'s `SchemaCompatibility::can_read`.

use std::{fmt, str::FromStr, sync::Arc};

use apache_avro::{
    Schema,
    schema_compatibility::{Compatibility, SchemaCompatibility},
};

use crate::Error;

/// A subject's (or the registry's global) compatibility rule, as Confluent names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompatibilityLevel {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    /// The name on the wire (`BACKWARD_TRANSITIVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema must read what the old one wrote.
    fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Whether the old schema must read what the new one writes.
    fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = Error;

    /// Case-insensitive, as clients differ in how they spell levels.
    fn from_str(s: &str) -> Result<Self, Error> {
        let wanted = s.trim();
        CompatibilityLevel::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| Error::InvalidCompatibilityLevel(s.to_owned()))
    }
}

/// Why `new` may not follow the given earlier versions under `level`; empty when it may.
///
/// `previous` is every live version of the subject, oldest first.
pub(crate) fn check(
    level: CompatibilityLevel,
    new: &Schema,
    previous: &[(u32, Arc<Schema>)],
) -> Vec<String> {
    let against = if level.transitive() {
        previous
    } else {
        previous
            .len()
            .checked_sub(1)
            .map_or(&[][..], |last| &previous[last..])
    };
    against
        .iter()
        .flat_map(|(version, old)| check_one(level, new, *version, old))
        .collect()
}

/// The checks of `level` between `new` and one earlier version (transitivity does not apply).
pub(crate) fn check_one(
    level: CompatibilityLevel,
    new: &Schema,
    version: u32,
    old: &Schema,
) -> Vec<String> {
    let mut problems = Vec::new();
    if level.backward()
        && let Some(why) = cannot_read(old, new)
    {
        problems.push(format!(
            "the new schema cannot read data written with version {version}: {why}"
        ));
    }
    if level.forward()
        && let Some(why) = cannot_read(new, old)
    {
        problems.push(format!(
            "version {version} cannot read data written with the new schema: {why}"
        ));
    }
    problems
}

/// Why `reader` cannot read everything `writer` writes, if it cannot.
///
/// Avro's "partial" compatibility (some enum symbols or union branches missing on the reader side)
/// counts as incompatible, as in Confluent: some records would fail to decode.
fn cannot_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some(
            "only partially compatible: some values (enum symbols or union branches the reader \
             lacks) could not be read"
                .to_owned(),
        ),
        Err(e) => Some(e.to_string()),
    }
}

//! The topic naming contract.
//!
//! Names are part of bluelight's public interface: partner systems subscribe to feeds by name and
//! ACLs are written against prefixes, so every topic in the catalogue must fit one of these shapes:
//!
//! | shape | kind | example |
//! |---|---|---|
//! | `bl.<entity>.v<major>` | canonical events from source systems | `bl.incident.v1` |
//! | `feed.<recipient>.<entity>.v<major>` or `feed.<entity>.v<major>` | governed output | `feed.fire-west.incident.v1` |
//! | `audit.<what>.v<major>` | DPA 2018 s62 logs | `audit.disclosure.v1` |
//! | `dlq.<stage>.v<major>` | dead letters of one pipeline stage | `dlq.ingest.v1` |
//! | `state.<what>.v<major>` | compacted service state | `state.disclosures.v1` |
//! | `_schemas` | the schema registry's store | `_schemas` |
//!
//! Segments are lower-case letters, digits and hyphens, starting with a letter; the major version
//! changes only with an incompatible schema, which means a new topic.

use std::fmt;

/// The registry's storage topic, shared with Confluent Schema Registry's default.
pub const REGISTRY_TOPIC: &str = "_schemas";

/// Kafka's own limit on topic name length.
const MAX_LEN: usize = 249;

/// What a topic is for, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind {
    Canonical {
        entity: String,
        major: u32,
    },
    Feed {
        recipient: Option<String>,
        entity: String,
        major: u32,
    },
    Audit {
        what: String,
        major: u32,
    },
    DeadLetter {
        stage: String,
        major: u32,
    },
    State {
        what: String,
        major: u32,
    },
    /// A service's own stream re-keyed for its next stage (a repartition, as in Kafka
    /// Streams): a log with a retention, never compacted.
    Repartition {
        what: String,
        major: u32,
    },
    Registry,
}

impl TopicKind {
    /// Short label for tables and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TopicKind::Canonical { .. } => "canonical",
            TopicKind::Feed { .. } => "feed",
            TopicKind::Audit { .. } => "audit",
            TopicKind::DeadLetter { .. } => "dead-letter",
            TopicKind::State { .. } => "state",
            TopicKind::Repartition { .. } => "repartition",
            TopicKind::Registry => "registry",
        }
    }
}

/// Why a name does not fit the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingError {
    pub name: String,
    pub reason: String,
}

impl fmt::Display for NamingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic name {:?} {}", self.name, self.reason)
    }
}

impl std::error::Error for NamingError {}

/// Reads a topic name against the contract.
pub fn classify(name: &str) -> Result<TopicKind, NamingError> {
    let fail = |reason: String| NamingError {
        name: name.to_owned(),
        reason,
    };
    if name == REGISTRY_TOPIC {
        return Ok(TopicKind::Registry);
    }
    if name.is_empty() || name.len() > MAX_LEN {
        return Err(fail(format!("must be 1 to {MAX_LEN} characters long")));
    }
    let parts: Vec<&str> = name.split('.').collect();
    let (prefix, rest) = parts.split_first().ok_or_else(|| fail("is empty".into()))?;
    let Some((version, middle)) = rest.split_last() else {
        return Err(fail(
            "must look like <kind>.<name>.v<major>, e.g. bl.incident.v1".into(),
        ));
    };
    let major = parse_major(version).map_err(fail)?;
    for segment in middle {
        check_segment(segment).map_err(fail)?;
    }
    let one = |what: &str| match middle {
        [single] => Ok((*single).to_owned()),
        _ => Err(fail(format!(
            "must be {prefix}.<{what}>.v<major> with exactly one {what} segment"
        ))),
    };
    match *prefix {
        "bl" => Ok(TopicKind::Canonical {
            entity: one("entity")?,
            major,
        }),
        "audit" => Ok(TopicKind::Audit {
            what: one("what")?,
            major,
        }),
        "dlq" => Ok(TopicKind::DeadLetter {
            stage: one("stage")?,
            major,
        }),
        "state" => Ok(TopicKind::State {
            what: one("what")?,
            major,
        }),
        "repartition" => Ok(TopicKind::Repartition {
            what: one("what")?,
            major,
        }),
        "feed" => match middle {
            [entity] => Ok(TopicKind::Feed {
                recipient: None,
                entity: (*entity).to_owned(),
                major,
            }),
            [recipient, entity] => Ok(TopicKind::Feed {
                recipient: Some((*recipient).to_owned()),
                entity: (*entity).to_owned(),
                major,
            }),
            _ => Err(fail(
                "must be feed.<recipient>.<entity>.v<major> or feed.<entity>.v<major>".into(),
            )),
        },
        other => Err(fail(format!(
            "starts with {other:?}; expected one of bl, feed, audit, dlq, state, repartition (or the registry's _schemas)"
        ))),
    }
}

/// The feed topic a recipient organisation reads for one entity.
pub fn feed_topic(recipient: &str, entity: &str, major: u32) -> String {
    format!("feed.{recipient}.{entity}.v{major}")
}

/// Checks one name segment (recipient, entity, stage): used for organisation codes too.
pub fn check_segment(segment: &str) -> Result<(), String> {
    let mut chars = segment.chars();
    match chars.next() {
        None => return Err("has an empty segment (two dots in a row?)".into()),
        Some(c) if !c.is_ascii_lowercase() => {
            return Err(format!(
                "segment {segment:?} must start with a lower-case letter"
            ));
        }
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "segment {segment:?} contains {bad:?}; use lower-case letters, digits and hyphens"
        ));
    }
    Ok(())
}

fn parse_major(version: &str) -> Result<u32, String> {
    version
        .strip_prefix('v')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("must end in a major version such as .v1, not .{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_shape_of_the_contract() {
        let cases = [
            ("bl.incident.v1", "canonical"),
            ("bl.victim-notification-ack.v1", "canonical"),
            ("feed.fire-west.incident.v1", "feed"),
            ("feed.victim-update.v1", "feed"),
            ("audit.disclosure.v1", "audit"),
            ("dlq.ingest.v2", "dead-letter"),
            ("state.disclosures.v1", "state"),
            ("_schemas", "registry"),
        ];
        for (name, label) in cases {
            assert_eq!(classify(name).map(|k| k.label()), Ok(label), "{name}");
        }
        assert_eq!(
            classify("feed.cps.case.v3"),
            Ok(TopicKind::Feed {
                recipient: Some("cps".into()),
                entity: "case".into(),
                major: 3
            })
        );
    }

    #[test]
    fn rejects_names_outside_the_contract_with_a_reason() {
        let cases = [
            ("incident", "must look like <kind>.<name>.v<major>"),
            (
                "bl.incident",
                "must end in a major version such as .v1, not .incident",
            ),
            ("bl.incident.v0", "must end in a major version"),
            (
                "bl.Incident.v1",
                "segment \"Incident\" must start with a lower-case letter",
            ),
            ("bl.inci_dent.v1", "contains '_'"),
            ("bl..v1", "empty segment"),
            ("bl.a.b.v1", "exactly one entity segment"),
            (
                "feed.a.b.c.v1",
                "must be feed.<recipient>.<entity>.v<major>",
            ),
            ("ops.thing.v1", "starts with \"ops\""),
        ];
        for (name, want) in cases {
            let err = classify(name).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn feed_topic_builds_a_name_that_classifies_as_a_feed() {
        let name = feed_topic("ambulance-sw", "incident", 1);
        assert_eq!(name, "feed.ambulance-sw.incident.v1");
        assert_eq!(classify(&name).map(|k| k.label()), Ok("feed"));
    }
}

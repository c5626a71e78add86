//! The topic catalogue: every topic bluelight owns, what its key means and how long it keeps data.
//!
//! The file is written by people (platform and information-governance staff), so the loader reads
//! the whole file, checks every rule, and reports every problem at once with its line and column.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    Error, Problem, Result,
    naming::{self, TopicKind},
};

/// Shortest retention allowed for an audit topic: the s62 log must outlive any review of a disclosure.
const MIN_AUDIT_RETENTION_MS: u64 = 365 * DAY_MS;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// Settings the catalogue manages through dedicated fields, so `[topic.config]` may not repeat them.
const MANAGED_CONFIGS: [&str; 2] = ["cleanup.policy", "retention.ms"];

/// A validated topic catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub file: PathBuf,
    pub topics: Vec<TopicSpec>,
}

/// One topic as the catalogue wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub kind: TopicKind,
    pub partitions: i32,
    pub replication_factor: i16,
    pub cleanup_policy: CleanupPolicy,
    pub retention: Retention,
    /// What the record key means; producers and consumers rely on it for ordering.
    pub key: String,
    /// Schema registry subject of the value; `None` for raw bytes (dead letters, the registry store).
    pub value_subject: Option<String>,
    pub owner: String,
    pub description: String,
    /// Further topic-level settings, passed to the broker verbatim.
    pub config: BTreeMap<String, String>,
    /// Where the entry starts in the file, for messages about it.
    pub line: usize,
}

impl TopicSpec {
    /// Every topic-level setting the catalogue manages, as the broker spells it.
    pub fn desired_configs(&self) -> BTreeMap<String, String> {
        let mut configs = self.config.clone();
        configs.insert(
            "cleanup.policy".into(),
            self.cleanup_policy.as_kafka().into(),
        );
        configs.insert("retention.ms".into(), self.retention.as_kafka());
        configs
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    pub fn as_kafka(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    pub fn compacts(self) -> bool {
        self != CleanupPolicy::Delete
    }

    /// Reads a policy as the catalogue or the broker spells it (either order of `compact,delete`).
    pub fn parse_kafka(s: &str) -> Option<Self> {
        let mut parts: Vec<&str> = s.split(',').map(str::trim).collect();
        parts.sort_unstable();
        match parts.as_slice() {
            ["delete"] => Some(CleanupPolicy::Delete),
            ["compact"] => Some(CleanupPolicy::Compact),
            ["compact", "delete"] => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }
}

/// How long a topic keeps records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Forever,
    Millis(u64),
}

impl Retention {
    pub fn as_kafka(self) -> String {
        match self {
            Retention::Forever => "-1".into(),
            Retention::Millis(ms) => ms.to_string(),
        }
    }

    /// Parses `forever` or a whole number with a unit: `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365 days).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "forever" {
            return Ok(Retention::Forever);
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 60 * 60 * 1000,
            "d" => DAY_MS,
            "w" => 7 * DAY_MS,
            "y" => 365 * DAY_MS,
            _ => {
                return Err(format!(
                    "retention {s:?} needs a unit: ms, s, m, h, d, w or y (e.g. \"90d\"), or \"forever\""
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("retention {s:?} must start with a whole number, e.g. \"90d\""))?;
        match n.checked_mul(unit_ms) {
            Some(0) => {
                Err("retention must be longer than zero; use \"forever\" to keep everything".into())
            }
            Some(ms) => Ok(Retention::Millis(ms)),
            None => Err(format!("retention {s:?} is too long; use \"forever\"")),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Retention::Forever => f.write_str("forever"),
            Retention::Millis(ms) if ms % (365 * DAY_MS) == 0 => {
                write!(f, "{}y", ms / (365 * DAY_MS))
            }
            Retention::Millis(ms) if ms % DAY_MS == 0 => write!(f, "{}d", ms / DAY_MS),
            Retention::Millis(ms) if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            Retention::Millis(ms) => write!(f, "{ms}ms"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    topic: Vec<Spanned<RawTopic>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default = "default_replication")]
    replication_factor: Spanned<i64>,
}

impl Default for RawDefaults {
    fn default() -> Self {
        RawDefaults {
            replication_factor: Spanned::new(0..0, default_replication().into_inner()),
        }
    }
}

fn default_replication() -> Spanned<i64> {
    Spanned::new(0..0, 3)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    name: Spanned<String>,
    partitions: Spanned<i64>,
    replication_factor: Option<Spanned<i64>>,
    cleanup_policy: Spanned<String>,
    retention: Spanned<String>,
    key: Spanned<String>,
    value_subject: Option<Spanned<String>>,
    owner: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<String>>,
}

impl Catalogue {
    /// Reads and validates a catalogue file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates catalogue text; `file` is only used in messages.
    pub fn parse(text: &str, file: impl Into<PathBuf>) -> Result<Self> {
        let file = file.into();
        let lines = LineIndex::new(text);
        let raw: RawCatalogue = toml::from_str(text).map_err(|e| Error::Catalogue {
            file: file.clone(),
            problems: vec![lines.problem(e.span().map_or(0, |s| s.start), e.message().trim())],
        })?;

        let mut problems = Vec::new();
        let default_rf = raw.defaults.replication_factor;
        if !(1..=i64::from(i16::MAX)).contains(default_rf.get_ref()) {
            problems.push(lines.problem(
                default_rf.span().start,
                "defaults.replication_factor must be at least 1",
            ));
        }
        let mut seen = HashSet::new();
        let mut topics = Vec::with_capacity(raw.topic.len());
        for entry in &raw.topic {
            let before = problems.len();
            let spec = check_topic(entry, &default_rf, &lines, &mut problems);
            if let Some(spec) = spec.filter(|_| problems.len() == before) {
                if !seen.insert(spec.name.clone()) {
                    let at = entry.get_ref().name.span().start;
                    problems
                        .push(lines.problem(at, format!("topic {} is listed twice", spec.name)));
                }
                topics.push(spec);
            }
        }
        if raw.topic.is_empty() {
            problems.push(lines.problem(0, "the catalogue lists no topics; add [[topic]] entries"));
        }
        if problems.is_empty() {
            Ok(Catalogue { file, topics })
        } else {
            Err(Error::Catalogue { file, problems })
        }
    }

    pub fn get(&self, name: &str) -> Option<&TopicSpec> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// Sets every topic's replication factor, e.g. 1 for a single-node development broker.
    pub fn with_replication_factor(mut self, replication_factor: i16) -> Self {
        for topic in &mut self.topics {
            topic.replication_factor = replication_factor;
        }
        self
    }
}

fn check_topic(
    entry: &Spanned<RawTopic>,
    default_rf: &Spanned<i64>,
    lines: &LineIndex,
    problems: &mut Vec<Problem>,
) -> Option<TopicSpec> {
    let t = entry.get_ref();
    let name = t.name.get_ref().clone();
    let mut fail = |at: usize, reason: String| {
        problems.push(lines.problem(at, format!("topic {name}: {reason}")))
    };

    let kind = naming::classify(&name)
        .map_err(|e| fail(t.name.span().start, e.reason))
        .ok();

    let partitions = *t.partitions.get_ref();
    if !(1..=10_000).contains(&partitions) {
        fail(
            t.partitions.span().start,
            format!("partitions must be between 1 and 10000, not {partitions}"),
        );
    }
    let rf_field = t.replication_factor.as_ref().unwrap_or(default_rf);
    let replication_factor = *rf_field.get_ref();
    if !(1..=i64::from(i16::MAX)).contains(&replication_factor) {
        fail(
            rf_field.span().start,
            format!("replication_factor must be at least 1, not {replication_factor}"),
        );
    }
    let cleanup_policy = CleanupPolicy::parse_kafka(t.cleanup_policy.get_ref());
    if cleanup_policy.is_none() {
        fail(
            t.cleanup_policy.span().start,
            format!(
                "cleanup_policy {:?} is not one of \"delete\", \"compact\", \"compact,delete\"",
                t.cleanup_policy.get_ref()
            ),
        );
    }
    let retention = Retention::parse(t.retention.get_ref())
        .map_err(|r| fail(t.retention.span().start, r))
        .ok();
    for (field, value) in [
        ("key", &t.key),
        ("owner", &t.owner),
        ("description", &t.description),
    ] {
        if value.get_ref().trim().is_empty() {
            fail(
                value.span().start,
                format!("{field} must say something; it is documentation others rely on"),
            );
        }
    }
    if let Some(subject) = &t.value_subject {
        let want = format!("{name}-value");
        if *subject.get_ref() != want {
            fail(
                subject.span().start,
                format!(
                    "value_subject must be {want:?} (the <topic>-value contract), not {:?}",
                    subject.get_ref()
                ),
            );
        }
    }
    for (key, value) in &t.config {
        if MANAGED_CONFIGS.contains(&key.as_str()) {
            fail(
                value.span().start,
                format!(
                    "config {key:?} is set by the topic's own fields; remove it from [topic.config]"
                ),
            );
        }
    }

    let (Some(kind), Some(cleanup_policy), Some(retention)) = (kind, cleanup_policy, retention)
    else {
        return None;
    };
    let subject_needed = matches!(
        kind,
        TopicKind::Canonical { .. } | TopicKind::Feed { .. } | TopicKind::Audit { .. }
    );
    let at = t.name.span().start;
    match (&kind, cleanup_policy, retention) {
        (TopicKind::Registry | TopicKind::State { .. }, policy, _) if policy != CleanupPolicy::Compact => fail(
            t.cleanup_policy.span().start,
            format!(
                "{} topics hold current state and must be compacted only (cleanup_policy = \"compact\"); deleting by age would lose it",
                kind.label()
            ),
        ),
        (TopicKind::Audit { .. }, policy, _) if policy.compacts() => fail(
            t.cleanup_policy.span().start,
            "audit topics are append-only logs and must not be compacted (cleanup_policy = \"delete\")".into(),
        ),
        (TopicKind::Audit { .. }, _, Retention::Millis(ms)) if ms < MIN_AUDIT_RETENTION_MS => fail(
            t.retention.span().start,
            format!("audit topics must keep records at least 365d, not {retention}"),
        ),
        (TopicKind::Repartition { .. }, policy, _) if policy.compacts() => fail(
            t.cleanup_policy.span().start,
            "repartition topics are logs of one stage's output for the next and must not be compacted".into(),
        ),
        (TopicKind::DeadLetter { .. }, policy, _) if policy.compacts() => fail(
            t.cleanup_policy.span().start,
            "dead-letter topics must not be compacted: records with the same key would be lost".into(),
        ),
        (_, CleanupPolicy::Compact, Retention::Millis(_)) => fail(
            t.retention.span().start,
            "retention has no effect on a compact-only topic; use \"forever\" or cleanup_policy = \"compact,delete\"".into(),
        ),
        _ => {}
    }
    if subject_needed && t.value_subject.is_none() {
        fail(
            at,
            format!(
                "{} topics carry Avro values and need value_subject = \"{name}-value\"",
                kind.label()
            ),
        );
    }

    Some(TopicSpec {
        name: name.clone(),
        kind,
        partitions: i32::try_from(partitions).ok()?,
        replication_factor: i16::try_from(replication_factor).ok()?,
        cleanup_policy,
        retention,
        key: t.key.get_ref().trim().to_owned(),
        value_subject: t.value_subject.as_ref().map(|s| s.get_ref().clone()),
        owner: t.owner.get_ref().trim().to_owned(),
        description: t.description.get_ref().trim().to_owned(),
        config: t
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect(),
        line: lines.problem(entry.span().start, "").line,
    })
}

/// Turns byte offsets into 1-based lines and columns.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    fn problem(&self, offset: usize, reason: impl Into<String>) -> Problem {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        Problem {
            line,
            column: offset - self.starts[line - 1] + 1,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;

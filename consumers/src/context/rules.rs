//! Flag rules as data (`consumers/context-rules.toml`): loaded once, checked, and each a pure
//! test over a subject's contacts as of a moment.

use bluelight_avro::records::{PersonRole, Vulnerability};
use serde::Deserialize;

use super::history::{Contact, DAY_MS, KEEP_DAYS};
use crate::{Error, Result};

/// Whom a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    Person,
    Location,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub subject: SubjectKind,
    pub explain: String,
    pub window_days: u32,
    pub at_least: u32,
    #[serde(default)]
    pub incident_types: Vec<String>,
    #[serde(default)]
    pub roles: Vec<PersonRole>,
    #[serde(default)]
    pub markers: Vec<Vulnerability>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    rule: Vec<Rule>,
}

/// The rules in force, in file order (flags are listed in that order).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub rules: Vec<Rule>,
    /// A digest of the file, quoted with every flag so a reader knows which rules raised it.
    pub version: String,
}

impl Rules {
    /// Reads and checks `path`; every problem names the file and the rule.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// No rules (version "none"): summaries count contacts but raise no flags.
    pub fn none() -> Self {
        Rules {
            rules: Vec::new(),
            version: "none".into(),
        }
    }

    /// The rules shipped in `consumers/context-rules.toml`, for services given no `--rules`.
    pub fn shipped() -> Result<Self> {
        Self::parse(
            include_str!("../../context-rules.toml"),
            "consumers/context-rules.toml (shipped)",
        )
    }

    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let parsed: File =
            toml::from_str(text).map_err(|e| Error::Config(format!("{file}: {e}")))?;
        let mut seen = std::collections::BTreeSet::new();
        for r in &parsed.rule {
            let problem = |why: String| Error::Config(format!("{file}: rule {:?}: {why}", r.id));
            if r.id.trim().is_empty() || !seen.insert(r.id.clone()) {
                return Err(problem("the id is empty or used twice".into()));
            }
            if r.window_days == 0 || r.window_days > KEEP_DAYS {
                return Err(problem(format!(
                    "window_days is {}; it must be 1 to {KEEP_DAYS} (older contacts are not kept)",
                    r.window_days
                )));
            }
            if r.at_least == 0 {
                return Err(problem(
                    "at_least is 0: the flag would be on for everyone".into(),
                ));
            }
            if r.subject == SubjectKind::Location && !(r.roles.is_empty() && r.markers.is_empty()) {
                return Err(problem(
                    "roles and markers are about people; a location rule cannot use them".into(),
                ));
            }
            if let Some(t) = r.incident_types.iter().find(|t| {
                t.is_empty()
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            }) {
                return Err(problem(format!(
                    "incident type {t:?} is not a canonical code (upper case, digits and _, e.g. WELFARE)"
                )));
            }
        }
        let version = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(text.as_bytes());
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        };
        Ok(Rules {
            rules: parsed.rule,
            version,
        })
    }

    /// The rules about `kind`.
    pub fn about(&self, kind: SubjectKind) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.subject == kind)
    }
}

impl Rule {
    /// Whether `c` counts towards this rule at all (its window aside).
    pub fn counts(&self, c: &Contact) -> bool {
        (self.incident_types.is_empty()
            || c.incident_type
                .as_ref()
                .is_some_and(|t| self.incident_types.contains(t)))
            && (self.roles.is_empty() || c.roles.iter().any(|r| self.roles.contains(r)))
            && (self.markers.is_empty() || c.markers.iter().any(|m| self.markers.contains(m)))
    }

    /// The earliest moment (ms) a contact may start and still count as of `as_of`.
    pub fn since(&self, as_of: i64) -> i64 {
        as_of - i64::from(self.window_days) * DAY_MS
    }
}

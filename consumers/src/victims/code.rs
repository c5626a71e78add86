//! The Victims' Code as data (`consumers/victims-code.toml`): which case events trigger which
//! entitlement, its deadline in working days, and the template and facts of the message.

use std::{collections::BTreeSet, path::Path};

use bluelight_avro::records::EventType;
use serde::Deserialize;
use toml::Spanned;

use crate::{Error, Problem, Result};

/// The facts a template may show, each computed from the case event (codes, labels, dates and
/// the court's name; never free text from police systems).
pub const FACTS: &[&str] = &[
    "offence",
    "bail_return_date",
    "bail_conditions",
    "court",
    "hearing_date",
    "hearing_time",
    "hearing_type",
    "hearing_outcome",
    "outcome",
];

#[derive(Debug, Clone)]
pub struct VictimsCode {
    /// The Code's title, for messages.
    pub code: String,
    pub calendar: String,
    /// How close to its deadline an open update is reported as due soon.
    pub warning_hours: u32,
    pub entitlements: Vec<Entitlement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub id: String,
    /// The Code's right number, e.g. "6".
    pub right: String,
    pub summary: String,
    pub triggers: Vec<EventType>,
    pub standard_working_days: u32,
    pub enhanced_working_days: u32,
    pub template: String,
    pub parameters: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    code: String,
    calendar: String,
    warning_hours: u32,
    entitlement: Vec<Spanned<RawEntitlement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntitlement {
    id: String,
    right: String,
    summary: String,
    triggers: Vec<String>,
    standard_working_days: u32,
    enhanced_working_days: u32,
    template: String,
    #[serde(default)]
    parameters: Vec<String>,
}

impl VictimsCode {
    /// The text of the rules shipped with bluelight.
    pub const SHIPPED: &'static str = include_str!("../../victims-code.toml");

    /// The rules shipped with bluelight.
    pub fn shipped() -> Result<Self> {
        Self::parse(Self::SHIPPED, "consumers/victims-code.toml")
    }

    /// A short digest of the rules' text, quoted in audit records.
    pub fn version_of(text: &str) -> String {
        use sha2::Digest as _;
        sha2::Sha256::digest(text.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks the rules, listing every problem with its line.
    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
        let mut problems = Vec::new();
        let raw: Raw = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem {
                    file: file.to_owned(),
                    line: e.span().map_or(0, |s| line(s.start)),
                    reason: e.message().trim().to_owned(),
                });
                return Err(Error::Invalid {
                    what: "the Victims' Code rules",
                    problems,
                });
            }
        };
        let mut entitlements = Vec::new();
        let mut ids = BTreeSet::new();
        let mut triggered = BTreeSet::new();
        for spanned in raw.entitlement {
            let at = line(spanned.span().start);
            let e = spanned.into_inner();
            let mut fail = |reason: String| {
                problems.push(Problem {
                    file: file.to_owned(),
                    line: at,
                    reason: format!("entitlement {}: {reason}", e.id),
                })
            };
            if !ids.insert(e.id.clone()) {
                fail("is listed twice".into());
            }
            let mut triggers = Vec::new();
            for t in &e.triggers {
                match serde_json::from_value::<EventType>(serde_json::Value::String(t.clone())) {
                    Ok(ty) if ty.topic() == "bl.case.v1" => {
                        if !triggered.insert(ty) {
                            fail(format!(
                                "{t} already triggers another entitlement; one event, one update"
                            ));
                        }
                        triggers.push(ty);
                    }
                    Ok(_) => fail(format!("{t} is not a case event")),
                    Err(_) => fail(format!("{t:?} is not an event type")),
                }
            }
            if triggers.is_empty() {
                fail("names no trigger".into());
            }
            if e.enhanced_working_days > e.standard_working_days {
                fail(format!(
                    "Enhanced Rights get {} working days, more than the standard {}",
                    e.enhanced_working_days, e.standard_working_days
                ));
            }
            if e.standard_working_days == 0 || e.standard_working_days > 60 {
                fail("standard_working_days must be 1 to 60".into());
            }
            for p in &e.parameters {
                if !FACTS.contains(&p.as_str()) {
                    fail(format!(
                        "parameter {p:?} is not one of {}",
                        FACTS.join(", ")
                    ));
                }
            }
            if e.template.trim().is_empty() {
                fail("names no template".into());
            }
            entitlements.push(Entitlement {
                id: e.id.clone(),
                right: e.right.clone(),
                summary: e.summary.clone(),
                triggers,
                standard_working_days: e.standard_working_days,
                enhanced_working_days: e.enhanced_working_days,
                template: e.template.clone(),
                parameters: e.parameters.clone(),
            });
        }
        if problems.is_empty() {
            Ok(VictimsCode {
                code: raw.code,
                calendar: raw.calendar,
                warning_hours: raw.warning_hours,
                entitlements,
            })
        } else {
            Err(Error::Invalid {
                what: "the Victims' Code rules",
                problems,
            })
        }
    }

    /// The entitlement an event type triggers, if any.
    pub fn triggered_by(&self, t: EventType) -> Option<&Entitlement> {
        self.entitlements.iter().find(|e| e.triggers.contains(&t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_load() {
        let code = VictimsCode::shipped().expect("rules");
        let charge = code
            .triggered_by(EventType::SuspectCharged)
            .expect("charge");
        assert_eq!(
            (
                charge.right.as_str(),
                charge.standard_working_days,
                charge.enhanced_working_days
            ),
            ("6", 5, 1)
        );
        let hearing = code
            .triggered_by(EventType::HearingScheduled)
            .expect("hearing");
        assert_eq!(
            (hearing.standard_working_days, hearing.enhanced_working_days),
            (1, 1)
        );
        assert!(code.triggered_by(EventType::CrimeRecorded).is_none());
    }

    #[test]
    fn bad_rules_are_refused_with_line_and_reason() {
        let text = include_str!("../../victims-code.toml");
        for (bad, want) in [
            (
                text.replacen(
                    "standard_working_days = 5\nenhanced_working_days = 1",
                    "standard_working_days = 1\nenhanced_working_days = 5",
                    1,
                ),
                "x.toml:13: entitlement right-6-arrest: Enhanced Rights get 5 working days, more than the standard 1",
            ),
            (
                text.replacen(
                    "triggers = [\"SUSPECT_ARRESTED\"]",
                    "triggers = [\"INCIDENT_OPENED\"]",
                    1,
                ),
                "INCIDENT_OPENED is not a case event",
            ),
            (
                text.replacen(
                    "triggers = [\"SUSPECT_INTERVIEWED\"]",
                    "triggers = [\"SUSPECT_ARRESTED\"]",
                    1,
                ),
                "SUSPECT_ARRESTED already triggers another entitlement",
            ),
            (
                text.replacen(
                    "parameters = [\"offence\"]",
                    "parameters = [\"officer_notes\"]",
                    1,
                ),
                "parameter \"officer_notes\" is not one of",
            ),
        ] {
            let err = VictimsCode::parse(&bad, "x.toml")
                .expect_err(want)
                .to_string();
            assert!(err.contains(want), "want {want:?} in {err}");
        }
    }
}

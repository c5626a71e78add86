//! Records management (RMS) CSV exports: one row per case milestone (crime recorded, arrest,
//! interview, release, bail, charge, disposal, hearing, closure), each becoming one canonical case
//! event.
//!
//! The columns are documented in the header comment of `producers/examples/rms-export.csv`;
//! codes are mapped by `mappings/rms.toml`. A header row names the columns, in any order; columns
//! bluelight does not know are ignored, lines starting with `#` are comments, and rows with
//! nothing in them are skipped.

use std::{collections::HashMap, ops::Range};

use bluelight_avro::records::{
    Bail, CaseEvent, CaseVictim, Classification, Code, ContactChannel, ContactPreferences,
    EnhancedRightsReason, EventType, Hearing, Offence, Officer, PersonLink, PersonRole,
    SubjectCategory, UpdateFrequency,
};

use super::{
    Adapter, Canonical, Locator, Mappings, Problem, Rejected, SourceContext, Translated,
    Translation,
    common::{enum_code, envelope, map_code},
    json::Problems,
};
use crate::{Result, validate};

#[cfg(test)]
mod tests;

const TABLES: [&str; 9] = [
    "milestone",
    "force",
    "enhanced_reason",
    "channel",
    "frequency",
    "bail_condition",
    "hearing_type",
    "hearing_outcome",
    "outcome",
];

/// Columns every export must have; the others may be left out of the header altogether.
const REQUIRED_COLUMNS: [&str; 3] = ["milestone", "crime_ref", "occurred_at"];

/// Every column bluelight reads.
const COLUMNS: [&str; 25] = [
    "milestone",
    "crime_ref",
    "incident_id",
    "occurred_at",
    "recorded_at",
    "classification",
    "caveats",
    "offence_codes",
    "oic_force",
    "oic_collar",
    "victim_ref",
    "victim_enhanced",
    "victim_enhanced_reasons",
    "victim_contact_channel",
    "victim_contact_frequency",
    "victim_opted_out",
    "suspect_ref",
    "bail_return_at",
    "bail_conditions",
    "court",
    "court_code",
    "hearing_start",
    "hearing_type",
    "hearing_outcome",
    "outcome_code",
];

/// The event types a milestone code may map to.
const CASE_EVENTS: [EventType; 13] = [
    EventType::CrimeRecorded,
    EventType::SuspectArrested,
    EventType::SuspectInterviewed,
    EventType::ReleasedNoFurtherAction,
    EventType::SuspectBailed,
    EventType::ReleasedUnderInvestigation,
    EventType::BailVaried,
    EventType::SuspectCharged,
    EventType::OutOfCourtDisposal,
    EventType::NotInvestigated,
    EventType::HearingScheduled,
    EventType::HearingOutcome,
    EventType::CaseClosed,
];

/// Milestones about one suspect: `suspect_ref` is required.
const SUSPECT_EVENTS: [EventType; 8] = [
    EventType::SuspectArrested,
    EventType::SuspectInterviewed,
    EventType::ReleasedNoFurtherAction,
    EventType::SuspectBailed,
    EventType::ReleasedUnderInvestigation,
    EventType::BailVaried,
    EventType::SuspectCharged,
    EventType::OutOfCourtDisposal,
];
/// Milestones that name offences: `offence_codes` is required.
const OFFENCE_EVENTS: [EventType; 2] = [EventType::CrimeRecorded, EventType::SuspectCharged];
/// Milestones that set bail: `bail_return_at` is required.
const BAIL_EVENTS: [EventType; 2] = [EventType::SuspectBailed, EventType::BailVaried];
/// Milestones about a hearing: `court`, `hearing_start` and `hearing_type` are required.
const HEARING_EVENTS: [EventType; 2] = [EventType::HearingScheduled, EventType::HearingOutcome];
/// Milestones that end the case or a line of it: `outcome_code` is required.
const OUTCOME_EVENTS: [EventType; 4] = [
    EventType::ReleasedNoFurtherAction,
    EventType::OutOfCourtDisposal,
    EventType::NotInvestigated,
    EventType::CaseClosed,
];

/// Columns that describe the victim on the row.
const VICTIM_COLUMNS: [&str; 5] = [
    "victim_enhanced",
    "victim_enhanced_reasons",
    "victim_contact_channel",
    "victim_contact_frequency",
    "victim_opted_out",
];
/// Columns that describe a hearing.
const HEARING_COLUMNS: [&str; 5] = [
    "court",
    "court_code",
    "hearing_start",
    "hearing_type",
    "hearing_outcome",
];

/// The RMS CSV adapter.
#[derive(Debug)]
pub struct Rms {
    mappings: Mappings,
}

/// The canonical symbol of an enum value, e.g. `SUSPECT_CHARGED`.
fn symbol<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One data row: its values by column, `None` where a value is not UTF-8.
struct Row<'a> {
    columns: &'a HashMap<String, usize>,
    values: Vec<Option<String>>,
}

impl Row<'_> {
    /// The trimmed value of a column; `None` when the column is absent or the value empty.
    fn opt(&self, column: &str) -> Option<&str> {
        let i = *self.columns.get(column)?;
        self.values
            .get(i)?
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// Like [`Row::opt`], but an empty value is a problem.
    fn req(&self, column: &str, p: &mut Problems) -> Option<&str> {
        let v = self.opt(column);
        if v.is_none() && !p.0.iter().any(|x| x.field == column) {
            p.add(column, "is required");
        }
        v
    }

    /// A `;`-separated list.
    fn list(&self, column: &str) -> Vec<&str> {
        self.opt(column)
            .map(|v| {
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `Y` or `N` (also `YES` / `NO`, any case).
fn yes_no(column: &str, value: &str, p: &mut Problems) -> Option<bool> {
    match value.to_ascii_uppercase().as_str() {
        "Y" | "YES" => Some(true),
        "N" | "NO" => Some(false),
        _ => {
            p.add(column, format!("must be Y or N, not {value:?}"));
            None
        }
    }
}

impl Rms {
    /// With the mapping tables shipped in `producers/mappings/rms.toml`.
    pub fn new() -> Result<Self> {
        Self::with_mappings(Mappings::parse(
            include_str!("../../mappings/rms.toml"),
            "producers/mappings/rms.toml",
        )?)
    }

    pub fn with_mappings(mappings: Mappings) -> Result<Self> {
        Ok(Rms {
            mappings: mappings.require(&TABLES)?,
        })
    }

    fn case(
        &self,
        r: &Row<'_>,
        raw: &str,
        source: &SourceContext,
        p: &mut Problems,
    ) -> Option<CaseEvent> {
        let m = &self.mappings;
        let event_type = r.req("milestone", p).and_then(|v| {
            let t = enum_code::<EventType>(m, "milestone", "milestone", v, p)?;
            if CASE_EVENTS.contains(&t) {
                Some(t)
            } else {
                p.add(
                    "milestone",
                    format!(
                        "maps to {:?}, which is not a case milestone (fix {})",
                        symbol(&t),
                        m.file
                    ),
                );
                None
            }
        });
        let milestone = event_type.map(|t| symbol(&t)).unwrap_or_default();
        let on = |events: &[EventType]| event_type.is_some_and(|t| events.contains(&t));
        let require = |column: &str, events: &[EventType], p: &mut Problems| {
            if on(events) && r.opt(column).is_none() && !p.0.iter().any(|x| x.field == column) {
                p.add(column, format!("is required for {milestone}"));
            }
        };

        let case_id = r
            .req("crime_ref", p)
            .and_then(|v| p.check("crime_ref", validate::reference(v)));
        let incident_id = r
            .opt("incident_id")
            .and_then(|v| p.check("incident_id", validate::reference(v)));
        let occurred_at = r
            .req("occurred_at", p)
            .and_then(|v| p.check("occurred_at", validate::timestamp(v)));
        let recorded_at = r
            .opt("recorded_at")
            .and_then(|v| p.check("recorded_at", validate::timestamp(v)));
        let classification = match r.opt("classification") {
            None => Some(Classification::Official),
            Some(v) => p.check("classification", validate::classification(v)),
        };
        let caveats = r.list("caveats").into_iter().map(str::to_owned).collect();

        let offences = r
            .list("offence_codes")
            .into_iter()
            .filter_map(|c| p.check("offence_codes", validate::offence_code(c)))
            .map(|ho_code| Offence {
                ho_code,
                title: None,
            })
            .collect();
        require("offence_codes", &OFFENCE_EVENTS, p);

        let officer_in_charge = self.officer(r, p);
        let victims = self.victim(r, p).into_iter().collect();

        let suspect_ref = r
            .opt("suspect_ref")
            .and_then(|v| p.check("suspect_ref", validate::reference(v)));
        require("suspect_ref", &SUSPECT_EVENTS, p);
        let suspects = suspect_ref
            .map(|person_ref| PersonLink {
                person_ref,
                role: PersonRole::Suspect,
                subject_category: SubjectCategory::Suspect,
                vulnerabilities: Vec::new(),
                identity: None,
            })
            .into_iter()
            .collect();

        let return_at = r
            .opt("bail_return_at")
            .and_then(|v| p.check("bail_return_at", validate::timestamp(v)));
        let conditions: Vec<Code> = r
            .list("bail_conditions")
            .into_iter()
            .filter_map(|c| map_code(m, "bail_condition", "bail_conditions", c, p))
            .collect();
        require("bail_return_at", &BAIL_EVENTS, p);
        let bail = (r.opt("bail_return_at").is_some() || r.opt("bail_conditions").is_some())
            .then_some(Bail {
                return_at,
                conditions,
            });

        let hearing = self.hearing(r, event_type, &milestone, p);

        let outcome = r
            .opt("outcome_code")
            .and_then(|v| map_code(m, "outcome", "outcome_code", v, p));
        require("outcome_code", &OUTCOME_EVENTS, p);

        let (event_type, case_id, occurred_at, classification) =
            (event_type?, case_id?, occurred_at?, classification?);
        if !p.0.is_empty() {
            return None;
        }
        let mut env = envelope(event_type, source, occurred_at, recorded_at, raw);
        env.marking.classification = classification;
        env.marking.caveats = caveats;
        Some(CaseEvent {
            incident_id,
            offences,
            officer_in_charge,
            victims,
            suspects,
            bail,
            hearing,
            outcome,
            ..CaseEvent::new(env, &case_id)
        })
    }

    /// The officer in charge: force and collar number, both or neither.
    fn officer(&self, r: &Row<'_>, p: &mut Problems) -> Option<Officer> {
        let force = r
            .opt("oic_force")
            .and_then(|v| map_code(&self.mappings, "force", "oic_force", v, p));
        let collar = r
            .opt("oic_collar")
            .and_then(|v| p.check("oic_collar", validate::reference(v)));
        match (r.opt("oic_force"), r.opt("oic_collar")) {
            (Some(_), None) => p.add("oic_collar", "is required when oic_force is given"),
            (None, Some(_)) => p.add("oic_force", "is required when oic_collar is given"),
            _ => {}
        }
        Some(Officer {
            org: force?.code,
            reference: collar?,
        })
    }

    /// The victim on the row, with their Victims' Code entitlements and contact preferences.
    fn victim(&self, r: &Row<'_>, p: &mut Problems) -> Option<CaseVictim> {
        let m = &self.mappings;
        let victim_ref = r
            .opt("victim_ref")
            .and_then(|v| p.check("victim_ref", validate::reference(v)));
        if r.opt("victim_ref").is_none()
            && let Some(c) = VICTIM_COLUMNS.iter().find(|c| r.opt(c).is_some())
        {
            p.add("victim_ref", format!("is required when {c} is given"));
        }
        let enhanced_text = r.opt("victim_enhanced");
        let enhanced = enhanced_text.and_then(|v| yes_no("victim_enhanced", v, p));
        let reasons_given = !r.list("victim_enhanced_reasons").is_empty();
        let enhanced_reasons: Vec<EnhancedRightsReason> = r
            .list("victim_enhanced_reasons")
            .into_iter()
            .filter_map(|c| enum_code(m, "enhanced_reason", "victim_enhanced_reasons", c, p))
            .collect();
        if enhanced == Some(true) && !reasons_given {
            p.add(
                "victim_enhanced_reasons",
                "must name at least one reason when victim_enhanced is Y",
            );
        }
        if reasons_given
            && enhanced != Some(true)
            && (enhanced_text.is_none() || enhanced.is_some())
        {
            p.add(
                "victim_enhanced",
                "is not Y but victim_enhanced_reasons are given; set it to Y or remove the reasons",
            );
        }

        let channel_text = r.opt("victim_contact_channel");
        let frequency_text = r.opt("victim_contact_frequency");
        let opted_out_text = r.opt("victim_opted_out");
        let channel = channel_text.and_then(|v| {
            enum_code::<ContactChannel>(m, "channel", "victim_contact_channel", v, p)
        });
        let frequency = frequency_text.and_then(|v| {
            enum_code::<UpdateFrequency>(m, "frequency", "victim_contact_frequency", v, p)
        });
        let opted_out = opted_out_text.and_then(|v| yes_no("victim_opted_out", v, p));
        let contact =
            if channel_text.is_some() || frequency_text.is_some() || opted_out_text.is_some() {
                for (column, text) in [
                    ("victim_contact_channel", channel_text),
                    ("victim_contact_frequency", frequency_text),
                ] {
                    if text.is_none() {
                        p.add(
                            column,
                            "is required when victim contact preferences are given",
                        );
                    }
                }
                channel
                    .zip(frequency)
                    .map(|(channel, frequency)| ContactPreferences {
                        channel,
                        frequency,
                        opted_out: opted_out.unwrap_or(false),
                    })
            } else {
                None
            };
        Some(CaseVictim {
            victim_ref: victim_ref?,
            enhanced_rights: enhanced.unwrap_or(false),
            enhanced_reasons,
            contact,
            identity: None,
        })
    }

    /// The hearing on the row: required on hearing milestones; when any hearing column is given,
    /// court, start and type must be.
    fn hearing(
        &self,
        r: &Row<'_>,
        event_type: Option<EventType>,
        milestone: &str,
        p: &mut Problems,
    ) -> Option<Hearing> {
        let m = &self.mappings;
        let hearing_milestone = event_type.is_some_and(|t| HEARING_EVENTS.contains(&t));
        let given = HEARING_COLUMNS.iter().any(|c| r.opt(c).is_some());
        if !given && !hearing_milestone {
            return None;
        }
        let court = r.opt("court").map(str::to_owned);
        let court_code = r
            .opt("court_code")
            .and_then(|v| p.check("court_code", validate::reference(v)));
        let starts_at = r
            .opt("hearing_start")
            .and_then(|v| p.check("hearing_start", validate::timestamp(v)));
        let hearing_type = r
            .opt("hearing_type")
            .and_then(|v| map_code(m, "hearing_type", "hearing_type", v, p));
        let outcome = r
            .opt("hearing_outcome")
            .and_then(|v| map_code(m, "hearing_outcome", "hearing_outcome", v, p));
        for column in ["court", "hearing_start", "hearing_type"] {
            if r.opt(column).is_none() {
                p.add(
                    column,
                    if hearing_milestone {
                        format!("is required for {milestone}")
                    } else {
                        "is required when any hearing column is given".to_owned()
                    },
                );
            }
        }
        match (event_type, r.opt("hearing_outcome")) {
            (Some(EventType::HearingOutcome), None) => {
                p.add("hearing_outcome", format!("is required for {milestone}"));
            }
            (Some(t), Some(_)) if t != EventType::HearingOutcome => p.add(
                "hearing_outcome",
                format!("is only given on HEARING_OUTCOME milestones, not {milestone}"),
            ),
            _ => {}
        }
        Some(Hearing {
            court: court?,
            court_code,
            starts_at: starts_at?,
            hearing_type: hearing_type?,
            outcome,
        })
    }
}

/// The bytes of one CSV record read from `start..end` of `body`: the reader's range also holds
/// the comment and blank lines before the record and its line terminator, which are not the
/// record's.
fn record_span(body: &[u8], start: usize, end: usize) -> Range<usize> {
    let end = end.min(body.len());
    let mut start = start.min(end);
    loop {
        match body.get(start) {
            Some(b'\r' | b'\n') if start < end => start += 1,
            Some(b'#') if start < end => {
                start = body[start..end]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(end, |i| start + i + 1);
            }
            _ => break,
        }
    }
    let mut end = end;
    if end > start && body[end - 1] == b'\n' {
        end -= 1;
    }
    if end > start && body[end - 1] == b'\r' {
        end -= 1;
    }
    start..end
}

/// Counts lines as records are found, front to back.
struct Lines<'a> {
    input: &'a [u8],
    at: usize,
    line: usize,
}

impl Lines<'_> {
    /// The 1-based line on which byte `at` sits; `at` never goes backwards.
    fn of(&mut self, at: usize) -> usize {
        let at = at.clamp(self.at, self.input.len());
        self.line += self.input[self.at..at]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.at = at;
        self.line
    }
}

impl Adapter for Rms {
    fn name(&self) -> &'static str {
        "rms"
    }

    fn content_types(&self) -> &'static [&'static str] {
        &["text/csv"]
    }

    fn translate(&self, input: &[u8], source: &SourceContext) -> Translation {
        let mut out = Translation::default();
        let whole = |problems: Vec<Problem>| Rejected {
            adapter: self.name(),
            locator: Locator::Document,
            problems,
            span: 0..input.len(),
            context: None,
        };
        // A UTF-8 byte order mark (spreadsheets write one) is not part of the first column name.
        let offset = if input.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let body = &input[offset..];
        let position = |reader: &csv::Reader<&[u8]>| {
            usize::try_from(reader.position().byte()).unwrap_or(body.len())
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(body);
        let mut record = csv::ByteRecord::new();
        let mut lines = Lines {
            input,
            at: 0,
            line: 1,
        };

        // The header row names the columns.
        let before = position(&reader);
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => {
                out.rejected.push(whole(vec![Problem::new(
                    "(document)",
                    "is empty; the first row must name the columns, e.g. milestone,crime_ref,occurred_at,...",
                )]));
                return out;
            }
            Err(e) => {
                out.rejected.push(whole(vec![Problem::new(
                    "(document)",
                    format!("is not readable CSV: {e}"),
                )]));
                return out;
            }
        }
        let header_span = record_span(body, before, position(&reader));
        let header_raw = String::from_utf8_lossy(&body[header_span]).into_owned();
        let mut p = Problems::default();
        let mut columns: HashMap<String, usize> = HashMap::new();
        for (i, name) in record.iter().enumerate() {
            let Ok(name) = std::str::from_utf8(name) else {
                p.add(
                    "(header)",
                    format!("column {} has a name that is not UTF-8", i + 1),
                );
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            if !COLUMNS.contains(&name.as_str()) {
                continue;
            }
            if let Some(first) = columns.get(&name) {
                p.add(
                    name.clone(),
                    format!(
                        "appears twice in the header (columns {} and {})",
                        first + 1,
                        i + 1
                    ),
                );
                continue;
            }
            columns.insert(name, i);
        }
        for column in REQUIRED_COLUMNS {
            if !columns.contains_key(column) && !p.0.iter().any(|x| x.field == column) {
                p.add(
                    column,
                    "is a required column but the header does not have it",
                );
            }
        }
        if !p.0.is_empty() {
            out.rejected.push(whole(p.0));
            return out;
        }
        let width = record.len();

        loop {
            let before = position(&reader);
            let read = reader.read_byte_record(&mut record);
            let span = record_span(body, before, position(&reader));
            let locator = Locator::Line(lines.of(span.start + offset));
            let full = span.start + offset..span.end + offset;
            match read {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    out.rejected.push(Rejected {
                        adapter: self.name(),
                        locator,
                        problems: vec![Problem::new("(row)", format!("is not readable CSV: {e}"))],
                        span: full,
                        context: Some(header_raw.clone()),
                    });
                    break;
                }
            }
            if record.iter().all(<[u8]>::is_empty) {
                continue;
            }
            let mut p = Problems::default();
            let case = if record.len() == width {
                let values: Vec<Option<String>> = record
                    .iter()
                    .map(|v| std::str::from_utf8(v).ok().map(str::to_owned))
                    .collect();
                let mut bad: Vec<(&String, &usize)> = columns
                    .iter()
                    .filter(|(_, i)| values.get(**i).is_some_and(Option::is_none))
                    .collect();
                bad.sort_by_key(|(_, i)| **i);
                for (name, _) in bad {
                    p.add(name.clone(), "is not UTF-8");
                }
                let row = Row {
                    columns: &columns,
                    values,
                };
                let raw = format!(
                    "{header_raw}\n{}",
                    String::from_utf8_lossy(&body[span.clone()])
                );
                self.case(&row, &raw, source, &mut p)
            } else {
                p.add(
                    "(row)",
                    format!(
                        "has {} fields but the header has {width} columns",
                        record.len()
                    ),
                );
                None
            };
            match case {
                Some(case) if p.0.is_empty() => out.accepted.push(Translated {
                    record: Canonical::Case(Box::new(case)),
                    locator,
                    span: full,
                }),
                _ => out.rejected.push(Rejected {
                    adapter: self.name(),
                    locator,
                    problems: p.0,
                    span: full,
                    context: Some(header_raw.clone()),
                }),
            }
        }
        out
    }
}

//! Loading and checking agreements; every problem is reported with its file and line.

use std::{collections::BTreeMap, path::Path};

use bluelight_avro::records::{Classification, EventType, samples};
use serde::Deserialize;
use toml::Spanned;

use super::{
    Agreement, Clause, FieldRule, Recipient, Transform,
    agreement::{Generalisation, TRANSFORMS},
    fields::{Entity, Field, Kind},
};
use crate::{Error, Problem, Result};

mod context;

/// Every agreement of a directory, checked together.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub agreements: Vec<Agreement>,
    /// A digest of every file's name and text: quoted in each audit record, so a disclosure can
    /// be traced to the exact policy in force.
    pub version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: Spanned<String>,
    title: String,
    version: String,
    controllers: Spanned<Vec<String>>,
    purposes: Spanned<Vec<String>>,
    lawful_basis: Spanned<String>,
    valid_from: Spanned<String>,
    valid_to: Option<Spanned<String>>,
    review_date: Spanned<String>,
    classification_ceiling: Spanned<String>,
    recipient: Spanned<RawRecipient>,
    #[serde(default)]
    clause: Vec<Spanned<RawClause>>,
    #[serde(default)]
    context: Vec<Spanned<context::RawContext>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipient {
    org: String,
    feeds: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClause {
    id: String,
    entity: Spanned<String>,
    event_types: Spanned<Vec<String>>,
    condition: Option<Spanned<String>>,
    fields: Spanned<BTreeMap<Spanned<String>, String>>,
}

struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of(&self, offset: usize) -> usize {
        self.0[..offset.min(self.0.len())].matches('\n').count() + 1
    }
}

/// Loads every `*.toml` of a directory; today decides which are expired.
pub fn load_dir(dir: &Path, today: jiff::civil::Date) -> Result<Policy> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::Read {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for path in entries {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        files.push((path.display().to_string(), text));
    }
    if files.is_empty() {
        return Err(Error::Agreements(vec![Problem {
            file: dir.display().to_string(),
            line: 0,
            reason: "holds no *.toml agreements; with none, nothing is shared (default deny)"
                .into(),
        }]));
    }
    load_str(&files, today)
}

/// Checks agreements given as (file name, text) pairs.
pub fn load_str(files: &[(String, String)], today: jiff::civil::Date) -> Result<Policy> {
    let mut problems = Vec::new();
    let mut agreements = Vec::new();
    for (file, text) in files {
        let lines = Lines(text);
        let mut fail = |at: usize, reason: String| {
            problems.push(Problem {
                file: file.clone(),
                line: lines.of(at),
                reason,
            })
        };
        let raw: Raw = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                fail(
                    e.span().map_or(0, |s| s.start),
                    e.message().trim().to_owned(),
                );
                continue;
            }
        };
        if let Some(a) = check(raw, file, today, &mut fail) {
            agreements.push(a);
        }
    }
    check_across(&agreements, &mut problems);
    if problems.is_empty() {
        Ok(Policy {
            agreements,
            version: digest(files),
        })
    } else {
        Err(Error::Agreements(problems))
    }
}

fn digest(files: &[(String, String)]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for (name, text) in files {
        let name = std::path::Path::new(name)
            .file_name()
            .map_or(name.as_str(), |n| n.to_str().unwrap_or_default());
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn date(
    s: &Spanned<String>,
    field: &str,
    fail: &mut impl FnMut(usize, String),
) -> Option<jiff::civil::Date> {
    s.get_ref()
        .parse()
        .map_err(|_| {
            fail(
                s.span().start,
                format!("{field} {:?} is not a date (YYYY-MM-DD)", s.get_ref()),
            )
        })
        .ok()
}

fn check(
    raw: Raw,
    file: &str,
    today: jiff::civil::Date,
    fail: &mut impl FnMut(usize, String),
) -> Option<Agreement> {
    let before = std::cell::Cell::new(0usize);
    let mut count = |at: usize, reason: String| {
        before.set(before.get() + 1);
        fail(at, reason);
    };
    let id = raw.id.get_ref().trim().to_owned();
    if id.is_empty() {
        count(raw.id.span().start, "id must not be empty".into());
    }
    for (name, list) in [
        ("controllers", &raw.controllers),
        ("purposes", &raw.purposes),
    ] {
        if list.get_ref().is_empty() {
            count(list.span().start, format!("{name} must name at least one"));
        }
    }
    if raw.lawful_basis.get_ref().trim().is_empty() {
        count(
            raw.lawful_basis.span().start,
            "lawful_basis must say under which law the sharing happens".into(),
        );
    }
    let valid_from = date(&raw.valid_from, "valid_from", &mut count);
    let valid_to = raw
        .valid_to
        .as_ref()
        .and_then(|d| date(d, "valid_to", &mut count));
    let review_date = date(&raw.review_date, "review_date", &mut count);
    if let (Some(from), Some(to)) = (valid_from, valid_to) {
        if to < from {
            count(
                raw.valid_to.as_ref().map_or(0, |d| d.span().start),
                format!("valid_to {to} is before valid_from {from}"),
            );
        } else if to < today {
            count(
                raw.valid_to.as_ref().map_or(0, |d| d.span().start),
                format!("expired on {to}; extend valid_to after review, or remove the file"),
            );
        }
    }
    let ceiling = Classification::from_marking(raw.classification_ceiling.get_ref());
    if ceiling.is_none() {
        count(
            raw.classification_ceiling.span().start,
            format!(
                "classification_ceiling {:?} is not OFFICIAL or OFFICIAL-SENSITIVE",
                raw.classification_ceiling.get_ref()
            ),
        );
    }
    let r = raw.recipient.get_ref();
    let mut feeds = Vec::new();
    for f in &r.feeds {
        match Entity::parse(f) {
            Some(e) => feeds.push(e),
            None => count(
                raw.recipient.span().start,
                format!("recipient feed {f:?} is not incident, case or victim"),
            ),
        }
    }
    if r.org.is_empty()
        || !r
            .org
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        count(
            raw.recipient.span().start,
            format!(
                "recipient org {:?} must be lower-case letters, digits and hyphens",
                r.org
            ),
        );
    }

    let mut clauses: Vec<Clause> = Vec::new();
    for c in &raw.clause {
        let at = c.span().start;
        let c = c.get_ref();
        if clauses.iter().any(|x| x.id == c.id) {
            count(at, format!("clause {} is listed twice", c.id));
        }
        let Some(entity) = Entity::parse(c.entity.get_ref()) else {
            count(
                c.entity.span().start,
                format!(
                    "clause {}: entity {:?} is not incident, case or victim",
                    c.id,
                    c.entity.get_ref()
                ),
            );
            continue;
        };
        if !feeds.contains(&entity) {
            count(
                c.entity.span().start,
                format!(
                    "clause {}: the recipient has no {} feed; add it to recipient.feeds",
                    c.id,
                    entity.name()
                ),
            );
        }
        let topic = format!("bl.{}.v1", entity.name());
        let mut event_types = Vec::new();
        for t in c.event_types.get_ref() {
            match serde_json::from_value::<EventType>(serde_json::Value::String(t.clone())) {
                Ok(e) if e == entity.retracted() => count(
                    c.event_types.span().start,
                    format!(
                        "clause {}: {t} cannot be listed: a retraction reaches exactly the recipients of the events it withdraws, whatever the clauses say",
                        c.id
                    ),
                ),
                Ok(e) if e.topic() == topic => event_types.push(e),
                Ok(_) => count(
                    c.event_types.span().start,
                    format!("clause {}: {t} is not a {} event", c.id, entity.name()),
                ),
                Err(_) => count(
                    c.event_types.span().start,
                    format!("clause {}: {t:?} is not an event type", c.id),
                ),
            }
        }
        if c.event_types.get_ref().is_empty() {
            count(
                c.event_types.span().start,
                format!("clause {}: event_types must name at least one", c.id),
            );
        }
        let condition = c.condition.as_ref().and_then(|src| {
            let text = src.get_ref();
            match cel::Program::compile(text) {
                Err(e) => {
                    count(
                        src.span().start,
                        format!(
                            "clause {}: condition does not parse: {}",
                            c.id,
                            e.to_string().replace('\n', " ")
                        ),
                    );
                    None
                }
                Ok(program) => match try_condition(&program, entity) {
                    Ok(()) => Some((text.clone(), program)),
                    Err(why) => {
                        count(
                            src.span().start,
                            format!("clause {}: condition {text:?} {why}", c.id),
                        );
                        None
                    }
                },
            }
        });
        let known = entity.fields();
        let mut fields = Vec::new();
        for (spanned_path, transform) in c.fields.get_ref() {
            let at = spanned_path.span().start;
            let path = spanned_path.get_ref();
            if path == "context" || path.starts_with("context.") {
                count(
                    at,
                    format!(
                        "clause {}: {path}: the context block is shared by a [[context]] clause, not by fields",
                        c.id
                    ),
                );
                continue;
            }
            let Some(info) = known.get(path) else {
                count(
                    at,
                    format!("clause {}: {} has no field {path:?}", c.id, entity.name()),
                );
                continue;
            };
            let Some(t) = Transform::parse(transform) else {
                count(
                    at,
                    format!(
                        "clause {}: {path}: transform {transform:?} is not one of {TRANSFORMS}",
                        c.id
                    ),
                );
                continue;
            };
            if matches!(t, Transform::Pseudonymise | Transform::Redact) && info.kind != Kind::String
            {
                count(
                    at,
                    format!(
                        "clause {}: {path}: {} applies to text fields only; name the text fields inside it",
                        c.id,
                        t.name()
                    ),
                );
                continue;
            }
            if let Transform::Generalise(g) = t {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                let fits = match g {
                    Generalisation::PostcodeSector => leaf == "postcode",
                    Generalisation::Grid1Km => {
                        matches!(leaf, "latitude" | "longitude" | "easting" | "northing")
                    }
                    Generalisation::AgeBand => leaf == "date_of_birth",
                    Generalisation::Hour => leaf.ends_with("_at"),
                };
                if !fits {
                    count(
                        at,
                        format!(
                            "clause {}: {path}: {} does not apply to this field",
                            c.id,
                            t.name()
                        ),
                    );
                    continue;
                }
            }
            fields.push(FieldRule {
                path: path.clone(),
                transform: t,
            });
        }
        for why in structure(entity, &known, &fields) {
            count(c.fields.span().start, format!("clause {}: {why}", c.id));
        }
        if c.fields.get_ref().is_empty() {
            count(
                c.fields.span().start,
                format!(
                    "clause {}: shares no fields; a clause must name what it shares",
                    c.id
                ),
            );
        }
        clauses.push(Clause {
            id: c.id.clone(),
            entity,
            event_types,
            condition,
            fields,
        });
    }
    if raw.clause.is_empty() {
        count(0, "has no [[clause]]: nothing would be shared".into());
    }
    let context = context::check(&raw.context, &feeds, &clauses, &mut count);
    if before.get() > 0 {
        return None;
    }
    Some(Agreement {
        id,
        title: raw.title,
        version: raw.version,
        controllers: raw.controllers.into_inner(),
        recipient: Recipient {
            org: r.org.clone(),
            feeds,
        },
        purposes: raw.purposes.into_inner(),
        lawful_basis: raw.lawful_basis.into_inner(),
        valid_from: valid_from?,
        valid_to,
        review_date: review_date?,
        ceiling: ceiling?,
        clauses,
        context,
        file: file.to_owned(),
    })
}

/// A clause's fields must make whole records: the key (so a recipient can relate updates and
/// retractions), and every required field of any record it shares part of. Returns the problems.
fn structure(entity: Entity, known: &BTreeMap<String, Field>, rules: &[FieldRule]) -> Vec<String> {
    let named = |p: &str| rules.iter().any(|r| r.path == p);
    let reached = |p: &str| {
        rules
            .iter()
            .any(|r| r.path == p || r.path.strip_prefix(p).is_some_and(|s| s.starts_with('.')))
    };
    let mut problems = Vec::new();
    let key = entity.key_field();
    match rules.iter().find(|r| r.path == key) {
        Some(r) if matches!(r.transform, Transform::Keep | Transform::Pseudonymise) => {}
        Some(r) => problems.push(format!(
            "{key} cannot be {}: feed records are keyed by it; keep or pseudonymise it",
            r.transform.name()
        )),
        None => problems.push(format!(
            "must share {key} (keep or pseudonymise): feed records are keyed by it, so a recipient can relate an {}'s updates and retractions",
            entity.name()
        )),
    }
    // The records shared in part: each ancestor of a named path that is not itself shared whole.
    let mut partial: Vec<String> = vec![String::new()];
    for r in rules {
        let mut at = r.path.as_str();
        while let Some((parent, _)) = at.rsplit_once('.') {
            let whole = parent.split('.').scan(String::new(), |acc, part| {
                if !acc.is_empty() {
                    acc.push('.');
                }
                acc.push_str(part);
                Some(acc.clone())
            });
            if whole.clone().any(|a| named(&a)) {
                break;
            }
            if !partial.iter().any(|p| p == parent) {
                partial.push(parent.to_owned());
            }
            at = parent;
        }
    }
    // The envelope travels whole with every feed record (see `project`), so it is never partial.
    for parent in partial
        .into_iter()
        .filter(|p| p != "envelope" && !p.starts_with("envelope."))
    {
        let prefix = if parent.is_empty() {
            String::new()
        } else {
            format!("{parent}.")
        };
        for (path, field) in known.range(prefix.clone()..) {
            let Some(child) = path.strip_prefix(&prefix) else {
                break;
            };
            if child.contains('.') || field.optional || path == "envelope" || path == key {
                continue;
            }
            if !reached(path) {
                let what = if parent.is_empty() {
                    entity.name()
                } else {
                    parent.as_str()
                };
                problems.push(format!(
                    "shares part of {what} but not {path}, which every {what} has; name {path:?} too, or share {what} whole"
                ));
            }
        }
    }
    problems
}

/// Runs a condition on a fully populated sample record: it must give true or false.
fn try_condition(program: &cel::Program, entity: Entity) -> Result<(), String> {
    let record = match entity {
        Entity::Incident => serde_json::to_value(samples::incident(EventType::IncidentOpened)),
        Entity::Case => serde_json::to_value(samples::case(EventType::SuspectCharged)),
        Entity::Victim => serde_json::to_value(samples::victim(EventType::VictimRegistered)),
    }
    .map_err(|e| e.to_string())?;
    let mut context = cel::Context::default();
    for (name, value) in record.as_object().into_iter().flatten() {
        let value = cel::to_value(value).map_err(|e| e.to_string())?;
        context.add_variable_from_value(name.clone(), value);
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(_)) => Ok(()),
        Ok(other) => Err(format!(
            "gives {other:?} on a sample {}, not true or false",
            entity.name()
        )),
        Err(e) => Err(format!("fails on a sample {}: {e}", entity.name())),
    }
}

/// Two agreements in force at once for the same recipient and controller that cover the same
/// event types would make the decision ambiguous.
fn check_across(agreements: &[Agreement], problems: &mut Vec<Problem>) {
    let mut ids = BTreeMap::new();
    for a in agreements {
        if let Some(first) = ids.insert(a.id.clone(), a.file.clone()) {
            problems.push(Problem {
                file: a.file.clone(),
                line: 0,
                reason: format!("id {} is also used by {first}", a.id),
            });
        }
    }
    for (i, a) in agreements.iter().enumerate() {
        for b in &agreements[i + 1..] {
            let same_parties = a.recipient.org == b.recipient.org
                && a.controllers.iter().any(|c| b.controllers.contains(c));
            let overlap_in_time = a.valid_to.is_none_or(|to| b.valid_from <= to)
                && b.valid_to.is_none_or(|to| a.valid_from <= to);
            let shared: Vec<EventType> = a
                .clauses
                .iter()
                .flat_map(|c| c.event_types.iter().copied())
                .filter(|t| b.clauses.iter().any(|c| c.event_types.contains(t)))
                .collect();
            if same_parties && overlap_in_time && !shared.is_empty() {
                problems.push(Problem {
                    file: b.file.clone(),
                    line: 0,
                    reason: format!(
                        "overlaps {} ({}): same controller and recipient {}, both in force at once, both covering {:?}; merge them or end one",
                        a.id, a.file, a.recipient.org, shared[0]
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;

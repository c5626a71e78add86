//! Context blocks on incident feed records: an agreement's `[[context]]` clause lets its
//! recipient see the incident's people and place in the light of earlier contacts across
//! agencies, as of the incident's time.
//!
//! Histories come from `state.context.v1` (the context service's state, followed by the
//! projector service) through a [`ContextSource`]. Each subject's history has the event itself
//! observed into it before it is summarised, so a block never waits on the context service to
//! have seen this incident: it depends on the earlier contacts and on this event alone. Subjects
//! are gathered once per event and shared by every agreement; each agreement's block then sends
//! only the parts its clause names, with references pseudonymised under its own key unless the
//! clause keeps them.

use std::collections::HashMap;

use bluelight_avro::records::{
    ContextBlock, ContextCount, ContextFlag, ContextLastContact, ContextSubject,
    ContextSubjectKind, ContextWindow, FieldTransform, Id, IncidentEvent, PersonRole, Timestamp,
};

use super::transform::Pseudonymiser;
use crate::{
    context::{Contact, History, Rules, SubjectKeys, SubjectKind, Summary, extract},
    policy::{ContextClause, ContextPart, Transform},
};

/// Where the projector finds a subject's history, by its context key (`person/psn-…`).
pub trait ContextSource {
    /// Calls `f` with the subject's history, if there is one.
    fn with_history(&self, subject: &str, f: &mut dyn FnMut(&History));
}

/// No histories: blocks show only what the event itself says.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContext;

impl ContextSource for NoContext {
    fn with_history(&self, _: &str, _: &mut dyn FnMut(&History)) {}
}

impl ContextSource for HashMap<String, History> {
    fn with_history(&self, subject: &str, f: &mut dyn FnMut(&History)) {
        if let Some(h) = self.get(subject) {
            f(h);
        }
    }
}

/// One subject of an event as of the event, gathered once for all agreements.
#[derive(Debug, Clone)]
pub(super) struct Gathered {
    kind: SubjectKind,
    /// The person reference or UPRN as the source holds it: only ever sent as a clause says.
    raw: String,
    roles: Vec<PersonRole>,
    /// The latest earlier contact (not this incident), if any.
    earlier: Option<ContextLastContact>,
    summary: Summary,
}

/// The event's people and place, each summarised as of the event with the event applied (the
/// history itself is neither changed nor copied).
pub(super) fn gather(
    keys: &SubjectKeys,
    rules: &Rules,
    source: &dyn ContextSource,
    e: &IncidentEvent,
) -> Vec<Gathered> {
    extract::incident_with_refs(keys, e)
        .into_iter()
        .map(|(raw, o)| {
            let mut found = None;
            source.with_history(&o.subject, &mut |h| {
                let (summary, earlier) = h.summarise_with(&o, rules);
                found = Some((summary, earlier.map(last_contact)));
            });
            let (summary, earlier) =
                found.unwrap_or_else(|| (History::default().summarise_with(&o, rules).0, None));
            Gathered {
                kind: o.kind,
                raw,
                roles: o.roles,
                earlier,
                summary,
            }
        })
        .collect()
}

fn last_contact(c: &Contact) -> ContextLastContact {
    ContextLastContact {
        at: Timestamp(c.at),
        incident_type: c.incident_type.clone(),
        agencies: c.agencies.clone(),
    }
}

/// One agreement's block, and the event ids its flags cite (for the audit record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub record: ContextBlock,
    pub evidence: Vec<Id>,
}

/// The block `clause` sends; `None` when no subject it covers has anything to show beyond this
/// incident (a first contact carries no context).
pub(super) fn block(
    clause: &ContextClause,
    p: &Pseudonymiser,
    gathered: &[Gathered],
    as_of: i64,
    rules_version: &str,
) -> Option<Block> {
    let mut subjects = Vec::new();
    let mut evidence = Vec::new();
    for g in gathered {
        let covered = match g.kind {
            SubjectKind::Person => clause.covers(&g.roles),
            SubjectKind::Location => clause.location,
        };
        if !covered {
            continue;
        }
        let earlier = g.earlier.as_ref();
        let flags: Vec<ContextFlag> = if clause.shares(ContextPart::Flags) {
            g.summary
                .flags
                .iter()
                .map(|f| ContextFlag {
                    rule: f.rule.clone(),
                    explanation: f.explanation.clone(),
                    count: int(f.count),
                    window_days: int(f.window_days),
                    at_least: int(f.at_least),
                    evidence: f.evidence.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        if earlier.is_none() && flags.is_empty() {
            continue;
        }
        evidence.extend(flags.iter().flat_map(|f| f.evidence.iter().copied()));
        let s = &g.summary;
        subjects.push(ContextSubject {
            kind: match g.kind {
                SubjectKind::Person => ContextSubjectKind::Person,
                SubjectKind::Location => ContextSubjectKind::Location,
            },
            subject_ref: match clause.identity {
                Transform::Keep => g.raw.clone(),
                _ => p.pseudonym(&g.raw),
            },
            roles: g.roles.clone(),
            windows: if clause.shares(ContextPart::Counts) {
                s.windows
                    .iter()
                    .map(|w| ContextWindow {
                        days: int(w.days),
                        contacts: int(w.contacts),
                        by_agency: counts(&w.by_agency),
                        by_type: counts(&w.by_type),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            open_cases: clause
                .shares(ContextPart::OpenCases)
                .then(|| int(s.open_cases)),
            markers: if clause.shares(ContextPart::Markers) {
                s.markers.clone()
            } else {
                Vec::new()
            },
            last_contact: earlier
                .filter(|_| clause.shares(ContextPart::LastContact))
                .cloned(),
            flags,
        });
    }
    if subjects.is_empty() {
        return None;
    }
    evidence.sort_unstable();
    evidence.dedup();
    Some(Block {
        record: ContextBlock {
            as_of: Timestamp(as_of),
            clause_id: clause.id.clone(),
            rules_version: rules_version.to_owned(),
            subjects,
        },
        evidence,
    })
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn counts(m: &std::collections::BTreeMap<String, u32>) -> Vec<ContextCount> {
    m.iter()
        .map(|(code, n)| ContextCount {
            code: code.clone(),
            count: int(*n),
        })
        .collect()
}

/// The field lists of a copy that carries `clause`'s block: the clause's own lists with the
/// block's fields added, and `context` itself no longer withheld but its unshared parts.
pub(super) fn lists(
    clause: &ContextClause,
    (disclosed, transformed, withheld): (&[String], &[FieldTransform], &[String]),
) -> (Vec<String>, Vec<FieldTransform>, Vec<String>) {
    let mut disclosed = disclosed.to_vec();
    let mut transformed = transformed.to_vec();
    let mut withheld: Vec<String> = withheld
        .iter()
        .filter(|w| w.as_str() != "context")
        .cloned()
        .collect();
    disclosed.extend(
        [
            "context.as_of",
            "context.clause_id",
            "context.rules_version",
            "context.subjects.kind",
            "context.subjects.roles",
        ]
        .map(str::to_owned),
    );
    match clause.identity {
        Transform::Keep => disclosed.push("context.subjects.subject_ref".into()),
        t => transformed.push(FieldTransform {
            field: "context.subjects.subject_ref".into(),
            transform: t.name().to_owned(),
        }),
    }
    for part in ContextPart::ALL {
        let to = if clause.shares(part) {
            &mut disclosed
        } else {
            &mut withheld
        };
        to.push(part.field().to_owned());
    }
    (disclosed, transformed, withheld)
}

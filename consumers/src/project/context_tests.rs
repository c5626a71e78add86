//! Context blocks through the projector: the flags a repeat welfare caller raises reach an
//! entitled recipient with their evidence, and (a property) a recipient without a context
//! clause never receives a block, whatever the histories and the other agreements say.

use std::{collections::HashMap, path::Path, sync::Arc};

use bluelight_avro::records::{
    Classification, Code, ContextSubjectKind, EventType, Id, IncidentEvent, PersonRole, Timestamp,
    samples,
};
use proptest::prelude::*;

use super::*;
use crate::{
    context::{History, Rules, SubjectKeys, extract},
    policy::{Policy, Transform, load_str},
};

const SECRET: &[u8] = b"test secret";
const DAY: i64 = 86_400_000;
const T0: i64 = 1_790_000_000_000;
const NOW: Timestamp = Timestamp(1_795_000_100_000);

fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 22)
}

fn rules() -> Arc<Rules> {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/context-rules.toml"));
    Arc::new(Rules::load(path).expect("rules load"))
}

/// An agreement for `org` sharing incidents with pseudonymous people, with `context` (TOML
/// lines of a `[[context]]` clause) when given.
fn agreement(org: &str, context: Option<&str>) -> String {
    let mut text = format!(
        r#"
id = "isa-{org}"
title = "test"
version = "1"
controllers = ["avon-police"]
purposes = ["emergency response"]
lawful_basis = "test"
valid_from = "2026-01-01"
review_date = "2027-01-01"
classification_ceiling = "OFFICIAL-SENSITIVE"

[recipient]
org = "{org}"
feeds = ["incident"]

[[clause]]
id = "all"
entity = "incident"
event_types = ["INCIDENT_OPENED", "INCIDENT_UPDATED"]
[clause.fields]
"incident_id" = "keep"
"incident_type" = "keep"
"people.person_ref" = "pseudonymise"
"people.role" = "keep"
"people.subject_category" = "keep"
"#
    );
    if let Some(c) = context {
        text.push_str("\n[[context]]\n");
        text.push_str(c);
        text.push('\n');
    }
    text
}

fn projector(agreements: &[String]) -> Projector {
    let files: Vec<(String, String)> = agreements
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("a{i}.toml"), t.clone()))
        .collect();
    let policy = load_str(&files, today()).unwrap_or_else(|e| panic!("{e}"));
    Projector::new(Arc::new(Policy { ..policy }), SECRET, "test").with_context_rules(rules())
}

/// An incident of `kind` about the people `people` (reference, role) at `uprn`, at `at`.
fn incident(
    id: &str,
    kind: &str,
    people: &[(&str, PersonRole)],
    uprn: &str,
    at: i64,
) -> IncidentEvent {
    let mut r = samples::incident(EventType::IncidentOpened);
    r.envelope.event_id = Id::random();
    r.envelope.occurred_at = Timestamp(at);
    r.envelope.supersedes = None;
    r.envelope.disclosure = None;
    r.envelope.marking.classification = Classification::Official;
    r.incident_id = id.to_owned();
    r.incident_type = Some(Code::new("bl-incident-type", kind));
    let template = r.people[0].clone();
    r.people = people
        .iter()
        .map(|(p, role)| {
            let mut link = template.clone();
            link.person_ref = (*p).to_owned();
            link.role = *role;
            link
        })
        .collect();
    if let Some(l) = r.location.as_mut() {
        l.uprn = (!uprn.is_empty()).then(|| uprn.to_owned());
    }
    r
}

/// The histories the context service would hold after `earlier`.
fn histories(earlier: &[IncidentEvent]) -> HashMap<String, History> {
    let keys = SubjectKeys::new(SECRET);
    let mut out: HashMap<String, History> = HashMap::new();
    for e in earlier {
        for o in extract::incident(&keys, e) {
            out.entry(o.subject.clone()).or_default().observe(&o);
        }
    }
    out
}

fn projected(p: &Projector, e: &IncidentEvent, source: &HashMap<String, History>) -> Projection {
    let event = Event::Incident(e.clone());
    let reference = p
        .project_with(&event, today(), NOW, source)
        .expect("project");
    let fast = p
        .project_encoded_with(&event, today(), NOW, source)
        .expect("fast path");
    super::tests::same(p, &reference, &fast);
    reference
}

fn block_of(f: &FeedRecord) -> Option<bluelight_avro::records::ContextBlock> {
    match &f.record {
        Event::Incident(r) => r.context.clone(),
        _ => None,
    }
}

#[test]
fn a_repeat_welfare_caller_is_flagged_to_the_control_room_with_evidence_and_nobody_else() {
    let p = projector(&[
        agreement(
            "control-room",
            Some(
                r#"id = "repeat-demand"
about = ["person", "location"]
share = ["flags", "counts", "last_contact"]"#,
            ),
        ),
        agreement("no-context", None),
    ]);
    let who = [("avon-police:person:7", PersonRole::PersonOfConcern)];
    let first = incident("INC-1", "WELFARE", &who, "", T0);
    let second = incident("INC-2", "MENTAL_HEALTH", &who, "", T0 + 3 * DAY);
    let third = incident("INC-3", "WELFARE", &who, "", T0 + 9 * DAY);
    let source = histories(&[first.clone(), second.clone()]);
    let out = projected(&p, &third, &source);
    assert_eq!(out.feeds.len(), 2);
    let to = |org: &str| {
        out.feeds
            .iter()
            .find(|f| f.audit.recipient == org)
            .expect("a copy")
    };
    let none = to("no-context");
    assert_eq!(block_of(none), None);
    assert_eq!(none.audit.context_clause_id, None);
    assert!(none.audit.fields_withheld.contains(&"context".to_owned()));

    let room = to("control-room");
    let block = block_of(room).expect("a block");
    assert_eq!(block.clause_id, "repeat-demand");
    assert_eq!(block.as_of, third.envelope.occurred_at);
    assert_eq!(block.subjects.len(), 1, "the place has no UPRN");
    let s = &block.subjects[0];
    assert_eq!(s.kind, ContextSubjectKind::Person);
    // The same pseudonym as the record's own people.person_ref.
    let Event::Incident(copy) = &room.record else {
        panic!("incident")
    };
    assert_eq!(s.subject_ref, copy.people[0].person_ref);
    assert!(s.subject_ref.starts_with("psn-"));
    assert_eq!(s.flags.len(), 1);
    let flag = &s.flags[0];
    assert_eq!(flag.rule, "repeat-welfare-concern");
    assert_eq!(flag.count, 3);
    assert_eq!(
        flag.evidence,
        vec![
            first.envelope.event_id,
            second.envelope.event_id,
            third.envelope.event_id
        ]
    );
    assert!(
        flag.explanation
            .starts_with("repeat welfare concern: 3 contacts in 30 days"),
        "{}",
        flag.explanation
    );
    let w30 = s.windows.iter().find(|w| w.days == 30).expect("30 days");
    assert_eq!(w30.contacts, 3);
    let last = s.last_contact.as_ref().expect("last contact");
    assert_eq!(last.at, second.envelope.occurred_at, "the one before this");
    assert_eq!(s.open_cases, None, "not shared");
    assert!(s.markers.is_empty(), "not shared");
    // The audit names what was sent and what the flags cite.
    let audit = &room.audit;
    assert_eq!(audit.context_clause_id.as_deref(), Some("repeat-demand"));
    assert_eq!(audit.context_evidence.len(), 3);
    assert!(
        audit
            .fields_disclosed
            .contains(&"context.subjects.flags".to_owned())
    );
    assert!(
        audit
            .fields_withheld
            .contains(&"context.subjects.markers".to_owned())
    );
    assert!(!audit.fields_withheld.contains(&"context".to_owned()));
    assert!(
        audit
            .fields_transformed
            .iter()
            .any(|t| t.field == "context.subjects.subject_ref" && t.transform == "pseudonymise")
    );

    // A first contact carries no context.
    let stranger = incident(
        "INC-4",
        "WELFARE",
        &[("avon-police:person:8", PersonRole::Caller)],
        "",
        T0,
    );
    let out = projected(&p, &stranger, &source);
    assert!(out.feeds.iter().all(|f| block_of(f).is_none()));
}

#[test]
fn a_source_cannot_put_a_context_block_on_a_feed() {
    let p = projector(&[agreement("no-context", None)]);
    let mut forged = incident("INC-9", "WELFARE", &[], "", T0);
    forged.context = Some(bluelight_avro::records::ContextBlock {
        as_of: Timestamp(T0),
        clause_id: "forged".into(),
        rules_version: "x".into(),
        subjects: Vec::new(),
    });
    let out = projected(&p, &forged, &HashMap::new());
    assert_eq!(out.feeds.len(), 1);
    assert_eq!(block_of(&out.feeds[0]), None);
}

/// A random `[[context]]` clause, or none.
fn context_clause() -> impl Strategy<Value = Option<String>> {
    let about = prop::sample::select(vec![
        r#"["person"]"#,
        r#"["location"]"#,
        r#"["person", "location"]"#,
    ]);
    let roles = prop::sample::select(vec![
        "",
        r#"roles = ["VICTIM"]"#,
        r#"roles = ["CALLER", "WITNESS"]"#,
    ]);
    let share = prop::sample::subsequence(
        vec!["flags", "counts", "open_cases", "markers", "last_contact"],
        1..=5,
    );
    let identity = prop::sample::select(vec!["", r#"identity = "pseudonymise""#]);
    proptest::option::of((about, roles, share, identity)).prop_map(|c| {
        c.map(|(about, roles, share, identity)| {
            let roles = if about.contains("person") { roles } else { "" };
            format!(
                "id = \"ctx\"\nabout = {about}\n{roles}\nshare = [{}]\n{identity}",
                share
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    })
}

const PEOPLE: [&str; 4] = ["p:1", "p:2", "p:3", "p:4"];
const ROLES: [PersonRole; 3] = [PersonRole::Caller, PersonRole::Victim, PersonRole::Witness];
const TYPES: [&str; 3] = ["WELFARE", "DOMESTIC_ABUSE", "RTC"];
const UPRNS: [&str; 3] = ["", "100120012345", "100120099999"];

/// An incident drawn from small pools, so people and places repeat.
fn any_incident() -> impl Strategy<Value = IncidentEvent> {
    (
        0usize..1000,
        0usize..TYPES.len(),
        proptest::collection::vec((0usize..PEOPLE.len(), 0usize..ROLES.len()), 0..3),
        0usize..UPRNS.len(),
        0i64..60,
    )
        .prop_map(|(n, t, people, u, day)| {
            let people: Vec<(&str, PersonRole)> = people
                .into_iter()
                .map(|(p, r)| (PEOPLE[p], ROLES[r]))
                .collect();
            incident(
                &format!("INC-{n}"),
                TYPES[t],
                &people,
                UPRNS[u],
                T0 + day * DAY,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_recipient_without_a_context_clause_never_receives_a_context_block(
        clauses in proptest::collection::vec(context_clause(), 1..4),
        earlier in proptest::collection::vec(any_incident(), 0..12),
        now in any_incident(),
    ) {
        let texts: Vec<String> = clauses
            .iter()
            .enumerate()
            .map(|(i, c)| agreement(&format!("org-{i}"), c.as_deref()))
            .collect();
        let p = projector(&texts);
        let source = histories(&earlier);
        let out = projected(&p, &now, &source);
        prop_assert_eq!(out.feeds.len(), texts.len());
        let mut seen = std::collections::BTreeSet::new();
        seen.extend(earlier.iter().map(|e| e.envelope.event_id));
        seen.insert(now.envelope.event_id);
        for f in &out.feeds {
            let a = &p.policy().agreements[f.agreement];
            let block = block_of(f);
            let Some(c) = &a.context else {
                prop_assert!(block.is_none(), "{} got a block without a context clause", a.id);
                prop_assert!(f.audit.context_clause_id.is_none());
                prop_assert!(f.audit.context_evidence.is_empty());
                prop_assert!(!f.audit.fields_disclosed.iter().any(|d| d.starts_with("context")));
                prop_assert!(f.audit.fields_withheld.contains(&"context".to_owned()));
                continue;
            };
            let Some(block) = block else {
                prop_assert!(f.audit.context_clause_id.is_none());
                continue;
            };
            prop_assert_eq!(f.audit.context_clause_id.as_deref(), Some(c.id.as_str()));
            let mut cited = Vec::new();
            for s in &block.subjects {
                match s.kind {
                    ContextSubjectKind::Person => prop_assert!(c.covers(&s.roles)),
                    ContextSubjectKind::Location => prop_assert!(c.location),
                }
                prop_assert!(s.subject_ref.starts_with("psn-"), "identity kept: {}", s.subject_ref);
                prop_assert_eq!(!s.windows.is_empty(), c.shares(crate::policy::ContextPart::Counts));
                prop_assert_eq!(s.open_cases.is_some(), c.shares(crate::policy::ContextPart::OpenCases));
                if !c.shares(crate::policy::ContextPart::Markers) { prop_assert!(s.markers.is_empty()); }
                if !c.shares(crate::policy::ContextPart::Flags) { prop_assert!(s.flags.is_empty()); }
                if !c.shares(crate::policy::ContextPart::LastContact) { prop_assert!(s.last_contact.is_none()); }
                for flag in &s.flags {
                    prop_assert_eq!(flag.evidence.len(), usize::try_from(flag.count).unwrap_or(0));
                    for id in &flag.evidence {
                        prop_assert!(seen.contains(id), "evidence {} is no event seen", id);
                        cited.push(*id);
                    }
                }
            }
            cited.sort_unstable();
            cited.dedup();
            prop_assert_eq!(&f.audit.context_evidence, &cited);
            prop_assert_eq!(c.identity, Transform::Pseudonymise);
        }
    }
}

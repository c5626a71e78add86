//! Clause-level tests of every example agreement, retractions, and the default-deny property.

use std::{collections::BTreeSet, path::Path, sync::Arc};

use bluelight_avro::records::{
    Classification, DisclosureKind, EventType, IncidentEvent, Timestamp, samples,
};
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::policy::{Entity, Policy, Transform, load_dir, load_str};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../agreements");
const NOW: Timestamp = Timestamp(1_795_000_100_000);

fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 22)
}

fn examples() -> Projector {
    let policy = load_dir(Path::new(DIR), today()).expect("examples load");
    Projector::new(Arc::new(policy), b"test secret", "bluelight-project")
}

/// An RTC as a CAD source sends it: OFFICIAL, no correction, nothing from a projector.
fn rtc() -> IncidentEvent {
    let mut r = samples::incident(EventType::IncidentOpened);
    r.envelope.supersedes = None;
    r.envelope.disclosure = None;
    r.envelope.marking.classification = Classification::Official;
    r
}

fn to(projection: &Projection, org: &str) -> Option<(Value, bluelight_avro::records::Disclosure)> {
    projection
        .feeds
        .iter()
        .find(|f| f.audit.recipient == org)
        .map(|f| (f.record.to_json().expect("json"), f.audit.clone()))
}

fn recipients(p: &Projection) -> BTreeSet<String> {
    p.feeds.iter().map(|f| f.audit.recipient.clone()).collect()
}

#[test]
fn fire_gets_rtc_hazards_and_never_people() {
    let p = examples();
    let out = p
        .project(&Event::Incident(rtc()), today(), NOW)
        .expect("project");
    let (fire, audit) = to(&out, "avon-fire").expect("fire gets the RTC");
    assert_eq!(fire["location"]["postcode"], "BS1 6HG");
    assert_eq!(fire["hazards"][0]["code"], "FUEL_SPILL");
    assert_eq!(fire["casualties"]["serious"], 1);
    assert_eq!(
        fire["people"],
        Value::Array(vec![]),
        "no personal details to fire"
    );
    assert_eq!(fire["summary"], Value::Null);
    assert_eq!(fire["local_references"], Value::Array(vec![]));
    assert_eq!(
        fire["envelope"]["disclosure"]["agreement_id"],
        "isa-avon-police-fire-rtc"
    );
    assert_eq!(
        fire["envelope"]["disclosure"]["disclosure_id"].as_str(),
        Some(audit.envelope.event_id.to_string().as_str())
    );
    assert_eq!(audit.feed, "feed.avon-fire.incident.v1");
    assert_eq!(audit.clause_id, "rtc-and-fire-hazards");
    for withheld in ["people", "summary", "local_references"] {
        assert!(
            audit.fields_withheld.contains(&withheld.to_owned()),
            "{withheld}"
        );
    }
    assert!(audit.fields_disclosed.contains(&"hazards".to_owned()));

    let mut welfare = rtc();
    welfare.incident_type.as_mut().expect("type").code = "WELFARE".into();
    let out = p
        .project(&Event::Incident(welfare), today(), NOW)
        .expect("project");
    assert!(
        to(&out, "avon-fire").is_none(),
        "fire does not get welfare calls"
    );
}

#[test]
fn ambulance_gets_casualties_with_people_pseudonymised_and_ages_banded() {
    let p = examples();
    let source = rtc();
    let out = p
        .project(&Event::Incident(source.clone()), today(), NOW)
        .expect("project");
    let (amb, audit) = to(&out, "swast").expect("ambulance gets casualties");
    let person = &amb["people"][0];
    let pseudonym = person["person_ref"].as_str().expect("ref");
    assert!(pseudonym.starts_with("psn-") && !pseudonym.contains("avon-police"));
    assert_eq!(person["role"], "CALLER");
    assert_eq!(person["vulnerabilities"][0], "MENTAL_HEALTH");
    assert_eq!(person["identity"]["date_of_birth"], Value::Null);
    assert_eq!(person["identity"]["forenames"], Value::Null);
    assert_eq!(person["identity"]["phone"], Value::Null);
    // Born 1980-01-01; the event is in November 2026.
    assert_eq!(person["identity"]["age_band"], "45-54");
    assert!(
        audit
            .fields_transformed
            .iter()
            .any(|t| t.field == "people.person_ref" && t.transform == "pseudonymise")
    );
    // The same person gets the same pseudonym in the next event.
    let again = p
        .project(&Event::Incident(source), today(), NOW)
        .expect("project");
    assert_eq!(
        to(&again, "swast").expect("again").0["people"][0]["person_ref"],
        pseudonym
    );

    // No casualties, not an RTC, welfare or mental-health call: nothing for the ambulance.
    let mut burglary = rtc();
    burglary.casualties = None;
    burglary.incident_type.as_mut().expect("type").code = "BURGLARY".into();
    let out = p
        .project(&Event::Incident(burglary), today(), NOW)
        .expect("project");
    assert!(
        out.condition_errors.is_empty(),
        "{:?}",
        out.condition_errors
    );
    assert!(to(&out, "swast").is_none());
    // An RTC without casualty counts still goes (the condition's second arm).
    let mut rtc_unknown = rtc();
    rtc_unknown.casualties = None;
    let out = p
        .project(&Event::Incident(rtc_unknown), today(), NOW)
        .expect("project");
    assert!(to(&out, "swast").is_some());
}

#[test]
fn cps_gets_charged_cases_without_victims_contact_details() {
    let p = examples();
    let mut charged = samples::case(EventType::SuspectCharged);
    charged.envelope.supersedes = None;
    let out = p
        .project(&Event::Case(charged.clone()), today(), NOW)
        .expect("project");
    assert_eq!(recipients(&out), BTreeSet::from(["cps-wessex".to_owned()]));
    let (cps, audit) = to(&out, "cps-wessex").expect("cps");
    assert_eq!(cps["suspects"][0]["identity"]["surname"], "Example");
    assert_eq!(cps["victims"][0]["victim_ref"], "crm:victim:42");
    assert_eq!(cps["victims"][0]["contact"], Value::Null);
    assert_eq!(cps["victims"][0]["identity"], Value::Null);
    assert_eq!(cps["hearing"]["court"], "Bristol Magistrates' Court");
    assert!(
        audit
            .fields_withheld
            .contains(&"victims.contact".to_owned())
    );

    charged.envelope.event_type = EventType::CrimeRecorded;
    let out = p
        .project(&Event::Case(charged), today(), NOW)
        .expect("project");
    assert!(
        out.feeds.is_empty(),
        "a crime recorded is not a charged case"
    );
}

#[test]
fn neighbouring_force_gets_generalised_places_and_times_up_to_its_ceiling() {
    let p = examples();
    let mut north = rtc();
    let loc = north.location.as_mut().expect("location");
    loc.latitude = Some(51.612_3);
    loc.longitude = Some(-2.531_9);
    north.envelope.occurred_at = Timestamp(1_795_000_123_456);
    let out = p
        .project(&Event::Incident(north.clone()), today(), NOW)
        .expect("project");
    let (glos, _) = to(&out, "gloucestershire-police").expect("cross-border");
    assert_eq!(glos["location"]["postcode"], "BS1 6");
    assert_eq!(glos["location"]["uprn"], Value::Null);
    let lat = glos["location"]["latitude"].as_f64().expect("lat");
    assert!((lat - 51.6123).abs() < 0.01 && lat != 51.6123);
    assert_eq!(glos["envelope"]["occurred_at"], 1_794_999_600_000_i64);
    assert_eq!(glos["people"][0]["identity"], Value::Null);

    north.envelope.marking.classification = Classification::OfficialSensitive;
    let out = p
        .project(&Event::Incident(north), today(), NOW)
        .expect("project");
    assert!(to(&out, "gloucestershire-police").is_none());
    let glos = p
        .policy()
        .agreements
        .iter()
        .position(|a| a.recipient.org == "gloucestershire-police");
    assert_eq!(
        out.above_ceiling,
        vec![glos.expect("glos")],
        "withheld and counted"
    );
    assert!(
        to(&out, "avon-fire").is_some(),
        "fire's ceiling is OFFICIAL-SENSITIVE"
    );
}

#[test]
fn nothing_goes_out_for_another_controller_or_outside_the_dates() {
    let p = examples();
    let mut other = rtc();
    other.envelope.source_org = "devon-cornwall-police".into();
    assert!(
        p.project(&Event::Incident(other), today(), NOW)
            .expect("project")
            .feeds
            .is_empty()
    );
    let expired = jiff::civil::date(2029, 1, 1);
    assert!(
        p.project(&Event::Incident(rtc()), expired, NOW)
            .expect("project")
            .feeds
            .is_empty()
    );
}

#[test]
fn retractions_reach_exactly_the_recipients_once() {
    let p = examples();
    let first = rtc();
    let out = p
        .project(&Event::Incident(first.clone()), today(), NOW)
        .expect("project");
    let got = recipients(&out);
    assert_eq!(
        got,
        BTreeSet::from(["avon-fire".to_owned(), "swast".to_owned()])
    );
    let mut receipts = Receipts::new(100);
    let key = Receipts::key(Entity::Incident, &first.incident_id);
    for f in &out.feeds {
        receipts.record(&key, f.receipt());
    }
    let mut retracted = rtc();
    retracted.envelope.event_id = bluelight_avro::records::Id::random();
    retracted.envelope.event_type = EventType::IncidentRetracted;
    retracted.closure = Some(bluelight_avro::records::Code::labelled(
        "bl-closure",
        "DUPLICATE",
        "Duplicate of another incident",
    ));
    let event = Event::Incident(retracted);
    assert!(
        p.project(&event, today(), NOW)
            .expect("project")
            .feeds
            .is_empty(),
        "a retraction is not itself shared"
    );
    let mut state = receipts.get(&key);
    let notices = p.retract(&event, &mut state, NOW).expect("retract");
    let told: BTreeSet<String> = notices.iter().map(|n| n.audit.recipient.clone()).collect();
    assert_eq!(told, got);
    for n in &notices {
        let json = n.record.to_json().expect("json");
        assert_eq!(json["envelope"]["event_type"], "INCIDENT_RETRACTED");
        assert_eq!(
            json["envelope"]["retracts"]["event_id"],
            first.envelope.event_id.to_string()
        );
        assert_eq!(
            json["envelope"]["retracts"]["reason"],
            "withdrawn by avon-police: Duplicate of another incident"
        );
        assert_eq!(json["status"], "RETRACTED");
        assert_eq!(json["location"], Value::Null, "a notice carries no facts");
        assert_eq!(n.audit.kind, DisclosureKind::Retraction);
    }
    assert!(
        p.retract(&event, &mut state, NOW)
            .expect("again")
            .is_empty(),
        "told once"
    );
}

// ── The default-deny property ───────────────────────────────────────────────────────────────

/// An agreement sharing a random set of incident fields, closed under the loader's rules.
fn agreement_text(picks: &[(usize, usize)]) -> String {
    let fields = Entity::Incident.fields();
    let paths: Vec<&String> = fields
        .keys()
        .filter(|p| {
            !p.starts_with("envelope")
                && !p.starts_with("context")
                && *p != "people.identity.age_band"
        })
        .collect();
    let mut chosen: std::collections::BTreeMap<String, String> = Default::default();
    chosen.insert("incident_id".into(), "keep".into());
    for (i, t) in picks {
        let path = paths[i % paths.len()].clone();
        let leaf = path.rsplit('.').next().unwrap_or(&path).to_owned();
        let kind = fields[&path].kind;
        let mut options = vec!["keep"];
        if kind == crate::policy::fields::Kind::String && path != "incident_id" {
            options.extend(["redact", "pseudonymise"]);
        }
        match leaf.as_str() {
            "postcode" => options.push("generalise:postcode-sector"),
            "latitude" | "longitude" | "easting" | "northing" => {
                options.push("generalise:grid-1km")
            }
            "date_of_birth" => options.push("generalise:age-band"),
            l if l.ends_with("_at") => options.push("generalise:hour"),
            _ => {}
        }
        chosen.insert(path, options[t % options.len()].into());
    }
    // Close: every record shared in part needs its required fields.
    loop {
        let mut add = Vec::new();
        for path in chosen.keys() {
            let mut at = path.as_str();
            while let Some((parent, _)) = at.rsplit_once('.') {
                for (p, f) in &fields {
                    if let Some(child) = p.strip_prefix(&format!("{parent}."))
                        && !child.contains('.')
                        && !f.optional
                        && !chosen
                            .keys()
                            .any(|c| c == p || c.starts_with(&format!("{p}.")))
                    {
                        add.push(p.clone());
                    }
                }
                at = parent;
            }
        }
        if add.is_empty() {
            break;
        }
        for p in add {
            chosen.insert(p, "keep".into());
        }
    }
    let rules: String = chosen
        .iter()
        .map(|(p, t)| format!("\"{p}\" = \"{t}\"\n"))
        .collect();
    format!(
        r#"id = "isa-generated"
title = "generated"
version = "1"
controllers = ["avon-police"]
purposes = ["testing"]
lawful_basis = "test"
valid_from = "2026-01-01"
review_date = "2027-01-01"
classification_ceiling = "OFFICIAL-SENSITIVE"
[recipient]
org = "generated"
feeds = ["incident"]
[[clause]]
id = "all"
entity = "incident"
event_types = ["INCIDENT_OPENED"]
[clause.fields]
{rules}"#
    )
}

fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Null => {}
        Value::Object(o) => {
            for (k, v) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &p, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| leaves(i, prefix, out)),
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

fn record(drop: &[bool], people: usize, summary: &str) -> IncidentEvent {
    let mut r = rtc();
    let d = |i: usize| drop.get(i).copied().unwrap_or(false);
    if d(0) {
        r.location = None;
    }
    if d(1) {
        r.methane = None;
    }
    if d(2) {
        r.casualties = None;
    }
    if d(3) {
        r.hazards.clear();
    }
    if d(4) {
        r.resources.clear();
    }
    if d(5) {
        r.priority = None;
    }
    if d(6) {
        r.incident_type = None;
    }
    if d(7) {
        r.people.iter_mut().for_each(|p| p.identity = None);
    }
    r.people.truncate(people);
    r.summary = Some(summary.to_owned());
    r.envelope.supersedes = Some(bluelight_avro::records::EventRef {
        event_id: bluelight_avro::records::Id::random(),
        reason: format!("moved to {summary}"),
    });
    r.envelope.correlation_id = Some(bluelight_avro::records::Id::random());
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_field_outside_the_share_list_and_one_audit_per_feed_record(
        picks in proptest::collection::vec((0usize..200, 0usize..8), 0..25),
        drop in proptest::collection::vec(any::<bool>(), 8),
        people in 0usize..3,
        summary in "[a-zA-Z ]{0,20}",
    ) {
        let text = agreement_text(&picks);
        let policy = load_str(&[("generated.toml".into(), text.clone())], today())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let rules = policy.agreements[0].clauses[0].fields.clone();
        let p = Projector::new(Arc::new(Policy { ..policy }), b"k", "test");
        let source = record(&drop, people, &summary);
        let out = p.project(&Event::Incident(source.clone()), today(), NOW).expect("project");
        same(&p, &out, &p.project_encoded(&Event::Incident(source), today(), NOW).expect("fast path"));
        prop_assert_eq!(out.feeds.len(), 1);
        let mut ids = BTreeSet::new();
        for f in &out.feeds {
            let json = f.record.to_json().expect("json");
            let id = f.audit.envelope.event_id.to_string();
            prop_assert_eq!(json["envelope"]["disclosure"]["disclosure_id"].as_str(), Some(id.as_str()));
            prop_assert!(ids.insert(f.audit.envelope.event_id), "one audit record per feed record");
            let mut got = Vec::new();
            leaves(&json, "", &mut got);
            for (path, value) in got {
                let carried = path.starts_with("envelope")
                    && !path.starts_with("envelope.correlation_id")
                    && !path.starts_with("envelope.causation_id");
                if path.ends_with(".reason") {
                    prop_assert_eq!(value.as_str(), Some(""), "free text in the envelope: {}", path);
                }
                let allowed = carried || rules.iter().any(|r| {
                    path == r.path || path.starts_with(&format!("{}.", r.path))
                        || (path.ends_with("identity.age_band") && r.path.ends_with("identity.date_of_birth"))
                });
                prop_assert!(allowed, "{} reached the recipient but is not shared:\n{}", path, text);
                if let Some(r) = rules.iter().find(|r| r.path == path) {
                    match r.transform {
                        Transform::Pseudonymise => prop_assert!(value.as_str().is_some_and(|s| s.starts_with("psn-")), "{path}"),
                        Transform::Redact => prop_assert_eq!(value.as_str(), Some(transform::REDACTED)),
                        _ => {}
                    }
                }
            }
        }
    }
}

#[test]
fn a_correction_withdraws_the_earlier_event_from_its_recipients_and_is_itself_shared() {
    let p = examples();
    let first = rtc();
    let out = p
        .project(&Event::Incident(first.clone()), today(), NOW)
        .expect("project");
    let mut receipts: Vec<Receipt> = out.feeds.iter().map(FeedRecord::receipt).collect();
    // The correction is shared under the same clauses as any event, and the recipients of the
    // first version are told it is replaced.
    let mut correction = rtc();
    correction.envelope.event_id = bluelight_avro::records::Id::random();
    correction.envelope.event_type = EventType::IncidentUpdated;
    correction.envelope.supersedes = Some(bluelight_avro::records::EventRef {
        event_id: first.envelope.event_id,
        reason: "wrong address".into(),
    });
    let event = Event::Incident(correction.clone());
    let shared = p.project(&event, today(), NOW).expect("project");
    assert_eq!(
        recipients(&shared),
        recipients(&out),
        "the correction itself is shared as usual"
    );
    let notices = p.retract(&event, &mut receipts, NOW).expect("retract");
    assert_eq!(notices.len(), 2);
    for n in &notices {
        let json = n.record.to_json().expect("json");
        assert_eq!(
            json["envelope"]["retracts"]["event_id"],
            first.envelope.event_id.to_string()
        );
        assert_eq!(
            json["envelope"]["retracts"]["reason"], "corrected by avon-police",
            "a code or a fixed text, never the source's free text"
        );
        assert_eq!(
            json["envelope"]["causation_id"],
            correction.envelope.event_id.to_string(),
            "points at the correction"
        );
    }
    // A second correction of the same event tells nobody again.
    assert!(
        p.retract(&event, &mut receipts, NOW)
            .expect("again")
            .is_empty()
    );
}

/// `has(location.latitude)` is false when the source sent no latitude: the neighbouring force's
/// condition is then simply not met, not an error on every such event.
#[test]
fn a_null_field_is_absent_to_conditions() {
    let p = examples();
    let mut r = rtc();
    let loc = r.location.as_mut().expect("location");
    loc.latitude = None;
    let out = p
        .project(&Event::Incident(r), today(), NOW)
        .expect("project");
    assert!(
        out.condition_errors.is_empty(),
        "{:?}",
        out.condition_errors
    );
    assert!(!recipients(&out).contains("gloucestershire-police"));
    assert!(recipients(&out).contains("avon-fire"));
}

/// The fast path (each copy written straight to Avro) gives byte for byte what the reference
/// path's typed record encodes to, with the same key and audit record.
pub(super) fn same(p: &Projector, reference: &Projection, fast: &Projection<Encoded>) {
    assert_eq!(reference.feeds.len(), fast.feeds.len());
    assert_eq!(reference.above_ceiling, fast.above_ceiling);
    assert_eq!(reference.condition_errors, fast.condition_errors);
    for (r, f) in reference.feeds.iter().zip(&fast.feeds) {
        assert_eq!(r.topic, f.topic);
        assert_eq!(r.key, f.key);
        assert_eq!(r.agreement, f.agreement);
        assert_eq!(r.receipt(), p.receipt(f));
        let mut audit = Vec::new();
        bluelight_avro::codec::fast::write(&r.audit, &mut audit).expect("audit");
        assert_eq!(audit, f.audit, "audit record for {}", r.audit.recipient);
        assert_eq!(r.audit.subject_id, f.subject_id);
        let mut want = Vec::new();
        match &r.record {
            Event::Incident(x) => bluelight_avro::codec::fast::write(x, &mut want),
            Event::Case(x) => bluelight_avro::codec::fast::write(x, &mut want),
            Event::Victim(x) => bluelight_avro::codec::fast::write(x, &mut want),
        }
        .expect("encode");
        assert_eq!(want, f.body, "copy for {} differs", r.audit.recipient);
    }
}

#[test]
fn the_fast_path_writes_what_the_reference_path_builds() {
    let p = examples();
    let mut checked = 0;
    for t in EventType::ALL {
        let events = match t.topic() {
            "bl.incident.v1" => {
                let mut r = rtc();
                r.envelope.event_type = t;
                let mut bare = r.clone();
                bare.location = None;
                bare.people.clear();
                bare.casualties = None;
                let mut north = r.clone();
                if let Some(l) = north.location.as_mut() {
                    l.latitude = Some(51.7);
                }
                for person in &mut north.people {
                    if let Some(id) = person.identity.as_mut() {
                        id.date_of_birth = None;
                    }
                }
                vec![
                    Event::Incident(r),
                    Event::Incident(bare),
                    Event::Incident(north),
                ]
            }
            "bl.case.v1" => {
                let mut r = bluelight_avro::records::samples::case(t);
                r.envelope.supersedes = None;
                r.envelope.retracts = None;
                r.envelope.disclosure = None;
                r.envelope.marking.classification = Classification::Official;
                vec![Event::Case(r)]
            }
            "bl.victim.v1" => {
                let mut r = bluelight_avro::records::samples::victim(t);
                r.envelope.supersedes = None;
                r.envelope.retracts = None;
                r.envelope.disclosure = None;
                vec![Event::Victim(r)]
            }
            _ => continue,
        };
        for e in events {
            let reference = p.project(&e, today(), NOW).expect("project");
            let fast = p.project_encoded(&e, today(), NOW).expect("fast path");
            checked += reference.feeds.len();
            same(&p, &reference, &fast);
        }
    }
    assert!(checked >= 10, "only {checked} copies compared");
}

/// Agreements that repeat a condition (the benchmark's set: ten agreements, three distinct
/// conditions) evaluate it once per event; each still decides what it decides alone.
#[test]
fn a_condition_repeated_across_agreements_decides_as_if_alone() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/agreements");
    let policy = load_dir(Path::new(dir), today()).expect("benchmark agreements load");
    let n = policy.agreements.len();
    let p = Projector::new(Arc::new(policy), b"test secret", "bluelight-project");
    let mut shared_somewhere = 0;
    for (latitude, serious, code) in [
        (Some(51.6), Some(2), "RTC"),
        (Some(51.4), None, "FIRE"),
        (None, Some(0), "WELFARE"),
        (Some(51.9), Some(0), "THEFT"),
    ] {
        let mut r = rtc();
        if let Some(l) = r.location.as_mut() {
            l.latitude = latitude;
        }
        if let Some(c) = r.casualties.as_mut() {
            c.serious = serious;
        }
        if let Some(t) = r.incident_type.as_mut() {
            t.code = code.into();
        }
        let event = Event::Incident(r);
        let out = p.project(&event, today(), NOW).expect("project");
        let scope = p.scope_of(&event);
        let alone: BTreeSet<usize> = (0..n)
            .filter(|&i| {
                matches!(
                    p.decide(i, &event, &scope, today()),
                    Ok(Verdict::Shares { .. })
                )
            })
            .collect();
        let together: BTreeSet<usize> = out.feeds.iter().map(|f| f.agreement).collect();
        assert_eq!(
            alone, together,
            "{code} at {latitude:?} with {serious:?} serious"
        );
        shared_somewhere += together.len();
    }
    assert!(
        shared_somewhere > 0,
        "no case shared anything: the test checks nothing"
    );
}

//! `bluelight context` end to end on the real broker: a repeat welfare caller, a persistently
//! targeted victim and a place with repeated domestic incidents raise exactly the expected
//! flags, with their counts and event ids; and two instances, one killed with kill -9 and
//! restarted mid-way, end with the same state as one instance that ran throughout. Then the
//! governed delivery: the projector adds the context block, as of each call's time, to the
//! ambulance control room's incident feed under its agreement's [[context]] clause, and the audit
//! record names the clause and the evidence.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bluelight_avro::{
    Codec,
    records::{
        AgencyKind, CaseEvent, CaseVictim, Code, EventType, Id, IncidentEvent, PersonLink,
        PersonRole, SubjectCategory, Timestamp, samples,
    },
};
use bluelight_consumers::context::SubjectKeys;
use bluelight_topics::testing::unique;
use common::{Service, ensure_topics, registry_with_schemas};
use rdkafka::producer::{FutureProducer, FutureRecord};

const DAY: i64 = 86_400_000;
const SECRET: &str = "0123456789abcdef0123456789abcdef-context-test";

struct Setup {
    _registry: Service,
    registry_url: String,
    codec: Codec,
    key_file: std::path::PathBuf,
    keys: SubjectKeys,
}

async fn setup() -> Setup {
    ensure_topics(&[
        ("bl.incident.v1", false),
        ("bl.case.v1", false),
        ("repartition.context-contacts.v1", false),
        ("state.context.v1", true),
        ("dlq.context.v1", false),
    ])
    .await;
    let (registry, codec) = registry_with_schemas().await;
    let key_file = std::env::temp_dir().join(unique("context-key-"));
    std::fs::write(&key_file, SECRET).expect("key");
    Setup {
        registry_url: registry.url.clone(),
        _registry: registry,
        codec,
        key_file,
        keys: SubjectKeys::new(SECRET.as_bytes()),
    }
}

async fn start_context(s: &Setup, group: &str, instance: &str) -> Service {
    common::context::start_context(&s.key_file, &s.registry_url, group, instance).await
}

/// An incident about one person, at a place, opened `day` days after `t0`.
#[allow(clippy::too_many_arguments)]
fn call(
    t0: i64,
    day: i64,
    kind: &str,
    person: &str,
    role: PersonRole,
    uprn: &str,
    agency: AgencyKind,
) -> IncidentEvent {
    let mut e = samples::incident(EventType::IncidentOpened);
    e.envelope.event_id = Id::random();
    e.envelope.occurred_at = Timestamp(t0 + day * DAY);
    e.envelope.supersedes = None;
    e.incident_id = unique("INC-");
    e.incident_type = Some(Code::new("bl-incident-type", kind));
    e.agencies_requested = vec![agency];
    e.resources.clear();
    e.people = vec![PersonLink {
        person_ref: person.to_owned(),
        role,
        subject_category: SubjectCategory::Other,
        vulnerabilities: Vec::new(),
        identity: None,
    }];
    if let Some(l) = e.location.as_mut() {
        l.uprn = Some(uprn.to_owned());
    }
    e
}

fn victim_case(t0: i64, day: i64, victim: &str) -> CaseEvent {
    let mut c = samples::case(EventType::CrimeRecorded);
    c.envelope.event_id = Id::random();
    c.envelope.occurred_at = Timestamp(t0 + day * DAY);
    c.envelope.supersedes = None;
    c.case_id = unique("CASE-");
    c.incident_id = None;
    c.suspects.clear();
    c.victims = vec![CaseVictim {
        victim_ref: victim.to_owned(),
        enhanced_rights: false,
        enhanced_reasons: Vec::new(),
        contact: None,
        identity: None,
    }];
    c
}

enum Event {
    Incident(Box<IncidentEvent>),
    Case(Box<CaseEvent>),
}

async fn publish(s: &Setup, events: &[Event]) {
    let producer: FutureProducer = common::client()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for e in events {
        let (topic, key, payload) = match e {
            Event::Incident(i) => (
                "bl.incident.v1",
                i.incident_id.clone(),
                s.codec
                    .encode("bl.incident.v1-value", i.as_ref())
                    .expect("encode"),
            ),
            Event::Case(c) => (
                "bl.case.v1",
                c.case_id.clone(),
                s.codec
                    .encode("bl.case.v1-value", c.as_ref())
                    .expect("encode"),
            ),
        };
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("published");
    }
}

/// The scenario: Anna, a repeat welfare caller; Ben, a victim twice in 90 days; a house with
/// three domestic incidents; and twenty unrelated collisions. Returns the events, the subjects
/// with their expected contact counts, and the event ids each flag must quote.
type Expected = (BTreeMap<String, usize>, BTreeMap<&'static str, Vec<Id>>);

fn scenario(s: &Setup) -> (Vec<Event>, Expected) {
    let t0 = Timestamp::now().0 - 70 * DAY;
    let u = unique("");
    let (anna, ben, house) = (format!("P-ANNA-{u}"), format!("P-BEN-{u}"), format!("9{u}"));
    let w1 = call(
        t0,
        30,
        "WELFARE",
        &anna,
        PersonRole::PersonOfConcern,
        "1",
        AgencyKind::Police,
    );
    let w2 = call(
        t0,
        39,
        "MENTAL_HEALTH",
        &anna,
        PersonRole::PersonOfConcern,
        "2",
        AgencyKind::MentalHealth,
    );
    let r1 = call(
        t0,
        42,
        "RTC",
        &anna,
        PersonRole::Witness,
        "3",
        AgencyKind::Police,
    );
    let w3 = call(
        t0,
        50,
        "WELFARE",
        &anna,
        PersonRole::PersonOfConcern,
        "4",
        AgencyKind::Ambulance,
    );
    let a1 = call(
        t0,
        0,
        "ASSAULT",
        &ben,
        PersonRole::Victim,
        "5",
        AgencyKind::Police,
    );
    let c1 = victim_case(t0, 60, &ben);
    let domestic: Vec<IncidentEvent> = (0..3)
        .map(|i| {
            call(
                t0,
                10 + 20 * i,
                "DOMESTIC_ABUSE",
                &format!("P-D{i}-{u}"),
                PersonRole::Victim,
                &house,
                AgencyKind::Police,
            )
        })
        .collect();
    let mut want = BTreeMap::new();
    want.insert(s.keys.person(&anna), 4);
    want.insert(s.keys.person(&ben), 2);
    want.insert(s.keys.location(&house), 3);
    let mut flags = BTreeMap::new();
    flags.insert(
        "repeat-welfare-concern",
        vec![
            w1.envelope.event_id,
            w2.envelope.event_id,
            w3.envelope.event_id,
        ],
    );
    flags.insert(
        "persistently-targeted-victim",
        vec![a1.envelope.event_id, c1.envelope.event_id],
    );
    flags.insert(
        "repeated-domestic-location",
        domestic.iter().map(|d| d.envelope.event_id).collect(),
    );
    let mut events: Vec<Event> = [w1, w2, r1, w3, a1]
        .into_iter()
        .map(|e| Event::Incident(Box::new(e)))
        .collect();
    events.push(Event::Case(Box::new(c1)));
    events.extend(domestic.into_iter().map(|e| Event::Incident(Box::new(e))));
    for i in 0..20 {
        let p = format!("P-N{i}-{u}");
        want.insert(s.keys.person(&p), 1);
        events.push(Event::Incident(Box::new(call(
            t0,
            i,
            "RTC",
            &p,
            PersonRole::Caller,
            &format!("8{i}{u}"),
            AgencyKind::FireRescue,
        ))));
    }
    (events, (want, flags))
}

#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread")]
async fn scenarios_raise_exactly_the_expected_flags_and_scale_out_agrees_with_one_instance() {
    let s = setup().await;
    let (events, (want, expected_flags)) = scenario(&s);

    // One instance, throughout.
    let one = unique("context-one-");
    let single = start_context(&s, &one, "0").await;
    // Two instances of another deployment; the second is killed mid-way and comes back.
    let two = unique("context-two-");
    let first = start_context(&s, &two, "0").await;
    let mut second = start_context(&s, &two, "1").await;
    let (a, b) = events.split_at(events.len() / 2);
    publish(&s, a).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    second.child.kill().expect("kill -9");
    let _ = second.child.wait();
    println!("second instance killed after the first half");
    publish(&s, b).await;
    second = start_context(&s, &two, "1").await;

    let by_one = common::context::states(&one, &want, Duration::from_secs(90));
    let by_two = common::context::states(&two, &want, Duration::from_secs(90));
    assert_eq!(
        by_one.len(),
        want.len(),
        "one instance: every subject's state"
    );

    // Exactly the expected flags, each with its count and evidence, and no others.
    let mut raised: BTreeMap<String, (u32, Vec<Id>)> = BTreeMap::new();
    for state in by_one.values() {
        for f in &state.summary.flags {
            assert!(
                raised
                    .insert(f.rule.clone(), (f.count, f.evidence.clone()))
                    .is_none(),
                "{} raised for two subjects",
                f.rule
            );
            println!(
                "flag {}: {} ({} event ids)",
                f.rule,
                f.explanation,
                f.evidence.len()
            );
        }
    }
    let expected: BTreeMap<String, (u32, Vec<Id>)> = expected_flags
        .into_iter()
        .map(|(rule, ids)| (rule.to_owned(), (ids.len() as u32, ids)))
        .collect();
    assert_eq!(
        raised, expected,
        "the flags, their counts and their evidence"
    );
    let anna = by_one
        .values()
        .find(|s| {
            s.summary
                .flags
                .iter()
                .any(|f| f.rule == "repeat-welfare-concern")
        })
        .expect("anna");
    assert_eq!(
        anna.summary.flags[0].explanation,
        "repeat welfare concern: 3 contacts in 30 days, last by ambulance"
    );

    // Scale-out with a crash agrees with one instance, subject by subject.
    assert_eq!(
        by_two.len(),
        want.len(),
        "two instances: every subject's state"
    );
    for (subject, state) in &by_one {
        assert_eq!(
            by_two.get(subject).map(|s| (&s.history, &s.summary)),
            Some((&state.history, &state.summary)),
            "the same history and summary for {subject}"
        );
    }
    println!(
        "{} subjects: one instance and two (one killed and restarted) agree",
        by_one.len()
    );

    drop((single, first, second));
}

/// Waits for the audit records of `recipient` about each of `events`.
async fn audits_for(
    codec: &Codec,
    recipient: &str,
    events: &[Id],
) -> BTreeMap<Id, bluelight_avro::records::Disclosure> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = BTreeMap::new();
    while out.len() < events.len() && Instant::now() < deadline {
        for (_, payload, _) in
            common::project::read_all("audit.disclosure.v1", 1, Duration::from_secs(10))
        {
            let d: bluelight_avro::records::Disclosure =
                codec.decode(&payload).await.expect("audit decodes");
            if d.recipient == recipient && events.contains(&d.source_event_id) {
                out.insert(d.source_event_id, d);
            }
        }
    }
    out
}

#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread")]
async fn the_ambulance_control_room_gets_the_context_block_as_of_each_call_and_the_audit_names_it()
{
    let p = common::project::setup("ctxfeed").await;
    ensure_topics(&[
        ("repartition.context-contacts.v1", false),
        ("state.context.v1", true),
        ("dlq.context.v1", false),
    ])
    .await;
    let secret = std::fs::read(&p.key_file).expect("key");
    let keys = SubjectKeys::new(secret.trim_ascii());
    let t0 = Timestamp::now().0 - 20 * DAY;
    let anna = unique("P-ANNA-");
    let calls: Vec<IncidentEvent> = [(0, "WELFARE"), (6, "MENTAL_HEALTH"), (11, "WELFARE")]
        .iter()
        .map(|(day, kind)| {
            let mut e =
                common::project::incident(&p, &unique("INC-"), kind, EventType::IncidentOpened);
            e.envelope.occurred_at = Timestamp(t0 + day * DAY);
            e.agencies_requested = vec![AgencyKind::Ambulance];
            e.resources.clear();
            e.people = vec![PersonLink {
                person_ref: anna.clone(),
                role: PersonRole::PersonOfConcern,
                subject_category: SubjectCategory::Other,
                vulnerabilities: Vec::new(),
                identity: None,
            }];
            if let Some(l) = e.location.as_mut() {
                l.uprn = Some(unique("7"));
            }
            e
        })
        .collect();

    // The context service folds the first two calls into Anna's history.
    let group = unique("context-feed-");
    let _context = common::context::start_context(&p.key_file, &p.registry_url, &group, "0").await;
    let producer = common::project::producer();
    common::project::publish(&p.codec, &producer, &calls[..2]).await;
    let mut want = BTreeMap::new();
    want.insert(keys.person(&anna), 2);
    let held = common::context::states(&group, &want, Duration::from_secs(60));
    assert_eq!(
        held.get(&keys.person(&anna))
            .map(|s| s.history.contacts.len()),
        Some(2),
        "the context service holds Anna's first two calls"
    );

    // A projector reading that context service's state; then the third call.
    let _projector = common::project::start_projector_env(
        &p,
        &unique("project-ctx-"),
        "0",
        &[("BLUELIGHT_CONTEXT_GROUP", &group)],
    )
    .await;
    common::project::publish(&p.codec, &producer, &calls[2..]).await;
    let feed = format!("feed.{}.incident.v1", p.ambulance);
    let got = common::project::decode_feed(
        &p.codec,
        &common::project::read_all(&feed, 3, Duration::from_secs(60)),
    )
    .await;
    let copy = |e: &IncidentEvent| {
        got.iter()
            .find(|r| r.incident_id == e.incident_id)
            .unwrap_or_else(|| panic!("{} on the ambulance feed", e.incident_id))
    };
    let ids: Vec<Id> = calls.iter().map(|c| c.envelope.event_id).collect();

    // As of the first call nothing was known: no block.
    assert_eq!(
        copy(&calls[0]).context,
        None,
        "a first contact carries no context"
    );
    // As of the second, one earlier contact; no flag yet.
    let second = copy(&calls[1])
        .context
        .clone()
        .expect("a block on the second call");
    let s2 = &second.subjects[0];
    assert!(
        s2.flags.is_empty(),
        "two calls raise no flag: {:?}",
        s2.flags
    );
    assert_eq!(
        s2.last_contact.as_ref().map(|l| l.at),
        Some(calls[0].envelope.occurred_at)
    );
    // As of the third: the flag, with the three calls as evidence.
    let third_copy = copy(&calls[2]);
    let third = third_copy
        .context
        .clone()
        .expect("a block on the third call");
    assert_eq!(third.clause_id, "repeat-demand");
    assert_eq!(third.as_of, calls[2].envelope.occurred_at);
    assert_eq!(third.subjects.len(), 1, "Anna; each call's place is new");
    let s3 = &third.subjects[0];
    assert_eq!(
        s3.subject_ref, third_copy.people[0].person_ref,
        "the block's pseudonym is the record's"
    );
    assert!(s3.subject_ref.starts_with("psn-") && !s3.subject_ref.contains("ANNA"));
    assert_eq!(s3.flags.len(), 1);
    let flag = &s3.flags[0];
    assert_eq!(flag.rule, "repeat-welfare-concern");
    assert_eq!(flag.count, 3);
    assert_eq!(flag.evidence, ids);
    assert_eq!(
        flag.explanation,
        "repeat welfare concern: 3 contacts in 30 days, last by ambulance"
    );
    let w30 = s3.windows.iter().find(|w| w.days == 30).expect("30 days");
    assert_eq!(w30.contacts, 3);
    println!(
        "ambulance feed: call 1 no block; call 2 {} earlier contact(s), no flag; call 3 flag {}: {} (evidence {} event ids)",
        s2.windows
            .iter()
            .find(|w| w.days == 30)
            .map_or(0, |w| w.contacts - 1),
        flag.rule,
        flag.explanation,
        flag.evidence.len()
    );

    // Each disclosure is audited; the ones with a block name the clause and what it cites.
    let audits = audits_for(&p.codec, &p.ambulance, &ids).await;
    assert_eq!(audits.len(), 3, "one audit record per call");
    assert_eq!(audits[&ids[0]].context_clause_id, None);
    assert!(
        audits[&ids[0]]
            .fields_withheld
            .contains(&"context".to_owned())
    );
    let a3 = &audits[&ids[2]];
    assert_eq!(a3.context_clause_id.as_deref(), Some("repeat-demand"));
    let mut cited = ids.clone();
    cited.sort_unstable();
    assert_eq!(a3.context_evidence, cited);
    assert!(
        a3.fields_disclosed
            .contains(&"context.subjects.flags".to_owned())
    );
    assert!(
        a3.fields_transformed
            .iter()
            .any(|t| t.field == "context.subjects.subject_ref" && t.transform == "pseudonymise")
    );
    println!(
        "audit for call 3: context clause {:?}, {} event ids cited, withheld {:?}",
        a3.context_clause_id,
        a3.context_evidence.len(),
        a3.fields_withheld
            .iter()
            .filter(|f| f.starts_with("context"))
            .collect::<Vec<_>>()
    );

    // On the ambulance control room's board: the block beside the third call, its flag
    // explained; nothing beside the first.
    let token = unique("amb-");
    let gw = common::gateway::start_gateway(
        &p,
        &[("swast-control", &p.ambulance, "control-room", &token)],
        &[],
    )
    .await;
    let board = format!("{}/board/", gw.url);
    let browser = common::browser::Browser::start().await;
    browser.sign_in(&board, &token).await;
    let card = |e: &IncidentEvent| {
        format!(
            "document.querySelector('[data-incident-id=\"{}\"]')",
            e.incident_id
        )
    };
    let third_card = card(&calls[2]);
    let shown = browser
        .wait_for(
            &format!("const c = {third_card}; return c !== null && c.querySelector('.context .flag') !== null;"),
            Duration::from_secs(30),
        )
        .await;
    let text = browser
        .eval(&format!(
            "const c = {third_card}; return c ? c.textContent : '';"
        ))
        .await;
    let text = text.as_str().unwrap_or_default().to_owned();
    let shot = browser.screenshot().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-artifacts");
    std::fs::create_dir_all(dir).expect("artifacts dir");
    std::fs::write(format!("{dir}/board-context.png"), &shot).expect("screenshot");
    assert!(
        shown.is_some(),
        "the context block is on the third call's card: {text}"
    );
    assert!(
        text.contains("repeat welfare concern: 3 contacts in 30 days, last by ambulance"),
        "the flag: {text}"
    );
    assert!(
        text.contains(
            "Why: rule repeat-welfare-concern holds from 3 contacts within 30 days; there were 3"
        ) && ids.iter().all(|id| text.contains(&id.to_string())),
        "the flag explained, with its evidence: {text}"
    );
    assert!(
        text.contains("Contacts: 2 in 7 days") && text.contains("3 in 30 days"),
        "the counts: {text}"
    );
    assert!(
        !text.contains(&anna),
        "no person reference on the board: {text}"
    );
    let first_has_block = browser
        .eval(&format!(
            "const c = {}; return c !== null && c.querySelector('.context') !== null;",
            card(&calls[0])
        ))
        .await;
    assert_eq!(
        first_has_block,
        serde_json::Value::Bool(false),
        "no block on the first call"
    );
    println!(
        "board: the third call's card shows the flag with its reason and evidence; screenshot target/test-artifacts/board-context.png"
    );
}

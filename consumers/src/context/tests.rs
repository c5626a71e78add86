//! The flag scenarios (a repeat welfare caller, a persistently targeted victim, a location with
//! repeated domestic incidents), the rules file's checks, and order independence.

use bluelight_avro::records::{
    AgencyKind, CaseVictim, Code, EventType, Id, IncidentEvent, PersonLink, PersonRole,
    SubjectCategory, Timestamp, samples,
};
use proptest::prelude::*;

use super::{
    History, Rules, SubjectKeys, SubjectKind, extract,
    history::{DAY_MS, Observation},
};

const RULES: &str = include_str!("../../context-rules.toml");
const T0: i64 = 1_780_000_000_000;

fn rules() -> Rules {
    Rules::parse(RULES, "context-rules.toml").expect("the shipped rules load")
}

fn keys() -> SubjectKeys {
    SubjectKeys::new(b"0123456789abcdef0123456789abcdef")
}

/// An incident opened at `day` (days after T0) of `kind`, about `person` in `role`, at `uprn`.
fn call(
    id: &str,
    day: i64,
    kind: &str,
    person: &str,
    role: PersonRole,
    uprn: &str,
    agency: AgencyKind,
) -> IncidentEvent {
    let mut e = samples::incident(EventType::IncidentOpened);
    e.envelope.event_id = Id::random();
    e.envelope.occurred_at = Timestamp(T0 + day * DAY_MS);
    e.incident_id = id.to_owned();
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

/// Folds `events` into one history per subject.
fn fold(obs: impl IntoIterator<Item = Observation>) -> std::collections::BTreeMap<String, History> {
    let mut out: std::collections::BTreeMap<String, History> = Default::default();
    for o in obs {
        out.entry(o.subject.clone()).or_default().observe(&o);
    }
    out
}

#[test]
fn a_repeat_welfare_caller_is_flagged_with_counts_and_event_ids() {
    let k = keys();
    let calls = [
        call(
            "W1",
            0,
            "WELFARE",
            "P-ANNA",
            PersonRole::PersonOfConcern,
            "100",
            AgencyKind::Police,
        ),
        call(
            "W2",
            9,
            "MENTAL_HEALTH",
            "P-ANNA",
            PersonRole::PersonOfConcern,
            "101",
            AgencyKind::MentalHealth,
        ),
        call(
            "R1",
            12,
            "RTC",
            "P-ANNA",
            PersonRole::Witness,
            "102",
            AgencyKind::Police,
        ),
        call(
            "W3",
            20,
            "WELFARE",
            "P-ANNA",
            PersonRole::PersonOfConcern,
            "103",
            AgencyKind::Ambulance,
        ),
        // Updates of an incident already counted are the same contact.
        {
            let mut u = call(
                "W3",
                21,
                "WELFARE",
                "P-ANNA",
                PersonRole::PersonOfConcern,
                "103",
                AgencyKind::Ambulance,
            );
            u.envelope.event_type = EventType::IncidentUpdated;
            u
        },
    ];
    let histories = fold(calls.iter().flat_map(|c| extract::incident(&k, c)));
    let anna = &histories[&k.person("P-ANNA")];
    // An observation seen before changes nothing (so nothing is written again).
    let mut again = anna.clone();
    for o in extract::incident(&k, &calls[1]) {
        if o.subject == k.person("P-ANNA") {
            assert!(!again.observe(&o), "a repeat is not a change");
        }
    }
    assert_eq!(&again, anna);
    assert_eq!(anna.contacts.len(), 4, "four incidents, five events");
    let s = anna.summarise(SubjectKind::Person, &rules(), T0 + 22 * DAY_MS);
    assert_eq!(s.flags.len(), 1, "{:?}", s.flags);
    let f = &s.flags[0];
    assert_eq!(f.rule, "repeat-welfare-concern");
    assert_eq!(f.count, 3);
    assert_eq!(
        f.evidence,
        vec![
            calls[0].envelope.event_id,
            calls[1].envelope.event_id,
            calls[3].envelope.event_id
        ],
        "the opening event of each welfare contact, oldest first"
    );
    assert_eq!(
        f.explanation,
        "repeat welfare concern: 3 contacts in 30 days, last by ambulance"
    );
    assert_eq!(s.windows[1].days, 30);
    assert_eq!(s.windows[1].contacts, 4);
    assert_eq!(s.windows[1].by_type["WELFARE"], 2);
    assert_eq!(
        s.windows[0].contacts, 1,
        "within 7 days of day 22: W3 only (R1, at day 12, is 10 days back)"
    );

    // As of day 40, the first two have left the 30-day window: no flag.
    let later = anna.summarise(SubjectKind::Person, &rules(), T0 + 40 * DAY_MS);
    assert!(later.flags.is_empty(), "{:?}", later.flags);
    // As of day 15, only two had happened.
    let earlier = anna.summarise(SubjectKind::Person, &rules(), T0 + 15 * DAY_MS);
    assert!(earlier.flags.is_empty());
}

#[test]
fn a_persistently_targeted_victim_is_flagged_across_incidents_and_cases() {
    let k = keys();
    let first = call(
        "A1",
        0,
        "ASSAULT",
        "P-BEN",
        PersonRole::Victim,
        "200",
        AgencyKind::Police,
    );
    let mut case = samples::case(EventType::CrimeRecorded);
    case.envelope.event_id = Id::random();
    case.envelope.occurred_at = Timestamp(T0 + 60 * DAY_MS);
    case.case_id = "CASE-B2".into();
    case.suspects.clear();
    case.victims = vec![CaseVictim {
        victim_ref: "P-BEN".into(),
        enhanced_rights: false,
        enhanced_reasons: Vec::new(),
        contact: None,
        identity: None,
    }];
    // Ben as a witness elsewhere does not count towards it.
    let witness = call(
        "X1",
        30,
        "ASSAULT",
        "P-BEN",
        PersonRole::Witness,
        "201",
        AgencyKind::Police,
    );
    let mut obs = extract::incident(&k, &first);
    obs.extend(extract::incident(&k, &witness));
    obs.extend(extract::case(&k, &case));
    let histories = fold(obs);
    let ben = &histories[&k.person("P-BEN")];
    let s = ben.summarise(SubjectKind::Person, &rules(), T0 + 61 * DAY_MS);
    let flags: Vec<_> = s.flags.iter().map(|f| (f.rule.as_str(), f.count)).collect();
    assert_eq!(flags, [("persistently-targeted-victim", 2)]);
    assert_eq!(
        s.flags[0].evidence,
        vec![first.envelope.event_id, case.envelope.event_id]
    );
    assert_eq!(s.open_cases, 1);

    // The case closed: still a contact, no longer open.
    let mut closed = case.clone();
    closed.envelope.event_id = Id::random();
    closed.envelope.event_type = EventType::CaseClosed;
    closed.envelope.occurred_at = Timestamp(T0 + 62 * DAY_MS);
    let mut ben = ben.clone();
    for o in extract::case(&k, &closed) {
        ben.observe(&o);
    }
    assert_eq!(
        ben.summarise(SubjectKind::Person, &rules(), T0 + 63 * DAY_MS)
            .open_cases,
        0
    );

    // A retraction takes the incident out of the evidence, and the flag with it.
    let mut retraction = first.clone();
    retraction.envelope.event_id = Id::random();
    retraction.envelope.event_type = EventType::IncidentRetracted;
    for o in extract::incident(&k, &retraction) {
        assert!(ben.observe(&o) || o.kind == SubjectKind::Location);
    }
    assert!(
        ben.summarise(SubjectKind::Person, &rules(), T0 + 63 * DAY_MS)
            .flags
            .is_empty()
    );
}

#[test]
fn a_location_with_repeated_domestic_incidents_is_flagged_without_naming_anyone() {
    let k = keys();
    let calls: Vec<_> = (0..3)
        .map(|i| {
            call(
                &format!("D{i}"),
                i * 20,
                "DOMESTIC",
                &format!("P-{i}"),
                PersonRole::Victim,
                "300",
                AgencyKind::Police,
            )
        })
        .map(|mut c| {
            c.incident_type = Some(Code::new("bl-incident-type", "DOMESTIC_ABUSE"));
            c
        })
        .collect();
    let histories = fold(calls.iter().flat_map(|c| extract::incident(&k, c)));
    let place = &histories[&k.location("300")];
    let s = place.summarise(SubjectKind::Location, &rules(), T0 + 41 * DAY_MS);
    assert_eq!(s.flags.len(), 1);
    assert_eq!(s.flags[0].rule, "repeated-domestic-location");
    assert_eq!(s.flags[0].count, 3);
    assert!(
        k.location("300").starts_with("location/psn-"),
        "no UPRN in the key"
    );
    assert!(k.person("P-0").starts_with("person/psn-") && !k.person("P-0").contains("P-0"));
    // Person rules never apply to places and the other way round.
    assert!(
        histories[&k.person("P-0")]
            .summarise(SubjectKind::Person, &rules(), T0 + 41 * DAY_MS)
            .flags
            .is_empty()
    );
}

#[test]
fn the_rules_file_says_what_is_wrong() {
    let cases = [
        (
            "[[rule]]\nid = \"x\"\nsubject = \"person\"\nexplain = \"\"\nwindow_days = 120\nat_least = 2\n",
            "window_days is 120",
        ),
        (
            "[[rule]]\nid = \"x\"\nsubject = \"person\"\nexplain = \"\"\nwindow_days = 30\nat_least = 0\n",
            "at_least is 0",
        ),
        (
            "[[rule]]\nid = \"x\"\nsubject = \"location\"\nexplain = \"\"\nwindow_days = 30\nat_least = 2\nroles = [\"VICTIM\"]\n",
            "location rule",
        ),
        (
            "[[rule]]\nid = \"x\"\nsubject = \"person\"\nexplain = \"\"\nwindow_days = 30\nat_least = 2\nroles = [\"HERO\"]\n",
            "HERO",
        ),
        (
            "[[rule]]\nid = \"x\"\nsubject = \"person\"\nexplain = \"\"\nwindow_days = 30\nat_least = 2\nincident_types = [\"welfare\"]\n",
            "not a canonical code",
        ),
        (
            "[[rule]]\nid = \"x\"\nsubject = \"person\"\nexplain = \"\"\nwindow_days = 30\nat_least = 2\nwindow = 3\n",
            "unknown field",
        ),
    ];
    for (text, want) in cases {
        let err = Rules::parse(text, "rules.toml")
            .expect_err(want)
            .to_string();
        assert!(
            err.contains(want) && err.contains("rules.toml"),
            "{want}: {err}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The same observations in any interleaving across incidents (one incident's own events
    /// keep their order, as on Kafka) give the same history: a rebuilt or rebalanced service
    /// agrees with one that ran throughout.
    #[test]
    fn the_history_does_not_depend_on_the_interleaving(
        days in proptest::collection::vec(0i64..85, 1..16),
        seed in any::<u64>(),
    ) {
        let k = keys();
        let mut per_incident: Vec<Vec<Observation>> = days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let opened = call(&format!("I{}", i % 7), *d, if i % 2 == 0 { "WELFARE" } else { "RTC" }, "P-Q", PersonRole::Caller, "9", AgencyKind::Ambulance);
                let mut update = opened.clone();
                update.envelope.event_id = Id::random();
                update.envelope.event_type = if i % 5 == 4 { EventType::IncidentRetracted } else { EventType::IncidentUpdated };
                update.envelope.occurred_at = Timestamp(opened.envelope.occurred_at.0 + DAY_MS);
                let mut o = extract::incident(&k, &opened);
                o.extend(extract::incident(&k, &update));
                o
            })
            .collect();
        // Events of one incident id keep their order: group by reference first.
        let mut by_ref: std::collections::BTreeMap<String, Vec<Observation>> = Default::default();
        for o in per_incident.drain(..).flatten() {
            by_ref.entry(o.reference.clone()).or_default().push(o);
        }
        let in_order: Vec<Observation> = by_ref.values().flatten().cloned().collect();
        // Another interleaving: round-robin from a rotated start, each reference's order kept.
        let mut queues: Vec<std::collections::VecDeque<Observation>> =
            by_ref.values().map(|v| v.iter().cloned().collect()).collect();
        let rotate = (seed as usize) % queues.len().max(1);
        queues.rotate_left(rotate);
        let mut mixed = Vec::new();
        let mut i = seed as usize;
        while queues.iter().any(|q| !q.is_empty()) {
            let n = queues.len();
            // A pseudo-random queue, or the next one along that still has something.
            let pick = (0..n)
                .map(|k| (i + k) % n)
                .find(|q| !queues[*q].is_empty())
                .unwrap_or(0);
            if let Some(o) = queues[pick].pop_front() {
                mixed.push(o);
            }
            i = i.wrapping_mul(31).wrapping_add(7);
        }
        prop_assert_eq!(fold(in_order), fold(mixed));
    }
}

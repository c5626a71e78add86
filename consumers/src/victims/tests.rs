//! Standard against Enhanced Rights deadlines, opt-outs, and a domestic abuse case's milestones.

use bluelight_avro::records::{
    CaseEvent, ContactChannel, ContactPreferences, EventType, Id, Timestamp, UpdateFrequency,
    samples,
};

use super::*;

fn london(s: &str) -> Timestamp {
    let z: jiff::Zoned = format!("{s}[Europe/London]").parse().expect("time");
    Timestamp(z.timestamp().as_millisecond())
}

fn utc(s: &str) -> Timestamp {
    let t: jiff::Timestamp = s.parse().expect("utc");
    Timestamp(t.as_millisecond())
}

fn rules() -> (VictimsCode, Calendar) {
    (
        VictimsCode::shipped().expect("rules"),
        Calendar::england_and_wales().expect("calendar"),
    )
}

/// A case event at `at` (London) with one victim.
fn case(event_type: EventType, at: &str, enhanced: bool, opted_out: bool) -> CaseEvent {
    let mut c = samples::case(event_type);
    c.envelope.event_id = Id::random();
    c.envelope.occurred_at = london(at);
    let v = &mut c.victims[0];
    v.enhanced_rights = enhanced;
    v.contact = Some(ContactPreferences {
        channel: ContactChannel::Email,
        frequency: UpdateFrequency::EveryMilestone,
        opted_out,
    });
    c
}

fn updates(c: &CaseEvent, register: &dyn Fn(&str) -> Option<Preferences>) -> Vec<Owed> {
    let (code, cal) = rules();
    owed(&code, &cal, c, register, Timestamp(0)).expect("owed")
}

fn none(_: &str) -> Option<Preferences> {
    None
}

fn due(o: &Owed) -> (String, Timestamp) {
    match o {
        Owed::Update(u) => (u.right.clone(), u.due_by),
        Owed::OptedOut { .. } => panic!("opted out"),
    }
}

#[test]
fn the_same_charge_is_due_in_five_working_days_or_one_with_enhanced_rights() {
    // Charged at 21:00 on Friday 20 November 2026.
    let standard = updates(
        &case(EventType::SuspectCharged, "2026-11-20T21:00", false, false),
        &none,
    );
    let enhanced = updates(
        &case(EventType::SuspectCharged, "2026-11-20T21:00", true, false),
        &none,
    );
    assert_eq!(
        due(&standard[0]),
        ("6".into(), utc("2026-11-27T23:59:59.999Z"))
    );
    assert_eq!(
        due(&enhanced[0]),
        ("6".into(), utc("2026-11-23T23:59:59.999Z"))
    );
    let Owed::Update(u) = &enhanced[0] else {
        panic!()
    };
    assert_eq!(u.template_id, "right6-suspect-charged");
    assert_eq!(u.channel, ContactChannel::Email);
    assert_eq!(
        u.parameters["offence"],
        "Assault occasioning actual bodily harm"
    );
    assert_eq!(
        u.parameters.len(),
        1,
        "only the facts the template asks for"
    );
}

#[test]
fn an_opted_out_victim_gets_nothing_and_the_decision_is_recorded() {
    let out = updates(
        &case(EventType::SuspectCharged, "2026-11-20T21:00", true, true),
        &none,
    );
    assert_eq!(
        out,
        vec![Owed::OptedOut {
            victim_ref: "crm:victim:42".into(),
            entitlement: "right-6-charge".into(),
            right: "6".into(),
        }]
    );
}

#[test]
fn the_victim_register_overrides_the_case_events_copy() {
    let c = case(EventType::SuspectCharged, "2026-11-20T21:00", false, false);
    // The victim has since opted out in the victim CRM.
    let opted = |_: &str| {
        Some(Preferences {
            enhanced_rights: false,
            opted_out: true,
            channel: ContactChannel::Sms,
        })
    };
    assert!(matches!(updates(&c, &opted)[0], Owed::OptedOut { .. }));
    // ...or been assessed as eligible for Enhanced Rights, and asked for texts.
    let enhanced = |_: &str| {
        Some(Preferences {
            enhanced_rights: true,
            opted_out: false,
            channel: ContactChannel::Sms,
        })
    };
    let out = updates(&c, &enhanced);
    let Owed::Update(u) = &out[0] else { panic!() };
    assert_eq!(u.due_by, utc("2026-11-23T23:59:59.999Z"));
    assert_eq!(u.channel, ContactChannel::Sms);
}

#[test]
fn a_domestic_abuse_case_owes_an_update_at_each_milestone() {
    // Arrest on Thursday 24 December 2026, charge on Monday 28th (a bank holiday), first hearing
    // listed on Wednesday 30th. The victim has Enhanced Rights (domestic abuse).
    let arrest = case(EventType::SuspectArrested, "2026-12-24T19:30", true, false);
    let charge = case(EventType::SuspectCharged, "2026-12-28T11:00", true, false);
    let hearing = case(EventType::HearingScheduled, "2026-12-30T15:00", true, false);
    let recorded = case(EventType::CrimeRecorded, "2026-12-24T18:00", true, false);
    let got: Vec<(String, Timestamp)> = [&recorded, &arrest, &charge, &hearing]
        .into_iter()
        .flat_map(|c| updates(c, &none))
        .map(|o| due(&o))
        .collect();
    assert_eq!(
        got,
        vec![
            // Christmas Day and the substitute Boxing Day do not count.
            ("6".into(), utc("2026-12-29T23:59:59.999Z")),
            ("6".into(), utc("2026-12-29T23:59:59.999Z")),
            // New Year's Day does not count either.
            ("8".into(), utc("2026-12-31T23:59:59.999Z")),
        ],
        "a crime being recorded owes nothing; arrest, charge and hearing one each"
    );
    let Owed::Update(u) = &updates(&hearing, &none)[0] else {
        panic!()
    };
    assert_eq!(u.parameters["court"], "Bristol Magistrates' Court");
    assert_eq!(u.parameters["hearing_type"], "FIRST_APPEARANCE");
    assert!(u.parameters.contains_key("hearing_date") && u.parameters.contains_key("hearing_time"));
    assert_eq!(u.trigger_event_id, hearing.envelope.event_id);
    // The same trigger gives the same update id: a replay is recognisable, never a second message.
    let Owed::Update(again) = &updates(&hearing, &none)[0] else {
        panic!()
    };
    assert_eq!(again.envelope.event_id, u.envelope.event_id);
}

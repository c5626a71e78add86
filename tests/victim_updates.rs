//! `bluelight victim-updates` against the real broker and registry: a domestic abuse case's
//! milestones owe the victim updates with the right deadlines, an opted-out victim gets nothing
//! (audited), the victim register overrides the case's copy, and kill -9 loses and repeats nothing.

mod common;

use std::time::Duration;

use bluelight_avro::records::{ContactChannel, Disclosure, DisclosureKind, EventType, Timestamp};
use bluelight_topics::testing::unique;
use common::{
    project::read_all,
    victims::{case, send, setup, start, updates_for, utc, victim},
};

#[tokio::test(flavor = "multi_thread")]
async fn a_domestic_abuse_case_owes_updates_by_their_deadlines_once_through_a_crash() {
    let (registry, codec) = setup().await;
    let u = unique("");
    let (a, b, case_id) = (
        format!("victim-a-{u}"),
        format!("victim-b-{u}"),
        format!("CASE-{u}"),
    );
    // The victim CRM says: A has Enhanced Rights (domestic abuse) and wants texts; B opted out.
    send(
        &codec,
        "bl.victim.v1",
        &victim(&a, true, false, ContactChannel::Sms),
    )
    .await;
    send(
        &codec,
        "bl.victim.v1",
        &victim(&b, false, true, ContactChannel::Email),
    )
    .await;

    let group = unique("victim-updates-");
    let mut service = start(&registry.url, &group).await;
    let victims = [a.as_str(), b.as_str()];
    send(
        &codec,
        "bl.case.v1",
        &case(
            &case_id,
            &victims,
            EventType::CrimeRecorded,
            "2026-12-24T18:00",
        ),
    )
    .await;
    send(
        &codec,
        "bl.case.v1",
        &case(
            &case_id,
            &victims,
            EventType::SuspectArrested,
            "2026-12-24T19:30",
        ),
    )
    .await;
    let first = updates_for(&codec, &case_id).await;
    assert_eq!(first.len(), 1, "the arrest, for A only: {first:?}");

    // kill -9, restart, and the rest of the case.
    service.child.kill().expect("kill -9");
    let _ = service.child.wait();
    let _service = start(&registry.url, &group).await;
    send(
        &codec,
        "bl.case.v1",
        &case(
            &case_id,
            &victims,
            EventType::SuspectCharged,
            "2026-12-28T11:00",
        ),
    )
    .await;
    send(
        &codec,
        "bl.case.v1",
        &case(
            &case_id,
            &victims,
            EventType::HearingScheduled,
            "2026-12-30T15:00",
        ),
    )
    .await;

    let mut got = updates_for(&codec, &case_id).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        got = updates_for(&codec, &case_id).await;
    }
    let summary: Vec<(String, String, EventType, Timestamp, ContactChannel)> = got
        .iter()
        .map(|u| {
            (
                u.victim_ref.clone(),
                u.right.clone(),
                u.trigger_event_type,
                u.due_by,
                u.channel,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            // Enhanced Rights from the register (the case's copy said standard): 1 working day,
            // Christmas and the substitute Boxing Day not counted.
            (
                a.clone(),
                "6".into(),
                EventType::SuspectArrested,
                utc("2026-12-29T23:59:59.999Z"),
                ContactChannel::Sms
            ),
            (
                a.clone(),
                "6".into(),
                EventType::SuspectCharged,
                utc("2026-12-29T23:59:59.999Z"),
                ContactChannel::Sms
            ),
            (
                a.clone(),
                "8".into(),
                EventType::HearingScheduled,
                utc("2026-12-31T23:59:59.999Z"),
                ContactChannel::Sms
            ),
        ],
        "one update per milestone, for A only, each once"
    );
    assert_eq!(got[2].parameters["court"], "Bristol Magistrates' Court");

    let mut audits = Vec::new();
    for (key, payload, _) in read_all("audit.disclosure.v1", 1, Duration::from_secs(20)) {
        if key == case_id {
            let d: Disclosure = codec.decode(&payload).await.expect("audit decodes");
            audits.push(d);
        }
    }
    let kinds: Vec<DisclosureKind> = audits.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == DisclosureKind::Disclosure)
            .count(),
        3,
        "one audit record per update: {kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == DisclosureKind::Withheld)
            .count(),
        3,
        "B's three opted-out decisions are audited: {kinds:?}"
    );
    assert!(
        audits
            .iter()
            .all(|d| d.recipient == "victim-notification-service")
    );
}

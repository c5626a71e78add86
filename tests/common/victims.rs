//! Helpers for the victim-updates tests: victims, case events at London times, and the service.

use std::time::Duration;

use bluelight_avro::{
    Codec,
    records::{
        CaseEvent, CaseVictim, ContactChannel, ContactPreferences, EventType, Id, Timestamp,
        UpdateFrequency, VictimEvent, VictimUpdate, samples,
    },
};
use rdkafka::producer::FutureRecord;

use super::{
    Service, ensure_topics,
    project::{producer, read_all},
    registry_with_schemas, start_service,
};

pub fn london(s: &str) -> Timestamp {
    let z: jiff::Zoned = format!("{s}[Europe/London]").parse().expect("time");
    Timestamp(z.timestamp().as_millisecond())
}

pub fn utc(s: &str) -> Timestamp {
    let t: jiff::Timestamp = s.parse().expect("utc");
    Timestamp(t.as_millisecond())
}

pub fn victim(
    victim_ref: &str,
    enhanced: bool,
    opted_out: bool,
    channel: ContactChannel,
) -> VictimEvent {
    let mut v = samples::victim(EventType::VictimRegistered);
    v.envelope.event_id = Id::random();
    v.envelope.supersedes = None;
    v.victim_ref = victim_ref.to_owned();
    v.enhanced_rights = enhanced;
    v.contact = ContactPreferences {
        channel,
        frequency: UpdateFrequency::EveryMilestone,
        opted_out,
    };
    v
}

/// A case event at `at` (London) whose copy of the victims says: standard rights, by email.
pub fn case(case_id: &str, victims: &[&str], t: EventType, at: &str) -> CaseEvent {
    let mut c = samples::case(t);
    c.envelope.event_id = Id::random();
    c.envelope.occurred_at = london(at);
    c.envelope.supersedes = None;
    c.case_id = case_id.to_owned();
    let template = c.victims[0].clone();
    c.victims = victims
        .iter()
        .map(|v| CaseVictim {
            victim_ref: (*v).to_owned(),
            enhanced_rights: false,
            contact: Some(ContactPreferences {
                channel: ContactChannel::Email,
                frequency: UpdateFrequency::EveryMilestone,
                opted_out: false,
            }),
            ..template.clone()
        })
        .collect();
    c
}

pub async fn send<T: bluelight_avro::records::CanonicalRecord>(codec: &Codec, topic: &str, r: &T) {
    let payload = codec.encode(&format!("{topic}-value"), r).expect("encode");
    producer()
        .send(
            FutureRecord::to(topic).key(r.key()).payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .expect("sent");
}

pub async fn updates_for(codec: &Codec, case_id: &str) -> Vec<VictimUpdate> {
    let mut out = Vec::new();
    for (key, payload, _) in read_all("feed.victim-update.v1", 1, Duration::from_secs(60)) {
        if key == case_id {
            out.push(
                codec
                    .decode::<VictimUpdate>(&payload)
                    .await
                    .expect("update decodes"),
            );
        }
    }
    out
}

/// `bluelight victim-updates` in its own group, looking for alerts every second.
pub async fn start(registry: &str, group: &str) -> Service {
    start_service(&[
        "victim-updates",
        "--schema-registry",
        registry,
        "--group",
        group,
        "--transaction-timeout",
        "10",
        "--scan-every",
        "1",
    ])
    .await
}

/// The topics the victim-updates path reads and writes (3 partitions each on the test broker),
/// a registry on its own topic, and every canonical schema registered.
pub async fn setup() -> (Service, Codec) {
    ensure_topics(&[
        ("bl.case.v1", false),
        ("bl.victim.v1", true),
        ("feed.victim-update.v1", false),
        ("audit.disclosure.v1", false),
        ("dlq.victim-updates.v1", false),
        ("state.victim-updates.v1", true),
        ("bl.victim-notification-ack.v1", false),
        ("feed.victim-update-overdue.v1", false),
        ("dlq.notify.v1", false),
    ])
    .await;
    let (registry, codec) = registry_with_schemas().await;
    (registry, codec)
}

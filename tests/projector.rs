//! `bluelight project` against the real broker and registry: feeds and audit records, retractions,
//! dead letters, an independent client reading a feed, and kill -9 under load.
//!
//! Each test uses its own controller organisation and recipients, so the canonical topics other
//! tests write to cannot reach its feeds.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::{Duration, Instant},
};

use bluelight_avro::{
    Codec,
    records::{
        Classification, Code, Disclosure, DisclosureKind, EventType, Id, IncidentEvent, samples,
    },
};
use bluelight_topics::testing::{self, unique};
use common::{Service, client, start_registry, start_service};
use rdkafka::{
    Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
    producer::{FutureProducer, FutureRecord},
};

const AGREEMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/agreements");

struct Setup {
    _registry: Service,
    registry_url: String,
    codec: Codec,
    controller: String,
    fire: String,
    ambulance: String,
    dir: std::path::PathBuf,
    key_file: std::path::PathBuf,
}

async fn setup(name: &str) -> Setup {
    let admin: AdminClient<DefaultClientContext> = client().create().expect("admin");
    for (topic, compacted) in [
        ("bl.incident.v1", false),
        ("bl.case.v1", false),
        ("bl.victim.v1", true),
        ("audit.disclosure.v1", false),
        ("dlq.projector.v1", false),
        ("state.disclosures.v1", true),
    ] {
        let mut t = NewTopic::new(topic, 3, TopicReplication::Fixed(1));
        if compacted {
            t = t.set("cleanup.policy", "compact");
        }
        let _ = admin.create_topics([&t], &AdminOptions::new()).await;
    }
    let (registry, _) = start_registry().await;
    let codec = Codec::new(&registry.url, Duration::from_secs(10)).expect("codec");
    bluelight_avro::schemas::register_all(&codec)
        .await
        .expect("register");
    let u = unique(name);
    let controller = format!("police-{u}");
    let fire = format!("fire-{u}");
    let ambulance = format!("amb-{u}");
    let dir = std::env::temp_dir().join(format!("agreements-{u}"));
    std::fs::create_dir_all(&dir).expect("dir");
    for (file, org, new) in [
        ("police-to-fire-rtc.toml", "avon-fire", &fire),
        ("police-to-ambulance-casualties.toml", "swast", &ambulance),
    ] {
        let text = std::fs::read_to_string(format!("{AGREEMENTS}/{file}"))
            .expect("example")
            .replace(
                "controllers = [\"avon-police\"]",
                &format!("controllers = [\"{controller}\"]"),
            )
            .replace(&format!("org = \"{org}\""), &format!("org = \"{new}\""));
        std::fs::write(dir.join(file), text).expect("write");
    }
    let key_file = dir.with_extension("key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef-test-key").expect("key");
    Setup {
        registry_url: registry.url.clone(),
        _registry: registry,
        codec,
        controller,
        fire,
        ambulance,
        dir,
        key_file,
    }
}

async fn start_projector(s: &Setup, group: &str) -> Service {
    start_service(&[
        "project",
        "--agreements",
        s.dir.to_str().expect("dir"),
        "--pseudonym-key-file",
        s.key_file.to_str().expect("key"),
        "--schema-registry",
        &s.registry_url,
        "--group",
        group,
        "--batch-ms",
        "50",
        "--feed-partitions",
        "2",
        "--transaction-timeout",
        "10",
    ])
    .await
}

fn incident(s: &Setup, id: &str, kind: &str, event_type: EventType) -> IncidentEvent {
    let mut r = samples::incident(event_type);
    r.envelope.event_id = Id::random();
    r.envelope.source_org = s.controller.clone();
    r.envelope.supersedes = None;
    r.envelope.disclosure = None;
    r.envelope.marking.classification = Classification::Official;
    r.incident_id = id.to_owned();
    r.incident_type = Some(Code::new("bl-incident-type", kind));
    if kind != "RTC" {
        r.casualties = None;
    }
    r
}

async fn publish(codec: &Codec, producer: &FutureProducer, records: &[IncidentEvent]) {
    let sends: Vec<_> = records
        .iter()
        .map(|r| {
            let payload = codec.encode("bl.incident.v1-value", r).expect("encode");
            producer
                .send_result(
                    FutureRecord::to("bl.incident.v1")
                        .key(&r.incident_id)
                        .payload(&payload),
                )
                .map_err(|(e, _)| e)
                .expect("queue")
        })
        .collect();
    for d in sends {
        d.await.expect("delivery").expect("acknowledged");
    }
}

fn producer() -> FutureProducer {
    client()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Everything on `topic` (read_committed) once at least `want` records arrived and 2 s passed
/// with nothing new, or at the deadline.
fn read_all(topic: &str, want: usize, within: Duration) -> Vec<(String, Vec<u8>, Option<String>)> {
    let consumer: BaseConsumer = client()
        .set("group.id", unique("reader-"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let header = |name: &str| {
                    m.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == name)
                            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                    })
                };
                let reason = header("bl-reason").map(|r| format!("{r} by {}", header("bl-projector-group").unwrap_or_default()));
                out.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    m.payload().unwrap_or_default().to_vec(),
                    reason,
                ));
                last = Instant::now();
            }
            _ => {
                if out.len() >= want && last.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
        }
    }
    out
}

async fn decode_feed(codec: &Codec, records: &[(String, Vec<u8>, Option<String>)]) -> Vec<IncidentEvent> {
    let mut out = Vec::new();
    for (_, payload, _) in records {
        out.push(codec.decode::<IncidentEvent>(payload).await.expect("feed record decodes"));
    }
    out
}

async fn audits_for(codec: &Codec, recipients: &[&str], want: usize) -> Vec<Disclosure> {
    let all = read_all("audit.disclosure.v1", 0, Duration::from_secs(5));
    let _ = want;
    let mut out = Vec::new();
    for (_, payload, _) in all {
        let d: Disclosure = codec.decode(&payload).await.expect("audit decodes");
        if recipients.contains(&d.recipient.as_str()) {
            out.push(d);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_audit_retractions_and_dead_letters_end_to_end() {
    let s = setup("e2e").await;
    let group = unique("project-");
    let _projector = start_projector(&s, &group).await;
    let u = unique("");
    let (a, b, c) = (format!("INC-A{u}"), format!("INC-B{u}"), format!("INC-C{u}"));
    let producer = producer();
    publish(
        &s.codec,
        &producer,
        &[
            incident(&s, &a, "RTC", EventType::IncidentOpened),
            incident(&s, &b, "WELFARE", EventType::IncidentOpened),
            incident(&s, &c, "BURGLARY", EventType::IncidentOpened),
        ],
    )
    .await;
    // Garbage straight onto the canonical topic: dead-lettered, the pipeline unaffected.
    let garbage_key = format!("garbage-{u}");
    producer
        .send(
            FutureRecord::to("bl.incident.v1")
                .key(&garbage_key)
                .payload(&b"\x00\x00\x00\x00\x01not avro at all"[..]),
            Duration::from_secs(10),
        )
        .await
        .expect("garbage sent");
    let mut retract = incident(&s, &a, "RTC", EventType::IncidentRetracted);
    retract.closure = Some(Code::labelled("bl-closure", "DUPLICATE", "Duplicate of another incident"));
    publish(&s.codec, &producer, &[retract]).await;

    let fire_topic = format!("feed.{}.incident.v1", s.fire);
    let amb_topic = format!("feed.{}.incident.v1", s.ambulance);
    let fire = decode_feed(&s.codec, &read_all(&fire_topic, 2, Duration::from_secs(60))).await;
    let amb = decode_feed(&s.codec, &read_all(&amb_topic, 3, Duration::from_secs(30))).await;
    let summary = |feed: &[IncidentEvent]| -> Vec<(String, EventType)> {
        feed.iter()
            .map(|r| (r.incident_id.clone(), r.envelope.event_type))
            .collect()
    };
    assert_eq!(
        summary(&fire),
        vec![(a.clone(), EventType::IncidentOpened), (a.clone(), EventType::IncidentRetracted)],
        "fire gets the RTC and then its retraction; not the welfare call or the burglary"
    );
    assert_eq!(fire[0].people, vec![], "no people to fire");
    assert_eq!(fire[0].summary, None, "free text withheld");
    assert_eq!(
        fire[1].envelope.retracts.as_ref().map(|r| r.reason.as_str()),
        Some(format!("withdrawn by {}: Duplicate of another incident", s.controller).as_str())
    );
    let amb_ids: BTreeSet<(String, EventType)> = summary(&amb).into_iter().collect();
    assert_eq!(
        amb_ids,
        BTreeSet::from([
            (a.clone(), EventType::IncidentOpened),
            (b.clone(), EventType::IncidentOpened),
            (a.clone(), EventType::IncidentRetracted),
        ]),
        "the ambulance gets the RTC and the welfare call, and the RTC's retraction only"
    );
    assert!(amb.iter().all(|r| r.people.iter().all(|p| p.person_ref.starts_with("psn-"))));

    let audits = audits_for(&s.codec, &[&s.fire, &s.ambulance], 5).await;
    assert_eq!(audits.len(), fire.len() + amb.len(), "one audit record per feed record");
    let ids: BTreeSet<String> = fire
        .iter()
        .chain(&amb)
        .map(|r| r.envelope.disclosure.as_ref().expect("ref").disclosure_id.to_string())
        .collect();
    let audit_ids: BTreeSet<String> = audits.iter().map(|d| d.envelope.event_id.to_string()).collect();
    assert_eq!(ids, audit_ids, "each feed record names its audit record");
    assert_eq!(audits.iter().filter(|d| d.kind == DisclosureKind::Retraction).count(), 2);

    let dlq = read_all("dlq.projector.v1", 1, Duration::from_secs(20));
    let dead: Vec<_> = dlq.iter().filter(|(k, _, _)| *k == garbage_key).collect();
    let by_us = format!("undecodable by {group}");
    assert_eq!(
        dead.iter().filter(|d| d.2.as_deref() == Some(by_us.as_str())).count(),
        1,
        "the garbage record is dead-lettered once by this projector: {dead:?}"
    );

    // An independent client reads the feed: confluent-kafka's AvroDeserializer.
    let python = std::env::var("BLUELIGHT_PYTHON").unwrap_or_else(|_| {
        panic!("BLUELIGHT_PYTHON is not set: run this test through deploy/local/test")
    });
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_feed.py"))
        .args(["--brokers", &testing::brokers(), "--registry", &s.registry_url])
        .args(["--topic", &fire_topic, "--count", "2"])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines[0]["incident_id"], a.as_str());
    assert_eq!(lines[0]["event_type"], "INCIDENT_OPENED");
    assert_eq!(lines[0]["agreement_id"], "isa-avon-police-fire-rtc");
    assert_eq!(lines[0]["people"], 0);
    assert_eq!(lines[1]["event_type"], "INCIDENT_RETRACTED");
}

/// A tiny deterministic generator for the kill moments; the seed is printed to replay a run.
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_five_times_under_load_loses_and_repeats_nothing() {
    let s = setup("crash").await;
    let group = unique("project-");
    let mut projector = start_projector(&s, &group).await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    println!("kill schedule seed {seed}");
    let mut rng = Lcg(seed);
    let u = unique("");
    const EVENTS: usize = 800;
    let records: Vec<IncidentEvent> = (0..EVENTS)
        .map(|i| incident(&s, &format!("INC-{u}-{i}"), "RTC", EventType::IncidentOpened))
        .collect();
    let load = {
        let codec = Codec::new(&s.registry_url, Duration::from_secs(10)).expect("codec");
        let records = records.clone();
        tokio::spawn(async move {
            bluelight_avro::schemas::register_all(&codec).await.expect("register");
            let producer = producer();
            // A steady 80 events a second, in small batches.
            for chunk in records.chunks(8) {
                publish(&codec, &producer, chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    for kill in 1..=5 {
        tokio::time::sleep(Duration::from_millis(rng.next_ms(800, 2_200))).await;
        projector.child.kill().expect("kill -9");
        let _ = projector.child.wait();
        println!("kill {kill}: projector killed");
        projector = start_projector(&s, &group).await;
    }
    load.await.expect("load");

    for (recipient, topic) in [
        (&s.fire, format!("feed.{}.incident.v1", s.fire)),
        (&s.ambulance, format!("feed.{}.incident.v1", s.ambulance)),
    ] {
        let feed = decode_feed(&s.codec, &read_all(&topic, EVENTS, Duration::from_secs(120))).await;
        let mut per_event: BTreeMap<Id, usize> = BTreeMap::new();
        for r in &feed {
            *per_event.entry(r.envelope.event_id).or_default() += 1;
        }
        let expected: BTreeSet<Id> = records.iter().map(|r| r.envelope.event_id).collect();
        let got: BTreeSet<Id> = per_event.keys().copied().collect();
        assert_eq!(got, expected, "{recipient}: every expected disclosure arrived");
        assert!(
            per_event.values().all(|n| *n == 1),
            "{recipient}: {} disclosures repeated",
            per_event.values().filter(|n| **n > 1).count()
        );
        println!("{recipient}: {} records, each expected disclosure exactly once", feed.len());
    }
    let audits = audits_for(&s.codec, &[&s.fire, &s.ambulance], 2 * EVENTS).await;
    assert_eq!(audits.len(), 2 * EVENTS, "the audit count equals the feed count");
    let distinct: BTreeSet<Id> = audits.iter().map(|d| d.envelope.event_id).collect();
    assert_eq!(distinct.len(), 2 * EVENTS);
    drop(projector);
}

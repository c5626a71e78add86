//! Helpers for the projector tests: per-test agreements with their own controller and recipients,
//! the projector as a child process, canonical incidents, and read_committed readers.

use std::time::{Duration, Instant};

use bluelight_avro::{
    Codec,
    records::{Classification, Code, EventType, Id, IncidentEvent, samples},
};
use bluelight_topics::testing::unique;
use rdkafka::{
    Message,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
    producer::{FutureProducer, FutureRecord},
};

use super::{Service, client, ensure_topics, registry_with_schemas, start_service_env};

pub const AGREEMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/agreements");

pub struct Setup {
    pub registry: Service,
    pub registry_url: String,
    pub codec: Codec,
    pub controller: String,
    pub fire: String,
    pub ambulance: String,
    pub dir: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

pub async fn setup(name: &str) -> Setup {
    ensure_topics(&[
        ("bl.incident.v1", false),
        ("bl.case.v1", false),
        ("bl.victim.v1", true),
        ("audit.disclosure.v1", false),
        ("dlq.projector.v1", false),
        ("state.disclosures.v1", true),
        // The ambulance agreement has a [[context]] clause: the projector reads context state.
        ("state.context.v1", true),
    ])
    .await;
    let (registry, codec) = registry_with_schemas().await;
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
        registry,
        codec,
        controller,
        fire,
        ambulance,
        dir,
        key_file,
    }
}

pub async fn start_projector(s: &Setup, group: &str) -> Service {
    start_projector_as(s, group, "0").await
}

/// One instance of a group: `instance` makes its transactional id and static member id.
pub async fn start_projector_as(s: &Setup, group: &str, instance: &str) -> Service {
    start_projector_env(s, group, instance, &[]).await
}

/// The projector's arguments for the setup, one instance of `group` (no `--listen`).
pub fn projector_args(s: &Setup, group: &str, instance: &str) -> Vec<String> {
    // BLUELIGHT_TEST_PROJECT_LOG (e.g. "debug,rdkafka=info") to see what a failing test's
    // projectors did.
    let log = std::env::var("BLUELIGHT_TEST_PROJECT_LOG")
        .unwrap_or_else(|_| "info,rdkafka=warn".to_owned());
    [
        "--log",
        &log,
        "project",
        "--instance",
        instance,
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
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `start_projector_as` with extra environment variables.
pub async fn start_projector_env(
    s: &Setup,
    group: &str,
    instance: &str,
    env: &[(&str, &str)],
) -> Service {
    let args = projector_args(s, group, instance);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_service_env(&args, env).await
}

pub fn incident(s: &Setup, id: &str, kind: &str, event_type: EventType) -> IncidentEvent {
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

pub async fn publish(codec: &Codec, producer: &FutureProducer, records: &[IncidentEvent]) {
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

pub fn producer() -> FutureProducer {
    client()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Everything on `topic` (read_committed) once at least `want` records arrived and 2 s passed
/// with nothing new, or at the deadline.
pub fn read_all(
    topic: &str,
    want: usize,
    within: Duration,
) -> Vec<(String, Vec<u8>, Option<String>)> {
    let consumer: BaseConsumer = client()
        .set("group.id", unique("reader-"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    // A shared topic from where it ended when this binary started (see `history`); any other
    // (a test's own) from its beginning, waiting for it to be created.
    match super::history().get(topic) {
        Some(ends) => {
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (p, end) in ends.iter().enumerate() {
                tpl.add_partition_offset(topic, p as i32, rdkafka::Offset::Offset(*end))
                    .expect("offset");
            }
            consumer.assign(&tpl).expect("assign");
        }
        None => consumer.subscribe(&[topic]).expect("subscribe"),
    }
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
                let reason = header("bl-reason").map(|r| {
                    format!(
                        "{r} by {}",
                        header("bl-projector-group").unwrap_or_default()
                    )
                });
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

/// `n` open RTCs from the setup's controller, with incident ids unique to this run.
pub fn rtcs(s: &Setup, n: usize) -> Vec<IncidentEvent> {
    let u = unique("");
    (0..n)
        .map(|i| incident(s, &format!("INC-{u}-{i}"), "RTC", EventType::IncidentOpened))
        .collect()
}

/// Publishes `records` in the background at a steady 80 events a second, in batches of 8.
/// Every record is encoded before the first is sent, so the load keeps its pace while the
/// registry or the broker is down (a fault scenario's subject), as a source's outbox would.
pub fn steady_load(s: &Setup, records: Vec<IncidentEvent>) -> tokio::task::JoinHandle<()> {
    let payloads: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| {
            let payload = s.codec.encode("bl.incident.v1-value", r).expect("encode");
            (r.incident_id.clone(), payload)
        })
        .collect();
    tokio::spawn(async move {
        let producer = producer();
        for chunk in payloads.chunks(8) {
            let sends: Vec<_> = chunk
                .iter()
                .map(|(key, payload)| {
                    producer
                        .send_result(FutureRecord::to("bl.incident.v1").key(key).payload(payload))
                        .map_err(|(e, _)| e)
                        .expect("queue")
                })
                .collect();
            for d in sends {
                d.await.expect("delivery").expect("acknowledged");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

pub async fn decode_feed(
    codec: &Codec,
    records: &[(String, Vec<u8>, Option<String>)],
) -> Vec<IncidentEvent> {
    let mut out = Vec::new();
    for (_, payload, _) in records {
        out.push(
            codec
                .decode::<IncidentEvent>(payload)
                .await
                .expect("feed record decodes"),
        );
    }
    out
}

/// Reads `topic` (read_committed) and asserts each of `sent` is on it exactly once and nothing
/// else is; returns how many records it read.
pub async fn assert_each_once(
    s: &Setup,
    topic: &str,
    sent: &[IncidentEvent],
    within: Duration,
) -> usize {
    let feed = decode_feed(&s.codec, &read_all(topic, sent.len(), within)).await;
    let mut per_event: std::collections::BTreeMap<Id, usize> = Default::default();
    for r in &feed {
        *per_event.entry(r.envelope.event_id).or_default() += 1;
    }
    let expected: std::collections::BTreeSet<Id> =
        sent.iter().map(|r| r.envelope.event_id).collect();
    let got: std::collections::BTreeSet<Id> = per_event.keys().copied().collect();
    assert_eq!(
        got, expected,
        "{topic}: every expected disclosure, and nothing else"
    );
    let repeated = per_event.values().filter(|n| **n > 1).count();
    assert_eq!(repeated, 0, "{topic}: {repeated} disclosures repeated");
    feed.len()
}

/// The name of the CAD source [`cad_source`] writes.
pub const CAD_SOURCE: &str = "test-cad";

/// A sources file for ingest with one CAD source of the setup's controller (so the setup's
/// agreements share what it publishes), and its bearer token.
pub fn cad_source(s: &Setup) -> (std::path::PathBuf, String) {
    let token = unique("token-");
    let file = s.dir.with_extension("sources.toml");
    std::fs::write(
        &file,
        format!(
            "[[source]]\nname = \"{CAD_SOURCE}\"\norg = \"{}\"\nsystem = \"cad\"\nadapter = \"cad\"\ntoken_sha256 = \"{}\"\n",
            s.controller,
            bluelight_topics::tokens::token_hash(&token)
        ),
    )
    .expect("sources");
    (file, token)
}

/// `n` CAD records opening road traffic collisions with casualties (the CAD example's first),
/// each its own incident, ids unique to this run.
pub fn cad_rtcs(n: usize) -> Vec<serde_json::Value> {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../producers/examples/cad-incidents.json"))
            .expect("example");
    let open = doc["events"][0].clone();
    let u = unique("");
    (0..n)
        .map(|i| {
            let mut e = open.clone();
            e["incident_id"] = serde_json::json!(format!("INC-{u}-{i}"));
            e["log_number"] = serde_json::json!(format!("LOG-{u}-{i}"));
            e
        })
        .collect()
}

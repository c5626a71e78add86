//! Micro-benchmarks of the per-event work, each reported in elements (events) per second:
//!
//! - `adapter/<name>`: parse and map one source record into the canonical standard;
//! - `avro/encode/<record>`, `avro/decode/<record>`: one canonical record in the Confluent wire
//!   format, schemas resolved once and cached (no registry: the codec is preloaded);
//! - `agreement/scope`, `agreement/decide`: the CEL scope of one event, and deciding one
//!   (event, agreement) pair with it;
//! - `projection/<n>_agreements`: one whole projection step in memory (decode, decide every
//!   agreement, transform, encode every feed record and its audit record) with 1, 10 and 50
//!   agreements that each share the event;
//! - `context/<with|without>`: the same step under the ambulance agreement with and without its
//!   `[[context]]` clause, the event's two people and place each with 20 earlier contacts: what
//!   a context block costs.
//!
//! `cargo bench -p bluelight-benches --bench micro`; the end-to-end harness against the broker is described in
//! benches/README.md.

use std::{hint::black_box, sync::Arc};

use bluelight_avro::{
    Codec,
    records::{
        CaseEvent, Classification, Disclosure, EventType, IncidentEvent, Timestamp, VictimEvent,
        samples,
    },
};
use bluelight_consumers::{
    context::{History, Rules, SubjectKeys, extract},
    policy::{Entity, load_str},
    project::{Event, Projector, feed_topic},
};
use bluelight_producers::adapters::{self, SourceContext};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const AGREEMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../agreements");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../producers/examples");
const NOW: Timestamp = Timestamp(1_795_000_100_000);

fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 22)
}

/// An RTC as a CAD source sends it.
fn rtc() -> IncidentEvent {
    let mut r = samples::incident(EventType::IncidentOpened);
    r.envelope.supersedes = None;
    r.envelope.disclosure = None;
    r.envelope.marking.classification = Classification::Official;
    r
}

fn codec() -> Codec {
    let codec = Codec::new("http://127.0.0.1:1", std::time::Duration::from_secs(1)).expect("codec");
    codec
        .preload::<IncidentEvent>(1, "bl.incident.v1-value")
        .expect("preload");
    codec
        .preload::<CaseEvent>(2, "bl.case.v1-value")
        .expect("preload");
    codec
        .preload::<VictimEvent>(3, "bl.victim.v1-value")
        .expect("preload");
    codec
        .preload::<Disclosure>(4, "audit.disclosure.v1-value")
        .expect("preload");
    codec
}

/// `n` copies of the fire agreement, each to its own recipient.
fn projector(n: usize) -> Projector {
    let text = std::fs::read_to_string(format!("{AGREEMENTS}/police-to-fire-rtc.toml"))
        .expect("agreement");
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("fire-{i}.toml"),
                text.replace(
                    "id = \"isa-avon-police-fire-rtc\"",
                    &format!("id = \"isa-fire-{i}\""),
                )
                .replace("org = \"avon-fire\"", &format!("org = \"fire-{i}\"")),
            )
        })
        .collect();
    let policy = load_str(&files, today()).expect("agreements load");
    Projector::new(
        Arc::new(policy),
        b"bench secret, at least 32 bytes long",
        "bench",
    )
}

fn adapters(c: &mut Criterion) {
    let source = SourceContext {
        org: "avon-police".into(),
        system: "bench".into(),
        received_at: NOW,
    };
    let mut g = c.benchmark_group("adapter");
    for (name, file) in [
        ("cad", "cad-incidents.json"),
        ("mait", "mait-incident.xml"),
        ("rms", "rms-export.csv"),
        ("victim-crm", "victim-crm.json"),
    ] {
        let adapter = adapters::by_name(name).expect("adapter");
        let input = std::fs::read(format!("{EXAMPLES}/{file}")).expect("example");
        let t = adapter.translate(&input, &source);
        assert!(t.rejected.is_empty(), "{file} translates cleanly");
        g.throughput(Throughput::Elements(t.accepted.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| adapter.translate(black_box(&input), &source))
        });
    }
    g.finish();
}

fn avro(c: &mut Criterion) {
    let codec = codec();
    let mut g = c.benchmark_group("avro");
    g.throughput(Throughput::Elements(1));
    let incident = rtc();
    let case = samples::case(EventType::SuspectCharged);
    let victim = samples::victim(EventType::VictimRegistered);
    let mut out = Vec::with_capacity(4096);
    macro_rules! both {
        ($name:literal, $t:ty, $r:expr, $subject:literal) => {{
            g.bench_function(concat!("encode/", $name), |b| {
                b.iter(|| {
                    out.clear();
                    codec
                        .encode_into($subject, black_box(&$r), &mut out)
                        .expect("encode");
                })
            });
            let bytes = codec.encode($subject, &$r).expect("encode");
            g.bench_function(concat!("decode/", $name), |b| {
                b.iter(|| {
                    codec
                        .decode_cached::<$t>(black_box(&bytes))
                        .expect("decode")
                })
            });
        }};
    }
    both!("incident", IncidentEvent, incident, "bl.incident.v1-value");
    both!("case", CaseEvent, case, "bl.case.v1-value");
    both!("victim", VictimEvent, victim, "bl.victim.v1-value");
    g.finish();
}

fn agreement(c: &mut Criterion) {
    let p = projector(1);
    let event = Event::Incident(rtc());
    let json = event.to_json().expect("json");
    let mut g = c.benchmark_group("agreement");
    g.throughput(Throughput::Elements(1));
    g.bench_function("scope", |b| {
        b.iter(|| p.scope(Entity::Incident, black_box(&json)))
    });
    let scope = p.scope(Entity::Incident, &json);
    g.bench_function("decide", |b| {
        b.iter(|| {
            p.decide(0, black_box(&event), &scope, today())
                .expect("decides")
        })
    });
    g.finish();
}

fn projection(c: &mut Criterion) {
    let codec = codec();
    let payload = codec
        .encode("bl.incident.v1-value", &rtc())
        .expect("encode");
    let mut g = c.benchmark_group("projection");
    g.throughput(Throughput::Elements(1));
    for n in [1, 10, 50] {
        let p = projector(n);
        for i in 0..n {
            let topic = feed_topic(&format!("fire-{i}"), Entity::Incident);
            codec
                .preload::<IncidentEvent>(100 + i as u32, &format!("{topic}-value"))
                .expect("preload");
        }
        let check = p
            .project_encoded(
                &Event::decode(&codec, Entity::Incident, &payload).expect("decode"),
                today(),
                NOW,
            )
            .expect("project");
        assert_eq!(check.feeds.len(), n, "every agreement shares the RTC");
        let mut out = Vec::with_capacity(8192);
        g.bench_with_input(BenchmarkId::new("agreements", n), &n, |b, _| {
            b.iter(|| {
                let event =
                    Event::decode(&codec, Entity::Incident, black_box(&payload)).expect("decode");
                let projected = p.project_encoded(&event, today(), NOW).expect("project");
                for f in &projected.feeds {
                    // As the service sends it: the feed subject's header, then the body.
                    out.clear();
                    codec
                        .frame_into(&format!("{}-value", f.topic), &f.body, &mut out)
                        .expect("feed");
                    out.clear();
                    codec
                        .frame_into("audit.disclosure.v1-value", &f.audit, &mut out)
                        .expect("audit");
                }
                projected.feeds.len()
            })
        });
    }
    g.finish();
}

/// The ambulance agreement's projection of a welfare call with and without its context clause.
fn context(c: &mut Criterion) {
    const SECRET: &[u8] = b"bench secret";
    let codec = codec();
    codec
        .preload::<IncidentEvent>(200, "feed.swast.incident.v1-value")
        .expect("preload");
    let text = std::fs::read_to_string(format!("{AGREEMENTS}/police-to-ambulance-casualties.toml"))
        .expect("ambulance agreement");
    let without = text.split("[[context]]").next().expect("text").to_owned();
    let rules = Arc::new(Rules::shipped().expect("rules"));
    let mut call = rtc();
    call.incident_type = Some(bluelight_avro::records::Code::new(
        "bl-incident-type",
        "WELFARE",
    ));
    // Twenty earlier welfare calls about the same people at the same place.
    let keys = SubjectKeys::new(SECRET);
    let mut histories: std::collections::HashMap<String, History> = Default::default();
    for i in 0..20_i64 {
        let mut earlier = call.clone();
        earlier.incident_id = format!("INC-EARLIER-{i}");
        earlier.envelope.event_id = bluelight_avro::records::Id::random();
        earlier.envelope.occurred_at = Timestamp(call.envelope.occurred_at.0 - (i + 1) * 3_600_000);
        for o in extract::incident(&keys, &earlier) {
            histories.entry(o.subject.clone()).or_default().observe(&o);
        }
    }
    let payload = codec.encode("bl.incident.v1-value", &call).expect("encode");
    let mut g = c.benchmark_group("context");
    g.throughput(Throughput::Elements(1));
    for (name, agreement) in [("with", text), ("without", without)] {
        let policy = load_str(&[("a.toml".into(), agreement)], today()).expect("loads");
        let p = Projector::new(Arc::new(policy), SECRET, "bench").with_context_rules(rules.clone());
        let check = p
            .project_encoded_with(&Event::Incident(call.clone()), today(), NOW, &histories)
            .expect("project");
        assert_eq!(check.feeds.len(), 1, "the ambulance gets the welfare call");
        assert_eq!(check.feeds[0].context, name == "with");
        g.bench_function(name, |b| {
            b.iter(|| {
                let event =
                    Event::decode(&codec, Entity::Incident, black_box(&payload)).expect("decode");
                p.project_encoded_with(&event, today(), NOW, &histories)
                    .expect("project")
                    .feeds
                    .len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, adapters, avro, agreement, projection, context);
criterion_main!(benches);

//! `bluelight project` against the real broker and registry: feeds and audit records, retractions,
//! dead letters, an independent client reading a feed, and kill -9 under load.
//!
//! Each test uses its own controller organisation and recipients, so the canonical topics other
//! tests write to cannot reach its feeds.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::Duration,
};

use bluelight_avro::{
    Codec,
    records::{Code, Disclosure, DisclosureKind, EventType, Id, IncidentEvent},
};
use bluelight_topics::testing::{self, unique};
use common::project::{
    assert_each_once, decode_feed, incident, producer, publish, read_all, rtcs, setup,
    start_projector, start_projector_env, steady_load,
};
use rdkafka::producer::FutureRecord;

async fn audits_for(codec: &Codec, recipients: &[&str], want: usize) -> Vec<Disclosure> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut out = Vec::new();
        for (_, payload, _) in read_all("audit.disclosure.v1", 1, Duration::from_secs(20)) {
            let d: Disclosure = codec.decode(&payload).await.expect("audit decodes");
            if recipients.contains(&d.recipient.as_str()) {
                out.push(d);
            }
        }
        if out.len() >= want || std::time::Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_audit_retractions_and_dead_letters_end_to_end() {
    let s = setup("e2e").await;
    let group = unique("project-");
    let projector = start_projector(&s, &group).await;
    let u = unique("");
    let (a, b, c) = (
        format!("INC-A{u}"),
        format!("INC-B{u}"),
        format!("INC-C{u}"),
    );
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
    retract.closure = Some(Code::labelled(
        "bl-closure",
        "DUPLICATE",
        "Duplicate of another incident",
    ));
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
        vec![
            (a.clone(), EventType::IncidentOpened),
            (a.clone(), EventType::IncidentRetracted)
        ],
        "fire gets the RTC and then its retraction; not the welfare call or the burglary"
    );
    assert_eq!(fire[0].people, vec![], "no people to fire");
    assert_eq!(fire[0].summary, None, "free text withheld");
    assert_eq!(
        fire[1]
            .envelope
            .retracts
            .as_ref()
            .map(|r| r.reason.as_str()),
        Some(
            format!(
                "withdrawn by {}: Duplicate of another incident",
                s.controller
            )
            .as_str()
        )
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
    assert!(
        amb.iter()
            .all(|r| r.people.iter().all(|p| p.person_ref.starts_with("psn-")))
    );

    let audits = audits_for(&s.codec, &[&s.fire, &s.ambulance], 5).await;
    assert_eq!(
        audits.len(),
        fire.len() + amb.len(),
        "one audit record per feed record"
    );
    let ids: BTreeSet<String> = fire
        .iter()
        .chain(&amb)
        .map(|r| {
            r.envelope
                .disclosure
                .as_ref()
                .expect("ref")
                .disclosure_id
                .to_string()
        })
        .collect();
    let audit_ids: BTreeSet<String> = audits
        .iter()
        .map(|d| d.envelope.event_id.to_string())
        .collect();
    assert_eq!(ids, audit_ids, "each feed record names its audit record");
    assert_eq!(
        audits
            .iter()
            .filter(|d| d.kind == DisclosureKind::Retraction)
            .count(),
        2
    );

    let dlq = read_all("dlq.projector.v1", 1, Duration::from_secs(20));
    let dead: Vec<_> = dlq.iter().filter(|(k, _, _)| *k == garbage_key).collect();
    let by_us = format!("undecodable by {group}");
    assert_eq!(
        dead.iter()
            .filter(|d| d.2.as_deref() == Some(by_us.as_str()))
            .count(),
        1,
        "the garbage record is dead-lettered once by this projector: {dead:?}"
    );

    // The projector's own account agrees.
    let metrics = reqwest::get(format!("{}/metrics", projector.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for want in [
        format!(
            "bluelight_projector_disclosures_total{{agreement=\"isa-avon-police-fire-rtc\",recipient=\"{}\"}} 1",
            s.fire
        ),
        format!(
            "bluelight_projector_disclosures_total{{agreement=\"isa-avon-police-swast-casualties\",recipient=\"{}\"}} 2",
            s.ambulance
        ),
        format!(
            "bluelight_projector_retractions_sent_total{{recipient=\"{}\"}} 1",
            s.fire
        ),
        "bluelight_projector_dead_letters_total{reason=\"undecodable\"}".to_owned(),
        "bluelight_projector_transaction_commit_seconds_count".to_owned(),
    ] {
        assert!(metrics.contains(&want), "{want} missing from /metrics");
    }

    // An independent client reads the feed: confluent-kafka's AvroDeserializer.
    let python = std::env::var("BLUELIGHT_PYTHON").unwrap_or_else(|_| {
        panic!("BLUELIGHT_PYTHON is not set: run this test through deploy/local/test")
    });
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/read_feed.py"
        ))
        .args([
            "--brokers",
            &testing::brokers(),
            "--registry",
            &s.registry_url,
        ])
        .args(["--topic", &fire_topic, "--count", "2"])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Every record in both the fire and the ambulance feed exactly once, and one audit record per
/// disclosure.
#[allow(clippy::print_stdout)]
async fn assert_both_feeds_and_audits_once(s: &common::project::Setup, records: &[IncidentEvent]) {
    for recipient in [&s.fire, &s.ambulance] {
        let topic = format!("feed.{recipient}.incident.v1");
        let read = assert_each_once(s, &topic, records, Duration::from_secs(120)).await;
        println!("{recipient}: {read} records, each expected disclosure exactly once");
    }
    let want = 2 * records.len();
    let audits = audits_for(&s.codec, &[&s.fire, &s.ambulance], want).await;
    assert_eq!(audits.len(), want, "one audit record per disclosure");
    let distinct: BTreeSet<Id> = audits.iter().map(|d| d.envelope.event_id).collect();
    assert_eq!(distinct.len(), want);
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
    let mut rng = common::Lcg(seed);
    const EVENTS: usize = 800;
    let records = rtcs(&s, EVENTS);
    let load = steady_load(&s, records.clone());
    for kill in 1..=5 {
        tokio::time::sleep(Duration::from_millis(rng.next_ms(800, 2_200))).await;
        projector.child.kill().expect("kill -9");
        let _ = projector.child.wait();
        println!("kill {kill}: projector killed");
        projector = start_projector(&s, &group).await;
    }
    load.await.expect("load");
    assert_both_feeds_and_audits_once(&s, &records).await;
    drop(projector);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_finishes_the_open_transaction_and_exits_cleanly() {
    let s = setup("term").await;
    let group = unique("project-");
    let mut projector = start_projector(&s, &group).await;
    const EVENTS: usize = 600;
    let records = rtcs(&s, EVENTS);
    let load = steady_load(&s, records.clone());
    for round in 1..=3 {
        tokio::time::sleep(Duration::from_millis(600 + 400 * round)).await;
        let asked = std::time::Instant::now();
        let pid = projector.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill")
                .success()
        );
        let status = loop {
            if let Some(status) = projector.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(20),
                "still running 20 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            status.success(),
            "round {round}: SIGTERM ended it with {status}"
        );
        println!("round {round}: stopped cleanly in {:?}", asked.elapsed());
        projector = start_projector(&s, &group).await;
    }
    load.await.expect("load");
    assert_both_feeds_and_audits_once(&s, &records).await;
    drop(projector);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawn_agreement_stops_at_once_and_its_recipient_is_told() {
    let s = setup("withdraw").await;
    let group = unique("project-");
    let mut projector = start_projector(&s, &group).await;
    let u = unique("");
    let producer = producer();
    let (before, after) = (format!("INC-W1{u}"), format!("INC-W2{u}"));
    publish(
        &s.codec,
        &producer,
        &[incident(&s, &before, "RTC", EventType::IncidentOpened)],
    )
    .await;
    let fire_topic = format!("feed.{}.incident.v1", s.fire);
    assert_eq!(read_all(&fire_topic, 1, Duration::from_secs(60)).len(), 1);

    // The information governance officer withdraws the fire agreement: the file goes.
    std::fs::remove_file(s.dir.join("police-to-fire-rtc.toml")).expect("withdraw");
    tokio::time::sleep(Duration::from_secs(6)).await;
    publish(
        &s.codec,
        &producer,
        &[incident(&s, &after, "RTC", EventType::IncidentOpened)],
    )
    .await;

    let amb = decode_feed(
        &s.codec,
        &read_all(
            &format!("feed.{}.incident.v1", s.ambulance),
            2,
            Duration::from_secs(60),
        ),
    )
    .await;
    assert_eq!(amb.len(), 2, "the ambulance agreement is untouched");
    let fire = decode_feed(&s.codec, &read_all(&fire_topic, 2, Duration::from_secs(30))).await;
    // The feed has two partitions and the two records different keys: no order between them.
    let mut got: Vec<(String, EventType)> = fire
        .iter()
        .map(|r| (r.incident_id.clone(), r.envelope.event_type))
        .collect();
    got.sort();
    let mut want = vec![
        (before.clone(), EventType::IncidentOpened),
        (
            "agreement/isa-avon-police-fire-rtc".to_owned(),
            EventType::SharingEnded,
        ),
    ];
    want.sort();
    assert_eq!(
        got, want,
        "fire is told the agreement ended and gets nothing after it"
    );
    let ended = fire
        .iter()
        .find(|r| r.envelope.event_type == EventType::SharingEnded)
        .expect("SHARING_ENDED");
    assert_eq!(
        ended
            .envelope
            .disclosure
            .as_ref()
            .map(|d| d.agreement_id.as_str()),
        Some("isa-avon-police-fire-rtc")
    );

    // After a restart (receipts rebuilt from Kafka, the fire feed under no agreement in force),
    // withdrawing the incident fire received still reaches fire, and only once.
    projector.child.kill().expect("kill -9");
    let _ = projector.child.wait();
    let _projector = start_projector(&s, &group).await;
    let mut retract = incident(&s, &before, "RTC", EventType::IncidentRetracted);
    retract.closure = Some(Code::new("bl-closure", "DUPLICATE"));
    publish(&s.codec, &producer, &[retract]).await;
    let fire = decode_feed(&s.codec, &read_all(&fire_topic, 3, Duration::from_secs(60))).await;
    assert_eq!(
        fire.len(),
        3,
        "the retraction, and no second SHARING_ENDED after the restart"
    );
    let retracted: Vec<&str> = fire
        .iter()
        .filter(|r| r.envelope.event_type == EventType::IncidentRetracted)
        .map(|r| r.incident_id.as_str())
        .collect();
    assert_eq!(retracted, [before.as_str()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_the_work_and_a_survivor_retracts_what_the_other_sent() {
    let s = setup("scale").await;
    let group = unique("project-");
    let mut first = common::project::start_projector_as(&s, &group, "0").await;
    let _second = common::project::start_projector_as(&s, &group, "1").await;
    // Both in the group before the load.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let u = unique("");
    let producer = producer();
    let opened: Vec<IncidentEvent> = (0..30)
        .map(|i| {
            incident(
                &s,
                &format!("INC-S{u}-{i}"),
                "RTC",
                EventType::IncidentOpened,
            )
        })
        .collect();
    publish(&s.codec, &producer, &opened).await;
    let fire_topic = format!("feed.{}.incident.v1", s.fire);
    assert_eq!(read_all(&fire_topic, 30, Duration::from_secs(60)).len(), 30);

    // The first instance dies; the second takes its partitions (after the 10 s session) with the
    // receipts the first wrote, and retracts all 30.
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    let retractions: Vec<IncidentEvent> = opened
        .iter()
        .map(|o| {
            let mut r = incident(&s, &o.incident_id, "RTC", EventType::IncidentRetracted);
            r.closure = Some(Code::new("bl-closure", "DUPLICATE"));
            r
        })
        .collect();
    publish(&s.codec, &producer, &retractions).await;
    let fire = decode_feed(
        &s.codec,
        &read_all(&fire_topic, 60, Duration::from_secs(90)),
    )
    .await;
    let mut per: BTreeMap<(String, EventType), usize> = BTreeMap::new();
    for r in &fire {
        *per.entry((r.incident_id.clone(), r.envelope.event_type))
            .or_default() += 1;
    }
    for o in &opened {
        for t in [EventType::IncidentOpened, EventType::IncidentRetracted] {
            assert_eq!(
                per.get(&(o.incident_id.clone(), t)),
                Some(&1),
                "{} {t:?} once on the fire feed",
                o.incident_id
            );
        }
    }
    assert_eq!(fire.len(), 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_joining_and_dying_under_load_repeat_and_lose_nothing() {
    let s = setup("churn").await;
    let group = unique("project-");
    let mut first = common::project::start_projector_as(&s, &group, "0").await;
    const EVENTS: usize = 600;
    let records = rtcs(&s, EVENTS);
    let load = steady_load(&s, records.clone());
    // A second instance joins mid-load (a rebalance with transactions in flight), then the
    // first dies and comes back (its partitions wait for it, then return).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _second = common::project::start_projector_as(&s, &group, "1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    tokio::time::sleep(Duration::from_secs(1)).await;
    first = common::project::start_projector_as(&s, &group, "0").await;
    load.await.expect("load");

    let topic = format!("feed.{}.incident.v1", s.fire);
    assert_each_once(&s, &topic, &records, Duration::from_secs(120)).await;
    let audits = audits_for(&s.codec, &[&s.fire], EVENTS).await;
    assert_eq!(
        audits.len(),
        EVENTS,
        "the audit count equals the feed count"
    );
    drop(first);
}

/// `--delivery at-least-once`: no transactions, offsets committed once the outputs are
/// acknowledged. Killed twice under load, it loses nothing; repeats are allowed (and keep their
/// disclosure ids), anything unexpected is not.
#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_killed_under_load_loses_nothing() {
    let s = setup("alo").await;
    let group = unique("project-");
    let alo = [("BLUELIGHT_PROJECT_DELIVERY", "at-least-once")];
    let mut projector = start_projector_env(&s, &group, "0", &alo).await;
    const EVENTS: usize = 400;
    let records = rtcs(&s, EVENTS);
    let load = steady_load(&s, records.clone());
    for kill in 1..=2 {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        projector.child.kill().expect("kill -9");
        let _ = projector.child.wait();
        println!("kill {kill}: projector killed");
        projector = start_projector_env(&s, &group, "0", &alo).await;
    }
    load.await.expect("load");
    let topic = format!("feed.{}.incident.v1", s.fire);
    let feed = decode_feed(
        &s.codec,
        &read_all(&topic, EVENTS, Duration::from_secs(120)),
    )
    .await;
    let got: BTreeSet<Id> = feed.iter().map(|r| r.envelope.event_id).collect();
    let want: BTreeSet<Id> = records.iter().map(|r| r.envelope.event_id).collect();
    assert_eq!(got, want, "every disclosure at least once, nothing else");
    let ids: BTreeSet<Id> = feed
        .iter()
        .filter_map(|r| r.envelope.disclosure.as_ref().map(|d| d.disclosure_id))
        .collect();
    assert_eq!(ids.len(), EVENTS, "a repeat keeps its disclosure id");
    println!(
        "{} records for {EVENTS} disclosures ({} repeated)",
        feed.len(),
        feed.len() - EVENTS
    );
    drop(projector);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_published_twice_reaches_each_feed_once() {
    let s = setup("repeat").await;
    let projector = start_projector(&s, &unique("project-")).await;
    let records = rtcs(&s, 3);
    let producer = producer();
    // A source's retry: the same records (the same event ids) again, after the first copies
    // were shared.
    publish(&s.codec, &producer, &records).await;
    assert_each_once(
        &s,
        &format!("feed.{}.incident.v1", s.fire),
        &records,
        Duration::from_secs(60),
    )
    .await;
    publish(&s.codec, &producer, &records).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while common::metric_sum(
        &projector.url,
        "bluelight_projector_repeats_skipped_total",
        "",
    )
    .await
    .unwrap_or_default()
        < 6.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the repeats were not skipped"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_both_feeds_and_audits_once(&s, &records).await;
}

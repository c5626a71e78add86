//! The fault suite. Each scenario runs the projector under a steady simulated load (80 road
//! traffic collisions a second, each entitled to the fire and the ambulance feeds), injects one
//! fault, and ends with an exact reconciliation, printed as a table: every accepted source event
//! on its canonical topic once, in each entitled feed once, and in the audit log once per feed.
//! Scenarios run one at a time (they share the broker). Here: garbage and unknown schema ids on
//! a canonical topic; the registry killed mid-load; the registry down when the projector starts;
//! the projector started before the broker is reachable; the broker paused past the clients'
//! timeouts; the broker restarted; the gateway killed twice under a control room's stream.
//! Elsewhere: kill -9 and
//! SIGTERM of the projector (`tests/projector.rs`), kill -9 of victim updates and the notifier
//! (`tests/victim_updates.rs`, `tests/victim_deadlines.rs`, `tests/notify.rs`), and memory
//! while the broker is paused (`tests/*_backpressure.rs`).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use bluelight_avro::records::{Disclosure, Id, IncidentEvent};
use bluelight_topics::testing::unique;
use common::project::{Setup, producer, read_all, rtcs, setup, start_projector, steady_load};
use rdkafka::producer::FutureRecord;

/// One scenario at a time: a fault on the shared broker (or its load) must not be felt by
/// another scenario's reconciliation.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Counts per expected event id in what was read: (found, missing, repeated).
fn tally(expected: &BTreeSet<Id>, seen: impl IntoIterator<Item = Id>) -> (usize, usize, usize) {
    let mut per: BTreeMap<Id, usize> = BTreeMap::new();
    for id in seen {
        if expected.contains(&id) {
            *per.entry(id).or_default() += 1;
        }
    }
    let found = per.len();
    let repeated = per.values().filter(|n| **n > 1).count();
    (found, expected.len() - found, repeated)
}

/// Reads back the canonical topic, both feeds and the audit log, prints the table, and fails
/// unless every row is exact.
async fn reconcile(scenario: &str, s: &Setup, sent: &[IncidentEvent]) {
    let expected: BTreeSet<Id> = sent.iter().map(|r| r.envelope.event_id).collect();
    reconcile_ids(scenario, s, &expected, CanonicalRepeats::Never).await;
}

/// Whether a canonical record may be there twice: only a source's retry of a batch whose first
/// try an ingest crash cut off after Kafka took it (same bytes, same event id), which every
/// consumer recognises by its event id.
#[derive(Clone, Copy, PartialEq)]
enum CanonicalRepeats {
    Never,
    FromSourceRetries,
}

#[allow(clippy::print_stdout)] // the table is the scenario's report
async fn reconcile_ids(
    scenario: &str,
    s: &Setup,
    expected: &BTreeSet<Id>,
    repeats: CanonicalRepeats,
) {
    let expected = expected.clone();
    let mut rows: Vec<(String, usize, usize, usize, usize)> = Vec::new();

    let mut canonical = Vec::new();
    for (_, payload, _) in read_all("bl.incident.v1", expected.len(), Duration::from_secs(60)) {
        if let Ok(r) = s.codec.decode::<IncidentEvent>(&payload).await {
            canonical.push(r.envelope.event_id);
        }
    }
    let (f, m, r) = tally(&expected, canonical);
    rows.push(("bl.incident.v1".into(), expected.len(), f, m, r));

    for recipient in [&s.fire, &s.ambulance] {
        let topic = format!("feed.{recipient}.incident.v1");
        let mut ids = Vec::new();
        for (_, payload, _) in read_all(&topic, expected.len(), Duration::from_secs(120)) {
            let r: IncidentEvent = s.codec.decode(&payload).await.expect("feed decodes");
            ids.push(r.envelope.event_id);
        }
        let (f, m, r) = tally(&expected, ids);
        rows.push((topic, expected.len(), f, m, r));
    }

    let mut audits: BTreeMap<String, Vec<Id>> = BTreeMap::new();
    for (_, payload, _) in read_all("audit.disclosure.v1", 1, Duration::from_secs(30)) {
        if let Ok(d) = s.codec.decode::<Disclosure>(&payload).await {
            audits
                .entry(d.recipient)
                .or_default()
                .push(d.source_event_id);
        }
    }
    for recipient in [&s.fire, &s.ambulance] {
        let ids = audits.remove(recipient.as_str()).unwrap_or_default();
        let (f, m, r) = tally(&expected, ids);
        rows.push((
            format!("audit.disclosure.v1 ({recipient})"),
            expected.len(),
            f,
            m,
            r,
        ));
    }

    println!("\n{scenario}: reconciliation");
    println!("| where | expected | found | missing | repeated |");
    println!("|---|---:|---:|---:|---:|");
    for (what, e, f, m, r) in &rows {
        println!("| {what} | {e} | {f} | {m} | {r} |");
    }
    for (i, (what, e, f, m, r)) in rows.iter().enumerate() {
        let repeats_allowed = i == 0 && repeats == CanonicalRepeats::FromSourceRetries;
        assert!(
            *f == *e && *m == 0 && (*r == 0 || repeats_allowed),
            "{scenario}: {what} is not exact ({f} of {e}, {m} missing, {r} repeated)"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_unknown_schema_ids_on_a_canonical_topic_go_to_the_dlq_and_nothing_else_moves()
{
    let s = setup("fault-garbage").await;
    let group = unique("project-");
    let _projector = start_projector(&s, &group).await;
    const EVENTS: usize = 400;
    let records = rtcs(&s, EVENTS);
    let load = steady_load(&s, records.clone());

    // In the middle of the load: bytes that are not Avro, a wire-format header naming a schema
    // id no registry has, and an empty value.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let tag = unique("garbage-");
    let bad: Vec<(String, Vec<u8>)> = vec![
        (format!("{tag}-text"), b"not avro at all".to_vec()),
        (
            format!("{tag}-id"),
            vec![0, 0x7f, 0xff, 0xff, 0x01, 2, 4, 6],
        ),
        (format!("{tag}-short"), vec![0, 0]),
    ];
    let producer = producer();
    for (key, payload) in &bad {
        producer
            .send(
                FutureRecord::to("bl.incident.v1").key(key).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("garbage written");
    }
    load.await.expect("load");

    reconcile("garbage on bl.incident.v1", &s, &records).await;

    // Every projector deployment (group) on this broker reads the shared canonical topic and
    // dead-letters the garbage itself; this scenario's is the one to count.
    let ours = format!(" by {group}");
    let dead: Vec<String> = read_all("dlq.projector.v1", 1, Duration::from_secs(30))
        .into_iter()
        .filter(|(key, _, reason)| {
            key.starts_with(&tag) && reason.as_deref().is_some_and(|r| r.ends_with(&ours))
        })
        .map(|(key, _, _)| key)
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &dead {
        *counts.entry(k.as_str()).or_default() += 1;
    }
    println!(
        "| dlq.projector.v1 (this scenario's garbage) | 3 | {} | | |",
        counts.len()
    );
    assert_eq!(
        counts.len(),
        bad.len(),
        "every bad record dead-lettered: {dead:?}"
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "each bad record dead-lettered once: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_down_mid_load_stops_nothing_that_has_its_schemas() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = setup("fault-registry").await;
    let _projector = start_projector(&s, &unique("project-")).await;
    const EVENTS: usize = 400;
    let records = rtcs(&s, EVENTS);
    // The load is encoded before it starts, as a source's outbox holds it.
    let load = steady_load(&s, records.clone());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // The test's own reader learns the feeds' and the audit log's writer schemas while it can,
    // so it can check the outcome with the registry gone.
    for topic in [
        format!("feed.{}.incident.v1", s.fire),
        format!("feed.{}.incident.v1", s.ambulance),
    ] {
        let first = read_all(&topic, 1, Duration::from_secs(3));
        let (_, payload, _) = first.first().expect("the projector is running");
        s.codec
            .decode::<IncidentEvent>(payload)
            .await
            .expect("feed decodes");
    }
    let audit = read_all("audit.disclosure.v1", 1, Duration::from_secs(3));
    let (_, payload, _) = audit.last().expect("audit records");
    s.codec
        .decode::<Disclosure>(payload)
        .await
        .expect("audit decodes");
    s.registry.child.kill().expect("kill -9 the registry");
    let _ = s.registry.child.wait();
    println!("registry killed mid-load");
    load.await.expect("load");
    reconcile("registry down", &s, &records).await;
}

/// Forwards every connection on `listener` to `to`: the broker "appearing" on an address a
/// service was already given.
fn forward(listener: tokio::net::TcpListener, to: String) {
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

/// Starts the projector without waiting for it to be ready (it may not be able to be), with
/// `brokers` as its bootstrap address, and waits until it answers `/health/live`.
async fn start_unready_projector(s: &Setup, brokers: &str) -> common::Service {
    let http_port = common::free_port();
    let group = unique("project-");
    common::start_group_at_history(&group);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args(common::project::projector_args(s, &group, "0"))
        .args(["--listen", &format!("127.0.0.1:{http_port}")])
        .env("BLUELIGHT_BROKERS", brokers)
        .spawn()
        .expect("start the projector");
    let projector = common::Service {
        child,
        url: format!("http://127.0.0.1:{http_port}"),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while get(&format!("{}/health/live", projector.url))
        .await
        .map(|r| r.0)
        != Some(200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never answered /health/live"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    projector
}

/// Waits until `/health/ready` answers 200, or fails with `after` in the message.
async fn wait_until_ready(service: &common::Service, after: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while get(&format!("{}/health/ready", service.url))
        .await
        .map(|r| r.0)
        != Some(200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready 90 s after {after}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projector_started_before_the_broker_is_reachable_waits_says_why_then_works() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup("fault-early").await;
    let broker_port = common::free_port();
    let mut projector = start_unready_projector(&s, &format!("127.0.0.1:{broker_port}")).await;
    // Alive, not ready, and saying why, for as long as the broker cannot be reached.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        projector.child.try_wait().expect("wait").is_none(),
        "the projector gave up instead of retrying"
    );
    let (status, why) = get(&format!("{}/health/ready", projector.url))
        .await
        .expect("ready answers");
    println!("before the broker: {status} {}", why.trim());
    assert_eq!(status, 503);
    assert!(
        why.starts_with("not ready: ") && why.contains(&format!("127.0.0.1:{broker_port}")),
        "the reason names the unreachable brokers: {why}"
    );

    // The broker becomes reachable at the address the projector was given.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", broker_port))
        .await
        .expect("bind the broker's address");
    forward(listener, bluelight_topics::testing::brokers());
    wait_until_ready(&projector, "the broker appeared").await;
    println!("ready once the broker appeared");

    let records = rtcs(&s, 200);
    steady_load(&s, records.clone()).await.expect("load");
    reconcile("started before the broker", &s, &records).await;
    let _ = projector.child.kill();
}

/// The projector under the steady load (400 collisions), `fault` 1.5 s in, then the
/// reconciliation; the projector must still be running at the end.
async fn under_load(scenario: &str, name: &str, fault: impl std::future::Future<Output = ()>) {
    let s = setup(name).await;
    let mut projector = start_projector(&s, &unique("project-")).await;
    let records = rtcs(&s, 400);
    let load = steady_load(&s, records.clone());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    fault.await;
    load.await.expect("load");
    reconcile(scenario, &s, &records).await;
    assert!(
        projector.child.try_wait().expect("wait").is_none(),
        "the projector exited instead of recovering"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_paused_past_the_clients_timeouts_under_load_loses_and_repeats_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    under_load("broker paused 15 s", "fault-pause", async {
        // Longer than the projector's transaction timeout (10 s in these tests) and its
        // consumer session (10 s): its open transaction is aborted and its group rebalanced.
        let _paused = common::Paused::stop(&common::broker_pid());
        tokio::time::sleep(Duration::from_secs(15)).await;
        println!("broker resumed after 15 s");
    })
    .await;
}

/// librdkafka can block in `send_offsets_to_transaction` for ever after the group coordinator
/// was unreachable (confluentinc/librdkafka#5456); once, after a broker restart, a projector
/// stopped so. The runner gives such a call up and replaces the producer: here the first call
/// is made to hang (a fault-injection variable) and every record must still arrive once.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_call_that_hangs_is_given_up_and_nothing_is_lost_or_repeated() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup("fault-hang").await;
    let projector = common::project::start_projector_env(
        &s,
        &unique("project-"),
        "0",
        &[("BLUELIGHT_FAULT_HANG_SEND_OFFSETS_MS", "30000")],
    )
    .await;
    let records = rtcs(&s, 400);
    steady_load(&s, records.clone()).await.expect("load");
    reconcile("a hung offsets call", &s, &records).await;
    let hung = common::metric_sum(
        &projector.url,
        "bluelight_projector_transaction_aborts_total",
        "reason=\"hung\"",
    )
    .await;
    println!("transactions given up as hung: {hung:?}");
    assert_eq!(hung, Some(1.0), "the hung call was given up once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restarted_under_load_loses_and_repeats_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    under_load("broker restarted", "fault-restart", async {
        let gone = tokio::task::spawn_blocking(common::restart_broker)
            .await
            .expect("restart");
        println!("broker stopped (SIGTERM) and started again: back after {gone:?}");
    })
    .await;
}

/// `bluelight ingest` on a fixed port (one address across restarts, as behind a load balancer),
/// ready.
async fn start_ingest_on(port: u16, sources: &std::path::Path, registry: &str) -> common::Service {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args(["ingest", "--sources"])
        .arg(sources)
        .args(["--schema-registry", registry])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("BLUELIGHT_BROKERS", bluelight_topics::testing::brokers())
        .spawn()
        .expect("start ingest");
    let mut ingest = common::Service {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    common::wait_ready(&mut ingest).await;
    ingest
}

/// A source system with an outbox: posts `events` in batches of 8, ten batches a second, and
/// sends a batch again, the same bytes, until ingest answers 202 (a refused connection, a cut
/// response or a 5xx means "not known to be taken"). Returns the event ids ingest accepted and
/// how many tries were repeated.
fn retrying_source(
    url: String,
    token: String,
    events: Vec<serde_json::Value>,
) -> tokio::task::JoinHandle<(BTreeSet<Id>, usize)> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let (mut accepted, mut retries) = (BTreeSet::new(), 0);
        for chunk in events.chunks(8) {
            let body = serde_json::json!({ "events": chunk }).to_string();
            loop {
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                if let Ok(r) = sent {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    if status == 202 {
                        let answer: serde_json::Value =
                            serde_json::from_str(&text).expect("202 body");
                        for a in answer["accepted"].as_array().expect("accepted") {
                            let id = a["event_id"].as_str().expect("event_id");
                            accepted.insert(id.parse::<Id>().expect("event id"));
                        }
                        break;
                    }
                    assert!(
                        status >= 500 || status == 429 || text.is_empty(),
                        "ingest refused a good batch: {status} {text}"
                    );
                }
                retries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (accepted, retries)
    })
}

#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread")]
async fn ingest_killed_under_a_retrying_source_loses_nothing_and_feeds_stay_exact() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup("fault-ingest").await;
    let _projector = start_projector(&s, &unique("project-")).await;
    let (sources, token) = common::project::cad_source(&s);
    let port = common::free_port();
    let mut ingest = start_ingest_on(port, &sources, &s.registry_url).await;
    const EVENTS: usize = 400;
    let source = retrying_source(
        format!(
            "{}/v1/sources/{}/events",
            ingest.url,
            common::project::CAD_SOURCE
        ),
        token,
        common::project::cad_rtcs(EVENTS),
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(11, |d| d.as_nanos() as u64);
    println!("kill schedule seed {seed}");
    let mut rng = common::Lcg(seed);
    for kill in 1..=3 {
        tokio::time::sleep(Duration::from_millis(rng.next_ms(800, 2_000))).await;
        ingest.child.kill().expect("kill -9 ingest");
        let _ = ingest.child.wait();
        println!("kill {kill}: ingest killed");
        ingest = start_ingest_on(port, &sources, &s.registry_url).await;
    }
    let (accepted, retries) = source.await.expect("source");
    println!("the source had {EVENTS} events accepted after {retries} repeated tries");
    assert_eq!(
        accepted.len(),
        EVENTS,
        "every event was accepted in the end"
    );
    reconcile_ids(
        "ingest kill -9",
        &s,
        &accepted,
        CanonicalRepeats::FromSourceRetries,
    )
    .await;
    drop(ingest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projector_that_cannot_reach_the_registry_waits_says_why_then_works() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = setup("fault-reg-start").await;
    // The registry goes; the projector is given an address where it will come back.
    s.registry.child.kill().expect("kill the registry");
    let _ = s.registry.child.wait();
    let registry_port = common::free_port();
    s.registry_url = format!("http://127.0.0.1:{registry_port}");
    let mut projector = start_unready_projector(&s, &bluelight_topics::testing::brokers()).await;
    // Its feeds' schemas cannot be registered: it waits, and says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let why = loop {
        let (status, why) = get(&format!("{}/health/ready", projector.url))
            .await
            .expect("ready answers");
        assert_eq!(status, 503, "ready without a registry: {why}");
        if why.contains("registering schemas") {
            break why;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no registry reason: {why}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!("without the registry: {}", why.trim());
    assert!(
        projector.child.try_wait().expect("wait").is_none(),
        "it gave up"
    );

    // The registry comes back at that address (on a new schemas topic, with the canonical
    // schemas registered again), and the projector carries on by itself.
    let topic = format!("_schemas-{}", unique("t"));
    common::create_topics(&[&topic], true).await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args(["registry", "--topic", &topic])
        .args(["--listen", &format!("127.0.0.1:{registry_port}")])
        .env("BLUELIGHT_BROKERS", bluelight_topics::testing::brokers())
        .spawn()
        .expect("start the registry");
    s.registry = common::Service {
        child,
        url: s.registry_url.clone(),
    };
    common::wait_ready(&mut s.registry).await;
    s.codec = bluelight_avro::Codec::new(&s.registry_url, Duration::from_secs(10)).expect("codec");
    bluelight_avro::schemas::register_all(&s.codec)
        .await
        .expect("register");
    wait_until_ready(&projector, "the registry came back").await;
    println!("ready once the registry came back");
    let records = rtcs(&s, 200);
    steady_load(&s, records.clone()).await.expect("load");
    reconcile("registry down at start", &s, &records).await;
    let _ = projector.child.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_room_stream_through_gateway_kill_9s_misses_and_repeats_nothing() {
    use common::gateway::{Sse, start_gateway};
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup("fault-gateway").await;
    let _projector = start_projector(&s, &unique("project-")).await;
    let token = format!("fire-{}", unique(""));
    let creds = [(
        "fire-control",
        s.fire.as_str(),
        "control-room",
        token.as_str(),
    )];
    let mut gateway = start_gateway(&s, &creds, &[]).await;
    let topic = format!("feed.{}.incident.v1", s.fire);
    const EVENTS: usize = 400;
    let records = rtcs(&s, EVENTS);
    let load = steady_load(&s, records.clone());

    // The control room reads from the start of its feed; the gateway dies twice under it, and
    // each time the client reconnects to a new gateway with the last id it saw.
    let mut received: Vec<Id> = Vec::new();
    let mut last_id: Option<String> = None;
    for kill in 0..3 {
        let mut stream = Sse::open(
            &gateway.url,
            &token,
            &topic,
            last_id.as_deref(),
            last_id.is_none().then_some("earliest"),
        )
        .await;
        let until = std::time::Instant::now()
            + if kill < 2 {
                Duration::from_millis(1_200)
            } else {
                Duration::from_secs(120)
            };
        while std::time::Instant::now() < until && received.len() < EVENTS {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let Some(ev) = stream.next(left.min(Duration::from_secs(5))).await else {
                break;
            };
            if ev.event != "record" {
                continue;
            }
            let id: Id = ev.json()["record"]["envelope"]["event_id"]
                .as_str()
                .and_then(|i| i.parse().ok())
                .expect("a record carries its event id");
            received.push(id);
            last_id = ev.id.clone();
        }
        if kill < 2 {
            gateway.child.kill().expect("kill -9 the gateway");
            let _ = gateway.child.wait();
            drop(stream);
            gateway = start_gateway(&s, &creds, &[]).await;
        }
    }
    load.await.expect("load");

    let expected: BTreeSet<Id> = records.iter().map(|r| r.envelope.event_id).collect();
    let (found, missing, repeated) = tally(&expected, received.iter().copied());
    println!("\ngateway kill -9 twice: what the control room received");
    println!("| where | expected | found | missing | repeated |");
    println!("|---|---:|---:|---:|---:|");
    println!("| {topic} via the gateway's stream | {EVENTS} | {found} | {missing} | {repeated} |");
    assert_eq!(received.len(), EVENTS, "nothing more than the feed holds");
    assert_eq!((found, missing, repeated), (EVENTS, 0, 0));
    reconcile("gateway kill -9", &s, &records).await;
}

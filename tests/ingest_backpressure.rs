//! Backpressure end to end: with the broker paused (SIGSTOP) under load, `bluelight ingest` refuses
//! with 429/503 and `Retry-After` instead of buffering, its memory stays bounded, and after SIGCONT
//! every accepted event is on the topic exactly once.
//!
//! This pauses the suite's shared broker, so it is the only test in its binary (cargo runs test
//! binaries one after another).

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bluelight_topics::testing::unique;
use common::{Paused, client, rss_kib, start_registry, start_service};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
};

const TOKEN: &str = "demo-cad-7f3c9a1e5b2d4086";

/// A CAD batch of `n` open events with incident ids unique to this run.
fn batch(prefix: &str, start: usize, n: usize) -> String {
    let events: Vec<serde_json::Value> = (start..start + n)
        .map(|i| {
            serde_json::json!({
                "action": "open", "incident_id": format!("{prefix}-{i}"), "log_number": format!("L{i}"),
                "occurred_at": "2026-11-22T08:00:00Z", "type": "RTC", "grade": "2",
                "location": { "postcode": "BS1 6HG" }, "narrative": "x".repeat(200)
            })
        })
        .collect();
    serde_json::json!({ "events": events }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_broker_gets_429_not_unbounded_buffering_and_loses_nothing() {
    let broker_pid = common::broker_pid();
    common::ensure_canonical_topics().await;
    let (registry, _) = start_registry().await;
    let sources = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/local/demo-sources.toml"
    );
    let ingest = start_service(&[
        "ingest",
        "--sources",
        sources,
        "--schema-registry",
        &registry.url,
        "--max-in-flight",
        "200",
    ])
    .await;
    let ingest_pid = ingest.child.id();
    let url = format!("{}/v1/sources/avon-police-cad/events", ingest.url);
    let prefix = unique("BP");

    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let statuses: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let retry_after_seen = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (accepted, statuses, retry_after_seen, stop, next, url, prefix) = (
            accepted.clone(),
            statuses.clone(),
            retry_after_seen.clone(),
            stop.clone(),
            next.clone(),
            url.clone(),
            prefix.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let start = next.fetch_add(50, Ordering::Relaxed);
                let response = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(batch(&prefix, start, 50))
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                let status = response.status().as_u16();
                *statuses.lock().expect("lock").entry(status).or_default() += 1;
                if matches!(status, 429 | 503) {
                    retry_after_seen.fetch_or(
                        response.headers().contains_key("retry-after"),
                        Ordering::Relaxed,
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } else if status == 202 {
                    let body: serde_json::Value = response.json().await.expect("json");
                    let ids = body["accepted"]
                        .as_array()
                        .expect("accepted")
                        .iter()
                        .map(|a| a["event_id"].as_str().expect("id").to_owned());
                    accepted.lock().expect("lock").extend(ids);
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_pause = accepted.lock().expect("lock").len();
    assert!(
        before_pause > 0,
        "nothing accepted before the pause: {:?}",
        statuses.lock().expect("lock")
    );
    let refused_before_pause = statuses
        .lock()
        .expect("lock")
        .get(&429)
        .copied()
        .unwrap_or(0);
    let paused = Paused::stop(&broker_pid);
    let mut peak_rss = rss_kib(ingest_pid);
    assert!(
        peak_rss > 0,
        "cannot read the ingest process's RSS from /proc"
    );
    let pause_started = Instant::now();
    while pause_started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_rss = peak_rss.max(rss_kib(ingest_pid));
    }
    let refused_during_pause = statuses
        .lock()
        .expect("lock")
        .get(&429)
        .copied()
        .unwrap_or(0)
        - refused_before_pause;
    drop(paused);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let statuses = statuses.lock().expect("lock").clone();
    eprintln!(
        "responses by status: {statuses:?}; ingest peak RSS while paused: {} MiB",
        peak_rss / 1024
    );
    assert!(
        refused_during_pause > 0,
        "no 429 while the broker was paused: {statuses:?}"
    );
    assert!(
        retry_after_seen.load(Ordering::Relaxed),
        "429/503 without Retry-After"
    );
    assert!(
        peak_rss < 256 * 1024,
        "ingest RSS grew to {} MiB",
        peak_rss / 1024
    );

    // Every accepted event is on the topic exactly once.
    let accepted = accepted.lock().expect("lock").clone();
    let consumer: StreamConsumer = client()
        .set("group.id", unique("bp-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["bl.incident.v1"]).expect("subscribe");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.values().sum::<usize>() < accepted.len() && Instant::now() < deadline {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        else {
            continue;
        };
        let is_ours = msg.key().is_some_and(|k| k.starts_with(prefix.as_bytes()));
        let id = msg.headers().and_then(|h| {
            use rdkafka::message::Headers;
            h.iter()
                .find(|x| x.key == "bl-event-id")
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        if let (true, Some(id)) = (is_ours, id) {
            *seen.entry(id).or_default() += 1;
        }
    }
    let missing = accepted.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "accepted {}, on the topic {}, missing {missing}, duplicated {duplicated}",
        accepted.len(),
        seen.len()
    );
    assert_eq!(missing, 0, "accepted events missing from the topic");
    assert_eq!(duplicated, 0, "events on the topic more than once");
}

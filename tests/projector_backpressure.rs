//! The projector with a backlog and a stalled broker (SIGSTOP): its memory stays flat while it
//! cannot write, and after SIGCONT it finishes the backlog with every disclosure exactly once.
//! The only test in its binary, because it pauses the shared test broker.

mod common;

use std::time::{Duration, Instant};

use bluelight_topics::testing::unique;
use common::{
    Paused, metric_sum,
    project::{assert_each_once, producer, publish, rtcs, setup, start_projector_env},
    rss_kib,
};

/// Disclosures the projector has counted (committed or not), to recipients whose label
/// contains `recipient`; 0 while /metrics does not answer.
async fn disclosed(url: &str, recipient: &str) -> f64 {
    metric_sum(url, "bluelight_projector_disclosures_total", recipient)
        .await
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_broker_keeps_the_projectors_memory_flat_and_loses_nothing() {
    let broker_pid = common::broker_pid();
    let s = setup("rss").await;
    const BACKLOG: usize = 20_000;
    let records = rtcs(&s, BACKLOG);
    let p = producer();
    for chunk in records.chunks(2_000) {
        publish(&s.codec, &p, chunk).await;
    }
    // The queue bound the growth limit below is worked out for (the default is 50,000).
    let mut projector = start_projector_env(
        &s,
        &unique("project-"),
        "0",
        &[("BLUELIGHT_PROJECT_QUEUE_MAX", "20000")],
    )
    .await;
    let pid = projector.child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while disclosed(&projector.url, "").await < 1.0 {
        assert!(Instant::now() < deadline, "no disclosure within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = rss_kib(pid);
    let paused = Paused::stop(&broker_pid);
    let mut samples = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib(pid));
    }
    drop(paused);
    let peak = samples.iter().copied().max().unwrap_or(0);
    println!(
        "projector RSS: {} MiB before the pause, peak {} MiB over 20 s paused (samples KiB {samples:?}), backlog {BACKLOG} events",
        before / 1024,
        peak / 1024
    );
    // What may fill while the broker is away is bounded: one batch (2,000 events) and the
    // producer's queue (20,000 records, 64 MiB at most); after that nothing may grow.
    assert!(
        peak <= before + 48 * 1024,
        "RSS grew from {before} KiB to {peak} KiB while the broker was paused"
    );
    let settled = &samples[5..];
    let (low, high) = (
        settled.iter().min().copied().unwrap_or(0),
        settled.iter().max().copied().unwrap_or(0),
    );
    assert!(
        high - low <= 4 * 1024,
        "RSS kept growing while paused: {low} to {high} KiB over the last 15 s"
    );

    // Progress, and a projector that died, are reported as they happen: a failure here says
    // whether the service stopped, stalled, or was merely slow.
    let resumed = Instant::now();
    let mut last_report = Instant::now();
    loop {
        if let Ok(Some(status)) = projector.child.try_wait() {
            panic!("the projector exited ({status}) after the broker came back; its log is above");
        }
        let done = disclosed(&projector.url, &s.fire).await;
        if done >= BACKLOG as f64 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            last_report = Instant::now();
            let ready = reqwest::get(format!("{}/health/ready", projector.url))
                .await
                .ok()
                .map(|r| r.status());
            println!(
                "{:>3} s after SIGCONT: {done} disclosures to fire counted (committed or not), readiness {ready:?}",
                resumed.elapsed().as_secs()
            );
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(240),
            "the projector counted {done} of {BACKLOG} disclosures to fire within 240 s of SIGCONT"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let read = assert_each_once(
        &s,
        &format!("feed.{}.incident.v1", s.fire),
        &records,
        Duration::from_secs(120),
    )
    .await;
    println!(
        "after SIGCONT: {} of {BACKLOG} disclosures to fire, each once, {} s to finish; projector RSS {} MiB",
        read,
        resumed.elapsed().as_secs(),
        rss_kib(pid) / 1024
    );
}

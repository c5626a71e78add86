//! Notifier telemetry. Labels are the Code's right numbers and fixed outcomes: all bounded, never
//! a victim, case or update.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounterVec, IntGauge, exponential_buckets, register_histogram,
    register_int_counter_vec, register_int_gauge,
};

pub(crate) struct Metrics {
    pub delivered: IntCounterVec,
    pub attempts: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub in_flight: IntGauge,
    pub delivery: Histogram,
}

#[allow(clippy::expect_used)] // metric names are constants; a clash is a programming error found at start-up
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    delivered: register_int_counter_vec!(
        "bluelight_notify_delivered_total",
        "Victim updates the webhook accepted and whose acknowledgement Kafka holds, by right.",
        &["right"]
    )
    .expect("metric"),
    attempts: register_int_counter_vec!(
        "bluelight_notify_attempts_total",
        "Webhook requests, by outcome (ok, retry, refused).",
        &["outcome"]
    )
    .expect("metric"),
    dead_letters: register_int_counter_vec!(
        "bluelight_notify_dead_letters_total",
        "Updates written to dlq.notify.v1, by reason (undecodable, refused).",
        &["reason"]
    )
    .expect("metric"),
    in_flight: register_int_gauge!(
        "bluelight_notify_in_flight",
        "Updates being delivered now (at most --max-in-flight)."
    )
    .expect("metric"),
    delivery: register_histogram!(
        "bluelight_notify_delivery_seconds",
        "From reading an update to the webhook accepting it, retries included.",
        exponential_buckets(0.005, 2.0, 16).expect("buckets")
    )
    .expect("metric"),
});

pub(crate) fn init() {
    LazyLock::force(&METRICS);
}

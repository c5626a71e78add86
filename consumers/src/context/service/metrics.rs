//! Context telemetry. Labels are topics, rule ids and fixed reasons: all bounded, never a
//! person, a place or an incident.

use std::sync::LazyLock;

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, exponential_buckets, register_histogram,
    register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
};

use crate::eos::TxMetrics;

pub(crate) struct Metrics {
    pub observations: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub subjects: IntGauge,
    pub evicted: IntCounter,
    pub flags_raised: IntCounterVec,
    pub route: TxMetrics,
    pub fold: TxMetrics,
}

/// The transaction series of one stage, under `bluelight_context_<stage>_...`.
#[allow(clippy::expect_used)] // metric names are constants; a clash is a programming error found at start-up
fn tx(stage: &str, reads: &str) -> TxMetrics {
    let commit = register_histogram!(
        format!("bluelight_context_{stage}_transaction_commit_seconds"),
        format!("Sending offsets and committing one {stage} transaction."),
        exponential_buckets(0.001, 2.0, 16).expect("buckets")
    )
    .expect("metric");
    TxMetrics {
        consumed: register_int_counter_vec!(
            format!("bluelight_context_{stage}_records_consumed_total"),
            format!("Records the {stage} stage read from {reads}, by topic."),
            &["topic"]
        )
        .expect("metric"),
        commit,
        aborts: register_int_counter_vec!(
            format!("bluelight_context_{stage}_transaction_aborts_total"),
            format!("{stage} transactions aborted (the batch is read again), by reason."),
            &["reason"]
        )
        .expect("metric"),
        lag: register_int_gauge_vec!(
            format!("bluelight_context_{stage}_consumer_lag"),
            format!("The {stage} stage's lag in records per assigned partition."),
            &["topic", "partition"]
        )
        .expect("metric"),
        paused: register_int_gauge!(
            format!("bluelight_context_{stage}_paused"),
            format!("1 while the {stage} stage waits for room in its producer's queue.")
        )
        .expect("metric"),
        queue_full: register_int_counter!(
            format!("bluelight_context_{stage}_producer_queue_full_total"),
            format!("Times the {stage} stage found its producer's queue full.")
        )
        .expect("metric"),
        consumer_restarts: register_int_counter_vec!(
            format!("bluelight_context_{stage}_consumer_restarts_total"),
            format!("Times the {stage} stage's group consumer was replaced, by reason: failed, rewind (offsets unreadable after an abort), stalled (records arrived but none came for a whole watchdog window)."),
            &["reason"]
        )
        .expect("metric"),
    }
}

#[allow(clippy::expect_used)]
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    observations: register_int_counter_vec!(
        "bluelight_context_observations_total",
        "Observations of a person or a place routed to repartition.context-contacts.v1, by subject kind.",
        &["kind"]
    )
    .expect("metric"),
    dead_letters: register_int_counter_vec!(
        "bluelight_context_dead_letters_total",
        "Records written to dlq.context.v1, by reason.",
        &["reason"]
    )
    .expect("metric"),
    subjects: register_int_gauge!(
        "bluelight_context_subjects",
        "People and places whose history this instance holds."
    )
    .expect("metric"),
    evicted: register_int_counter!(
        "bluelight_context_subjects_evicted_total",
        "Histories dropped from memory at --max-subjects (the least recently seen first); they stay on state.context.v1."
    )
    .expect("metric"),
    flags_raised: register_int_counter_vec!(
        "bluelight_context_flags_raised_total",
        "Flags that came to hold for a person or place, by rule.",
        &["rule"]
    )
    .expect("metric"),
    route: tx("route", "bl.incident.v1 and bl.case.v1"),
    fold: tx("fold", "repartition.context-contacts.v1"),
}
});

pub(crate) fn init() {
    LazyLock::force(&METRICS);
}

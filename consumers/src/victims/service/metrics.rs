//! Victim-updates telemetry. Labels are the Code's right numbers, topics and fixed reasons: all
//! bounded, never a victim or case.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, exponential_buckets,
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec,
};

pub(crate) struct Metrics {
    pub consumed: IntCounterVec,
    pub updates: IntCounterVec,
    pub opted_out: IntCounter,
    pub dead_letters: IntCounterVec,
    pub victims: IntGauge,
    pub commit: Histogram,
    pub aborts: IntCounterVec,
    pub lag: IntGaugeVec,
    pub paused: IntGauge,
    pub queue_full: IntCounter,
    pub consumer_restarts: IntCounterVec,
    pub acks: IntCounterVec,
    pub delivered: IntCounterVec,
    pub alerts: IntCounterVec,
    pub open: IntGaugeVec,
    pub due: IntGaugeVec,
    pub overdue: IntGaugeVec,
    pub http_acks: IntCounterVec,
    /// The deadline tracker's own transaction series.
    pub deadlines: crate::eos::TxMetrics,
}

#[allow(clippy::expect_used)] // metric names are constants; a clash is a programming error found at start-up
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    consumed: register_int_counter_vec!(
        "bluelight_victim_updates_events_consumed_total",
        "Case events read and decided, by topic.",
        &["topic"]
    )
    .expect("metric"),
    updates: register_int_counter_vec!(
        "bluelight_victim_updates_written_total",
        "Updates written to feed.victim-update.v1, by the Code's right.",
        &["right"]
    )
    .expect("metric"),
    opted_out: register_int_counter!(
        "bluelight_victim_updates_withheld_opted_out_total",
        "Updates withheld because the victim opted out (each audited)."
    )
    .expect("metric"),
    dead_letters: register_int_counter_vec!(
        "bluelight_victim_updates_dead_letters_total",
        "Case records written to dlq.victim-updates.v1, by reason.",
        &["reason"]
    )
    .expect("metric"),
    victims: register_int_gauge!(
        "bluelight_victim_updates_register_victims",
        "Victims whose latest preferences are held (from bl.victim.v1)."
    )
    .expect("metric"),
    commit: register_histogram!(
        "bluelight_victim_updates_transaction_commit_seconds",
        "Sending offsets and committing one transaction.",
        exponential_buckets(0.001, 2.0, 16).expect("buckets")
    )
    .expect("metric"),
    aborts: register_int_counter_vec!(
        "bluelight_victim_updates_transaction_aborts_total",
        "Transactions aborted (the batch is read again), by reason.",
        &["reason"]
    )
    .expect("metric"),
    lag: register_int_gauge_vec!(
        "bluelight_victim_updates_consumer_lag",
        "Lag in records per assigned partition.",
        &["topic", "partition"]
    )
    .expect("metric"),
    paused: register_int_gauge!(
        "bluelight_victim_updates_paused",
        "1 while sending waits for room in the producer's queue (no records are taken meanwhile)."
    )
    .expect("metric"),
    queue_full: register_int_counter!(
        "bluelight_victim_updates_producer_queue_full_total",
        "Times a send found the producer's queue full and waited for room."
    )
    .expect("metric"),
    consumer_restarts: register_int_counter_vec!(
        "bluelight_victim_updates_consumer_restarts_total",
        "Times the group consumer was replaced, by reason: failed, rewind (offsets unreadable after an abort), stalled (records arrived but none came for a whole watchdog window).",
        &["reason"]
    )
    .expect("metric"),
    acks: register_int_counter_vec!(
        "bluelight_victim_updates_acks_total",
        "Acknowledgements read from bl.victim-notification-ack.v1, by outcome (closed, not-open, unreadable).",
        &["outcome"]
    )
    .expect("metric"),
    delivered: register_int_counter_vec!(
        "bluelight_victim_updates_delivered_total",
        "Updates acknowledged as delivered, by the Code's right and whether before due_by.",
        &["right", "timeliness"]
    )
    .expect("metric"),
    alerts: register_int_counter_vec!(
        "bluelight_victim_updates_alerts_total",
        "Alerts written to feed.victim-update-overdue.v1, by right and stage (due-soon, overdue).",
        &["right", "stage"]
    )
    .expect("metric"),
    open: register_int_gauge_vec!(
        "bluelight_victim_updates_open",
        "Updates not yet acknowledged as delivered, by right (this instance's partitions).",
        &["right"]
    )
    .expect("metric"),
    due: register_int_gauge_vec!(
        "bluelight_victim_updates_due",
        "Undelivered updates within the warning window before due_by, by right.",
        &["right"]
    )
    .expect("metric"),
    overdue: register_int_gauge_vec!(
        "bluelight_victim_updates_overdue",
        "Undelivered updates past due_by, by right.",
        &["right"]
    )
    .expect("metric"),
    http_acks: register_int_counter_vec!(
        "bluelight_victim_updates_http_acks_total",
        "Acknowledgements posted to the HTTP callback, by HTTP status.",
        &["status"]
    )
    .expect("metric"),
    deadlines: crate::eos::TxMetrics {
        consumed: register_int_counter_vec!(
            "bluelight_victim_deadlines_acks_consumed_total",
            "Acknowledgement records read by the deadline tracker, by topic.",
            &["topic"]
        )
        .expect("metric"),
        commit: register_histogram!(
            "bluelight_victim_deadlines_transaction_commit_seconds",
            "Committing one deadline-tracker transaction.",
            exponential_buckets(0.001, 2.0, 16).expect("buckets")
        )
        .expect("metric"),
        aborts: register_int_counter_vec!(
            "bluelight_victim_deadlines_transaction_aborts_total",
            "Deadline-tracker transactions aborted, by reason.",
            &["reason"]
        )
        .expect("metric"),
        lag: register_int_gauge_vec!(
            "bluelight_victim_deadlines_consumer_lag",
            "Acknowledgement lag in records per assigned partition.",
            &["topic", "partition"]
        )
        .expect("metric"),
        paused: register_int_gauge!(
            "bluelight_victim_deadlines_paused",
            "1 while the tracker waits for room in its producer's queue."
        )
        .expect("metric"),
        queue_full: register_int_counter!(
            "bluelight_victim_deadlines_producer_queue_full_total",
            "Times the tracker found its producer's queue full."
        )
        .expect("metric"),
        consumer_restarts: register_int_counter_vec!(
            "bluelight_victim_deadlines_consumer_restarts_total",
            "Times the tracker's consumer was replaced, by reason: failed, rewind (offsets unreadable after an abort), stalled (records arrived but none came for a whole watchdog window).",
            &["reason"]
        )
        .expect("metric"),
    },
}
});

pub(crate) fn init() {
    LazyLock::force(&METRICS);
}

pub(crate) fn tx() -> crate::eos::TxMetrics {
    crate::eos::TxMetrics {
        consumed: METRICS.consumed.clone(),
        commit: METRICS.commit.clone(),
        aborts: METRICS.aborts.clone(),
        lag: METRICS.lag.clone(),
        paused: METRICS.paused.clone(),
        queue_full: METRICS.queue_full.clone(),
        consumer_restarts: METRICS.consumer_restarts.clone(),
    }
}

pub(crate) fn deadlines_tx() -> crate::eos::TxMetrics {
    METRICS.deadlines.clone()
}

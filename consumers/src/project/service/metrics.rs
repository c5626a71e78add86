//! Projector telemetry: one function per event, writing the log line and the metric together.
//! Labels are topics, partitions, agreements, recipients and fixed reasons: all bounded by
//! configuration, never by a record's content.

use std::{sync::LazyLock, time::Duration};

use prometheus::{
    Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, exponential_buckets,
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec,
};

pub(crate) struct Metrics {
    pub consumed: IntCounterVec,
    pub disclosures: IntCounterVec,
    pub fields_withheld: IntCounterVec,
    pub ceiling: IntCounterVec,
    pub retractions: IntCounterVec,
    pub repeats: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub condition_errors: IntCounterVec,
    pub end_to_end: Histogram,
    pub processing: Histogram,
    pub commit: Histogram,
    pub aborts: IntCounterVec,
    pub lag: IntGaugeVec,
    pub paused: IntGauge,
    pub queue_full: IntCounter,
    pub receipts: IntGauge,
    pub receipts_evicted: IntCounter,
    pub reloads: IntCounterVec,
    pub agreements_ended: IntCounterVec,
    pub tombstones: IntCounterVec,
    pub context_blocks: IntCounterVec,
    pub consumer_restarts: IntCounterVec,
    pub context_subjects: IntGauge,
}

#[allow(clippy::expect_used)] // metric names are constants; a clash is a programming error found at start-up
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    consumed: register_int_counter_vec!(
        "bluelight_projector_events_consumed_total",
        "Canonical events read and decided, by topic.",
        &["topic"]
    )
    .expect("metric"),
    disclosures: register_int_counter_vec!(
        "bluelight_projector_disclosures_total",
        "Records written to a feed under an agreement (each with its audit record).",
        &["agreement", "recipient"]
    )
    .expect("metric"),
    fields_withheld: register_int_counter_vec!(
        "bluelight_projector_fields_withheld_total",
        "Fields left out of disclosed records, by agreement and reason (not-shared: the clause does not name them).",
        &["agreement", "reason"]
    )
    .expect("metric"),
    ceiling: register_int_counter_vec!(
        "bluelight_projector_records_withheld_ceiling_total",
        "Records a clause matched but withheld because their marking is above the agreement's classification ceiling.",
        &["agreement"]
    )
    .expect("metric"),
    retractions: register_int_counter_vec!(
        "bluelight_projector_retractions_sent_total",
        "Retraction notices written to recipients' feeds.",
        &["recipient"]
    )
    .expect("metric"),
    repeats: register_int_counter_vec!(
        "bluelight_projector_repeats_skipped_total",
        "Events a feed had already received (the same event id again: a source's retry), not sent twice.",
        &["agreement"]
    )
    .expect("metric"),
    dead_letters: register_int_counter_vec!(
        "bluelight_projector_dead_letters_total",
        "Records written to dlq.projector.v1, by reason.",
        &["reason"]
    )
    .expect("metric"),
    condition_errors: register_int_counter_vec!(
        "bluelight_projector_condition_errors_total",
        "Clause conditions that failed to evaluate on an event (treated as not matching).",
        &["agreement"]
    )
    .expect("metric"),
    end_to_end: register_histogram!(
        "bluelight_projector_end_to_end_seconds",
        "From the source recording an event to the transaction that discloses it committing.",
        exponential_buckets(0.005, 2.0, 16).expect("buckets")
    )
    .expect("metric"),
    processing: register_histogram!(
        "bluelight_projector_processing_seconds",
        "Decoding, deciding, projecting and encoding one event.",
        exponential_buckets(0.000_01, 2.0, 18).expect("buckets")
    )
    .expect("metric"),
    commit: register_histogram!(
        "bluelight_projector_transaction_commit_seconds",
        "Sending offsets and committing one transaction.",
        exponential_buckets(0.001, 2.0, 16).expect("buckets")
    )
    .expect("metric"),
    aborts: register_int_counter_vec!(
        "bluelight_projector_transaction_aborts_total",
        "Transactions aborted (the batch is read again), by reason.",
        &["reason"]
    )
    .expect("metric"),
    lag: register_int_gauge_vec!(
        "bluelight_projector_consumer_lag",
        "Committed-to-end lag in records per assigned partition.",
        &["topic", "partition"]
    )
    .expect("metric"),
    consumer_restarts: register_int_counter_vec!(
        "bluelight_projector_consumer_restarts_total",
        "Times the group consumer was replaced, by reason: failed (for good), rewind (offsets unreadable after an abort), stalled (records arrived but none came for a whole watchdog window).",
        &["reason"]
    )
    .expect("metric"),
    context_blocks: register_int_counter_vec!(
        "bluelight_projector_context_blocks_total",
        "Incident feed records sent with a context block, by agreement (each block audited with its record).",
        &["agreement"]
    )
    .expect("metric"),
    context_subjects: register_int_gauge!(
        "bluelight_projector_context_subjects",
        "Subjects' histories held from state.context.v1 for context blocks (0 when no agreement has a context clause)."
    )
    .expect("metric"),
    paused: register_int_gauge!(
        "bluelight_projector_paused",
        "1 while sending waits for room in the producer's queue (no records are taken meanwhile)."
    )
    .expect("metric"),
    queue_full: register_int_counter!(
        "bluelight_projector_producer_queue_full_total",
        "Times a send found the producer's queue full and waited for room."
    )
    .expect("metric"),
    receipts: register_int_gauge!(
        "bluelight_projector_receipts_subjects",
        "Subjects whose recipients are held in memory for retractions."
    )
    .expect("metric"),
    receipts_evicted: register_int_counter!(
        "bluelight_projector_receipts_evicted_total",
        "Subjects forgotten at the receipts capacity (a later retraction for one is dead-lettered)."
    )
    .expect("metric"),
    reloads: register_int_counter_vec!(
        "bluelight_projector_policy_reloads_total",
        "Agreement directory changes seen, by result (applied, refused).",
        &["result"]
    )
    .expect("metric"),
    agreements_ended: register_int_counter_vec!(
        "bluelight_projector_agreements_ended_total",
        "Agreements withdrawn or expired, announced on their recipient's feeds.",
        &["agreement"]
    )
    .expect("metric"),
    tombstones: register_int_counter_vec!(
        "bluelight_projector_tombstones_total",
        "Records without a value (compaction's delete markers) read and skipped.",
        &["topic"]
    )
    .expect("metric"),
}
});

pub(crate) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The series the Kafka runner updates, under the projector's names.
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

/// Forces registration, so /metrics lists every series from the start.
pub(crate) fn init() {
    LazyLock::force(&METRICS);
}

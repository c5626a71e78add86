//! The registry's Prometheus metrics, on the default registry (the binary serves `/metrics`).
//!
//! Labels stay low-cardinality: routes are axum's templates (`/subjects/{subject}/versions`), never
//! the subject names themselves.

use std::{sync::LazyLock, time::Duration};

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, core::Collector,
};
use tracing::warn;

struct Metrics {
    requests: IntCounterVec,
    request_seconds: Histogram,
    records: IntCounterVec,
    write_retries: IntCounter,
    schemas: IntGauge,
    subjects: IntGauge,
}

/// Registers `metric` once; a name clash (two crates picking one name) is a warning, not a crash.
fn register<T: Collector + Clone + 'static>(metric: T) -> T {
    if let Err(e) = prometheus::register(Box::new(metric.clone())) {
        warn!(error = %e, "schema registry metric not registered");
    }
    metric
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: register(
        IntCounterVec::new(
            Opts::new(
                "bluelight_registry_requests_total",
                "Schema registry HTTP requests, by route template and status code.",
            ),
            &["route", "status"],
        )
        .expect("valid metric"),
    ),
    request_seconds: register(
        Histogram::with_opts(
            HistogramOpts::new(
                "bluelight_registry_request_duration_seconds",
                "Time to answer a schema registry HTTP request (writes include reading them back).",
            )
            .buckets(vec![0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0]),
        )
        .expect("valid metric"),
    ),
    records: register(
        IntCounterVec::new(
            Opts::new(
                "bluelight_registry_log_records_total",
                "Records read from the registry topic, by outcome: applied, lost (a proposal that \
                 lost a race), skipped (malformed) or ignored (NOOP, unknown key type).",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    ),
    write_retries: register(
        IntCounter::new(
            "bluelight_registry_write_retries_total",
            "Registrations retried because another registry instance won the same version or id.",
        )
        .expect("valid metric"),
    ),
    schemas: register(
        IntGauge::new(
            "bluelight_registry_schemas",
            "Distinct schemas (ids) in the registry.",
        )
        .expect("valid metric"),
    ),
    subjects: register(
        IntGauge::new(
            "bluelight_registry_subjects",
            "Subjects with at least one live version.",
        )
        .expect("valid metric"),
    ),
});

pub(crate) fn record_request(route: &str, status: u16, took: Duration) {
    METRICS
        .requests
        .with_label_values(&[route, &status.to_string()])
        .inc();
    METRICS.request_seconds.observe(took.as_secs_f64());
}

pub(crate) fn record_applied(outcome: &str) {
    METRICS.records.with_label_values(&[outcome]).inc();
}

pub(crate) fn record_retry() {
    METRICS.write_retries.inc();
}

pub(crate) fn set_counts((schemas, subjects): (usize, usize)) {
    METRICS
        .schemas
        .set(i64::try_from(schemas).unwrap_or(i64::MAX));
    METRICS
        .subjects
        .set(i64::try_from(subjects).unwrap_or(i64::MAX));
}

//! Ingest telemetry: one struct per event, writing the log line and the metric together.
//! Labels are the source name and (for rejections) the field: both bounded by configuration and
//! the formats, never a record's content.

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounterVec, IntGauge, exponential_buckets, register_histogram_vec,
    register_int_counter_vec, register_int_gauge,
};

struct Metrics {
    received: IntCounterVec,
    accepted: IntCounterVec,
    rejected: IntCounterVec,
    dead_lettered: IntCounterVec,
    refused: IntCounterVec,
    publish_seconds: HistogramVec,
    in_flight: IntGauge,
}

#[allow(clippy::expect_used)] // metric names are constants; a clash is a programming error found at start-up
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    received: register_int_counter_vec!("bluelight_ingest_records_received_total", "Source records received.", &["source"])
        .expect("metric"),
    accepted: register_int_counter_vec!("bluelight_ingest_records_accepted_total", "Records translated and published.", &["source"])
        .expect("metric"),
    rejected: register_int_counter_vec!(
        "bluelight_ingest_records_rejected_total",
        "Records refused by translation or validation, by the first field at fault.",
        &["source", "field"]
    )
    .expect("metric"),
    dead_lettered: register_int_counter_vec!("bluelight_ingest_dead_letters_total", "Records written to dlq.ingest.v1.", &["source"])
        .expect("metric"),
    refused: register_int_counter_vec!(
        "bluelight_ingest_requests_refused_total",
        "Requests refused before publishing, by reason (unauthenticated, forbidden, saturated, ...).",
        &["reason"]
    )
    .expect("metric"),
    publish_seconds: register_histogram_vec!(
        "bluelight_ingest_publish_seconds",
        "Time from admission to the broker's acknowledgement of a whole submission.",
        &["source"],
        exponential_buckets(0.001, 2.0, 15).expect("buckets")
    )
    .expect("metric"),
    in_flight: register_int_gauge!("bluelight_ingest_records_in_flight", "Records admitted and not yet acknowledged (the producer queue).")
        .expect("metric"),
}
});

/// A submission was translated.
pub(crate) struct Translated<'a> {
    pub source: &'a str,
    pub received: usize,
    pub accepted: usize,
    pub rejected_fields: Vec<&'static str>,
}

impl Translated<'_> {
    pub fn emit(self) {
        let m = &*METRICS;
        m.received
            .with_label_values(&[self.source])
            .inc_by(self.received as u64);
        m.accepted
            .with_label_values(&[self.source])
            .inc_by(self.accepted as u64);
        for field in &self.rejected_fields {
            m.rejected.with_label_values(&[self.source, field]).inc();
        }
        tracing::info!(
            source = self.source,
            received = self.received,
            accepted = self.accepted,
            rejected = self.rejected_fields.len(),
            "submission translated"
        );
    }
}

/// A submission was published.
pub(crate) struct Published<'a> {
    pub source: &'a str,
    pub dead_lettered: usize,
    pub seconds: f64,
    pub traceparent: &'a str,
}

impl Published<'_> {
    pub fn emit(self) {
        let m = &*METRICS;
        m.dead_lettered
            .with_label_values(&[self.source])
            .inc_by(self.dead_lettered as u64);
        m.publish_seconds
            .with_label_values(&[self.source])
            .observe(self.seconds);
        tracing::info!(
            source = self.source,
            dead_lettered = self.dead_lettered,
            seconds = self.seconds,
            traceparent = self.traceparent,
            "submission published"
        );
    }
}

/// A request was refused before anything was published.
pub(crate) struct Refused<'a> {
    pub reason: &'static str,
    pub detail: &'a str,
}

impl Refused<'_> {
    pub fn emit(self) {
        METRICS.refused.with_label_values(&[self.reason]).inc();
        tracing::warn!(
            reason = self.reason,
            detail = self.detail,
            "request refused"
        );
    }
}

/// A rejection's field as a metric label: list indices dropped, and never more than 100 distinct
/// labels however inventive the input (unknown XML element names come from the input itself).
pub(crate) fn field_label(field: &str) -> &'static str {
    use std::{collections::HashSet, sync::Mutex};
    static SEEN: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);
    let mut name = String::with_capacity(field.len());
    let mut depth = 0;
    for c in field.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => name.push(c),
            _ => {}
        }
    }
    let Ok(mut seen) = SEEN.lock() else {
        return "(other)";
    };
    if let Some(known) = seen.get(name.as_str()) {
        return known;
    }
    if seen.len() >= 100 || name.len() > 64 {
        return "(other)";
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    seen.insert(leaked);
    leaked
}

pub(crate) fn set_in_flight(n: usize) {
    METRICS.in_flight.set(i64::try_from(n).unwrap_or(i64::MAX));
}

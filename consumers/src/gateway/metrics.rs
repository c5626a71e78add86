//! Gateway telemetry: one struct per event, each writing its log line and its metric. Labels are
//! feed topics, fixed reasons and roles: bounded, never a user, token, incident or person.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounterVec, IntGauge, IntGaugeVec, exponential_buckets, register_histogram,
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
};

pub(crate) struct Metrics {
    streams_open: IntGaugeVec,
    streams_closed: IntCounterVec,
    events_sent: IntCounterVec,
    undecodable: IntCounterVec,
    consultations: IntCounterVec,
    refused: IntCounterVec,
    pub view_incidents: IntGauge,
    pub view_records: IntCounterVec,
    pub feed_latency: Histogram,
}

#[allow(clippy::expect_used)] // metric names are constants; a clash is a programming error found at start-up
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    streams_open: register_int_gauge_vec!(
        "bluelight_gateway_streams_open",
        "Feed streams (SSE) open now, by feed.",
        &["feed"]
    )
    .expect("metric"),
    streams_closed: register_int_counter_vec!(
        "bluelight_gateway_streams_closed_total",
        "Feed streams ended, by feed and reason (client-gone, lagged, shutdown, broker).",
        &["feed", "reason"]
    )
    .expect("metric"),
    events_sent: register_int_counter_vec!(
        "bluelight_gateway_events_sent_total",
        "Feed records handed to streams, by feed.",
        &["feed"]
    )
    .expect("metric"),
    undecodable: register_int_counter_vec!(
        "bluelight_gateway_undecodable_records_total",
        "Feed records the gateway could not decode (reported to the stream as an error event, never as data), by feed.",
        &["feed"]
    )
    .expect("metric"),
    consultations: register_int_counter_vec!(
        "bluelight_gateway_consultations_total",
        "Consultation records written to audit.consultation.v1, by action and outcome (logged, failed).",
        &["action", "outcome"]
    )
    .expect("metric"),
    refused: register_int_counter_vec!(
        "bluelight_gateway_requests_refused_total",
        "Requests refused, by reason (no-token, bad-token, forbidden, too-many-streams, bad-request).",
        &["reason"]
    )
    .expect("metric"),
    view_incidents: register_int_gauge!(
        "bluelight_gateway_view_incidents",
        "Incidents held in the gateway's incident view (at most --view-max-incidents)."
    )
    .expect("metric"),
    view_records: register_int_counter_vec!(
        "bluelight_gateway_view_records_total",
        "Feed records applied to the incident view, by feed.",
        &["feed"]
    )
    .expect("metric"),
    feed_latency: register_histogram!(
        "bluelight_gateway_feed_latency_seconds",
        "From a feed record's broker timestamp to the gateway handing it to a stream.",
        exponential_buckets(0.001, 2.0, 16).expect("buckets")
    )
    .expect("metric"),
}
});

pub(crate) fn init() {
    LazyLock::force(&METRICS);
}

/// A stream was opened (after its consultation record was written).
pub(crate) struct StreamOpened<'a> {
    pub feed: &'a str,
    pub user: &'a str,
    pub from: &'a str,
}

impl StreamOpened<'_> {
    pub fn emit(&self) {
        tracing::info!(
            feed = self.feed,
            user = self.user,
            from = self.from,
            "feed stream opened"
        );
        METRICS.streams_open.with_label_values(&[self.feed]).inc();
    }
}

/// A stream ended.
pub(crate) struct StreamClosed<'a> {
    pub feed: &'a str,
    pub user: &'a str,
    pub reason: &'static str,
    pub sent: u64,
}

impl StreamClosed<'_> {
    pub fn emit(&self) {
        if self.reason == "lagged" || self.reason == "broker" {
            tracing::warn!(
                feed = self.feed,
                user = self.user,
                reason = self.reason,
                sent = self.sent,
                "feed stream closed"
            );
        } else {
            tracing::info!(
                feed = self.feed,
                user = self.user,
                reason = self.reason,
                sent = self.sent,
                "feed stream closed"
            );
        }
        METRICS.streams_open.with_label_values(&[self.feed]).dec();
        METRICS
            .streams_closed
            .with_label_values(&[self.feed, self.reason])
            .inc();
    }
}

pub(crate) fn event_sent(feed: &str, broker_ms: Option<i64>) {
    METRICS.events_sent.with_label_values(&[feed]).inc();
    if let Some(ms) = broker_ms {
        let now = jiff::Timestamp::now().as_millisecond();
        #[allow(clippy::cast_precision_loss)] // milliseconds to seconds for a histogram
        METRICS
            .feed_latency
            .observe((now - ms).max(0) as f64 / 1000.0);
    }
}

/// A feed record that does not decode: the stream is told where, never given bytes.
pub(crate) struct Undecodable<'a> {
    pub feed: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a str,
}

impl Undecodable<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            feed = self.feed,
            partition = self.partition,
            offset = self.offset,
            error = self.error,
            "feed record does not decode"
        );
        METRICS.undecodable.with_label_values(&[self.feed]).inc();
    }
}

pub(crate) fn consulted(action: &str, ok: bool) {
    METRICS
        .consultations
        .with_label_values(&[action, if ok { "logged" } else { "failed" }])
        .inc();
}

/// A request the gateway refused; the log names the route, never the token.
pub(crate) struct Refused<'a> {
    pub reason: &'static str,
    pub path: &'a str,
    pub user: Option<&'a str>,
}

impl Refused<'_> {
    pub fn emit(&self) {
        tracing::info!(
            reason = self.reason,
            path = self.path,
            user = self.user,
            "request refused"
        );
        METRICS.refused.with_label_values(&[self.reason]).inc();
    }
}

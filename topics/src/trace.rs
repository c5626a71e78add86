//! W3C trace context across Kafka: each service makes its span for a record a child of the
//! `traceparent` header the record arrived with, and writes its own span's context on what it
//! sends on, so one trace follows a record from the ingest request through the projector to the
//! gateway's stream.
//!
//! When traces are not exported (no `OTEL_EXPORTER_OTLP_ENDPOINT`), spans have no OpenTelemetry
//! context; the header is still carried, with a fresh span id in the same trace, so logs keep
//! joining up.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Parses a version-00 `traceparent`; `None` when malformed or all-zero.
pub fn parse(header: &str) -> Option<SpanContext> {
    let mut parts = header.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !(hex(version, 2) && version != "ff" && hex(trace, 32) && hex(span, 16) && hex(flags, 2)) {
        return None;
    }
    let sc = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// The `traceparent` header value of a span context.
pub fn format(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Makes `span` a child of `parent` (a `traceparent` value) and returns the `traceparent` for
/// what is written under it: the span's own context when traces are exported, otherwise a new
/// span id in the parent's trace (or in a new trace when there is no usable parent). A span
/// that declares a `trace_id` field (`trace_id = tracing::field::Empty`) gets it filled in, so
/// every log line inside it names the trace on its own (`span.trace_id` in JSON logs).
pub fn link(span: &tracing::Span, parent: Option<&str>) -> String {
    let traceparent = link_context(span, parent);
    if let Some(trace) = traceparent.split('-').nth(1) {
        span.record("trace_id", trace);
    }
    traceparent
}

fn link_context(span: &tracing::Span, parent: Option<&str>) -> String {
    let remote = parent.and_then(parse);
    if let Some(sc) = &remote {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc.clone()));
    }
    let own = span.context().span().span_context().clone();
    if own.is_valid() {
        return format(&own);
    }
    let trace = remote.as_ref().map_or_else(
        || TraceId::from(u128::from(random_u64()) << 64 | u128::from(random_u64())),
        SpanContext::trace_id,
    );
    let flags = remote
        .as_ref()
        .map_or(TraceFlags::SAMPLED, SpanContext::trace_flags);
    format(&SpanContext::new(
        trace,
        SpanId::from(random_u64()),
        flags,
        false,
        TraceState::default(),
    ))
}

/// A non-zero random 64-bit id without a system call per id: SplitMix64 per thread, seeded once
/// from the operating system. Span ids must be unique, not secret; drawing each from the OS
/// cost a `getrandom` call per record, a third of the projector's time per event.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_headers() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(parse(tp).map(|sc| format(&sc)).as_deref(), Some(tp));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn without_export_a_link_stays_in_the_parent_trace_with_a_new_span() {
        let span = tracing::info_span!("t");
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let child = parse(&link(&span, Some(parent))).expect("valid");
        assert_eq!(
            child.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(child.span_id().to_string(), "00f067aa0ba902b7");
        let fresh = parse(&link(&span, Some("garbage"))).expect("valid");
        assert_ne!(fresh.trace_id(), child.trace_id());
    }
}

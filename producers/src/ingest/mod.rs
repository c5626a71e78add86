//! The HTTP ingest API for source systems: `POST /v1/sources/{source}/events`.
//!
//! | answer | when |
//! |---|---|
//! | 202 | every record was translated and the broker acknowledged it; the body lists the event ids |
//! | 400 | some records were refused: the body lists each with every problem; the others were published, and the refused ones are on `dlq.ingest.v1` with their original bytes |
//! | 401 / 403 | no valid token / a token for another source |
//! | 413 | the body is over the size limit |
//! | 415 | a content type the source's adapter does not read |
//! | 429 + `Retry-After` | too many records in flight: nothing of the request was taken; send it again |
//! | 503 + `Retry-After` | the broker or the registry failed; records may or may not be on the topic, and a resend gives them the same event ids |
//!
//! - `sources.rs`: who may publish (hashed tokens);
//! - `metrics.rs`: the telemetry events;
//! - `openapi.json`: the API described for clients.

mod metrics;
pub mod sources;

use std::{sync::Arc, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bluelight_avro::records::Timestamp;
use bluelight_topics::tokens::RateLimits;
use serde_json::json;
use tracing::Instrument;

use crate::{
    Error,
    adapters::{Adapter, SourceContext, Translation},
    publish::{Publisher, Submission},
};
pub use sources::{Source, Sources, token_hash};

/// What the ingest API needs.
pub struct Ingest {
    pub sources: Sources,
    pub adapters: std::collections::HashMap<String, Arc<dyn Adapter>>,
    pub publisher: Arc<Publisher>,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Requests per second per source token (429 beyond); off unless set.
    pub rate_limits: RateLimits,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field(
                "sources",
                &self.sources.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("adapters", &self.adapters.keys().collect::<Vec<_>>())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl Ingest {
    /// Loads the adapter every configured source uses.
    pub fn new(
        sources: Sources,
        publisher: Arc<Publisher>,
        max_body_bytes: usize,
    ) -> crate::Result<Self> {
        let mut adapters = std::collections::HashMap::new();
        for s in sources.iter() {
            if !adapters.contains_key(&s.adapter) {
                adapters.insert(s.adapter.clone(), crate::adapters::by_name(&s.adapter)?);
            }
        }
        Ok(Ingest {
            rate_limits: RateLimits::new(sources.len(), 0.0, 1),
            sources,
            adapters,
            publisher,
            max_body_bytes,
        })
    }

    /// Limits each source token to `per_second` requests, with bursts of up to `burst`.
    pub fn with_rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.rate_limits = RateLimits::new(self.sources.len(), per_second, burst);
        self
    }
}

/// The API's routes (the binary adds `/metrics` and `/health/*`).
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/v1/sources/{source}/events", post(submit))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .with_state(ingest)
}

const OPENAPI: &str = include_str!("openapi.json");

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn refused(
    status: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<u32>,
) -> Response {
    metrics::Refused {
        reason,
        detail: &message,
    }
    .emit();
    let mut response = problem(status, message);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

async fn submit(
    State(ingest): State<Arc<Ingest>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    // Everything that can refuse cheaply (token, source, content type, a full pool) is decided
    // from the headers, before the body is read into memory.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bluelight_topics::tokens::bearer);
    let Some((index, source)) = token.and_then(|t| ingest.sources.authenticate_indexed(t)) else {
        let mut r = refused(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required".into(),
            None,
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    };
    if let Err(wait) = ingest.rate_limits.admit(index) {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!(
                "source {:?} is over its request rate; retry after the time given",
                source.name
            ),
            Some(RateLimits::retry_after_secs(wait)),
        );
    }
    if source.name != name {
        return refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token belongs to source {:?}; it cannot publish as {name:?}",
                source.name
            ),
            None,
        );
    }
    let Some(adapter) = ingest.adapters.get(&source.adapter) else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no adapter {:?} loaded", source.adapter),
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !adapter.content_types().contains(&essence.as_str()) {
        return refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            format!(
                "source {name:?} sends {} ({}), not {content_type:?}",
                adapter.name(),
                adapter.content_types().join(" or ")
            ),
            None,
        );
    }

    if ingest.publisher.available() == 0 {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            "saturated",
            "every in-flight slot is taken; nothing of this request was read".into(),
            Some(1),
        );
    }
    let body: Bytes = match axum::body::to_bytes(body, ingest.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the body is over {} bytes; split it", ingest.max_body_bytes),
                None,
            );
        }
    };
    let context = SourceContext {
        org: source.org.clone(),
        system: source.system.clone(),
        received_at: Timestamp::now(),
    };
    // Parsing and validating a large body is CPU work: keep it off the async workers.
    let translation = {
        let (adapter, body, context) = (adapter.clone(), body.clone(), context.clone());
        match tokio::task::spawn_blocking(move || adapter.translate(&body, &context)).await {
            Ok(t) => t,
            Err(e) => {
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("translation failed: {e}"),
                );
            }
        }
    };
    metrics::Translated {
        source: &source.name,
        received: translation.accepted.len() + translation.rejected.len(),
        accepted: translation.accepted.len(),
        rejected_fields: translation
            .rejected
            .iter()
            .map(|r| {
                metrics::field_label(r.problems.first().map_or("(record)", |p| p.field.as_str()))
            })
            .collect(),
    }
    .emit();
    // One span per submission, a child of the caller's trace context when it sent one; the
    // records carry this span's context on to the projector.
    let span = tracing::info_span!("ingest.submission", source = %source.name, records = translation.accepted.len(), trace_id = tracing::field::Empty);
    let traceparent = bluelight_topics::trace::link(
        &span,
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    );
    let started = Instant::now();
    metrics::set_in_flight(ingest.publisher.max_in_flight() - ingest.publisher.available());
    let outcome = ingest
        .publisher
        .publish(Submission {
            input: &body,
            translation: &translation,
            source: &context,
            traceparent: Some(&traceparent),
        })
        .instrument(span.clone())
        .await;
    metrics::set_in_flight(ingest.publisher.max_in_flight() - ingest.publisher.available());
    match outcome {
        Ok(published) => {
            // Inside the submission's span, so the line carries its trace id as a field.
            span.in_scope(|| {
                metrics::Published {
                    source: &source.name,
                    dead_lettered: published.dead_lettered,
                    seconds: started.elapsed().as_secs_f64(),
                    traceparent: &published.traceparent,
                }
                .emit();
            });
            let status = if translation.rejected.is_empty() {
                StatusCode::ACCEPTED
            } else {
                StatusCode::BAD_REQUEST
            };
            let mut response =
                (status, Json(body_for(&translation, &published.traceparent))).into_response();
            if let Ok(v) = published.traceparent.parse() {
                response.headers_mut().insert("traceparent", v);
            }
            response
        }
        Err(e @ (Error::TooManyRecords { .. } | Error::RecordTooLarge(_))) => refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            e.to_string(),
            None,
        ),
        Err(e @ Error::Saturated { .. }) => refused(
            StatusCode::TOO_MANY_REQUESTS,
            "saturated",
            e.to_string(),
            Some(1),
        ),
        Err(e) if e.retryable() => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
            Some(5),
        ),
        Err(e) => {
            tracing::error!(error = %e, "publishing failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

fn body_for(t: &Translation, traceparent: &str) -> serde_json::Value {
    json!({
        "accepted": t.accepted.iter().map(|a| json!({
            "record": a.locator.to_string(),
            "event_id": a.record.envelope().event_id.to_string(),
            "topic": a.record.topic(),
            "key": a.record.key(),
        })).collect::<Vec<_>>(),
        "rejected": t.rejected.iter().map(|r| json!({
            "record": r.locator.to_string(),
            "errors": r.problems.iter().map(|p| json!({ "field": p.field, "problem": p.problem })).collect::<Vec<_>>(),
            "message": r.to_string(),
        })).collect::<Vec<_>>(),
        "dead_lettered": t.rejected.len(),
        "traceparent": traceparent,
    })
}

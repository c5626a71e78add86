//! One trace across the whole path: a source system's request to the ingest API, the projector's
//! work on the event, and the gateway streaming it to a control room, each service exporting its
//! spans over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`) to a collector this test runs, which keeps the
//! spans it receives in memory.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use bluelight_topics::testing::unique;
use common::{
    ensure_canonical_topics, ensure_topics,
    gateway::{CONSULTATION_TOPIC, Sse, start_gateway_env, start_ingest},
    project::{setup, start_projector_env},
};
use serde_json::Value;

const CAD_EXAMPLE: &str = include_str!("../producers/examples/cad-incidents.json");

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
}

type Spans = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP (JSON) trace receiver that keeps every span in memory.
async fn collector() -> (String, Spans) {
    async fn receive(State(spans): State<Spans>, Json(body): Json<Value>) -> Json<Value> {
        let mut got = spans.lock().expect("lock");
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_owned();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let text = |k: &str| s[k].as_str().unwrap_or_default().to_lowercase();
                    got.push(Span {
                        service: service.clone(),
                        name: text("name"),
                        trace_id: text("traceId"),
                        span_id: text("spanId"),
                        parent: text("parentSpanId"),
                    });
                }
            }
        }
        Json(serde_json::json!({}))
    }
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test]
async fn one_trace_spans_ingest_projector_and_gateway() {
    ensure_canonical_topics().await;
    ensure_topics(&[(CONSULTATION_TOPIC, false)]).await;
    let s = setup("trace").await;
    let (endpoint, spans) = collector().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        // The projector's new group reads every earlier test's records on the shared canonical
        // topics first (tens of thousands in the full suite), a span each; the exporter's
        // default queue (2,048 spans) drops spans past it, by design, and could drop this one.
        // Exports stay at the default 512 spans (the collector's 2 MB body limit).
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "200000"),
    ];
    let _projector = start_projector_env(&s, &unique("trace-"), "0", &env).await;
    let (ingest, cad_token) = start_ingest(&s, &env).await;
    let fire_token = format!("fire-{}", unique(""));
    let gateway = start_gateway_env(
        &s,
        &[("fire-control", &s.fire, "control-room", &fire_token)],
        &[],
        &env,
    )
    .await;
    let feed = format!("feed.{}.incident.v1", s.fire);
    let mut stream = Sse::open(&gateway.url, &fire_token, &feed, None, Some("latest")).await;

    // The source system sends its own trace context; everything after joins that trace.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = "00f067aa0ba902b7";
    let mut doc: Value = serde_json::from_str(CAD_EXAMPLE).expect("example");
    let mut rtc = doc["events"][0].clone();
    rtc["incident_id"] = format!("INC-{}", unique("")).into();
    doc["events"] = serde_json::json!([rtc]);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/sources/test-cad/events", ingest.url))
        .bearer_auth(&cad_token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&doc)
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 202);
    let answered = r
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("traceparent answered")
        .to_owned();
    assert!(answered.contains(&trace_id), "{answered}");

    let got = stream.records(1, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 1, "the RTC reaches fire's stream");
    let delivered = got[0].json()["traceparent"]
        .as_str()
        .expect("the stream carries the trace context")
        .to_owned();
    assert!(delivered.contains(&trace_id), "{delivered}");

    // Every service's span of this record, in the one trace, each the parent of the next.
    let deadline = Instant::now() + Duration::from_secs(30);
    let find = |all: &[Span], service: &str, name: &str| {
        all.iter()
            .find(|s| s.trace_id == trace_id && s.service == service && s.name == name)
            .cloned()
    };
    let (ingest_span, project_span, gateway_span) = loop {
        let all = spans.lock().expect("lock").clone();
        let found = (
            find(&all, "bluelight-ingest", "ingest.submission"),
            find(&all, "bluelight-project", "project.event"),
            find(&all, "bluelight-gateway", "gateway.stream"),
        );
        if let (Some(i), Some(p), Some(g)) = found {
            break (i, p, g);
        }
        assert!(
            Instant::now() < deadline,
            "spans of trace {trace_id} so far: {:#?}",
            all.iter()
                .filter(|s| s.trace_id == trace_id)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "trace {trace_id}: caller {caller_span} -> ingest {} -> projector {} -> gateway {}",
        ingest_span.span_id, project_span.span_id, gateway_span.span_id
    );
    assert_eq!(ingest_span.parent, caller_span);
    assert_eq!(project_span.parent, ingest_span.span_id);
    assert_eq!(gateway_span.parent, project_span.span_id);
    assert!(
        delivered.contains(&gateway_span.span_id),
        "the client gets the gateway span's context"
    );
}

//! `bluelight ingest` over HTTP, as a source system meets it: authentication, the answers for good
//! and bad batches, size limits, and the OpenAPI document.

mod common;

use common::{start_registry, start_service};

const CAD_TOKEN: &str = "demo-cad-7f3c9a1e5b2d4086";
const CRM_TOKEN: &str = "demo-crm-2b8e6d0f9a4c1357";
const EXAMPLE: &str = include_str!("../producers/examples/cad-incidents.json");

async fn post(
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

/// The registry, and ingest with the demo sources and `extra` flags.
async fn start_demo_ingest(extra: &[&str]) -> (common::Service, common::Service) {
    common::ensure_canonical_topics().await;
    let (registry, _) = start_registry().await;
    let sources = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/local/demo-sources.toml"
    );
    let mut args = vec![
        "ingest",
        "--sources",
        sources,
        "--schema-registry",
        &registry.url,
    ];
    args.extend_from_slice(extra);
    let ingest = start_service(&args).await;
    (registry, ingest)
}

#[tokio::test]
async fn a_source_system_publishes_and_gets_clear_answers() {
    let (_registry, ingest) = start_demo_ingest(&["--max-body-bytes", "65536"]).await;
    let url = format!("{}/v1/sources/avon-police-cad/events", ingest.url);

    // 202 with the event ids of every record.
    let ok = post(&url, Some(CAD_TOKEN), "application/json", EXAMPLE).await;
    assert_eq!(ok.status(), 202);
    assert!(ok.headers().get("traceparent").is_some());
    let body: serde_json::Value = ok.json().await.expect("json");
    assert_eq!(body["accepted"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["accepted"][0]["topic"], "bl.incident.v1");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(0));

    // 400 lists every problem; the good records of the batch are still published.
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example");
    doc["events"][1]["occurred_at"] = serde_json::json!("soon");
    let bad = post(
        &url,
        Some(CAD_TOKEN),
        "application/json; charset=utf-8",
        doc.to_string(),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert_eq!(body["accepted"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["dead_lettered"], 1);
    assert_eq!(
        body["rejected"][0]["message"],
        "cad JSON /events/1: field occurred_at: \"soon\" is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")"
    );
    assert_eq!(body["rejected"][0]["errors"][0]["field"], "occurred_at");

    // 401 without or with a wrong token; 403 with another source's token.
    assert_eq!(
        post(&url, None, "application/json", EXAMPLE).await.status(),
        401
    );
    let wrong = post(&url, Some("demo-cad-guess"), "application/json", EXAMPLE).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or("")),
        Some("Bearer")
    );
    let other = post(&url, Some(CRM_TOKEN), "application/json", EXAMPLE).await;
    assert_eq!(other.status(), 403);
    let body: serde_json::Value = other.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot publish as \"avon-police-cad\"")
    );

    // 415 for a content type the adapter does not read; 413 over the size limit.
    assert_eq!(
        post(&url, Some(CAD_TOKEN), "text/csv", EXAMPLE)
            .await
            .status(),
        415
    );
    let huge = format!(
        "{{\"events\": [{}]}}",
        vec![r#"{"action":"open"}"#; 5000].join(",")
    );
    assert_eq!(
        post(&url, Some(CAD_TOKEN), "application/json", huge)
            .await
            .status(),
        413
    );

    // The API describes itself.
    let spec: serde_json::Value = reqwest::get(format!("{}/openapi.json", ingest.url))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(spec["paths"]["/v1/sources/{source}/events"]["post"]["responses"]["429"].is_object());
    let metrics = reqwest::get(format!("{}/metrics", ingest.url))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("bluelight_ingest_records_accepted_total{source=\"avon-police-cad\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("bluelight_ingest_requests_refused_total{reason=\"forbidden\"} 1"));
}

#[tokio::test]
async fn a_source_over_its_rate_is_answered_429_and_other_sources_are_not() {
    let (_registry, ingest) =
        start_demo_ingest(&["--rate-limit", "0.2", "--rate-burst", "2"]).await;
    let url = format!("{}/v1/sources/avon-police-cad/events", ingest.url);
    for i in 0..2 {
        let r = post(&url, Some(CAD_TOKEN), "application/json", EXAMPLE).await;
        assert_eq!(r.status(), 202, "request {i}");
    }
    let limited = post(&url, Some(CAD_TOKEN), "application/json", EXAMPLE).await;
    assert_eq!(limited.status(), 429);
    let retry = common::retry_after(&limited);
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = limited.json().await.expect("json");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("rate")),
        "{body}"
    );
    // Another source's token is not slowed by the first one's flood.
    let crm = format!("{}/v1/sources/avon-victim-care-crm/events", ingest.url);
    let other = post(&crm, Some(CRM_TOKEN), "application/json", "{}").await;
    assert_ne!(other.status(), 429);
}

//! A notification provider for the tests: a webhook that fails often, and the notifier.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};

use super::{Service, free_port, start_service};

/// A notification provider: fails the first attempt of every update (503) and every third
/// request, refuses template "refuse-me" (422), and sends each idempotency key's message once.
#[derive(Default)]
pub struct Provider {
    pub requests: usize,
    pub attempts: BTreeMap<String, usize>,
    /// Messages "sent to victims", by idempotency key: each must be 1.
    pub sent: BTreeMap<String, usize>,
    pub case_of: BTreeMap<String, String>,
}

async fn hook(
    State(p): State<Arc<Mutex<Provider>>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut p = p.lock().expect("provider");
    p.requests += 1;
    let n = p.requests;
    let tries = {
        let t = p.attempts.entry(key.clone()).or_default();
        *t += 1;
        *t
    };
    if body["template_id"] == "refuse-me" {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    if tries == 1 || n % 3 == 0 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if !p.sent.contains_key(&key) {
        p.sent.insert(key.clone(), 1);
        p.case_of
            .insert(key, body["case_id"].as_str().unwrap_or_default().to_owned());
    }
    StatusCode::OK
}

pub async fn provider() -> (String, Arc<Mutex<Provider>>) {
    let state = Arc::new(Mutex::new(Provider::default()));
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let app = Router::new()
        .route("/send", post(hook))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/send"), state)
}

pub async fn notifier(registry: &str, webhook: &str, group: &str) -> Service {
    start_service(&[
        "notify",
        "--webhook",
        webhook,
        "--schema-registry",
        registry,
        "--group",
        group,
        "--retry-base",
        "20",
        "--retry-max",
        "1",
        "--max-in-flight",
        "8",
    ])
    .await
}

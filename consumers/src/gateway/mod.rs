//! `bluelight gateway`: the live gateway between the feeds and people.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /v1/me` | any token | who the token is: name, organisation, role |
//! | `GET /v1/feeds` | control-room | the caller's feeds and the agreements behind them |
//! | `GET /v1/feeds/{feed}/events` | control-room, own feeds | Server-Sent Events: the feed decoded to JSON; `?from=latest\|earliest\|<time>`, resumable with `Last-Event-ID` |
//! | `GET /v1/incidents/{id}` | control-room | one incident as the caller's incident feed holds it |
//! | `GET /v1/ops` | ops | the ops page's figures, from every service's `/metrics` |
//! | `/board/` | anyone (signs in with a token) | the control-room board |
//! | `/ops/` | anyone (signs in with an ops token) | the ops page: live charts of the backbone |
//!
//! 401 without a valid token; 403 for a feed that is not the caller's (never data, and the same
//! answer whether or not the feed exists). Every stream opened and incident read writes a DPA 2018
//! s62 consultation record first (`consult.rs`); if it cannot, the read is refused.
//!
//! - `users.rs`: credentials (hashed tokens) with their organisation and role;
//! - `cursor.rs`: stream positions and SSE event ids;
//! - `stream.rs`: one bounded feed stream per client;
//! - `view.rs`: the incident view rebuilt from the feeds;
//! - `consult.rs`: the consultation log;
//! - `ops.rs`: the ops page's figures, scraped from each service;
//! - `board.rs` and `board/`: the web board and the ops page, embedded in the binary;
//! - `metrics.rs`: telemetry.

mod board;
pub mod consult;
pub mod cursor;
mod metrics;
pub mod ops;
pub mod stream;
pub mod users;
pub mod view;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response, sse::KeepAlive, sse::Sse},
    routing::get,
};
use bluelight_avro::{Codec, records::ConsultationAction};
use rdkafka::ClientConfig;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Semaphore, watch};

pub use consult::{CONSULTATION_TOPIC, ConsultationLog, Consulted};
pub use cursor::{Cursor, Start};
pub use stream::{Feed, StreamLimits};
pub use users::{Role, User, Users};
pub use view::View;

use crate::policy::{Entity, Policy};
use bluelight_topics::tokens::RateLimits;

/// A feed as the caller may see it: topic, entity and the agreements behind it.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub feed: Feed,
    /// `(id, title, version)` of each agreement that sends to it.
    pub agreements: Vec<(String, String, String)>,
}

/// Every recipient organisation's feeds, from the agreement files (ended agreements included:
/// what they delivered is still the recipient's to read).
pub fn feeds_by_org(policy: &Policy) -> BTreeMap<String, Vec<FeedEntry>> {
    let mut out: BTreeMap<String, Vec<FeedEntry>> = BTreeMap::new();
    for a in &policy.agreements {
        for &entity in &a.recipient.feeds {
            let topic = crate::project::feed_topic(&a.recipient.org, entity);
            let list = out.entry(a.recipient.org.clone()).or_default();
            let agreement = (a.id.clone(), a.title.clone(), a.version.clone());
            match list.iter_mut().find(|f| f.feed.topic == topic) {
                Some(f) => f.agreements.push(agreement),
                None => list.push(FeedEntry {
                    feed: Feed { topic, entity },
                    agreements: vec![agreement],
                }),
            }
        }
    }
    out
}

/// What the gateway needs.
pub struct Gateway {
    pub users: Users,
    /// Requests per second per user (429 beyond).
    pub rate: RateLimits,
    pub feeds: BTreeMap<String, Vec<FeedEntry>>,
    pub codec: Arc<Codec>,
    /// The Kafka settings every stream's consumer starts from.
    pub kafka: ClientConfig,
    pub consult: ConsultationLog,
    pub view: Arc<View>,
    /// One permit per open stream (`--max-streams`).
    pub streams: Arc<Semaphore>,
    pub limits: StreamLimits,
    /// Flips to true on shutdown: open streams end with a `shutdown` event.
    pub shutdown: watch::Receiver<bool>,
    /// The services the ops page reports on.
    pub ops: ops::Ops,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("users", &self.users)
            .field("feeds", &self.feeds.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Incident feed topics of every recipient: what the view follows.
    pub fn incident_feeds(&self) -> Vec<String> {
        self.feeds
            .values()
            .flatten()
            .filter(|f| f.feed.entity == Entity::Incident)
            .map(|f| f.feed.topic.clone())
            .collect()
    }

    /// The routes: API, board, and the security headers on every answer.
    pub fn router(self: Arc<Self>) -> Router {
        metrics::init();
        Router::new()
            .route("/v1/me", get(me))
            .route("/v1/feeds", get(list_feeds))
            .route("/v1/feeds/{feed}/events", get(events))
            .route("/v1/incidents/{id}", get(incident))
            .route("/v1/ops", get(ops_figures))
            .merge(board::routes())
            .with_state(self)
            .layer(middleware::from_fn(security_headers))
    }

    fn own_feed(&self, user: &User, topic: &str) -> Option<&FeedEntry> {
        if user.role != Role::ControlRoom {
            return None;
        }
        self.feeds
            .get(&user.org)
            .and_then(|l| l.iter().find(|f| f.feed.topic == topic))
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// The caller, or the 401 to send.
#[allow(clippy::result_large_err)] // the error is the response itself, built once per refusal
fn authenticate<'g>(
    gw: &'g Gateway,
    headers: &HeaderMap,
    path: &str,
) -> Result<&'g User, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bluelight_topics::tokens::bearer);
    let refused = |reason, message: &str| {
        metrics::Refused {
            reason,
            path,
            user: None,
        }
        .emit();
        let mut r = problem(StatusCode::UNAUTHORIZED, message);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"bluelight\""),
        );
        r
    };
    match token {
        None => Err(refused(
            "no-token",
            "sign in: send Authorization: Bearer <token>",
        )),
        Some(t) => {
            let (index, user) = gw
                .users
                .authenticate_indexed(t)
                .ok_or_else(|| refused("bad-token", "the token is not valid"))?;
            match gw.rate.admit(index) {
                Ok(()) => Ok(user),
                Err(wait) => {
                    metrics::Refused {
                        reason: "rate-limited",
                        path,
                        user: Some(&user.name),
                    }
                    .emit();
                    let mut r = problem(
                        StatusCode::TOO_MANY_REQUESTS,
                        "this token is over its request rate; retry after the time given",
                    );
                    let secs = RateLimits::retry_after_secs(wait);
                    r.headers_mut().insert(header::RETRY_AFTER, secs.into());
                    Err(r)
                }
            }
        }
    }
}

fn forbidden(user: &User, path: &str) -> Response {
    metrics::Refused {
        reason: "forbidden",
        path,
        user: Some(&user.name),
    }
    .emit();
    problem(
        StatusCode::FORBIDDEN,
        "this credential may not read that: a recipient reads only its own feeds",
    )
}

async fn me(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    match authenticate(&gw, &headers, "/v1/me") {
        Ok(u) => Json(json!({"name": u.name, "org": u.org, "role": u.role.name()})).into_response(),
        Err(r) => r,
    }
}

async fn list_feeds(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let user = match authenticate(&gw, &headers, "/v1/feeds") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let feeds: Vec<_> = if user.role == Role::ControlRoom {
        gw.feeds.get(&user.org).into_iter().flatten().map(|f| {
            json!({
                "feed": f.feed.topic,
                "entity": f.feed.entity.name(),
                "events": format!("/v1/feeds/{}/events", f.feed.topic),
                "agreements": f.agreements.iter().map(|(id, title, version)| json!({"id": id, "title": title, "version": version})).collect::<Vec<_>>(),
            })
        }).collect()
    } else {
        Vec::new()
    };
    Json(json!({"org": user.org, "feeds": feeds})).into_response()
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    from: Option<String>,
    /// For clients that cannot set the Last-Event-ID header.
    last_event_id: Option<String>,
}

async fn events(
    State(gw): State<Arc<Gateway>>,
    Path(topic): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let path = "/v1/feeds/{feed}/events";
    // Who first: a caller without a valid token gets 401 whatever else is wrong.
    let user = match authenticate(&gw, &headers, path) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let Some(entry) = gw.own_feed(&user, &topic).cloned() else {
        return forbidden(&user, path);
    };
    let start = match query {
        Err(e) => Err(format!("the query string does not read: {e}")),
        Ok(Query(q)) => match headers.get("last-event-id").map(HeaderValue::to_str) {
            Some(Err(_)) => Err("Last-Event-ID is not text".to_owned()),
            Some(Ok(id)) => Cursor::parse(id)
                .map(Start::Resume)
                .map_err(|e| format!("Last-Event-ID: {e}")),
            None => match q.last_event_id {
                Some(id) => Cursor::parse(&id)
                    .map(Start::Resume)
                    .map_err(|e| format!("last_event_id: {e}")),
                None => Start::parse_from(q.from.as_deref().unwrap_or("latest")),
            },
        },
    };
    let start = match start {
        Ok(s) => s,
        Err(e) => {
            metrics::Refused {
                reason: "bad-request",
                path,
                user: Some(&user.name),
            }
            .emit();
            return problem(StatusCode::BAD_REQUEST, &e);
        }
    };
    let Ok(permit) = gw.streams.clone().try_acquire_owned() else {
        metrics::Refused {
            reason: "too-many-streams",
            path,
            user: Some(&user.name),
        }
        .emit();
        let mut r = problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open streams; try again shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let opened = {
        let (kafka, limits, topic, start) = (
            gw.kafka.clone(),
            gw.limits.clone(),
            topic.clone(),
            start.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let consumer =
                stream::consumer(&kafka, &limits).map_err(stream::OpenError::Unavailable)?;
            let cursor = stream::resolve(&consumer, &topic, &start, limits.lookup_timeout)?;
            Ok::<_, stream::OpenError>((consumer, cursor))
        })
        .await
    };
    let (consumer, cursor) = match opened {
        Ok(Ok(c)) => c,
        Ok(Err(stream::OpenError::BadPosition(e))) => return problem(StatusCode::BAD_REQUEST, &e),
        Ok(Err(stream::OpenError::Unavailable(e))) => {
            tracing::warn!(error = %e, feed = %topic, "cannot open a stream");
            let mut r = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot open the feed now: {e}"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
        Err(_) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "opening the stream failed",
            );
        }
    };
    let from = start.describe();
    if gw
        .consult
        .log(
            &user,
            Consulted {
                action: ConsultationAction::FeedStreamOpened,
                feed: &topic,
                subject_id: None,
                position: Some(from.clone()),
                found: true,
            },
        )
        .await
        .is_err()
    {
        return consultation_failed();
    }
    metrics::StreamOpened {
        feed: &topic,
        user: &user.name,
        from: &from,
    }
    .emit();
    match stream::start(
        consumer,
        entry.feed,
        cursor,
        gw.codec.clone(),
        &gw.limits,
        stream::Client {
            user: user.name.clone(),
            shutdown: gw.shutdown.clone(),
            permit,
        },
    ) {
        Ok(s) => {
            let mut r = Sse::new(s)
                .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
                .into_response();
            r.headers_mut()
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
        Err(e) => {
            metrics::StreamClosed {
                feed: &topic,
                user: &user.name,
                reason: "broker",
                sent: 0,
            }
            .emit();
            problem(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

async fn ops_figures(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let path = "/v1/ops";
    let user = match authenticate(&gw, &headers, path) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if user.role != Role::Ops {
        return forbidden(user, path);
    }
    Json(gw.ops.snapshot().await).into_response()
}

fn consultation_failed() -> Response {
    let mut r = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the consultation could not be logged, so nothing is shown; try again shortly",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

async fn incident(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = "/v1/incidents/{id}";
    let user = match authenticate(&gw, &headers, path) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let feeds: Vec<&FeedEntry> = if user.role == Role::ControlRoom {
        gw.feeds
            .get(&user.org)
            .into_iter()
            .flatten()
            .filter(|f| f.feed.entity == Entity::Incident)
            .collect()
    } else {
        Vec::new()
    };
    let Some(feed) = feeds.first() else {
        return forbidden(&user, path);
    };
    if !gw.view.is_ready() {
        let mut r = problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the incident view is still being rebuilt from the feeds; try again shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        return r;
    }
    let found = feeds.iter().find_map(|f| gw.view.get(&f.feed.topic, &id));
    if gw
        .consult
        .log(
            &user,
            Consulted {
                action: ConsultationAction::IncidentRead,
                feed: &feed.feed.topic,
                subject_id: Some(&id),
                position: None,
                found: found.is_some(),
            },
        )
        .await
        .is_err()
    {
        return consultation_failed();
    }
    match found {
        Some(v) => Json(v).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no such incident on your feed"),
    }
}

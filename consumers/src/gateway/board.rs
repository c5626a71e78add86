//! The control-room board and the ops page: static assets compiled into the binary (no CDN, no
//! internet), served with the security headers of every gateway answer. They sign in with a
//! token, then use the same API as any client.

use std::sync::Arc;

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Redirect},
    routing::get,
};

use super::Gateway;

const INDEX: &str = include_str!("board/index.html");
const APP_JS: &str = include_str!("board/app.js");
const APP_CSS: &str = include_str!("board/app.css");
const OPS_HTML: &str = include_str!("board/ops.html");
const OPS_JS: &str = include_str!("board/ops.js");

pub(super) fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/board/") }))
        .route("/board", get(|| async { Redirect::to("/board/") }))
        .route(
            "/board/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/board/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/board/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/ops", get(|| async { Redirect::to("/ops/") }))
        .route(
            "/ops/",
            get(|| async { page(OPS_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ops/ops.js",
            get(|| async { page(OPS_JS, "text/javascript; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

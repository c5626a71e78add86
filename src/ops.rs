//! The operations endpoints every service serves on its HTTP port: `/metrics` (Prometheus text),
//! `/health/live` (the process answers) and `/health/ready` (it can do its job; 503 with the reason
//! when not).

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
use prometheus::{Encoder, TextEncoder};

/// Why a service is not ready, or `Ok` when it is.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The ops routes, to merge into a service's own router.
pub fn routes(ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "live\n" }))
        .route(
            "/health/ready",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready() {
                        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                        Err(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {why}\n"),
                        ),
                    }
                }
            }),
        )
}

async fn metrics() -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&prometheus::gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", TextEncoder::new().format_type().to_owned())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain".to_owned())],
            e.to_string().into_bytes(),
        ),
    }
}

/// Binds `addr` and serves `router` until `shutdown` completes, then drains open requests.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(address = %listener.local_addr().unwrap_or(addr), "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// Runs a service whose work is blocking (`work`, on its own thread named `name`, with the
/// runtime's handle for the async calls it makes) and serves the ops routes and `extra` until
/// the work ends or Ctrl-C/SIGTERM asks it to stop (it then finishes its transaction first).
/// Readiness is the work's status: "starting" until it says otherwise.
pub async fn serve_worker<F>(
    listen: SocketAddr,
    extra: Router,
    name: &'static str,
    what: &'static str,
    work: F,
) -> anyhow::Result<std::process::ExitCode>
where
    F: FnOnce(
            tokio::runtime::Handle,
            std::sync::Arc<std::sync::atomic::AtomicBool>,
            std::sync::Arc<bluelight_consumers::eos::Status>,
        ) -> bluelight_consumers::Result<()>
        + Send
        + 'static,
{
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let status = std::sync::Arc::new(bluelight_consumers::eos::Status::default());
    status.set(Some("starting".into()));
    let worker = {
        let (stop, status, rt) = (
            stop.clone(),
            status.clone(),
            tokio::runtime::Handle::current(),
        );
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || work(rt, stop, status))
            .with_context(|| format!("starting {what}"))?
    };
    let ready: Readiness = std::sync::Arc::new(move || status.get().map_or(Ok(()), Err));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let stopper = stop.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            _ = done_rx => {}
        }
        stopper.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let http = tokio::spawn(serve(listen, routes(ready).merge(extra), shutdown));
    let result = tokio::task::spawn_blocking(move || worker.join())
        .await
        .with_context(|| format!("waiting for {what}"))?;
    let _ = done_tx.send(());
    let _ = http.await;
    match result {
        Ok(Ok(())) => Ok(std::process::ExitCode::SUCCESS),
        Ok(Err(e)) => Err(anyhow::anyhow!(e).context(format!("{what} stopped"))),
        Err(_) => anyhow::bail!("{what} panicked"),
    }
}

//! `bluelight gateway`: wiring for the live gateway and the control-room board (the work is in
//! `bluelight_consumers::gateway`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use bluelight_consumers::{
    eos::Status,
    gateway::{
        self, Gateway,
        consult::ConsultationLog,
        ops::{Ops, Target},
        stream::StreamLimits,
        users::Users,
        view::{self, View},
    },
    policy,
};
use bluelight_topics::{KafkaArgs, tokens::RateLimits};
use clap::Args;
use rdkafka::producer::FutureProducer;
use tokio::sync::{Semaphore, watch};

use crate::{ops, schemas::RegistryArgs};

/// Serve recipients' feeds to people: the control-room board, Server-Sent Events and incident
/// look-ups, each read logged.
///
/// Open http://HOST:PORT/ in a browser for the board. The API, for other clients:
///
///   GET /v1/me                      who the token belongs to
///   GET /v1/feeds                   the caller's feeds and the agreements behind them
///   GET /v1/feeds/{feed}/events     the feed as Server-Sent Events; ?from=latest|earliest|
///                                   <RFC 3339 time>|<epoch ms>; resume with Last-Event-ID
///   GET /v1/incidents/{id}          one incident as the caller's feed holds it
///   GET /v1/ops                     (ops role) throughput, lag, disclosures, dead letters and
///                                   Victims' Code deadlines from every --ops-target
///
/// The ops page is at http://HOST:PORT/ops/ (sign in with an ops token).
///
/// Every request needs `Authorization: Bearer <token>`; tokens are listed, hashed, in the --users
/// file, each tied to one recipient organisation and role. A recipient reads only its own feeds
/// (403 otherwise). Every stream opened and every incident read is written to
/// audit.consultation.v1 first (DPA 2018 s62); if that cannot be written, nothing is shown. A client
/// that stops reading is closed with a `lagged` event after --slow-client-grace and resumes from its
/// last id; the gateway's memory does not grow with it.
#[derive(Debug, Args)]
pub struct GatewayCommand {
    /// Address for the board, the API, /metrics and /health/{live,ready}.
    #[arg(
        long,
        env = "BLUELIGHT_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,

    /// The users file: tokens (SHA-256 hashes), each with its organisation and role (see
    /// deploy/local/demo-users.toml for the format).
    #[arg(long, env = "BLUELIGHT_GATEWAY_USERS", value_name = "FILE")]
    users: PathBuf,

    /// Directory of agreement files (`*.toml`): they say which feeds each organisation has.
    #[arg(
        long,
        env = "BLUELIGHT_AGREEMENTS",
        default_value = "agreements",
        value_name = "DIR"
    )]
    agreements: PathBuf,

    /// Most feed streams open at once; past it new ones get 503 with Retry-After.
    #[arg(long, env = "BLUELIGHT_GATEWAY_MAX_STREAMS", default_value = "64", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_streams: u32,

    /// Events buffered per stream between Kafka and the client.
    #[arg(long, env = "BLUELIGHT_GATEWAY_STREAM_BUFFER", default_value = "256", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    stream_buffer: u32,

    /// Seconds a stream's buffer may stay full before the client is closed as lagged.
    #[arg(long, env = "BLUELIGHT_GATEWAY_SLOW_CLIENT_GRACE", default_value = "5", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    slow_client_grace: u64,

    /// Records librdkafka pre-fetches per stream, in KiB (memory per open stream).
    #[arg(long, env = "BLUELIGHT_GATEWAY_PREFETCH_KIB", default_value = "512", value_name = "KIB",
          value_parser = clap::value_parser!(u32).range(16..=65_536))]
    prefetch_kib: u32,

    /// Incidents held in the view behind /v1/incidents (about 4 KiB each); past it the least
    /// recently updated goes.
    #[arg(long, env = "BLUELIGHT_GATEWAY_VIEW_MAX", default_value = "20000", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    view_max_incidents: u32,

    /// Requests per second each user's token may make, beyond its burst; more get 429 with
    /// Retry-After, without slowing anyone else. A board makes a few per minute and holds one
    /// stream open. 0 turns the limit off.
    #[arg(
        long,
        env = "BLUELIGHT_GATEWAY_RATE_LIMIT",
        default_value = "10",
        value_name = "PER_SECOND"
    )]
    rate_limit: f64,

    /// Requests a user's token may make at once before the rate limit applies.
    #[arg(
        long,
        env = "BLUELIGHT_GATEWAY_RATE_BURST",
        default_value = "30",
        value_name = "N"
    )]
    rate_burst: u32,

    /// A service for the ops page, as NAME=URL (its /metrics is scraped); repeat the flag, or
    /// give a comma-separated list in the variable.
    #[arg(long = "ops-target", env = "BLUELIGHT_GATEWAY_OPS_TARGETS", value_name = "NAME=URL",
          value_delimiter = ',', value_parser = parse_target)]
    ops_targets: Vec<Target>,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl GatewayCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let users = Users::load(&self.users)?;
        let today = jiff::Zoned::now().date();
        let policy = policy::load_dir(&self.agreements, today)
            .with_context(|| format!("loading agreements from {}", self.agreements.display()))?;
        let codec = Arc::new(self.registry.codec()?);
        let base = self.kafka.client_config("gateway")?;
        let mut pcfg = base.clone();
        pcfg.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "10000")
            .set("message.timeout.ms", "10000");
        let producer: FutureProducer = pcfg
            .create()
            .context("creating the consultation producer")?;
        let consult = ConsultationLog::new(producer, codec.clone(), Duration::from_secs(10));
        // The first read should not wait on the registry; a registry that is down now is retried
        // by the first read, which is refused until the record can be written.
        if let Err(e) = consult.prepare().await {
            tracing::warn!(error = %e, "cannot register the consultation schema yet; reads wait for it");
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let gw = Arc::new(Gateway {
            rate: RateLimits::new(users.len(), self.rate_limit, self.rate_burst),
            users,
            feeds: gateway::feeds_by_org(&policy),
            codec: codec.clone(),
            kafka: base.clone(),
            consult,
            view: Arc::new(View::new(self.view_max_incidents as usize)),
            streams: Arc::new(Semaphore::new(self.max_streams as usize)),
            limits: StreamLimits {
                buffer: self.stream_buffer as usize,
                grace: Duration::from_secs(self.slow_client_grace),
                prefetch_kib: self.prefetch_kib,
                lookup_timeout: Duration::from_secs(5),
            },
            shutdown: stop_rx.clone(),
            ops: Ops::new(self.ops_targets),
        });
        tracing::info!(
            users = gw.users.iter().count(),
            organisations = gw.feeds.len(),
            feeds = gw.feeds.values().map(Vec::len).sum::<usize>(),
            "gateway configured"
        );
        let status = Arc::new(Status::default());
        status.set(Some("starting".into()));
        let follower = tokio::spawn(view::follow(
            gw.view.clone(),
            base,
            gw.incident_feeds(),
            codec,
            status.clone(),
            stop_rx,
        ));
        let ready: ops::Readiness = Arc::new(move || status.get().map_or(Ok(()), Err));
        let router = gw.clone().router().merge(ops::routes(ready));
        let shutdown = async move {
            ops::shutdown_signal().await;
            // Open streams end now with a resumable `shutdown` event, so the drain is quick.
            let _ = stop_tx.send(true);
        };
        ops::serve(self.listen, router, shutdown).await?;
        match follower.await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the incident view stopped"),
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text)
}

//! `bluelight notify`: wiring for the reference notification client (the work is in
//! `bluelight_consumers::notify`).

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::bail;
use bluelight_consumers::notify::{self, Backoff, NotifyConfig};
use bluelight_topics::KafkaArgs;
use clap::Args;

use crate::{ops, schemas::RegistryArgs};

/// Deliver victim updates to a notification service's webhook, and acknowledge each delivery.
///
/// Reads feed.victim-update.v1 as a consumer group and POSTs each update as JSON (update_id,
/// victim_ref, case_id, right, template_id, parameters, channel, due_by) with an `Idempotency-Key`
/// header holding the update id: the same on every retry and after a restart, so a receiver that
/// honours it sends the victim one message however often it is asked. Server errors, timeouts,
/// 408, 425 and 429 (with Retry-After) are retried with exponential backoff and jitter, for as
/// long as it takes; other 4xx answers refuse the update for good and it goes to dlq.notify.v1.
/// On success an acknowledgement goes to bl.victim-notification-ack.v1, which closes the update's
/// deadline in `bluelight victim-updates`; only then is the update's offset committed.
///
/// Example: bluelight notify --webhook https://notify.example.org/v1/victim-messages
#[derive(Debug, Args)]
pub struct NotifyCommand {
    /// The notification service's endpoint (http or https).
    #[arg(long, env = "BLUELIGHT_NOTIFY_WEBHOOK", value_name = "URL")]
    webhook: String,

    /// Address for /metrics and /health/{live,ready}.
    #[arg(
        long,
        env = "BLUELIGHT_NOTIFY_LISTEN",
        default_value = "127.0.0.1:8085",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,

    /// Consumer group shared by every instance.
    #[arg(
        long,
        env = "BLUELIGHT_NOTIFY_GROUP",
        default_value = "bluelight-notify",
        value_name = "NAME"
    )]
    group: String,

    /// The name acknowledgements give for who delivered.
    #[arg(
        long,
        env = "BLUELIGHT_NOTIFY_NAME",
        default_value = "bluelight-notify",
        value_name = "NAME"
    )]
    name: String,

    /// Updates delivered at once (and read ahead): bounds memory and the load on the webhook.
    #[arg(
        long = "max-in-flight",
        env = "BLUELIGHT_NOTIFY_MAX_IN_FLIGHT",
        default_value_t = 16,
        value_name = "N"
    )]
    max_in_flight: usize,

    /// Time allowed for one request, in seconds.
    #[arg(
        long = "request-timeout",
        env = "BLUELIGHT_NOTIFY_REQUEST_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    request_timeout: u64,

    /// First retry delay, in milliseconds; it doubles on each failure.
    #[arg(
        long = "retry-base",
        env = "BLUELIGHT_NOTIFY_RETRY_BASE_MS",
        default_value_t = 500,
        value_name = "MS"
    )]
    retry_base_ms: u64,

    /// Longest delay between retries, in seconds.
    #[arg(
        long = "retry-max",
        env = "BLUELIGHT_NOTIFY_RETRY_MAX",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    retry_max: u64,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl NotifyCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        if !(self.webhook.starts_with("http://") || self.webhook.starts_with("https://")) {
            bail!(
                "--webhook {:?}: not an http:// or https:// URL",
                self.webhook
            );
        }
        if self.max_in_flight == 0 {
            bail!("--max-in-flight must be at least 1");
        }
        let codec = Arc::new(self.registry.codec()?);
        let cfg = NotifyConfig {
            kafka: self.kafka,
            webhook: self.webhook,
            group: self.group,
            name: self.name,
            max_in_flight: self.max_in_flight,
            request_timeout: Duration::from_secs(self.request_timeout.max(1)),
            backoff: Backoff {
                base: Duration::from_millis(self.retry_base_ms.max(1)),
                max: Duration::from_secs(self.retry_max.max(1)),
            },
        };
        ops::serve_worker(
            self.listen,
            axum::Router::new(),
            "notify",
            "the notifier",
            move |rt, stop, status| rt.block_on(notify::run(cfg, codec, stop, status)),
        )
        .await
    }
}

//! `bluelight victim-updates`: wiring for the Victims' Code service (the work is in
//! `bluelight_consumers::victims`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use bluelight_avro::{
    Codec,
    records::{ContactChannel, Envelope, EventType, Id, Timestamp, VictimNotificationAck},
};
use bluelight_consumers::victims::{
    Calendar, VictimsCode,
    service::{
        self, VictimUpdatesConfig,
        deadlines::{ACK_TOPIC, DEFAULT_SCAN_EVERY},
        open::OpenUpdates,
    },
};
use bluelight_topics::KafkaArgs;
use clap::Args;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use serde_json::json;

use crate::{ops, schemas::RegistryArgs};

/// Turn case events into the updates victims are owed under the Victims' Code.
///
/// Reads bl.case.v1 as a consumer group, and every victim's latest preferences from bl.victim.v1.
/// For each victim of a case event that triggers an entitlement, writes an update to
/// feed.victim-update.v1 (right, trigger, due_by in working days, template and its facts, channel)
/// and a DPA 2018 s62 record to audit.disclosure.v1. A victim who opted out gets nothing, and the
/// decision is audited. Updates, audit records and offsets commit in one Kafka transaction.
/// Records that cannot be read go to dlq.victim-updates.v1.
///
/// Each update stays open until a notification service acknowledges delivery, on
/// bl.victim-notification-ack.v1 (`bluelight notify` writes it) or through the HTTP callback
/// `POST /v1/victim-updates/<update id>/delivered` (optional JSON body: delivered_at as RFC 3339,
/// channel, notifier). An open update within the rules' warning window of its due_by raises a
/// DUE_SOON record on feed.victim-update-overdue.v1, and past due_by an OVERDUE record, each once;
/// the gauges bluelight_victim_updates_due and bluelight_victim_updates_overdue count them by right.
/// Open updates are rebuilt from state.victim-updates.v1 on start.
#[derive(Debug, Args)]
pub struct VictimUpdatesCommand {
    /// Address for /metrics and /health/{live,ready}.
    #[arg(
        long,
        env = "BLUELIGHT_VICTIM_UPDATES_LISTEN",
        default_value = "127.0.0.1:8084",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,

    /// The Victims' Code rules (entitlements, deadlines, templates); the shipped
    /// consumers/victims-code.toml when not given.
    #[arg(long, env = "BLUELIGHT_VICTIMS_CODE", value_name = "FILE")]
    rules: Option<PathBuf>,

    /// The working-day calendar; the shipped England and Wales bank holidays when not given.
    #[arg(long, env = "BLUELIGHT_CALENDAR", value_name = "FILE")]
    calendar: Option<PathBuf>,

    /// Consumer group shared by every instance.
    #[arg(
        long,
        env = "BLUELIGHT_VICTIM_UPDATES_GROUP",
        default_value = "bluelight-victim-updates",
        value_name = "NAME"
    )]
    group: String,

    /// This instance's stable name, unique within the group (it makes the transactional id).
    #[arg(
        long,
        env = "BLUELIGHT_VICTIM_UPDATES_INSTANCE",
        default_value = "0",
        value_name = "ID"
    )]
    instance: String,

    /// Timeout of each transaction step, in seconds.
    #[arg(
        long = "transaction-timeout",
        env = "BLUELIGHT_VICTIM_UPDATES_TRANSACTION_TIMEOUT",
        default_value = "30",
        value_name = "SECONDS"
    )]
    transaction_timeout: u64,

    /// How often to look for open updates that are due soon or overdue, in seconds.
    #[arg(
        long = "scan-every",
        env = "BLUELIGHT_VICTIM_UPDATES_SCAN_EVERY",
        default_value_t = DEFAULT_SCAN_EVERY.as_secs(),
        value_name = "SECONDS"
    )]
    scan_every: u64,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl VictimUpdatesCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (code, text) = match &self.rules {
            Some(path) => (
                VictimsCode::load(path)?,
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
            None => (VictimsCode::shipped()?, VictimsCode::SHIPPED.to_owned()),
        };
        let calendar = match &self.calendar {
            Some(path) => Calendar::load(path)?,
            None => Calendar::england_and_wales()?,
        };
        if code.calendar != calendar.name {
            bail!(
                "the rules ask for the {:?} calendar but {:?} was given",
                code.calendar,
                calendar.name
            );
        }
        let codec = Arc::new(self.registry.codec()?);
        let acks: FutureProducer = self
            .kafka
            .client_config("victim-updates-callback")?
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "15000")
            .create()
            .context("creating the acknowledgement producer")?;
        let mut cfg =
            VictimUpdatesConfig::new(self.kafka, code, calendar, VictimsCode::version_of(&text));
        cfg.scan_every = Duration::from_secs(self.scan_every.max(1));
        cfg.eos.transactional_id = format!("{}-{}", self.group, self.instance);
        cfg.eos.group = self.group;
        cfg.eos.timeout = Duration::from_secs(self.transaction_timeout.max(1));

        let open = Arc::new(OpenUpdates::default());
        let callback = Router::new()
            .route("/v1/victim-updates/{update_id}/delivered", post(delivered))
            .with_state(Callback {
                open: open.clone(),
                codec: codec.clone(),
                producer: acks,
            });
        ops::serve_worker(
            self.listen,
            callback,
            "victim-updates",
            "the victim-updates service",
            move |rt, stop, status| service::run(cfg, codec, rt, open, stop, status),
        )
        .await
    }
}

#[derive(Clone)]
struct Callback {
    open: Arc<OpenUpdates>,
    codec: Arc<Codec>,
    producer: FutureProducer,
}

/// The optional body of an acknowledgement; every field has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Delivered {
    /// When it was delivered (RFC 3339); now when absent.
    delivered_at: Option<String>,
    /// How it reached the victim; the update's channel when absent.
    channel: Option<ContactChannel>,
    /// Which notification service delivered it.
    notifier: Option<String>,
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn refuse(status: StatusCode, error: String) -> Reply {
    service::count_http_ack(status.as_u16());
    (status, Json(json!({ "error": error })))
}

/// `POST /v1/victim-updates/{update_id}/delivered`: writes the acknowledgement that closes an
/// open update, answering 202 once Kafka has it.
async fn delivered(
    State(cb): State<Callback>,
    Path(update_id): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let Ok(id) = update_id.parse::<uuid::Uuid>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("update_id: {update_id:?} is not a UUID (the update's envelope.event_id)"),
        );
    };
    let body: Delivered = if body.iter().all(u8::is_ascii_whitespace) {
        Delivered::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "body: {e} (expected JSON with optional delivered_at, channel, notifier)"
                    ),
                );
            }
        }
    };
    let delivered_at = match &body.delivered_at {
        None => Timestamp::now(),
        Some(t) => match t.parse::<jiff::Timestamp>() {
            Ok(t) => Timestamp(t.as_millisecond()),
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "delivered_at: {t:?} is not an RFC 3339 time such as 2026-11-22T14:05:00Z: {e}"
                    ),
                );
            }
        },
    };
    let Some(open) = cb.open.get(&id.to_string()) else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "no open victim update {id}: unknown to this deployment, or already acknowledged"
            ),
        );
    };
    let mut envelope = Envelope::new(
        EventType::VictimNotified,
        "bluelight-victim-updates-callback",
        "bluelight",
        delivered_at,
    );
    envelope.causation_id = Some(Id(id));
    let ack = VictimNotificationAck {
        envelope,
        update_id: Id(id),
        case_id: open.case_id.clone(),
        right: open.right.clone(),
        delivered_at,
        channel: body.channel.unwrap_or(open.channel),
        notifier: body.notifier.unwrap_or_else(|| "http-callback".to_owned()),
    };
    let payload = match cb.codec.encode(&format!("{ACK_TOPIC}-value"), &ack) {
        Ok(p) => p,
        Err(e) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("encoding the acknowledgement: {e}"),
            );
        }
    };
    let record = FutureRecord::to(ACK_TOPIC)
        .key(open.case_id.as_str())
        .payload(&payload);
    match cb.producer.send(record, Duration::from_secs(5)).await {
        Ok(_) => {
            service::count_http_ack(202);
            (
                StatusCode::ACCEPTED,
                Json(
                    json!({ "update_id": id.to_string(), "case_id": open.case_id, "acknowledged": true }),
                ),
            )
        }
        Err((e, _)) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Kafka did not take the acknowledgement ({e}); retry"),
        ),
    }
}

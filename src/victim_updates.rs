//! `bluelight victim-updates`: wiring for the Victims' Code service (the work is in
//! `bluelight_consumers::victims`).

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::{Context, bail};
use bluelight_consumers::victims::{
    Calendar, VictimsCode,
    service::{self, Status, VictimUpdatesConfig},
};
use bluelight_topics::KafkaArgs;
use clap::Args;

use crate::{ops, schemas::RegistryArgs};

/// Turn case events into the updates victims are owed under the Victims' Code.
///
/// Reads bl.case.v1 as a consumer group, and every victim's latest preferences from bl.victim.v1.
/// For each victim of a case event that triggers an entitlement, writes an update to
/// feed.victim-update.v1 (right, trigger, due_by in working days, template and its facts, channel)
/// and a DPA 2018 s62 record to audit.disclosure.v1. A victim who opted out gets nothing, and the
/// decision is audited. Updates, audit records and offsets commit in one Kafka transaction.
/// Records that cannot be read go to dlq.victim-updates.v1.
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
        let mut cfg =
            VictimUpdatesConfig::new(self.kafka, code, calendar, VictimsCode::version_of(&text));
        cfg.eos.transactional_id = format!("{}-{}", self.group, self.instance);
        cfg.eos.group = self.group;
        cfg.eos.timeout = Duration::from_secs(self.transaction_timeout.max(1));

        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Status::default());
        status.set(Some("starting".into()));
        let worker = {
            let (stop, status, rt) = (
                stop.clone(),
                status.clone(),
                tokio::runtime::Handle::current(),
            );
            std::thread::Builder::new()
                .name("victim-updates".into())
                .spawn(move || service::run(cfg, codec, rt, stop, status))
                .context("starting the victim-updates thread")?
        };
        ops::serve_worker(
            self.listen,
            worker,
            stop,
            status,
            "the victim-updates service",
        )
        .await
    }
}

//! `bluelight context`: wiring for the context view (the work is in
//! `bluelight_consumers::context`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use bluelight_consumers::context::{
    Rules,
    service::{self, ContextConfig, DEFAULT_MAX_SUBJECTS},
};
use bluelight_topics::KafkaArgs;
use clap::Args;

use crate::{ops, schemas::RegistryArgs};

/// Keep each person's and each place's contacts across agencies, and flag repeat demand.
///
/// Right Care, Right Person: a call seen in the light of who it is about and where. Reads
/// bl.incident.v1 and bl.case.v1 and, for every person (by the source's person reference) and
/// place (by UPRN) an event names, keeps the incidents and cases of the last 90 days: which
/// agencies were asked for or attended, incident types, roles, vulnerability markers, open cases.
/// Rules as data (--rules) raise flags such as "repeat welfare concern, 4 contacts in 30 days,
/// last by ambulance", each with its evidence: counts and event ids, never narratives.
///
/// Two exactly-once stages: `route` re-keys each event's observations by subject onto
/// repartition.context-contacts.v1 (group <group>-route), and `fold` keeps each subject's history on
/// the compacted state.context.v1 (group <group>), rebuilt from it on start. Subjects are keyed
/// by keyed pseudonyms (--pseudonym-key-file, the deployment's secret), never by a person
/// reference or a UPRN. Instances with the same group share the work by subject. Records that
/// cannot be read go to dlq.context.v1.
#[derive(Debug, Args)]
pub struct ContextCommand {
    /// Address for /metrics and /health/{live,ready}.
    #[arg(
        long,
        env = "BLUELIGHT_CONTEXT_LISTEN",
        default_value = "127.0.0.1:8086",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,

    /// The flag rules; the shipped consumers/context-rules.toml when not given.
    #[arg(long, env = "BLUELIGHT_CONTEXT_RULES", value_name = "FILE")]
    rules: Option<PathBuf>,

    /// File holding the secret that keys pseudonyms (at least 32 bytes): the projector's, so it
    /// finds the same subjects.
    #[arg(long, env = "BLUELIGHT_PSEUDONYM_KEY_FILE", value_name = "FILE")]
    pseudonym_key_file: PathBuf,

    /// Consumer group shared by every instance (the route stage uses <group>-route).
    #[arg(
        long,
        env = "BLUELIGHT_CONTEXT_GROUP",
        default_value = "bluelight-context",
        value_name = "NAME"
    )]
    group: String,

    /// This instance's stable name, unique within the group (it makes the transactional ids).
    #[arg(
        long,
        env = "BLUELIGHT_CONTEXT_INSTANCE",
        default_value = "0",
        value_name = "ID"
    )]
    instance: String,

    /// Most histories held in memory; past it the least recently seen leave memory (they stay
    /// on state.context.v1).
    #[arg(long, env = "BLUELIGHT_CONTEXT_MAX_SUBJECTS", default_value_t = DEFAULT_MAX_SUBJECTS,
          value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_subjects: u64,

    /// Timeout of each transaction step, in seconds.
    #[arg(
        long = "transaction-timeout",
        env = "BLUELIGHT_CONTEXT_TRANSACTION_TIMEOUT",
        default_value = "30",
        value_name = "SECONDS"
    )]
    transaction_timeout: u64,

    /// Batch window in milliseconds.
    #[arg(long, env = "BLUELIGHT_CONTEXT_BATCH_MS", default_value = "100", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    batch_ms: u64,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl ContextCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let rules = match &self.rules {
            Some(path) => Rules::load(path)?,
            None => Rules::shipped()?,
        };
        let secret = crate::project::pseudonym_key(&self.pseudonym_key_file)?;
        let codec = Arc::new(self.registry.codec()?);
        let mut cfg = ContextConfig::new(self.kafka, &self.group, &self.instance, rules, secret);
        cfg.max_subjects = usize::try_from(self.max_subjects).unwrap_or(usize::MAX);
        cfg.tune(
            Duration::from_secs(self.transaction_timeout.max(1)),
            Duration::from_millis(self.batch_ms),
        );
        ops::serve_worker(
            self.listen,
            axum::Router::new(),
            "context",
            "the context service",
            move |rt, stop, status| service::run(cfg, codec, rt, stop, status),
        )
        .await
    }
}

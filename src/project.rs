//! `bluelight project`: wiring for the projector service (the work is in
//! `bluelight_consumers::project::service`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use bluelight_consumers::{
    context::Rules,
    project::service::{self, ProjectConfig},
};
use bluelight_topics::KafkaArgs;
use clap::Args;

use crate::{ops, schemas::RegistryArgs};

/// Project canonical events into recipients' feeds under the Information Sharing Agreements.
///
/// Reads bl.incident.v1, bl.case.v1 and bl.victim.v1 as a consumer group. For each event and each
/// agreement in force it writes the fields the agreement allows to feed.<recipient>.<entity>.v1 and
/// one DPA 2018 s62 record to audit.disclosure.v1; feeds, audit records, receipts
/// (state.disclosures.v1) and consumer offsets commit in one Kafka transaction, so a crash neither
/// loses nor repeats a disclosure. Retractions and corrections reach exactly the earlier
/// recipients. Records that cannot be read go to dlq.projector.v1. Agreement files are re-read
/// when they change (a change that does not load is refused and the previous set stays in force).
///
/// Run several instances with the same --group and different --instance ids to share the
/// partitions.
#[derive(Debug, Args)]
pub struct ProjectCommand {
    /// Address for /metrics and /health/{live,ready}.
    #[arg(
        long,
        env = "BLUELIGHT_PROJECT_LISTEN",
        default_value = "127.0.0.1:8083",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,

    /// Directory of agreement files (`*.toml`).
    #[arg(
        long,
        env = "BLUELIGHT_AGREEMENTS",
        default_value = "agreements",
        value_name = "DIR"
    )]
    agreements: PathBuf,

    /// File holding the secret that keys pseudonyms (at least 32 bytes; keep it in a secret store).
    /// Changing it changes every pseudonym. Make one with `head -c 32 /dev/urandom | base64`.
    #[arg(long, env = "BLUELIGHT_PSEUDONYM_KEY_FILE", value_name = "FILE")]
    pseudonym_key_file: PathBuf,

    /// Consumer group shared by every instance.
    #[arg(
        long,
        env = "BLUELIGHT_PROJECT_GROUP",
        default_value = "bluelight-project",
        value_name = "NAME"
    )]
    group: String,

    /// This instance's stable name, unique within the group (it makes the transactional id, so a
    /// restarted instance fences its predecessor at once). E.g. the pod's ordinal.
    #[arg(
        long,
        env = "BLUELIGHT_PROJECT_INSTANCE",
        default_value = "0",
        value_name = "ID"
    )]
    instance: String,

    /// Most events per transaction (a backlog is read in batches this large; a trickle commits every --batch-ms).
    #[arg(long, env = "BLUELIGHT_PROJECT_BATCH_MAX", default_value = "10000", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_max: u32,

    /// Batch window in milliseconds: a batch closes this long after the previous one did, so the time spent projecting and committing counts towards it (latency against commits per second).
    #[arg(long, env = "BLUELIGHT_PROJECT_BATCH_MS", default_value = "100", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    batch_ms: u64,

    /// The producer's queue bound in records (and 64 MiB); when full, sending waits for the
    /// broker's acknowledgements and nothing more is consumed meanwhile. The default holds most
    /// of a full batch's output (10,000 events write about 64,000 records); at 100,000 a batch
    /// never waits before its commit, for about 35 MiB more peak memory.
    #[arg(long, env = "BLUELIGHT_PROJECT_QUEUE_MAX", default_value = "50000", value_name = "N",
          value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    queue_max: u32,

    /// Subjects (incidents, cases, victims) whose recipients are held for retractions; past it the
    /// least recently touched is forgotten and counted.
    #[arg(long, env = "BLUELIGHT_PROJECT_RECEIPTS", default_value = "1000000", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    receipts_capacity: u32,

    /// Partitions of feed topics the projector creates.
    #[arg(
        long,
        env = "BLUELIGHT_FEED_PARTITIONS",
        default_value = "6",
        value_name = "N"
    )]
    feed_partitions: i32,

    /// Replication factor of feed topics the projector creates (-1: the broker's default).
    #[arg(
        long,
        env = "BLUELIGHT_FEED_REPLICATION_FACTOR",
        default_value = "-1",
        value_name = "N"
    )]
    replication_factor: i32,

    /// Timeout of each transaction step, in seconds.
    #[arg(
        long = "transaction-timeout",
        env = "BLUELIGHT_PROJECT_TRANSACTION_TIMEOUT",
        default_value = "30",
        value_name = "SECONDS"
    )]
    transaction_timeout: u64,

    /// exactly-once: feeds, audit records, receipts and input offsets commit in one transaction
    /// (nothing lost, nothing repeated; latency includes the --batch-ms commit interval).
    /// at-least-once: no transaction; offsets are committed once every output is acknowledged, so
    /// a crash can repeat a batch's feed and audit records (recognisable: a repeated disclosure
    /// has the same disclosure id), never lose them.
    #[arg(
        long,
        env = "BLUELIGHT_PROJECT_DELIVERY",
        default_value = "exactly-once",
        value_name = "MODE",
        value_parser = ["exactly-once", "at-least-once"]
    )]
    delivery: String,

    /// The context service's flag rules, for the context blocks of agreements with a
    /// [[context]] clause: give the file `bluelight context --rules` has, so feeds carry the
    /// flags it raises. The shipped consumers/context-rules.toml when not given.
    #[arg(long, env = "BLUELIGHT_CONTEXT_RULES", value_name = "FILE")]
    context_rules: Option<PathBuf>,

    /// The context service's consumer group: its records on state.context.v1 are the histories
    /// context blocks are drawn from (read only when an agreement has a [[context]] clause).
    #[arg(
        long,
        env = "BLUELIGHT_CONTEXT_GROUP",
        default_value = "bluelight-context",
        value_name = "NAME"
    )]
    context_group: String,

    /// Most subjects' histories held for context blocks; past it the least recently seen leave
    /// memory (a block about them then shows only the incident in hand).
    #[arg(long, env = "BLUELIGHT_PROJECT_CONTEXT_MAX_SUBJECTS", default_value = "200000", value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..))]
    context_max_subjects: u32,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl ProjectCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let secret = pseudonym_key(&self.pseudonym_key_file)?;
        let codec = Arc::new(self.registry.codec()?);
        let mut cfg = ProjectConfig::new(self.kafka, self.agreements, secret);
        cfg.eos.transactional_id = format!("{}-{}", self.group, self.instance);
        cfg.eos.group = self.group;
        cfg.eos.batch_max = self.batch_max as usize;
        cfg.eos.batch_time = Duration::from_millis(self.batch_ms);
        cfg.eos.queue_max_messages = self.queue_max as usize;
        cfg.receipts_capacity = self.receipts_capacity as usize;
        cfg.feed_partitions = self.feed_partitions;
        cfg.replication_factor = self.replication_factor;
        cfg.eos.timeout = Duration::from_secs(self.transaction_timeout.max(1));
        cfg.eos.delivery = self
            .delivery
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        cfg.context.rules = Arc::new(match &self.context_rules {
            Some(path) => Rules::load(path)?,
            None => Rules::shipped()?,
        });
        cfg.context.group = self.context_group;
        cfg.context.max_subjects = self.context_max_subjects as usize;

        ops::serve_worker(
            self.listen,
            axum::Router::new(),
            "project",
            "the projector",
            move |rt, stop, status| service::run(cfg, codec, rt, stop, status),
        )
        .await
    }
}

/// The deployment's pseudonym secret from `--pseudonym-key-file` (at least 32 bytes).
pub(crate) fn pseudonym_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let secret = std::fs::read(path)
        .with_context(|| format!("reading --pseudonym-key-file {}", path.display()))?;
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < 32 {
        bail!(
            "{} holds {} bytes; a pseudonym key needs at least 32 (make one with `head -c 32 /dev/urandom | base64`)",
            path.display(),
            secret.len()
        );
    }
    Ok(secret)
}

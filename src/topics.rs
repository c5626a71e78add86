//! `bluelight topics`: wiring for the catalogue tools in `bluelight-topics`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use bluelight_topics::{Catalogue, KafkaArgs, Provisioner, TopicStatus};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct TopicsCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create the catalogue's missing topics and report drift. Never deletes a topic, removes
    /// partitions or rewrites a setting; running it twice changes nothing the second time.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Show what would be created without creating it.
        #[arg(long)]
        dry_run: bool,
        /// Exit with status 3 when a topic differs from the catalogue (for CI and deploy checks).
        #[arg(long)]
        fail_on_drift: bool,
    },
    /// Show every catalogue topic against what the broker has, and topics the catalogue lacks.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Validate a catalogue file without contacting a broker; exits non-zero on any problem.
    Check {
        #[command(flatten)]
        file: CatalogueFile,
    },
}

#[derive(Debug, Args)]
struct CatalogueFile {
    /// The catalogue file. Defaults to topics/topics.toml in the current directory, or the
    /// catalogue built into this binary when there is none.
    #[arg(long, env = "BLUELIGHT_CATALOGUE", value_name = "PATH")]
    catalogue: Option<PathBuf>,
}

impl CatalogueFile {
    fn load(&self) -> anyhow::Result<Catalogue> {
        let local = PathBuf::from("topics/topics.toml");
        match &self.catalogue {
            Some(path) => Ok(Catalogue::load(path)?),
            None if local.is_file() => Ok(Catalogue::load(&local)?),
            None => {
                tracing::info!(
                    "no topics/topics.toml here; using the catalogue built into this binary"
                );
                Ok(Catalogue::parse(
                    bluelight_topics::DEFAULT_CATALOGUE,
                    "<built-in topics.toml>",
                )?)
            }
        }
    }
}

#[derive(Debug, Args)]
struct Target {
    #[command(flatten)]
    file: CatalogueFile,

    /// Use this replication factor for every topic instead of the catalogue's (1 on a single-node
    /// development broker; the catalogue's default is for a three-broker cluster).
    #[arg(long, env = "BLUELIGHT_REPLICATION_FACTOR", value_name = "N", value_parser = clap::value_parser!(i16).range(1..))]
    replication_factor: Option<i16>,

    /// How long to wait for the cluster to answer, in seconds.
    #[arg(
        long,
        env = "BLUELIGHT_ADMIN_TIMEOUT",
        default_value = "15",
        value_name = "SECONDS"
    )]
    timeout: u64,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl Target {
    fn open(&self) -> anyhow::Result<(Catalogue, Provisioner)> {
        let mut catalogue = self.file.load()?;
        if let Some(rf) = self.replication_factor {
            catalogue = catalogue.with_replication_factor(rf);
        }
        let provisioner = Provisioner::connect(&self.kafka, Duration::from_secs(self.timeout))
            .context("cannot set up the Kafka admin client")?;
        Ok((catalogue, provisioner))
    }
}

impl TopicsCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.action {
            Action::Check { file } => {
                let catalogue = file.load()?;
                println!(
                    "{}: {} topics, all valid",
                    catalogue.file.display(),
                    catalogue.topics.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Action::List { target } => {
                let (catalogue, provisioner) = target.open()?;
                let plan = provisioner.plan(&catalogue).await?;
                print!("{plan}");
                Ok(ExitCode::SUCCESS)
            }
            Action::Apply {
                target,
                dry_run,
                fail_on_drift,
            } => {
                let (catalogue, provisioner) = target.open()?;
                let plan = if dry_run {
                    provisioner.plan(&catalogue).await?
                } else {
                    provisioner.apply(&catalogue).await?
                };
                print!("{plan}");
                let created = plan.count(|s| *s == TopicStatus::Created);
                let missing = plan.count(|s| *s == TopicStatus::Missing);
                let drifted = plan.count(|s| matches!(s, TopicStatus::Drift(_)));
                let summary = match (created, missing) {
                    (0, 0) => "no change: every catalogue topic exists".to_owned(),
                    (0, n) => format!("dry run: {n} topic(s) would be created"),
                    (n, _) => format!("created {n} topic(s)"),
                };
                println!(
                    "\n{summary}; {drifted} with drift, {} not in the catalogue",
                    plan.unmanaged.len()
                );
                Ok(if fail_on_drift && drifted > 0 {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    }
}

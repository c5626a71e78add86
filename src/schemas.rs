//! `bluelight schemas`: the canonical schema files and their registration.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use bluelight_avro::{Codec, schemas};
use clap::{Args, Subcommand};

/// Where the Confluent-compatible schema registry is.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Schema registry")]
pub struct RegistryArgs {
    /// URL of a Confluent-compatible schema registry: `bluelight registry`, Confluent Schema
    /// Registry, Karapace or Apicurio (its ccompat API).
    #[arg(
        long = "schema-registry",
        env = "BLUELIGHT_SCHEMA_REGISTRY",
        default_value = "http://localhost:8081",
        value_name = "URL"
    )]
    pub url: String,

    /// How long to wait for the registry on each call, in seconds.
    #[arg(
        long = "schema-registry-timeout",
        env = "BLUELIGHT_SCHEMA_REGISTRY_TIMEOUT",
        default_value = "10",
        value_name = "SECONDS"
    )]
    pub timeout: u64,
}

impl RegistryArgs {
    pub fn codec(&self) -> anyhow::Result<Codec> {
        Ok(Codec::new(&self.url, Duration::from_secs(self.timeout))?)
    }
}

#[derive(Debug, Args)]
pub struct SchemasCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Register every canonical schema under its topic's subject (`<topic>-value`). Registering an
    /// unchanged schema again returns the same id; an incompatible change is refused by the registry.
    Register {
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Write the canonical schemas, generated from the typed records, as `.avsc` files.
    Export {
        /// Folder to write into.
        #[arg(long, default_value = "avro/schemas", value_name = "DIR")]
        dir: PathBuf,
    },
}

impl SchemasCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.action {
            Action::Register { registry } => {
                let codec = registry.codec()?;
                let registered = schemas::register_all(&codec).await.with_context(|| {
                    format!("registering the canonical schemas at {}", registry.url)
                })?;
                let width = registered.iter().map(|(s, _)| s.len()).max().unwrap_or(7);
                println!("{:<width$}  ID", "SUBJECT");
                for (subject, id) in &registered {
                    println!("{subject:<width$}  {id}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Action::Export { dir } => {
                for path in schemas::export(&dir)? {
                    println!("wrote {}", path.display());
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

//! The `bluelight` command: one binary for every service and tool of the backbone.
//!
//! This file only parses the command line, installs logging and dispatches; each subcommand's
//! wiring lives in its own module (`topics.rs`, ...) and the work itself in the library crates.
#![allow(clippy::print_stdout)] // a CLI's output is its interface

mod agreements;
mod bench;
mod context;
mod gateway;
mod ingest;
mod notify;
mod ops;
mod project;
mod registry;
mod schemas;
mod simulate;
mod telemetry;
mod topics;
mod victim_updates;

/// mimalloc for every service: the hot paths allocate many small strings and buffers per
/// record, and glibc's malloc and free took about a quarter of the projector's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// bluelight: a governed, observable Kafka backbone for sharing incident and case data between
/// police, fire, ambulance, prosecutors and victim services.
///
/// Every service takes its settings from flags or the matching BLUELIGHT_* environment variables;
/// `bluelight <command> --help` explains each one. The local stack (`deploy/local/up`) starts them all.
#[derive(Debug, Parser)]
#[command(
    name = "bluelight",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Log filter, e.g. `info`, `debug` or `bluelight_topics=debug,rdkafka=warn`.
    #[arg(long, global = true, env = "BLUELIGHT_LOG", default_value = "info")]
    log: String,

    /// Log line format: `text` for people, `json` (one object per line: timestamp, level,
    /// target, fields and the current span) for a log pipeline.
    #[arg(
        long,
        global = true,
        env = "BLUELIGHT_LOG_FORMAT",
        default_value = "text",
        value_enum
    )]
    log_format: telemetry::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Information Sharing Agreements (agreements/*.toml) before they are signed off.
    Agreements(agreements::AgreementsCommand),
    /// Check, create and inspect the topics in the catalogue (topics/topics.toml).
    Topics(topics::TopicsCommand),
    /// Receive source systems' records over HTTP (or load a file), translate and publish them.
    Ingest(Box<ingest::IngestCommand>),
    /// Project canonical events into recipients' feeds under the sharing agreements, exactly once.
    Project(Box<project::ProjectCommand>),
    /// Serve the Confluent-compatible schema registry, stored in the `_schemas` topic.
    Registry(registry::RegistryCommand),
    /// Export the canonical Avro schemas and register them with the schema registry.
    Schemas(schemas::SchemasCommand),
    /// Turn case events into the updates victims are owed under the Victims' Code, exactly once.
    VictimUpdates(Box<victim_updates::VictimUpdatesCommand>),
    /// Keep each person's and place's contacts across agencies, and flag repeat demand (context view).
    Context(Box<context::ContextCommand>),
    /// Deliver victim updates to a notification webhook and acknowledge them (reference client).
    Notify(Box<notify::NotifyCommand>),
    /// Serve feeds to people: the control-room board, live event streams, logged incident reads.
    Gateway(Box<gateway::GatewayCommand>),
    /// Drive the ingest API with realistic, deterministic multi-agency scenarios.
    Simulate(simulate::SimulateCommand),
    /// Measure throughput, latency, CPU and memory against the physical limit on a real broker.
    Bench(bench::BenchCommand),
}

impl Command {
    /// The name traces know this process by (`bluelight-<name>`).
    fn name(&self) -> &'static str {
        match self {
            Command::Agreements(_) => "agreements",
            Command::Topics(_) => "topics",
            Command::Ingest(_) => "ingest",
            Command::Project(_) => "project",
            Command::Registry(_) => "registry",
            Command::Schemas(_) => "schemas",
            Command::VictimUpdates(_) => "victim-updates",
            Command::Context(_) => "context",
            Command::Notify(_) => "notify",
            Command::Gateway(_) => "gateway",
            Command::Simulate(_) => "simulate",
            Command::Bench(_) => "bench",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init(
        &cli.log,
        cli.log_format,
        &format!("bluelight-{}", cli.command.name()),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Agreements(cmd) => cmd.run().await,
            Command::Topics(cmd) => cmd.run().await,
            Command::Gateway(cmd) => cmd.run().await,
            Command::Ingest(cmd) => cmd.run().await,
            Command::Notify(cmd) => cmd.run().await,
            Command::Project(cmd) => cmd.run().await,
            Command::Registry(cmd) => cmd.run().await,
            Command::Schemas(cmd) => cmd.run().await,
            Command::Simulate(cmd) => cmd.run().await,
            Command::Bench(cmd) => cmd.run().await,
            Command::VictimUpdates(cmd) => cmd.run().await,
            Command::Context(cmd) => cmd.run().await,
        }
    });
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `bluelight bench`: the end-to-end throughput and latency harness (the micro-benchmarks are in
//! `benches/`, run by `cargo bench`).
//!
//! - `workload.rs`: the simulator's mix through the real adapters, encoded, each event's output
//!   count found by projecting it in memory (timed: the in-memory figure);
//! - `passthrough.rs`: the limit, the same Kafka work with no decoding or policy;
//! - `child.rs`: each run is its own process, its CPU time and peak memory read from `/proc`;
//! - `e2e.rs`: preload, then each run on the same broker and bytes;
//! - `latency.rs`: publish-to-feed latency at a fixed offered load, in an HdrHistogram;
//! - `report.rs`: the table, `e2e.json` and the chart.

mod child;
mod e2e;
mod latency;
mod passthrough;
mod report;
mod workload;

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use bluelight_avro::records::{CaseEvent, Disclosure, IncidentEvent, VictimEvent};
use bluelight_consumers::{
    policy::{Entity, load_dir},
    project::{Projector, feed_topic},
};
use bluelight_topics::KafkaArgs;
use clap::{Args, Subcommand};

use crate::schemas::RegistryArgs;

/// Measure bluelight against the physical limit on a real broker (see benches/README.md).
#[derive(Debug, Args)]
pub struct BenchCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Preload N canonical events, then measure in one run, on the same broker and bytes: the
    /// passthrough (consume and produce as many records as the projector writes, no decoding or
    /// policy: the limit), the projector exactly-once, and the projector at-least-once. Prints
    /// the table and writes e2e.md, e2e.json and e2e.svg to --out.
    ///
    /// Use a broker of its own: the canonical topics get N more events, and the runs write feeds,
    /// audit records and receipts. `benches/e2e` starts a throwaway broker and registry and runs
    /// this.
    E2e(Box<E2eArgs>),
    /// The passthrough run (started by `e2e` as its own process).
    #[command(hide = true)]
    Passthrough(Box<PassthroughArgs>),
}

#[derive(Debug, Args)]
struct PassthroughArgs {
    #[arg(long)]
    group: String,
    /// The projector's batch settings, read from the same variables so both runs match.
    #[arg(long, env = "BLUELIGHT_PROJECT_BATCH_MAX", default_value = "10000")]
    batch_max: usize,
    #[arg(long, env = "BLUELIGHT_PROJECT_BATCH_MS", default_value = "100")]
    batch_ms: u64,
    #[arg(long, env = "BLUELIGHT_PROJECT_QUEUE_MAX", default_value = "50000")]
    queue_max: usize,
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Debug, Args)]
struct E2eArgs {
    /// Events to preload (the backlog every throughput run reads).
    #[arg(long, default_value = "1000000", value_name = "N")]
    events: u64,

    /// Offered load of the latency runs, events per second.
    #[arg(long, default_value = "5000", value_name = "EVENTS_PER_SECOND")]
    rate: f64,

    /// How long each latency run offers load.
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    latency_seconds: u64,

    /// The agreements the projector runs under.
    #[arg(long, default_value = "benches/agreements", value_name = "DIR")]
    agreements: PathBuf,

    /// Where the results go.
    #[arg(long, default_value = "benches/results", value_name = "DIR")]
    out: PathBuf,

    /// Where the runs' logs and the pseudonym key go.
    #[arg(long, default_value = "target/bench-e2e", value_name = "DIR")]
    work: PathBuf,

    /// Seed of the simulated stories.
    #[arg(long, default_value = "1")]
    seed: u64,

    /// Longest one throughput run may take, in seconds.
    #[arg(long, default_value = "3600", value_name = "SECONDS")]
    run_timeout: u64,

    /// Runs to do (repeat the flag): passthrough, exactly-once, at-least-once. Default: all three.
    #[arg(long = "run", value_name = "NAME", value_parser = ["passthrough", "exactly-once", "at-least-once"])]
    runs: Vec<String>,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl BenchCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.action {
            Action::Passthrough(p) => {
                tokio::task::spawn_blocking(move || {
                    passthrough::run(p.kafka, &p.group, p.batch_max, p.batch_ms, p.queue_max)
                })
                .await??;
                Ok(ExitCode::SUCCESS)
            }
            Action::E2e(args) => e2e_command(*args).await,
        }
    }
}

async fn e2e_command(a: E2eArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.rate > 0.0 && a.rate.is_finite(),
        "--rate must be positive"
    );
    let runs: Vec<String> = if a.runs.is_empty() {
        vec![
            "passthrough".into(),
            "exactly-once".into(),
            "at-least-once".into(),
        ]
    } else {
        a.runs.clone()
    };
    let today = jiff::Zoned::now().date();
    let policy = load_dir(&a.agreements, today)
        .with_context(|| format!("loading agreements from {}", a.agreements.display()))?;
    let mut feeds: Vec<String> = Vec::new();
    for ag in &policy.agreements {
        for e in &ag.recipient.feeds {
            let t = feed_topic(&ag.recipient.org, *e);
            if !feeds.contains(&t) {
                feeds.push(t);
            }
        }
    }
    let agreements = policy.agreements.len();

    // The codec: canonical subjects from the registry; feed subjects only for the in-memory
    // step's encoding (ids far above any the registry gives).
    let codec = Arc::new(a.registry.codec()?);
    for (subject, id) in [
        (
            "bl.incident.v1-value",
            codec
                .register::<IncidentEvent>("bl.incident.v1-value")
                .await?,
        ),
        (
            "bl.case.v1-value",
            codec.register::<CaseEvent>("bl.case.v1-value").await?,
        ),
        (
            "bl.victim.v1-value",
            codec.register::<VictimEvent>("bl.victim.v1-value").await?,
        ),
        (
            "audit.disclosure.v1-value",
            codec
                .register::<Disclosure>("audit.disclosure.v1-value")
                .await?,
        ),
    ] {
        codec.fetch(id).await.with_context(|| subject.to_owned())?;
    }
    for (i, f) in feeds.iter().enumerate() {
        let id = 1_000_000 + u32::try_from(i)?;
        let subject = format!("{f}-value");
        if f.ends_with(&format!(".{}.v1", Entity::Case.name())) {
            codec.preload::<CaseEvent>(id, &subject)?;
        } else if f.ends_with(&format!(".{}.v1", Entity::Victim.name())) {
            codec.preload::<VictimEvent>(id, &subject)?;
        } else {
            codec.preload::<IncidentEvent>(id, &subject)?;
        }
    }

    std::fs::create_dir_all(&a.work)?;
    let key_file = a.work.join("pseudonym.key");
    let secret = b"bluelight bench pseudonym key, 32+ bytes".to_vec();
    std::fs::write(&key_file, &secret)?;
    let projector = Projector::new(Arc::new(policy), &secret, "bench");
    let base = a.kafka.client_config("bench")?;
    e2e::ends(&base)?;
    e2e::ensure_output_topic(&base).await?;

    // Each latency run sends events of its own, never sent before (see `e2e::fresh`).
    let latency_runs = runs.iter().filter(|r| *r != "passthrough").count() as u64;
    let per_latency_run = (a.rate * a.latency_seconds as f64) as u64;
    let (mut pools, workload_events, outputs, inmemory) = {
        let codec = codec.clone();
        let base = base.clone();
        let (events, seed) = (a.events, a.seed);
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut w = workload::Workload::new(seed, &codec, &projector)?;
            tracing::info!(events, "preloading the canonical topics");
            e2e::preload(&base, &mut w, events)?;
            let totals = (w.events, w.outputs, w.inmemory_events_per_s());
            let pools = (0..latency_runs)
                .map(|_| e2e::fresh(&mut w, per_latency_run))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((pools, totals.0, totals.1, totals.2))
        })
        .await??
    };
    let outputs_per_event = outputs as f64 / workload_events.max(1) as f64;
    tracing::info!(
        events = workload_events,
        outputs,
        inmemory_events_per_s = inmemory as u64,
        "preloaded"
    );

    let logs = a.work.join("logs");
    let brokers = a.kafka.brokers.clone();
    let registry = a.registry.url.clone();
    let mut total_events = workload_events;
    let mut results = Vec::new();
    let mut latencies = Vec::new();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for run in &runs {
        let ends = e2e::ends(&base)?;
        let (name, args): (&'static str, Vec<String>) = match run.as_str() {
            "passthrough" => (
                "passthrough",
                vec![
                    "bench".into(),
                    "passthrough".into(),
                    "--group".into(),
                    format!("bench-passthrough-{tag}"),
                ],
            ),
            mode => (
                if mode == "exactly-once" {
                    "projector-eos"
                } else {
                    "projector-at-least-once"
                },
                vec![
                    "project".into(),
                    "--listen".into(),
                    "127.0.0.1:0".into(),
                    "--agreements".into(),
                    a.agreements.display().to_string(),
                    "--pseudonym-key-file".into(),
                    key_file.display().to_string(),
                    "--group".into(),
                    format!("bench-{mode}-{tag}"),
                    "--delivery".into(),
                    mode.into(),
                    "--replication-factor".into(),
                    "1".into(),
                ],
            ),
        };
        let group = args[args.iter().position(|x| x == "--group").unwrap_or(0) + 1].clone();
        tracing::info!(run = name, "starting");
        let service_log = std::env::var("BLUELIGHT_BENCH_LOG").unwrap_or_else(|_| {
            "info,bluelight_consumers::project::service=debug,bluelight_consumers::eos::runner=debug"
                .into()
        });
        let mut service = child::Service::start(
            name,
            &args,
            &[
                ("BLUELIGHT_BROKERS", &brokers),
                ("BLUELIGHT_SCHEMA_REGISTRY", &registry),
                // Per-batch timings (poll, work, commit) in the run's log, for tuning;
                // BLUELIGHT_BENCH_LOG replaces the filter (e.g. to add `rdkafka=debug`).
                ("BLUELIGHT_LOG", &service_log),
            ],
            &logs,
        )?;
        let measured = {
            let base = base.clone();
            let timeout = Duration::from_secs(a.run_timeout);
            tokio::task::spawn_blocking(move || {
                let r = e2e::throughput(
                    name,
                    &mut service,
                    &base,
                    &group,
                    &ends,
                    total_events,
                    outputs_per_event,
                    timeout,
                );
                (r, service)
            })
            .await?
        };
        let (run_result, service) = measured;
        let r = run_result?;
        println!(
            "{name}: {:.0} events/s ({} events in {:.1} s), {:.1} CPU s per million events, peak RSS {:.0} MiB",
            r.events_per_s, r.events, r.seconds, r.cpu_s_per_million, r.peak_rss_mib
        );
        results.push(r);
        if name != "passthrough" {
            let base = base.clone();
            let feeds = feeds.clone();
            let pool = pools.pop().unwrap_or_default();
            let (rate, secs) = (a.rate, a.latency_seconds);
            let l = tokio::task::spawn_blocking(move || {
                latency::measure(&base, &feeds, pool, rate, Duration::from_secs(secs))
            })
            .await??;
            total_events += l.sent;
            println!(
                "{name}: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms at {:.0} events/s ({} of {} disclosures seen)",
                l.ms(0.5),
                l.ms(0.99),
                l.ms(0.999),
                l.offered_per_s,
                l.seen,
                l.expected
            );
            latencies.push((name, l));
        }
        tokio::task::spawn_blocking(move || service.stop()).await??;
    }

    let results = report::Results {
        machine: e2e::machine(),
        date: jiff::Zoned::now().date().to_string(),
        events: workload_events,
        outputs_per_event,
        agreements,
        inmemory_events_per_s: inmemory,
        runs: results,
        latency: latencies,
        rate: a.rate,
    };
    results.write(&a.out)?;
    println!("\n{}", results.markdown());
    println!("written: {}/e2e.md, e2e.json, e2e.svg", a.out.display());
    Ok(ExitCode::SUCCESS)
}

//! `bluelight ingest`: the HTTP ingest API, or (with `--file`) a one-off batch load.

use std::{
    io::{IsTerminal, Read, Write},
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use bluelight_avro::records::Timestamp;
use bluelight_producers::{
    adapters::{SourceContext, Translation},
    ingest::{self, Ingest, Sources},
    publish::{Publisher, PublisherConfig, Submission},
};
use bluelight_topics::KafkaArgs;
use clap::Args;

use crate::{ops, schemas::RegistryArgs};

/// Receive records from source systems over HTTP (`POST /v1/sources/{source}/events`), translate
/// them into the canonical standard, and publish them; or, with `--file`, load one file and exit.
///
/// Answers: 202 all published; 400 some refused (listed; the rest published; refused ones on
/// dlq.ingest.v1); 401/403 bad or someone else's token; 413 too large; 429 or 503 with Retry-After
/// when saturated or the broker is down. The API is described at /openapi.json.
#[derive(Debug, Args)]
pub struct IngestCommand {
    /// Address to serve the API, /metrics and /health/{live,ready} on.
    #[arg(
        long,
        env = "BLUELIGHT_INGEST_LISTEN",
        default_value = "127.0.0.1:8082",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,

    /// The sources file: who may publish, with SHA-256 hashes of their tokens (see
    /// deploy/local/demo-sources.toml for the format).
    #[arg(long, env = "BLUELIGHT_INGEST_SOURCES", value_name = "FILE")]
    sources: PathBuf,

    /// Records admitted and not yet acknowledged by the broker; beyond it requests get 429 (and a
    /// single request holding more records than this gets 413: split it).
    #[arg(long, env = "BLUELIGHT_INGEST_MAX_IN_FLIGHT", default_value = "10000", value_name = "N",
          value_parser = clap::value_parser!(u32).range(2..))]
    max_in_flight: u32,

    /// Largest request body in bytes; larger ones get 413. At most 1000000: a body refused as a
    /// whole is dead-lettered as one Kafka record, and brokers take 1 MB records by default.
    #[arg(long, env = "BLUELIGHT_INGEST_MAX_BODY_BYTES", default_value = "900000", value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1024..=1_000_000))]
    max_body_bytes: u32,

    /// Requests per second each source token may make, beyond its burst; more get 429 with
    /// Retry-After, without slowing other sources. 0 turns the limit off.
    #[arg(
        long,
        env = "BLUELIGHT_INGEST_RATE_LIMIT",
        default_value = "200",
        value_name = "PER_SECOND"
    )]
    rate_limit: f64,

    /// Requests a source token may make at once before the rate limit applies.
    #[arg(
        long,
        env = "BLUELIGHT_INGEST_RATE_BURST",
        default_value = "400",
        value_name = "N"
    )]
    rate_burst: u32,

    /// Batch mode: load this file (or `-` for standard input) and exit instead of serving HTTP.
    #[arg(long, value_name = "PATH", requires = "source")]
    file: Option<PathBuf>,

    /// Batch mode: the source (a name in the sources file) the file comes from.
    #[arg(long, value_name = "NAME", requires = "file")]
    source: Option<String>,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    kafka: KafkaArgs,
}

impl IngestCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let sources = Sources::load(&self.sources)?;
        let codec = Arc::new(self.registry.codec()?);
        let config = PublisherConfig {
            max_in_flight: self.max_in_flight as usize,
            ..PublisherConfig::default()
        };
        let publisher = Arc::new(Publisher::new(
            self.kafka.client_config("ingest")?,
            codec,
            config,
        )?);
        publisher.register().await.with_context(|| {
            format!("registering the canonical schemas at {}", self.registry.url)
        })?;
        if let (Some(file), Some(source)) = (&self.file, &self.source) {
            return batch(&sources, &publisher, file, source).await;
        }
        let ingest = Arc::new(
            Ingest::new(sources, publisher.clone(), self.max_body_bytes as usize)?
                .with_rate_limit(self.rate_limit, self.rate_burst),
        );
        let ready = Arc::new(move || {
            if publisher.available() == 0 {
                Err("every in-flight slot is taken; the broker is not keeping up".to_owned())
            } else {
                Ok(())
            }
        });
        let router = ingest::router(ingest).merge(ops::routes(ready));
        ops::serve(self.listen, router, ops::shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    }
}

async fn batch(
    sources: &Sources,
    publisher: &Publisher,
    file: &PathBuf,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let Some(source) = sources.get(name) else {
        bail!(
            "no source {name:?} in the sources file; known: {}",
            sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let adapter = bluelight_producers::adapters::by_name(&source.adapter)?;
    let input = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    let context = SourceContext {
        org: source.org.clone(),
        system: source.system.clone(),
        received_at: Timestamp::now(),
    };
    let translation = adapter.translate(&input, &context);
    let total = translation.accepted.len() + translation.rejected.len();
    let progress = std::io::stderr().is_terminal();
    // Publish in slices the publisher can admit, so a large file never needs more than its pool.
    let slice = (publisher.max_in_flight() / 2).max(1);
    let (mut done, mut dead) = (0, 0);
    let mut accepted = translation.accepted.iter().peekable();
    let mut rejected = translation.rejected.iter().peekable();
    while accepted.peek().is_some() || rejected.peek().is_some() {
        // At most `slice` records in all, accepted first.
        let accepted_part: Vec<_> = accepted.by_ref().take(slice).cloned().collect();
        let room = slice - accepted_part.len();
        let part = Translation {
            accepted: accepted_part,
            rejected: rejected.by_ref().take(room).cloned().collect(),
        };
        let n = part.accepted.len() + part.rejected.len();
        let mut delay = Duration::from_millis(100);
        let published = loop {
            match publisher
                .publish(Submission {
                    input: &input,
                    translation: &part,
                    source: &context,
                    traceparent: None,
                })
                .await
            {
                Err(bluelight_producers::Error::Saturated { .. }) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => break other?,
            }
        };
        done += n;
        dead += published.dead_lettered;
        if progress {
            let filled = done * 30 / total.max(1);
            eprint!(
                "\r[{}{}] {done}/{total} records",
                "#".repeat(filled),
                " ".repeat(30 - filled)
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    for r in &translation.rejected {
        eprintln!("{r}");
    }
    println!(
        "{}: {} records read, {} accepted, {} rejected, {} dead-lettered to dlq.ingest.v1",
        file.display(),
        total,
        translation.accepted.len(),
        translation.rejected.len(),
        dead
    );
    Ok(if translation.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

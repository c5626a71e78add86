//! `bluelight simulate`: drives the ingest API with deterministic multi-agency scenarios.

use std::{collections::HashMap, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use bluelight_avro::records::Timestamp;
use bluelight_producers::{
    ingest::Sources,
    simulate::{Scenario, Simulator},
};
use clap::Args;

/// Send realistic multi-agency scenarios to the ingest API, in the source systems' own formats, at
/// a steady rate: road traffic collisions (CAD), domestic abuse calls that become cases with arrest,
/// charge and hearing (CAD, victim CRM, RMS), mental-health welfare calls, repeat callers, and floods
/// declared major incidents with an M/ETHANE report (MAIT). The same --seed tells the same stories.
#[derive(Debug, Args)]
pub struct SimulateCommand {
    /// The ingest API.
    #[arg(
        long,
        env = "BLUELIGHT_INGEST",
        default_value = "http://127.0.0.1:8082",
        value_name = "URL"
    )]
    ingest: String,

    /// Sources file with `demo_token`s for the simulated source systems.
    #[arg(
        long,
        env = "BLUELIGHT_INGEST_SOURCES",
        default_value = "deploy/local/demo-sources.toml",
        value_name = "FILE"
    )]
    sources: PathBuf,

    /// Seed for the stories.
    #[arg(long, default_value = "1")]
    seed: u64,

    /// Source records per second to aim for.
    #[arg(long, default_value = "2", value_name = "RECORDS_PER_SECOND")]
    rate: f64,

    /// Stop after this many stories (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    stories: Option<u64>,

    /// Only these scenarios (repeat the flag): rtc, domestic-abuse, welfare, repeat-caller, flood.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
}

impl SimulateCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            bail!("--rate must be a positive number of records per second");
        }
        let sources = Sources::load(&self.sources)?;
        let mut scenarios = Vec::new();
        for name in &self.scenarios {
            let Some(s) = Scenario::ALL.into_iter().find(|s| s.name() == name) else {
                bail!(
                    "unknown scenario {name:?}; known: rtc, domestic-abuse, welfare, repeat-caller, flood"
                );
            };
            scenarios.push(s);
        }
        let mut sim = Simulator::new(self.seed, Timestamp::now(), scenarios);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("HTTP client")?;
        let mut counts: HashMap<u16, u64> = HashMap::new();
        let mut told = 0;
        let stop = crate::ops::shutdown_signal();
        tokio::pin!(stop);
        'stories: while self.stories.is_none_or(|n| told < n) {
            let (scenario, payloads) = sim.next_story();
            tracing::info!(
                scenario = scenario.name(),
                requests = payloads.len(),
                "story"
            );
            for p in payloads {
                let token = sources
                    .get(p.source)
                    .and_then(|s| s.demo_token())
                    .with_context(|| {
                        format!(
                            "{} has no source {:?} with a demo_token",
                            self.sources.display(),
                            p.source
                        )
                    })?;
                let url = format!(
                    "{}/v1/sources/{}/events",
                    self.ingest.trim_end_matches('/'),
                    p.source
                );
                loop {
                    let sent = http
                        .post(&url)
                        .bearer_auth(token)
                        .header("content-type", p.content_type)
                        .body(p.body.clone())
                        .send();
                    let response = tokio::select! {
                        r = sent => r,
                        () = &mut stop => break 'stories,
                    };
                    let wait = match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            *counts.entry(status).or_default() += 1;
                            if matches!(status, 429 | 503) {
                                let secs = r
                                    .headers()
                                    .get("retry-after")
                                    .and_then(|v| v.to_str().ok()?.parse().ok())
                                    .unwrap_or(1);
                                Some(Duration::from_secs(secs))
                            } else {
                                if !r.status().is_success() {
                                    tracing::warn!(status, body = %r.text().await.unwrap_or_default(), "ingest refused a simulated request");
                                }
                                None
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "ingest unreachable; retrying");
                            Some(Duration::from_secs(2))
                        }
                    };
                    let pace = wait
                        .unwrap_or_else(|| Duration::from_secs_f64(p.records as f64 / self.rate));
                    tokio::select! {
                        () = tokio::time::sleep(pace) => {},
                        () = &mut stop => break 'stories,
                    }
                    if wait.is_none() {
                        break;
                    }
                }
            }
            told += 1;
        }
        let mut summary: Vec<_> = counts.into_iter().collect();
        summary.sort_unstable();
        println!(
            "{told} stories sent; responses: {}",
            summary
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ExitCode::SUCCESS)
    }
}

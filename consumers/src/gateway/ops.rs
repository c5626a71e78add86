//! The ops page's figures: the gateway scrapes each service's `/metrics` (the targets given with
//! `--ops-target`, plus its own registry) and sums the series the page charts. Totals only; the
//! page turns successive totals into rates. Scrapes are shared: many open ops pages cost one
//! scrape per service per [`CACHE_FOR`].
//!
//! Health figures only: no feed data, no person, key or incident id ever appears in a metric.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// How long one round of scrapes answers every ops page.
pub const CACHE_FOR: Duration = Duration::from_secs(1);
/// Longest wait for one service's `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/metrics` body read from a service.
const MAX_BODY: usize = 4 << 20;

/// A service to scrape: its name on the page and its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub url: String,
}

impl Target {
    /// `name=http://host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, url) = text.split_once('=').ok_or_else(|| {
            format!("--ops-target {text:?}: expected NAME=URL, e.g. project=http://127.0.0.1:8083")
        })?;
        if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "--ops-target {text:?}: expected NAME=URL with an http(s) URL"
            ));
        }
        Ok(Target {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
        })
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (what every bluelight service serves); comments and lines
/// it cannot read are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"")?;
                // Values escape quotes as \"; find the closing quote that is not escaped.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in after.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let end = end?;
                labels.insert(
                    k.trim_start_matches(',').to_owned(),
                    after[..end].replace("\\\"", "\""),
                );
                rest = after[end + 1..].trim_start_matches(',');
            }
            (name, labels)
        }
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

fn by(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        *out.entry(s.labels.get(label).cloned().unwrap_or_default())
            .or_default() += s.value;
    }
    out
}

/// The figures the page charts, from every service's samples together.
pub fn figures(samples: &[Sample]) -> Value {
    let lag: BTreeMap<&str, f64> = [
        ("projector", "bluelight_projector_consumer_lag"),
        ("victim-updates", "bluelight_victim_updates_consumer_lag"),
        (
            "victim-deadlines",
            "bluelight_victim_deadlines_consumer_lag",
        ),
    ]
    .into_iter()
    .map(|(k, m)| (k, sum(samples, m)))
    .collect();
    json!({
        "in": {
            "ingest_received": sum(samples, "bluelight_ingest_records_received_total"),
            "ingest_accepted": sum(samples, "bluelight_ingest_records_accepted_total"),
            "projector_consumed": sum(samples, "bluelight_projector_events_consumed_total"),
        },
        "out": {
            "disclosures": sum(samples, "bluelight_projector_disclosures_total"),
            "retractions": sum(samples, "bluelight_projector_retractions_sent_total"),
            "victim_updates": sum(samples, "bluelight_victim_updates_written_total"),
            "gateway_events": sum(samples, "bluelight_gateway_events_sent_total"),
        },
        "lag": lag,
        "disclosures_by_agreement": by(samples, "bluelight_projector_disclosures_total", "agreement"),
        "dead_letters": {
            "ingest": sum(samples, "bluelight_ingest_dead_letters_total"),
            "projector": sum(samples, "bluelight_projector_dead_letters_total"),
            "victim-updates": sum(samples, "bluelight_victim_updates_dead_letters_total"),
            "notify": sum(samples, "bluelight_notify_dead_letters_total"),
        },
        "victims_code": {
            "due": sum(samples, "bluelight_victim_updates_due"),
            "overdue": sum(samples, "bluelight_victim_updates_overdue"),
            "open": sum(samples, "bluelight_victim_updates_open"),
        },
        "gateway": {
            "streams_open": sum(samples, "bluelight_gateway_streams_open"),
            "refused": sum(samples, "bluelight_gateway_requests_refused_total"),
        },
    })
}

/// Scrapes the targets (concurrently, each bounded in time and size) and caches the answer.
#[derive(Debug)]
pub struct Ops {
    targets: Vec<Target>,
    http: reqwest::Client,
    /// Held across a refresh, so concurrent pages wait for one round of scrapes instead of
    /// each starting their own.
    cache: tokio::sync::Mutex<Option<(Instant, Value)>>,
}

impl Ops {
    pub fn new(targets: Vec<Target>) -> Self {
        // Without its timeout a hung service would hold every ops page; no client is better.
        #[allow(clippy::expect_used)] // only fails when the TLS backend cannot start, at start-up
        let http = reqwest::Client::builder()
            .timeout(SCRAPE_TIMEOUT)
            .build()
            .expect("an HTTP client for the ops scrapes");
        Ops {
            targets,
            http,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The current figures, at most [`CACHE_FOR`] old.
    pub async fn snapshot(&self) -> Value {
        let mut cache = self.cache.lock().await;
        if let Some((at, v)) = cache.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return v.clone();
        }
        let scrapes = self.targets.iter().map(|t| self.scrape(t));
        let results = futures_util::future::join_all(scrapes).await;
        let mut samples = own_samples();
        let mut services = vec![json!({"name": "gateway", "up": true})];
        for (t, r) in self.targets.iter().zip(results) {
            match r {
                Ok(mut s) => {
                    samples.append(&mut s);
                    services.push(json!({"name": t.name, "up": true}));
                }
                Err(e) => services.push(json!({"name": t.name, "up": false, "error": e})),
            }
        }
        let v = json!({
            "at": jiff::Timestamp::now().as_millisecond(),
            "services": services,
            "figures": figures(&samples),
        });
        *cache = Some((Instant::now(), v.clone()));
        v
    }

    async fn scrape(&self, t: &Target) -> Result<Vec<Sample>, String> {
        let mut r = self
            .http
            .get(format!("{}/metrics", t.url))
            .send()
            .await
            .map_err(|e| format!("{}: {e}", t.url))?;
        if !r.status().is_success() {
            return Err(format!("{}/metrics answered {}", t.url, r.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!(
                    "{}/metrics is larger than {} MiB",
                    t.url,
                    MAX_BODY >> 20
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(parse(&String::from_utf8_lossy(&body)))
    }
}

/// This process's own metrics, as samples.
fn own_samples() -> Vec<Sample> {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    if prometheus::TextEncoder::new()
        .encode(&prometheus::gather(), &mut buf)
        .is_err()
    {
        return Vec::new();
    }
    parse(&String::from_utf8_lossy(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_text_format_and_sums_the_charted_series() {
        let text = r#"# HELP bluelight_projector_disclosures_total Disclosures.
# TYPE bluelight_projector_disclosures_total counter
bluelight_projector_disclosures_total{agreement="isa-fire",recipient="avon-fire"} 7
bluelight_projector_disclosures_total{agreement="isa-amb",recipient="swast"} 3
bluelight_projector_disclosures_total{agreement="isa-fire",recipient="other"} 1
bluelight_projector_consumer_lag{topic="bl.incident.v1",partition="0"} 4
bluelight_victim_updates_overdue{right="a \"quoted\" right"} 2
bluelight_ingest_records_accepted_total 12
not a sample
"#;
        let s = parse(text);
        assert_eq!(s.len(), 6);
        assert_eq!(s[4].labels["right"], "a \"quoted\" right");
        let f = figures(&s);
        assert_eq!(f["out"]["disclosures"], 11.0);
        assert_eq!(f["disclosures_by_agreement"]["isa-fire"], 8.0);
        assert_eq!(f["lag"]["projector"], 4.0);
        assert_eq!(f["victims_code"]["overdue"], 2.0);
        assert_eq!(f["in"]["ingest_accepted"], 12.0);
    }

    #[test]
    fn targets_are_name_equals_url() {
        assert_eq!(
            Target::parse("project=http://127.0.0.1:8083/").expect("ok"),
            Target {
                name: "project".into(),
                url: "http://127.0.0.1:8083".into()
            }
        );
        assert!(Target::parse("http://127.0.0.1:8083").is_err());
        assert!(Target::parse("x=ftp://h").is_err());
    }
}

//! The monitoring configuration in deploy/ stays true to the code: every metric a Grafana panel
//! or an alert rule queries is one a service defines, and Prometheus scrapes every service on
//! the port its command listens on by default. (No broker needed.)

use std::{collections::BTreeSet, path::Path};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `bluelight_*` metric name given as a string literal in the workspace's Rust sources.
fn defined_metrics() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("target") && !path.ends_with(".local") && !path.ends_with(".git")
                {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                for part in text.split("\"bluelight_").skip(1) {
                    let name: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if part[name.len()..].starts_with('"') {
                        out.insert(format!("bluelight_{name}"));
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for dir in [
        "src",
        "producers/src",
        "consumers/src",
        "avro/src",
        "topics/src",
    ] {
        walk(&Path::new(ROOT).join(dir), &mut out);
    }
    out
}

/// The `bluelight_*` names a query text uses, without histogram suffixes.
fn used_in(text: &str) -> BTreeSet<String> {
    text.split("bluelight_")
        .skip(1)
        .map(|part| {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            format!("bluelight_{base}")
        })
        // Job names (bluelight-ingest) and the datasource uid are not metrics.
        .filter(|n| n.len() > "bluelight_".len())
        .collect()
}

#[test]
fn every_dashboard_and_alert_query_names_a_metric_the_services_define() {
    let defined = defined_metrics();
    assert!(
        defined.len() > 40,
        "found only {} metric names",
        defined.len()
    );
    let mut checked = 0;
    let dashboards = Path::new(ROOT).join("deploy/grafana/dashboards");
    for entry in std::fs::read_dir(&dashboards)
        .expect("dashboards")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).expect("read");
        let d: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", entry.path().display()));
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let expr = t["expr"].as_str().expect("expr");
                for m in used_in(expr) {
                    assert!(
                        defined.contains(&m),
                        "panel {:?} queries {m}, which no service defines",
                        p["title"]
                    );
                    checked += 1;
                }
            }
        }
    }
    let alerts = std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/alerts.yml"))
        .expect("alerts");
    for line in alerts
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        for m in used_in(line) {
            assert!(
                defined.contains(&m),
                "alert expression uses {m}, which no service defines"
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "checked only {checked} metric uses");
}

#[test]
fn prometheus_scrapes_every_service_on_its_default_port() {
    let config = std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    for (file, job) in [
        ("src/gateway.rs", "bluelight-gateway"),
        ("src/registry.rs", "bluelight-registry"),
        ("src/ingest.rs", "bluelight-ingest"),
        ("src/project.rs", "bluelight-project"),
        ("src/victim_updates.rs", "bluelight-victim-updates"),
        ("src/notify.rs", "bluelight-notify"),
    ] {
        let src = std::fs::read_to_string(Path::new(ROOT).join(file)).expect("source");
        let port = src
            .split("default_value = \"127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("{file} has no default listen address"));
        let block = config
            .split("- job_name: ")
            .find(|b| b.starts_with(job))
            .unwrap_or_else(|| panic!("no scrape job {job}"));
        assert!(
            block.contains(&format!("127.0.0.1:{port}")),
            "{job} should scrape port {port}"
        );
    }
}

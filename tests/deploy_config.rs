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
        ("src/context.rs", "bluelight-context"),
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

/// Runs `bluelight <args> --help`: clap parses every argument before the help flag, so an
/// unknown flag or a value its parser refuses fails here, as it would when the service starts.
fn parses(args: &[String], environment: &[(String, String)], from: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args(args)
        .arg("--help")
        .envs(environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("BLUELIGHT_BROKERS")
        .output()
        .expect("run bluelight");
    assert!(
        out.status.success(),
        "{from}: `bluelight {}` does not parse: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_compose_service_command_is_one_bluelight_accepts() {
    let compose = std::fs::read_to_string(Path::new(ROOT).join("deploy/compose/compose.yaml"))
        .expect("compose.yaml");
    let mut checked = Vec::new();
    for line in compose.lines() {
        let Some(list) = line.trim_start().strip_prefix("command: ") else {
            continue;
        };
        let args: Vec<String> = serde_json::from_str(list)
            .unwrap_or_else(|e| panic!("compose.yaml: a command is a one-line list ({e}): {line}"));
        parses(&args, &[], "deploy/compose/compose.yaml");
        checked.push(args[0].clone());
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "context",
            "gateway",
            "ingest",
            "notify",
            "project",
            "registry",
            "schemas",
            "topics",
            "victim-updates"
        ]
    );
    // Every service but the brokers and the monitoring runs the bluelight image as the
    // unprivileged user the Dockerfile creates.
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("deploy/docker/Dockerfile"))
        .expect("Dockerfile");
    assert!(dockerfile.contains("USER 10001:10001"));
    assert!(compose.contains("KAFKA_MIN_INSYNC_REPLICAS: 2"));
    assert_eq!(
        compose.matches("image: apache/kafka:").count(),
        1,
        "one broker template"
    );
    for node in ["kafka-1", "kafka-2", "kafka-3"] {
        assert!(compose.contains(&format!("  {node}:\n")), "{node} missing");
    }
}

#[test]
fn every_kubernetes_workload_runs_a_command_bluelight_accepts_with_probes_and_limits() {
    let dir = Path::new(ROOT).join("deploy/k8s");
    let mut workloads = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/k8s").flatten() {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).expect("read");
        if !text.starts_with("# Written by deploy/k8s/generate.py") {
            continue;
        }
        for doc in text.split("---\n").skip(1) {
            let doc: serde_json::Value = serde_json::from_str(doc).expect("generated JSON");
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            if !["Deployment", "StatefulSet", "Job"].contains(&kind.as_str()) {
                continue;
            }
            let pod = &doc["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{path:?}");
            let c = &pod["containers"][0];
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            let args: Vec<String> =
                serde_json::from_value(c["args"].clone()).expect("args are strings");
            // $(POD_NAME) is the pod's name in a cluster; any stable name parses the same.
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("$(POD_NAME)", "project-0"))
                .collect();
            parses(&args, &[], &format!("{path:?}"));
            assert!(
                c["resources"]["limits"]["memory"].is_string(),
                "{name}: no memory limit"
            );
            assert!(
                c["resources"]["limits"]["cpu"].is_string(),
                "{name}: no CPU limit"
            );
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"], true,
                "{name}"
            );
            if kind != "Job" {
                assert_eq!(
                    c["readinessProbe"]["httpGet"]["path"], "/health/ready",
                    "{name}"
                );
                assert_eq!(
                    c["livenessProbe"]["httpGet"]["path"], "/health/live",
                    "{name}"
                );
            }
            workloads.push(format!("{kind}/{name}"));
        }
    }
    workloads.sort();
    assert_eq!(
        workloads,
        [
            "Deployment/gateway",
            "Deployment/ingest",
            "Deployment/registry",
            "Job/schemas-register",
            "Job/topics-apply",
            "StatefulSet/context",
            "StatefulSet/project",
            "StatefulSet/victim-updates",
        ]
    );
}

//! Helpers shared by the end-to-end tests: the real `bluelight` binary as a service, topics with
//! random names, and Kafka clients for the test broker.
#![allow(dead_code)] // each test binary uses a different part

pub mod browser;
pub mod context;
pub mod gateway;
pub mod notify;
pub mod project;
pub mod victims;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bluelight_topics::testing;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
};

/// A `bluelight` service running as a child process; killed when dropped.
pub struct Service {
    pub child: Child,
    pub url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on, never one this process was given before: the OS can hand the
/// same ephemeral port out twice between binds, and two services on one port fail to start.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

pub fn client() -> ClientConfig {
    history();
    testing::kafka().client_config("e2e-test").expect("config")
}

/// Topics every test binary shares by their catalogue names. One `deploy/local/test` run puts
/// all its binaries on one broker, so by the last binary these hold the records of every earlier
/// one: readers and new consumer groups start where each partition ended when this binary
/// started, so a test's waits do not grow with the suite.
const SHARED: &[&str] = &[
    "bl.incident.v1",
    "bl.case.v1",
    "bl.victim.v1",
    "bl.victim-notification-ack.v1",
    "audit.disclosure.v1",
    "audit.consultation.v1",
    "dlq.ingest.v1",
    "dlq.projector.v1",
    "dlq.victim-updates.v1",
    "dlq.notify.v1",
    "feed.victim-update.v1",
    "feed.victim-update-overdue.v1",
];

/// Where each partition of each shared topic that existed ended (high watermark) when this test
/// binary first touched the broker. Taken before anything in the binary writes: every writer
/// goes through [`client`] or [`start_service_env`], which both wait for it.
pub fn history() -> &'static std::collections::BTreeMap<String, Vec<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    static START: std::sync::OnceLock<std::collections::BTreeMap<String, Vec<i64>>> =
        std::sync::OnceLock::new();
    START.get_or_init(|| {
        let consumer: BaseConsumer = testing::kafka()
            .client_config("e2e-test-history")
            .expect("config")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(20))
            .expect("broker metadata (is the test broker running?)");
        let mut start = std::collections::BTreeMap::new();
        for t in metadata.topics() {
            if !SHARED.contains(&t.name()) || t.partitions().is_empty() {
                continue;
            }
            let mut ends = vec![0; t.partitions().len()];
            for p in t.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(t.name(), p.id(), Duration::from_secs(20))
                    .expect("watermarks");
                ends[p.id() as usize] = high;
            }
            start.insert(t.name().to_owned(), ends);
        }
        start
    })
}

/// Commits `group`'s offsets on the shared topics at [`history`], once per group, before its
/// first member starts: a new group would otherwise begin at the earliest record of every
/// earlier test binary. Restarts of the group keep what they committed since.
pub fn start_group_at_history(group: &str) {
    use rdkafka::{
        Offset, TopicPartitionList,
        consumer::{BaseConsumer, CommitMode, Consumer},
    };
    static DONE: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut done = DONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !done.insert(group.to_owned()) {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, ends) in history() {
        for (p, end) in ends.iter().enumerate() {
            tpl.add_partition_offset(topic, p as i32, Offset::Offset(*end))
                .expect("offset");
        }
    }
    if tpl.count() == 0 {
        return;
    }
    let consumer: BaseConsumer = client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("commit the group's start");
}

pub async fn create_topics(names: &[&str], compacted: bool) {
    let admin: AdminClient<DefaultClientContext> = client().create().expect("admin");
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            let t = NewTopic::new(n, 1, TopicReplication::Fixed(1));
            if compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        result.expect("topic created");
    }
}

/// Starts `bluelight <args>` with the test broker, serving HTTP on a free port (`--listen`), and
/// waits until `/health/ready` answers 200.
pub async fn start_service(args: &[&str]) -> Service {
    start_service_env(args, &[]).await
}

/// Not passed on: a file to write the service's standard output and error to (its log lines),
/// instead of the test's own, for tests that read what a service logged.
pub const LOG_TO: &str = "BLUELIGHT_TEST_LOG_TO";

/// `start_service` with extra environment variables.
pub async fn start_service_env(args: &[&str], env: &[(&str, &str)]) -> Service {
    history();
    if let Some(group) = args.windows(2).find(|w| w[0] == "--group").map(|w| w[1]) {
        start_group_at_history(group);
    }
    let port = free_port();
    let (stdout, stderr) = match env.iter().find(|(k, _)| *k == LOG_TO) {
        Some((_, path)) => {
            let file = std::fs::File::create(path).expect("log file");
            (
                Stdio::from(file.try_clone().expect("log file")),
                Stdio::from(file),
            )
        }
        None => (Stdio::inherit(), Stdio::inherit()),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("BLUELIGHT_BROKERS", testing::brokers())
        // After the default: a test may put the service on another listener.
        .envs(env.iter().copied().filter(|(k, _)| *k != LOG_TO))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start bluelight");
    let mut service = Service {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&mut service).await;
    service
}

pub async fn wait_ready(service: &mut Service) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = reqwest::get(format!("{}/health/ready", service.url)).await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!("bluelight exited with {status} before it was ready");
        }
        assert!(
            Instant::now() < deadline,
            "{} was not ready within 60 s",
            service.url
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts `bluelight registry` on its own new registry topic.
pub async fn start_registry() -> (Service, String) {
    let topic = format!("_schemas-{}", testing::unique("t"));
    create_topics(&[&topic], true).await;
    (start_service(&["registry", "--topic", &topic]).await, topic)
}

/// Creates topics the services use by their catalogue names (3 partitions each; `true` for
/// compacted), if missing: another test may have made them already.
pub async fn ensure_topics(topics: &[(&str, bool)]) {
    let admin: AdminClient<DefaultClientContext> = client().create().expect("admin");
    for (topic, compacted) in topics {
        let mut t = NewTopic::new(topic, 3, TopicReplication::Fixed(1));
        if *compacted {
            t = t.set("cleanup.policy", "compact");
        }
        let _ = admin.create_topics([&t], &AdminOptions::new()).await;
    }
}

/// Creates the canonical topics the ingest service writes to, if missing.
pub async fn ensure_canonical_topics() {
    ensure_topics(&[
        ("bl.incident.v1", false),
        ("bl.case.v1", false),
        ("bl.victim.v1", true),
        ("dlq.ingest.v1", false),
    ])
    .await;
}

/// A registry on its own topic with every canonical schema registered, and a codec for it.
pub async fn registry_with_schemas() -> (Service, bluelight_avro::Codec) {
    let (registry, _) = start_registry().await;
    let codec = bluelight_avro::Codec::new(&registry.url, Duration::from_secs(10)).expect("codec");
    bluelight_avro::schemas::register_all(&codec)
        .await
        .expect("register");
    (registry, codec)
}

/// The sum of metric `name`'s series whose line contains `label` ("" for all), from a service's
/// /metrics; `None` while it does not answer.
pub async fn metric_sum(url: &str, name: &str, label: &str) -> Option<f64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// The `Retry-After` of a 429 or 503, in seconds.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

/// The test broker's directory (`deploy/local/test` sets it): `broker.pid`, `command`, `logs/`.
pub fn broker_dir() -> std::path::PathBuf {
    std::env::var("BLUELIGHT_TEST_BROKER_DIR")
        .expect("BLUELIGHT_TEST_BROKER_DIR is not set: run this test through deploy/local/test")
        .into()
}

/// The broker's process id now (a restart changes it).
pub fn broker_pid() -> String {
    std::fs::read_to_string(broker_dir().join("broker.pid"))
        .expect("broker.pid")
        .trim()
        .to_owned()
}

/// Stops the test broker (SIGTERM: a controlled shutdown), starts it again with the same
/// command line and data, and waits until it accepts connections; returns how long it was gone.
#[allow(clippy::zombie_processes)] // the broker outlives this binary; deploy/local/test stops it
pub fn restart_broker() -> Duration {
    let dir = broker_dir();
    let pid = broker_pid();
    let started = Instant::now();
    let alive = |pid: &str| {
        Command::new("kill")
            .args(["-0", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success()),
        "kill -TERM {pid}"
    );
    while alive(&pid) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the broker did not stop within 90 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // BLUELIGHT_TEST_BROKER_DOWN_S keeps it down longer (a slow restart, as in a full run).
    if let Some(s) = std::env::var("BLUELIGHT_TEST_BROKER_DOWN_S")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        std::thread::sleep(Duration::from_secs(s));
    }
    let command = std::fs::read(dir.join("command")).expect("command");
    let argv: Vec<String> = command
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("logs/stdout.log"))
        .expect("broker log");
    // Its own session, as deploy/local/test started it; it outlives this test binary and the
    // script stops it by its new pid.
    let child = Command::new("setsid")
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the broker again");
    std::fs::write(dir.join("broker.pid"), child.id().to_string()).expect("broker.pid");
    let address = testing::brokers();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the broker did not come back within 180 s (see {}/logs)",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// Resumes a SIGSTOPped process however the test ends.
pub struct Paused(pub String);

impl Paused {
    /// Stops `pid` (SIGSTOP) until the guard is dropped.
    pub fn stop(pid: &str) -> Paused {
        let ok = Command::new("kill")
            .args(["-STOP", pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -STOP {pid}");
        Paused(pid.to_owned())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// Resident memory of a process, in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A tiny deterministic generator for kill moments; tests print the seed to replay a run.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number of milliseconds in `lo..hi`.
    pub fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

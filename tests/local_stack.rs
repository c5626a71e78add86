//! `deploy/local/up` as a newcomer runs it: starts the broker and applies the catalogue, keeps data
//! across a broker crash and restart, and leaves no process or port behind on Ctrl-C.
//!
//! Runs the real script against its own ports and state directory, with the test build of the
//! binary (BLUELIGHT_BIN) so it does not start a second cargo build.

mod common;

use common::free_port;
use std::{
    io::{BufRead, BufReader},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use bluelight_topics::testing::{self, unique};
use rdkafka::{
    ClientConfig, Message,
    consumer::{BaseConsumer, Consumer},
    producer::{BaseProducer, BaseRecord, Producer},
};

const READY: &str = "bluelight is up";

struct Stack {
    child: Child,
    lines: mpsc::Receiver<String>,
    state: PathBuf,
}

impl Stack {
    fn start(state: &Path, port: u16, controller: u16, registry: u16, ingest: u16) -> Stack {
        // Through `env --default-signal=INT`: a suite started in the background inherits SIGINT
        // ignored, and a shell cannot trap a signal ignored on entry, so the Ctrl-C below would
        // go unheard (as it would for a user's `up &`). A terminal's Ctrl-C is what is tested.
        let mut child = Command::new("env")
            .arg("--default-signal=INT")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/up"))
            .env("BLUELIGHT_BIN", env!("CARGO_BIN_EXE_bluelight"))
            .env("BLUELIGHT_STATE_DIR", state)
            .env("BLUELIGHT_BROKER_PORT", port.to_string())
            .env("BLUELIGHT_CONTROLLER_PORT", controller.to_string())
            .env("BLUELIGHT_REGISTRY_PORT", registry.to_string())
            .env("BLUELIGHT_INGEST_PORT", ingest.to_string())
            .env("BLUELIGHT_PROJECT_PORT", free_port().to_string())
            .env("BLUELIGHT_VICTIM_UPDATES_PORT", free_port().to_string())
            .env("BLUELIGHT_GATEWAY_PORT", free_port().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start deploy/local/up");
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ] {
            let tx = tx.clone();
            let stream = stream.expect("piped");
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("up | {line}");
                    let _ = tx.send(line);
                }
            });
        }
        let mut stack = Stack {
            child,
            lines,
            state: state.to_owned(),
        };
        stack.wait_for_line(READY, Duration::from_secs(180));
        stack
    }

    fn wait_for_line(&mut self, needle: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(needle) => return seen,
                Ok(line) => seen.push(line),
                Err(_) => {
                    if let Some(status) = self.child.try_wait().expect("poll up") {
                        panic!(
                            "deploy/local/up exited with {status} before printing {needle:?}:\n{}",
                            seen.join("\n")
                        );
                    }
                }
            }
        }
        panic!(
            "deploy/local/up did not print {needle:?} within {limit:?}:\n{}",
            seen.join("\n")
        );
    }

    fn broker_pid(&self) -> String {
        std::fs::read_to_string(self.state.join("broker/broker.pid"))
            .expect("broker.pid")
            .trim()
            .to_owned()
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll up") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "deploy/local/up still running after {limit:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Only matters when an assertion failed half way: never leave a broker running.
        if self.child.try_wait().ok().flatten().is_none() {
            signal("-INT", &self.child.id().to_string());
            let _ = self.wait_exit_quietly();
        }
        if let Ok(pid) = std::fs::read_to_string(self.state.join("broker/broker.pid")) {
            signal("-KILL", pid.trim());
        }
    }
}

impl Stack {
    fn wait_exit_quietly(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        None
    }
}

fn signal(sig: &str, pid: &str) -> bool {
    Command::new("kill")
        .args([sig, pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn alive(pid: &str) -> bool {
    signal("-0", pid)
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = bluelight_topics::KafkaArgs::for_brokers(brokers)
        .client_config("test")
        .expect("config");
    c.set("topic.metadata.refresh.interval.ms", "1000");
    c
}

#[test]
fn up_applies_the_catalogue_keeps_data_across_a_broker_crash_and_cleans_up_on_ctrl_c() {
    // The suite's broker must exist too; this test brings its own in addition.
    let _ = testing::brokers();
    let state = std::env::temp_dir().join(unique("bluelight-up-"));
    let (port, controller, registry, ingest) = (free_port(), free_port(), free_port(), free_port());
    let brokers = format!("127.0.0.1:{port}");

    // 1. One command: broker up, catalogue applied.
    let mut stack = Stack::start(&state, port, controller, registry, ingest);
    // The banner says where the board is and gives each example recipient its demo token.
    stack.wait_for_line("/board/", Duration::from_secs(10));
    for token in ["demo-fire-", "demo-swast-", "demo-ops-"] {
        stack.wait_for_line(token, Duration::from_secs(10));
    }
    let marker = unique("incident-");
    let producer: BaseProducer = client(&brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for i in 0..10 {
        let value = format!("{marker}-{i}");
        producer
            .send(
                BaseRecord::to("bl.incident.v1")
                    .key(&marker)
                    .payload(&value),
            )
            .expect("queue");
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("acknowledged by the broker");
    drop(producer);

    // 2. Kill -9 the broker: up notices, says so, and stops.
    let pid = stack.broker_pid();
    assert!(signal("-KILL", &pid), "kill broker {pid}");
    let status = stack.wait_exit(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(1),
        "up reports the broker's death as a failure"
    );
    assert!(!listening(port));
    drop(stack);

    // 3. Start again on the same state: topics and records are still there.
    let mut stack = Stack::start(&state, port, controller, registry, ingest);
    let list = Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args([
            "topics",
            "list",
            "--replication-factor",
            "1",
            "--brokers",
            &brokers,
            "--catalogue",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/topics/topics.toml"))
        .output()
        .expect("topics list");
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(
        table.contains("bl.incident.v1") && !table.contains("missing") && !table.contains("DRIFT"),
        "{table}"
    );

    let consumer: BaseConsumer = client(&brokers)
        .set("group.id", unique("up-test-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["bl.incident.v1"]).expect("subscribe");
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while found.len() < 10 && Instant::now() < deadline {
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(500))
            && msg.key() == Some(marker.as_bytes())
        {
            found.push(String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned());
        }
    }
    let want: Vec<String> = (0..10).map(|i| format!("{marker}-{i}")).collect();
    assert_eq!(
        found, want,
        "records written before the crash survive the restart"
    );
    drop(consumer);

    // 4. Ctrl-C: everything stops, nothing listens, no process is left.
    let pid = stack.broker_pid();
    assert!(signal("-INT", &stack.child.id().to_string()));
    let status = stack.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "Ctrl-C is a clean stop: {status}");
    assert!(
        !listening(port) && !listening(controller),
        "ports {port}/{controller} still open"
    );
    assert!(!alive(&pid), "broker pid {pid} survived Ctrl-C");
    drop(stack);
    let _ = std::fs::remove_dir_all(&state);
}

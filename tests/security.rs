//! Kafka security end to end: the test broker's SASL_SSL listener (TLS with a certificate made for
//! the run, SCRAM-SHA-512, ACLs enforced; set up by `deploy/local/test`), the ACL set of
//! `deploy/acls.toml` applied to it by `deploy/acls.py`, and the services on it with their own
//! principals. Each works with its own credentials and is refused with another's; the audit
//! topics cannot be written by a service that does not disclose, and cannot be deleted, truncated
//! or reconfigured by any service.

mod common;

use std::{process::Command, time::Duration};

use bluelight_topics::testing::{self, unique};
use common::project::{CAD_SOURCE, cad_source, incident, projector_args, read_all, setup};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
};

/// The secure listener and the CA its certificate chains to.
fn secure_listener() -> (String, String) {
    let get = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run this test through deploy/local/test, which starts the broker with a SASL_SSL listener")
        })
    };
    (
        get("BLUELIGHT_TEST_SASL_BROKERS"),
        get("BLUELIGHT_TEST_SASL_CA"),
    )
}

/// A service's SCRAM user, made for this test.
struct Principal {
    service: &'static str,
    user: String,
    password: String,
}

impl Principal {
    fn new(service: &'static str) -> Self {
        Principal {
            service,
            user: unique(&format!("{service}-")),
            password: format!("{}{}", unique("pw-"), unique("")),
        }
    }

    /// The environment that puts a service on the secure listener as this principal.
    fn env(&self) -> Vec<(&'static str, String)> {
        let (brokers, ca) = secure_listener();
        vec![
            ("BLUELIGHT_BROKERS", brokers),
            ("BLUELIGHT_KAFKA_SECURITY_PROTOCOL", "sasl-ssl".into()),
            ("BLUELIGHT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".into()),
            ("BLUELIGHT_KAFKA_SASL_USERNAME", self.user.clone()),
            ("BLUELIGHT_KAFKA_SASL_PASSWORD", self.password.clone()),
            ("BLUELIGHT_KAFKA_SSL_CA", ca),
        ]
    }

    /// A client of the secure listener as this principal.
    fn client(&self) -> ClientConfig {
        let (brokers, ca) = secure_listener();
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", &self.user)
            .set("sasl.password", &self.password)
            .set("ssl.ca.location", ca);
        c
    }
}

/// Runs `deploy/acls.py` as the administrator (the plaintext listener is a super user there):
/// the principals' SCRAM credentials and `deploy/acls.toml`'s ACLs for their services.
#[allow(clippy::print_stdout)]
fn grant(principals: &[&Principal], groups: &[(&str, &str)]) {
    let python = std::env::var("BLUELIGHT_PYTHON").unwrap_or_else(|_| {
        panic!("BLUELIGHT_PYTHON is not set: run this test through deploy/local/test, which installs the Python Confluent client")
    });
    let dir = std::env::temp_dir().join(unique("scram-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cmd = Command::new(python);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/acls.py"))
        .args(["--bootstrap", &testing::brokers()]);
    for p in principals {
        let file = dir.join(p.service);
        std::fs::write(&file, &p.password).expect("password file");
        cmd.args(["--only", p.service])
            .args(["--principal", &format!("{}={}", p.service, p.user)])
            .arg("--scram-password-file")
            .arg(format!("{}={}", p.service, file.display()));
    }
    for (service, group) in groups {
        cmd.args(["--group", &format!("{service}={group}")]);
    }
    let out = cmd.output().expect("run deploy/acls.py");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "deploy/acls.py failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CAD example with its incident ids made unique to this run; returns it and the ids.
fn cad_batch() -> (String, Vec<String>) {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../producers/examples/cad-incidents.json"))
            .expect("example");
    let u = unique("");
    let mut ids = Vec::new();
    for e in doc["events"].as_array_mut().expect("events") {
        let id = format!("{}-{u}", e["incident_id"].as_str().expect("incident_id"));
        e["incident_id"] = serde_json::json!(id);
        ids.push(id);
    }
    (doc.to_string(), ids)
}

async fn post(ingest: &common::Service, token: &str, body: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/sources/{CAD_SOURCE}/events", ingest.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Starts a service without waiting for it to be ready (with another's credentials it never
/// is), and waits until it answers `/health/live`.
async fn start_unready(args: &[String], env: &[(&'static str, String)]) -> common::Service {
    let port = common::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .expect("start bluelight");
    let service = common::Service {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{}/health/live", service.url))
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "not live in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    service
}

#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread")]
async fn services_work_with_their_own_credentials_and_are_refused_with_anothers() {
    let s = setup("sasl").await;
    let group = unique("project-");
    let ingest_p = Principal::new("ingest");
    let project_p = Principal::new("project");
    grant(&[&ingest_p, &project_p], &[("project", &group)]);
    let (sources, token) = cad_source(&s);
    let ingest_args = [
        "ingest",
        "--sources",
        sources.to_str().expect("path"),
        "--schema-registry",
        &s.registry_url,
    ];

    // Its own credentials: ingest publishes over SASL_SSL, the projector projects over it.
    let ingest_env = ingest_p.env();
    let ingest = common::start_service_env(&ingest_args, &env_refs(&ingest_env)).await;
    let (batch, ids) = cad_batch();
    let (status, body) = post(&ingest, &token, &batch).await;
    assert_eq!(status, 202, "ingest as its own principal: {body}");
    common::start_group_at_history(&group);
    let project_env = project_p.env();
    let args = projector_args(&s, &group, "0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let projector = common::start_service_env(&args, &env_refs(&project_env)).await;
    let topic = format!("feed.{}.incident.v1", s.fire);
    let feed = read_all(&topic, 1, Duration::from_secs(60));
    let keys: Vec<&str> = feed.iter().map(|(k, _, _)| k.as_str()).collect();
    assert!(
        keys.iter().any(|k| ids.iter().any(|id| id == k)),
        "the ingested RTC reached the fire feed through both secured services: {keys:?}"
    );
    println!(
        "own credentials: ingest 202, projector wrote {} record(s) to {topic}",
        feed.len()
    );
    drop(projector);

    // The projector's credentials on ingest: the broker refuses its writes, and the source is
    // told the records were not taken.
    let swapped = project_p.env();
    let wrong = start_unready(&ingest_args.map(str::to_owned), &swapped).await;
    let (batch, ids) = cad_batch();
    let (status, body) = post(&wrong, &token, &batch).await;
    println!("ingest as the projector: {status} {body}");
    assert!(
        status >= 500,
        "ingest with the projector's credentials answered {status}: {body}"
    );
    assert!(
        body.to_lowercase().contains("authori"),
        "the answer says the broker refused: {body}"
    );
    drop(wrong);
    let canonical = read_all("bl.incident.v1", 0, Duration::from_secs(5));
    assert!(
        !canonical.iter().any(|(k, _, _)| ids.contains(k)),
        "nothing of the refused batch reached bl.incident.v1"
    );

    // Ingest's credentials on the projector: the broker refuses it at start-up, and it stops
    // with an error that names the refusal (a misconfiguration, not something to wait out).
    let other_group = unique("project-");
    common::start_group_at_history(&other_group);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_bluelight"))
            .args(projector_args(&s, &other_group, "0"))
            .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
            .envs(ingest_p.env())
            .output()
            .expect("run the projector")
    })
    .await
    .expect("projector");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let why = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    println!("projector as ingest: exit {} and {why}", out.status);
    assert!(
        !out.status.success(),
        "the projector ran with ingest's credentials"
    );
    assert!(
        why.contains("TopicAuthorizationFailed"),
        "its error names the broker's refusal: {stderr}"
    );
}

/// Writing an audit record as ingest, and deleting, truncating or reconfiguring an audit topic
/// as the projector (which writes it): the broker refuses each, and every record stays.
#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread")]
async fn audit_topics_are_append_only_for_every_service() {
    let s = setup("append-only").await;
    common::ensure_topics(&[("audit.consultation.v1", false)]).await;
    let ingest_p = Principal::new("ingest");
    let project_p = Principal::new("project");
    let notify_p = Principal::new("notify");
    let gateway_p = Principal::new("gateway");
    grant(&[&ingest_p, &project_p, &notify_p, &gateway_p], &[]);

    // Services that do not disclose cannot write the disclosure log.
    let record = incident(
        &s,
        "INC-AUDIT",
        "RTC",
        bluelight_avro::records::EventType::IncidentOpened,
    );
    let payload = s
        .codec
        .encode("bl.incident.v1-value", &record)
        .expect("encode");
    for p in [&ingest_p, &notify_p, &gateway_p] {
        let producer: FutureProducer = p
            .client()
            .set("message.timeout.ms", "10000")
            .create()
            .expect("producer");
        let sent = producer
            .send(
                FutureRecord::to("audit.disclosure.v1")
                    .key("forged")
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await;
        let err = sent.expect_err("a forged audit record was accepted").0;
        println!("{} writing audit.disclosure.v1: {err}", p.service);
        assert!(
            err.to_string().contains("authorization"),
            "{}: {err}",
            p.service
        );
    }

    // No service can delete, truncate or reconfigure an audit topic. Each attempt's answer is
    // checked, and then its effect, through the administrator's listener: rust-rdkafka's
    // `alter_configs` reports success whatever the broker answered for the resource.
    let topics = ["audit.disclosure.v1", "audit.consultation.v1"];
    let before: Vec<_> = topics.iter().map(|t| watermarks(t)).collect();
    for p in [&project_p, &ingest_p, &notify_p, &gateway_p] {
        let admin: AdminClient<DefaultClientContext> = p.client().create().expect("admin");
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(15)));
        for topic in topics {
            let mut end = TopicPartitionList::new();
            end.add_partition_offset(topic, 0, Offset::End)
                .expect("tpl");
            let truncated = match admin.delete_records(&end, &opts).await {
                Ok(tpl) => tpl.elements().iter().all(|e| e.error().is_ok()),
                Err(_) => false,
            };
            assert!(!truncated, "{} truncated {topic}", p.service);

            let retention =
                AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "1");
            let _ = admin.alter_configs([&retention], &opts).await;
            assert_ne!(
                retention_ms(topic).await,
                "1",
                "{} set {topic}'s retention to 1 ms",
                p.service
            );

            let deleted = admin.delete_topics(&[topic], &opts).await;
            let deleted = matches!(deleted.as_deref(), Ok([Ok(_)]));
            assert!(!deleted, "{} deleted {topic}", p.service);
        }
        println!(
            "{}: refused deleting records of, reconfiguring and deleting both audit topics",
            p.service
        );
    }
    let after: Vec<_> = topics.iter().map(|t| watermarks(t)).collect();
    assert_eq!(after, before, "both audit topics kept every record");
}

/// A topic's `retention.ms`, read through the plaintext (administrator's) listener; it fails if
/// the topic is gone.
async fn retention_ms(topic: &str) -> String {
    let admin: AdminClient<DefaultClientContext> = common::client().create().expect("admin");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe");
    let config = described
        .into_iter()
        .next()
        .expect("one resource")
        .unwrap_or_else(|e| panic!("{topic} is gone: {e:?}"));
    config
        .get("retention.ms")
        .and_then(|e| e.value.clone())
        .expect("retention.ms")
}

/// (low, high) of each partition, read through the plaintext (administrator's) listener.
fn watermarks(topic: &str) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = common::client().create().expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = md.topics()[0].partitions().len() as i32;
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
        })
        .collect()
}

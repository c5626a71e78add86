//! An independent Confluent client (Python confluent-kafka with fastavro) against `bluelight
//! registry` and the Rust codec, through the real broker: each side decodes what the other produced.

mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use bluelight_avro::{
    Codec,
    records::{EventType, IncidentEvent, samples},
};
use bluelight_topics::testing::{self, unique};
use common::{client, create_topics, start_registry};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

fn python() -> String {
    std::env::var("BLUELIGHT_PYTHON").unwrap_or_else(|_| {
        panic!("BLUELIGHT_PYTHON is not set: run this test through deploy/local/test, which installs the Python Confluent client")
    })
}

#[tokio::test]
async fn python_confluent_client_and_rust_codec_read_each_other_through_bluelight_registry() {
    let rust_topic = format!("{}.v1", unique("bl.interop-rust"));
    let python_topic = format!("{}.v1", unique("bl.interop-python"));
    create_topics(&[&rust_topic, &python_topic], false).await;
    let (registry, _) = start_registry().await;

    // Rust produces every incident event type, fully populated.
    let codec = Codec::new(&registry.url, Duration::from_secs(10)).expect("codec");
    let subject = format!("{rust_topic}-value");
    codec
        .register::<IncidentEvent>(&subject)
        .await
        .expect("register");
    let records: Vec<IncidentEvent> = EventType::ALL
        .iter()
        .filter(|t| t.topic() == "bl.incident.v1")
        .map(|t| samples::incident(*t))
        .collect();
    let producer: FutureProducer = client()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = records
        .iter()
        .map(|r| {
            let payload = codec.encode(&subject, r).expect("encode");
            producer
                .send_result(
                    FutureRecord::to(&rust_topic)
                        .key(r.incident_id.as_str())
                        .payload(&payload),
                )
                .map_err(|(e, _)| e)
                .expect("queue")
        })
        .collect();
    for d in deliveries {
        d.await.expect("delivery").expect("acknowledged");
    }

    // Python decodes them, registers and fetches schemas, and produces its own.
    let dir = std::env::temp_dir().join(unique("bluelight-interop-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let expect = dir.join("expect.json");
    let produced = dir.join("produced.json");
    std::fs::write(&expect, serde_json::to_vec(&records).expect("json")).expect("write expect");
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("avro/schemas/incident.avsc");
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/confluent_interop.py"
        ))
        .args([
            "--brokers",
            &testing::brokers(),
            "--registry",
            &registry.url,
        ])
        .args(["--rust-topic", &rust_topic, "--python-topic", &python_topic])
        .args(["--subject", &format!("{}-python-value", unique("interop"))])
        .arg("--schema")
        .arg(&schema)
        .arg("--expect")
        .arg(&expect)
        .arg("--produced")
        .arg(&produced)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the Python Confluent client failed:\n{stdout}"
    );
    assert!(stdout.contains(&format!(
        "decoded {} Rust records with AvroDeserializer: identical",
        records.len()
    )));

    // Rust decodes what Python produced, into the typed records, field for field.
    let want: Vec<IncidentEvent> =
        serde_json::from_slice(&std::fs::read(&produced).expect("produced.json"))
            .expect("typed records");
    let consumer: StreamConsumer = client()
        .set("group.id", unique("interop-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&python_topic]).expect("subscribe");
    let mut got = Vec::new();
    while got.len() < want.len() {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a Python record within 30 s")
            .expect("record");
        got.push(
            codec
                .decode::<IncidentEvent>(msg.payload().expect("payload"))
                .await
                .expect("decode Python record"),
        );
    }
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}

//! The publisher against the real broker: accepted records on their topics, every rejected record
//! on the dead-letter topic with its original bytes and the error, and refusal when saturated.

use std::{collections::HashMap, time::Duration};

use bluelight_avro::records::{IncidentEvent, Timestamp};
use bluelight_producers::{
    Error,
    adapters::{Adapter, SourceContext, cad::Cad},
};
use bluelight_topics::testing::unique;
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
};

mod common;

use common::{client, header, read_all, setup};

const EXAMPLE: &str = include_str!("../examples/cad-incidents.json");

fn source() -> SourceContext {
    SourceContext {
        org: "avon-police".into(),
        system: "cad".into(),
        received_at: Timestamp(1_795_300_000_000),
    }
}

#[tokio::test]
async fn accepted_records_reach_their_topic_and_every_bad_one_the_dead_letter_topic_with_its_bytes()
{
    let (publisher, topics, codec) = setup(1000).await;
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example");
    let events = doc["events"].as_array_mut().expect("events");
    let mut bad = events[0].clone();
    bad["location"]["postcode"] = serde_json::json!("BS1");
    events.push(bad);
    let mut worse = events[1].clone();
    worse["occurred_at"] = serde_json::json!("last Tuesday");
    worse["type"] = serde_json::json!("UFO");
    events.push(worse);
    let input = serde_json::to_string_pretty(&doc).expect("json");
    let translation = Cad::new()
        .expect("cad")
        .translate(input.as_bytes(), &source());
    assert_eq!(
        (translation.accepted.len(), translation.rejected.len()),
        (3, 2)
    );

    let submission = bluelight_producers::publish::Submission {
        input: input.as_bytes(),
        translation: &translation,
        source: &source(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    };
    let published = publisher.publish(submission).await.expect("publish");
    assert_eq!(published.event_ids.len(), 3);
    assert_eq!(published.dead_lettered, 2);

    let records = read_all(&topics.incident, 3).await;
    for msg in &records {
        let r: IncidentEvent = codec
            .decode_cached(msg.payload().expect("payload"))
            .expect("decode");
        assert_eq!(msg.key(), Some(r.incident_id.as_bytes()));
        assert!(published.event_ids.contains(&r.envelope.event_id));
        // The context the caller publishes under (its span: the ingest API makes one per
        // submission, a child of the source system's), carried as given.
        let tp = header(msg, "traceparent").expect("traceparent");
        assert_eq!(
            tp,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(tp, published.traceparent);
        assert_eq!(
            header(msg, "bl-event-id"),
            Some(r.envelope.event_id.to_string())
        );
    }

    let dead = read_all(&topics.dead_letter, 2).await;
    let by_record: HashMap<String, &rdkafka::message::OwnedMessage> = dead
        .iter()
        .map(|m| (header(m, "bl-record").expect("bl-record"), m))
        .collect();
    for rejected in &translation.rejected {
        let msg = by_record[&rejected.locator.to_string()];
        assert_eq!(
            msg.payload(),
            Some(&input.as_bytes()[rejected.span.clone()]),
            "original bytes, exactly"
        );
        assert_eq!(header(msg, "bl-error"), Some(rejected.to_string()));
        assert_eq!(header(msg, "bl-source").as_deref(), Some("avon-police"));
        assert_eq!(header(msg, "bl-adapter").as_deref(), Some("cad"));
        assert!(header(msg, "bl-received-at").is_some());
    }
    assert_eq!(
        header(by_record["JSON /events/3"], "bl-error").as_deref(),
        Some(
            "cad JSON /events/3: field location.postcode: \"BS1\" is not a UK postcode (e.g. \"BS1 6HG\")"
        )
    );
}

#[tokio::test]
async fn a_submission_larger_than_the_pool_is_refused_whole_and_nothing_is_sent() {
    let (publisher, topics, _) = setup(2).await;
    let translation = Cad::new()
        .expect("cad")
        .translate(EXAMPLE.as_bytes(), &source());
    assert_eq!(translation.accepted.len(), 3);
    let err = publisher
        .publish(bluelight_producers::publish::Submission {
            input: EXAMPLE.as_bytes(),
            translation: &translation,
            source: &source(),
            traceparent: None,
        })
        .await
        .expect_err("3 records, 2 slots");
    // More records than the pool could ever hold: a retry would never succeed, so it is not
    // "saturated, retry" but "too many, split it".
    assert!(
        matches!(
            err,
            Error::TooManyRecords {
                records: 3,
                limit: 2
            }
        ),
        "{err:?}"
    );
    assert!(!err.retryable());
    assert_eq!(
        publisher.available(),
        2,
        "a refused submission holds no slots"
    );
    let consumer: StreamConsumer = client()
        .set("group.id", unique("empty-"))
        .create()
        .expect("consumer");
    let mut total = 0;
    for partition in 0..3 {
        // A topic this new may not be in the client's metadata yet: ask until it is.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let (low, high) = loop {
            match consumer.fetch_watermarks(&topics.incident, partition, Duration::from_secs(5)) {
                Ok(w) => break w,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("watermarks not yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("watermarks: {e}"),
            }
        };
        total += high - low;
    }
    let (low, high) = (0, total);
    assert_eq!(
        high - low,
        0,
        "nothing of a refused submission reaches the topic"
    );
}

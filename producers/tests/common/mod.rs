//! Shared by the producers' broker tests: a publisher on freshly made topics, and reading back.
#![allow(dead_code)] // each test binary uses a different part

use std::{sync::Arc, time::Duration};

use bluelight_avro::{
    Codec,
    records::{CaseEvent, IncidentEvent, VictimEvent},
};
use bluelight_producers::publish::{Publisher, PublisherConfig, Topics, subject};
use bluelight_topics::testing::{self, unique};
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, StreamConsumer},
    message::{Headers, OwnedMessage},
};

pub fn client() -> ClientConfig {
    testing::kafka()
        .client_config("producers-test")
        .expect("config")
}

/// A publisher writing to new, randomly named topics (3 partitions each). The schemas are
/// preloaded under those topics' subjects: these tests are about the broker path, not the registry.
pub async fn setup(max_in_flight: usize) -> (Publisher, Topics, Arc<Codec>) {
    let topics = Topics {
        incident: format!("{}.v1", unique("bl.testinc")),
        case: format!("{}.v1", unique("bl.testcase")),
        victim: format!("{}.v1", unique("bl.testvic")),
        dead_letter: format!("{}.v1", unique("dlq.test")),
    };
    let admin: AdminClient<DefaultClientContext> = client().create().expect("admin");
    let new: Vec<NewTopic<'_>> = [
        &topics.incident,
        &topics.case,
        &topics.victim,
        &topics.dead_letter,
    ]
    .into_iter()
    .map(|t| NewTopic::new(t, 3, TopicReplication::Fixed(1)))
    .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create")
    {
        r.expect("created");
    }
    let codec = Arc::new(Codec::new("http://127.0.0.1:9", Duration::from_secs(1)).expect("codec"));
    codec
        .preload::<IncidentEvent>(1, &subject(&topics.incident))
        .expect("preload");
    codec
        .preload::<CaseEvent>(2, &subject(&topics.case))
        .expect("preload");
    codec
        .preload::<VictimEvent>(3, &subject(&topics.victim))
        .expect("preload");
    let config = PublisherConfig {
        topics: topics.clone(),
        max_in_flight,
        delivery_timeout: Duration::from_secs(30),
    };
    (
        Publisher::new(client(), codec.clone(), config).expect("publisher"),
        topics,
        codec,
    )
}

/// The first `n` records of a topic, from the beginning; fails after 30 s without one.
pub async fn read_all(topic: &str, n: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = client()
        .set("group.id", unique("producers-test-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("within 30 s")
            .expect("record");
        out.push(msg.detach());
    }
    out
}

pub fn header(msg: &OwnedMessage, key: &str) -> Option<String> {
    msg.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

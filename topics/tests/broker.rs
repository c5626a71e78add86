//! Provisioning and plain produce/consume against the real broker from `deploy/local/test`.

use std::time::Duration;

use bluelight_topics::{
    Catalogue, Error, Provisioner, TopicStatus,
    provision::Drift,
    testing::{self, unique},
};
use rdkafka::{
    Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

const TIMEOUT: Duration = Duration::from_secs(20);

fn topic_entry(
    name: &str,
    partitions: u32,
    policy: &str,
    retention: &str,
    subject: bool,
) -> String {
    let subject = if subject {
        format!("value_subject = \"{name}-value\"\n")
    } else {
        String::new()
    };
    format!(
        "[[topic]]\nname = \"{name}\"\npartitions = {partitions}\ncleanup_policy = \"{policy}\"\n\
         retention = \"{retention}\"\nkey = \"test key\"\n{subject}owner = \"tests\"\ndescription = \"test topic\"\n"
    )
}

fn provisioner() -> Provisioner {
    Provisioner::connect(&testing::kafka(), TIMEOUT).expect("admin client")
}

fn status_of<'a>(plan: &'a bluelight_topics::Plan, name: &str) -> &'a TopicStatus {
    &plan
        .topics
        .iter()
        .find(|t| t.spec.name == name)
        .expect("topic in plan")
        .status
}

#[tokio::test]
async fn apply_creates_missing_topics_and_a_second_run_changes_nothing() {
    let (events, state, audit) = (unique("bl.t"), unique("state.t"), unique("audit.t"));
    let (events, state, audit) = (
        format!("{events}.v1"),
        format!("{state}.v1"),
        format!("{audit}.v1"),
    );
    let text = [
        topic_entry(&events, 3, "delete", "90d", true),
        topic_entry(&state, 2, "compact", "forever", true),
        topic_entry(&audit, 1, "delete", "7y", true),
    ]
    .concat();
    let catalogue = Catalogue::parse(&text, "test.toml")
        .expect("catalogue")
        .with_replication_factor(1);
    let p = provisioner();

    let dry = p.plan(&catalogue).await.expect("plan");
    assert!(
        catalogue
            .topics
            .iter()
            .all(|t| *status_of(&dry, &t.name) == TopicStatus::Missing)
    );

    let first = p.apply(&catalogue).await.expect("first apply");
    for t in &catalogue.topics {
        assert_eq!(
            *status_of(&first, &t.name),
            TopicStatus::Created,
            "{}",
            t.name
        );
    }

    let second = p.apply(&catalogue).await.expect("second apply");
    for t in &catalogue.topics {
        assert_eq!(
            *status_of(&second, &t.name),
            TopicStatus::InSync,
            "{}",
            t.name
        );
    }
    let observed = second
        .topics
        .iter()
        .find(|t| t.spec.name == state)
        .and_then(|t| t.observed.clone());
    let observed = observed.expect("state topic observed");
    assert_eq!((observed.partitions, observed.replication_factor), (2, 1));
    assert_eq!(observed.configs["cleanup.policy"], "compact");
    assert_eq!(observed.configs["retention.ms"], "-1");
    assert!(
        second.to_string().contains(&state.to_string()),
        "table lists the topic"
    );
}

#[tokio::test]
async fn drift_is_reported_and_the_broker_left_untouched() {
    let name = format!("{}.v1", unique("bl.drift"));
    let admin: AdminClient<DefaultClientContext> = testing::kafka()
        .client_config("test")
        .expect("config")
        .create()
        .expect("admin");
    let existing =
        NewTopic::new(&name, 2, TopicReplication::Fixed(1)).set("retention.ms", "86400000");
    let created = admin
        .create_topics([&existing], &AdminOptions::new())
        .await
        .expect("create");
    assert!(created[0].is_ok(), "{created:?}");

    let catalogue = Catalogue::parse(&topic_entry(&name, 3, "delete", "90d", true), "test.toml")
        .expect("catalogue")
        .with_replication_factor(1);
    let plan = provisioner().apply(&catalogue).await.expect("apply");
    let TopicStatus::Drift(drift) = status_of(&plan, &name) else {
        panic!("expected drift, got {:?}", status_of(&plan, &name));
    };
    assert_eq!(
        drift,
        &vec![
            Drift {
                setting: "partitions".into(),
                catalogue: "3".into(),
                broker: "2".into()
            },
            Drift {
                setting: "retention.ms".into(),
                catalogue: "7776000000".into(),
                broker: "86400000".into()
            },
        ]
    );
    let again = provisioner().plan(&catalogue).await.expect("plan");
    assert_eq!(
        again.topics[0].observed.as_ref().map(|o| o.partitions),
        Some(2),
        "apply must not add partitions"
    );
    assert!(plan.to_string().contains(&format!("drift on {name}")));
}

#[tokio::test]
async fn a_replication_factor_beyond_the_cluster_is_refused_before_creating_anything() {
    let (a, b) = (
        format!("{}.v1", unique("bl.rfa")),
        format!("{}.v1", unique("bl.rfb")),
    );
    let mut catalogue = Catalogue::parse(
        &[
            topic_entry(&a, 1, "delete", "1d", true),
            topic_entry(&b, 1, "delete", "1d", true),
        ]
        .concat(),
        "t.toml",
    )
    .expect("catalogue")
    .with_replication_factor(1);
    catalogue.topics[1].replication_factor = 3;
    let err = provisioner()
        .apply(&catalogue)
        .await
        .expect_err("rf 3 on one broker");
    assert!(
        err.to_string().contains("pass --replication-factor 1"),
        "{err}"
    );
    let plan = provisioner().plan(&catalogue).await.expect("plan");
    assert_eq!(
        *status_of(&plan, &a),
        TopicStatus::Missing,
        "nothing may be created when one topic cannot be"
    );
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_retryable_error_that_says_where() {
    let kafka = bluelight_topics::KafkaArgs::for_brokers("127.0.0.1:1");
    let p = Provisioner::connect(&kafka, Duration::from_secs(2)).expect("client");
    let catalogue = Catalogue::parse(&topic_entry("bl.x.v1", 1, "delete", "1d", true), "t.toml")
        .expect("catalogue");
    let err = p.plan(&catalogue).await.expect_err("no broker there");
    assert!(
        matches!(err, Error::Cluster(_)) && err.retryable(),
        "{err:?}"
    );
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    // The real broker is still required by this suite: make sure it is configured.
    let _ = testing::brokers();
}

#[tokio::test]
async fn records_round_trip_through_a_provisioned_topic_in_key_order() {
    let name = format!("{}.v1", unique("bl.roundtrip"));
    let catalogue = Catalogue::parse(&topic_entry(&name, 3, "delete", "1d", true), "t.toml")
        .expect("catalogue")
        .with_replication_factor(1);
    provisioner().apply(&catalogue).await.expect("apply");

    let kafka = testing::kafka();
    let producer: FutureProducer = kafka
        .client_config("test-producer")
        .expect("config")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    // Queue every record first, then wait for the acknowledgements: no await per send.
    let deliveries: Vec<_> = (0..300)
        .map(|i| {
            let key = format!("incident-{}", i % 7);
            let value = format!("{i}");
            producer
                .send_result(FutureRecord::to(&name).key(&key).payload(&value))
                .map_err(|(e, _)| e)
                .expect("queue has room")
        })
        .collect();
    for d in deliveries {
        d.await.expect("delivery future").expect("acknowledged");
    }

    let consumer: StreamConsumer = kafka
        .client_config("test-consumer")
        .expect("config")
        .set("group.id", unique("test-group-"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&name]).expect("subscribe");
    let mut per_key: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    let mut received = 0;
    while received < 300 {
        let msg = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .expect("a record within 20 s")
            .expect("record");
        let key = String::from_utf8(msg.key().expect("key").to_vec()).expect("utf8");
        let value: u32 = std::str::from_utf8(msg.payload().expect("payload"))
            .expect("utf8")
            .parse()
            .expect("number");
        per_key.entry(key).or_default().push(value);
        received += 1;
    }
    assert_eq!(per_key.len(), 7);
    for (key, values) in per_key {
        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(values, sorted, "records of {key} arrived out of order");
        assert!(values.iter().all(|v| format!("incident-{}", v % 7) == key));
    }
}

//! Every canonical event type, registered with `bluelight registry`, produced to the real broker,
//! consumed and decoded back into the same typed record.

mod common;

use std::time::Duration;

use bluelight_avro::{
    Codec,
    records::{
        CanonicalRecord, CaseEvent, Consultation, Disclosure, EventType, IncidentEvent,
        VictimEvent, VictimNotificationAck, VictimUpdate, VictimUpdateAlert, samples,
    },
    schemas,
};
use bluelight_topics::testing::unique;
use common::{client, create_topics, start_registry};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

async fn round_trip<T: CanonicalRecord + PartialEq + std::fmt::Debug>(
    codec: &Codec,
    records: Vec<T>,
) {
    let subject = format!("{}-value", T::TOPIC.expect("fixed topic"));
    let topic = format!("{}.v1", unique(&format!("bl.roundtrip-{}", T::FILE)));
    create_topics(&[&topic], false).await;
    let producer: FutureProducer = client()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = records
        .iter()
        .map(|r| {
            let payload = codec.encode(&subject, r).expect("encode");
            producer
                .send_result(FutureRecord::to(&topic).key(r.key()).payload(&payload))
                .map_err(|(e, _)| e)
                .expect("queue")
        })
        .collect();
    for d in deliveries {
        d.await.expect("delivery").expect("acknowledged");
    }
    let consumer: StreamConsumer = client()
        .set("group.id", unique("roundtrip-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut got = Vec::new();
    while got.len() < records.len() {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("within 30 s")
            .expect("record");
        assert_eq!(
            msg.key(),
            Some(records[got.len()].key().as_bytes()),
            "record key is the shared id"
        );
        got.push(
            codec
                .decode::<T>(msg.payload().expect("payload"))
                .await
                .expect("decode"),
        );
    }
    assert_eq!(got, records, "{}", T::FILE);
}

#[tokio::test]
async fn every_event_type_round_trips_through_the_broker() {
    let (registry, _) = start_registry().await;
    let codec = Codec::new(&registry.url, Duration::from_secs(10)).expect("codec");
    let registered = schemas::register_all(&codec).await.expect("register all");
    assert_eq!(registered.len(), 8);
    let ids: std::collections::BTreeSet<u32> = registered.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        ids.len(),
        8,
        "each canonical schema has its own id: {registered:?}"
    );

    fn of(topic: &'static str) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .into_iter()
            .filter(move |t| t.topic() == topic)
    }
    round_trip::<IncidentEvent>(
        &codec,
        of("bl.incident.v1").map(samples::incident).collect(),
    )
    .await;
    round_trip::<CaseEvent>(&codec, of("bl.case.v1").map(samples::case).collect()).await;
    round_trip::<VictimEvent>(&codec, of("bl.victim.v1").map(samples::victim).collect()).await;
    round_trip::<VictimUpdate>(&codec, vec![samples::victim_update()]).await;
    round_trip::<Disclosure>(&codec, vec![samples::disclosure()]).await;
    round_trip::<Consultation>(&codec, vec![samples::consultation()]).await;
    round_trip::<VictimNotificationAck>(&codec, vec![samples::victim_ack()]).await;
    round_trip::<VictimUpdateAlert>(
        &codec,
        of("feed.victim-update-overdue.v1")
            .map(samples::victim_alert)
            .collect(),
    )
    .await;

    // A second codec (another service) decodes by id alone, fetching schemas from the registry.
    let fresh = Codec::new(&registry.url, Duration::from_secs(10)).expect("codec");
    let payload = codec
        .encode(
            "bl.case.v1-value",
            &samples::case(EventType::SuspectCharged),
        )
        .expect("encode");
    let decoded: CaseEvent = fresh
        .decode(&payload)
        .await
        .expect("fetch by id and decode");
    assert_eq!(decoded.envelope.event_type, EventType::SuspectCharged);
    // An id the registry does not have is the record's fault (dead-letter it), not an outage.
    let unknown = fresh
        .decode::<CaseEvent>(&[0, 0, 0, 3, 231, 0])
        .await
        .expect_err("id 999 is not registered");
    assert!(
        matches!(unknown, bluelight_avro::Error::UnknownSchemaId { id: 999 }),
        "{unknown:?}"
    );
}

use proptest::prelude::*;

use super::*;
use crate::records::{
    CaseEvent, Disclosure, EventType, IncidentEvent, Retraction, VictimEvent, VictimUpdate, samples,
};

fn codec() -> &'static Codec {
    static CODEC: std::sync::OnceLock<Codec> = std::sync::OnceLock::new();
    CODEC.get_or_init(new_codec)
}

fn new_codec() -> Codec {
    // Nothing listens on port 9; these tests must not need a registry.
    let codec = Codec::new("http://127.0.0.1:9", Duration::from_millis(200)).expect("codec");
    codec
        .preload::<IncidentEvent>(1, "bl.incident.v1-value")
        .expect("incident");
    codec
        .preload::<CaseEvent>(2, "bl.case.v1-value")
        .expect("case");
    codec
        .preload::<VictimEvent>(3, "bl.victim.v1-value")
        .expect("victim");
    codec
        .preload::<VictimUpdate>(4, "feed.victim-update.v1-value")
        .expect("update");
    codec
        .preload::<Disclosure>(5, "audit.disclosure.v1-value")
        .expect("disclosure");
    codec
        .preload::<Retraction>(6, "feed.retraction")
        .expect("retraction");
    codec
        .preload::<crate::records::VictimNotificationAck>(7, "ack")
        .expect("ack");
    codec
        .preload::<crate::records::VictimUpdateAlert>(8, "alert")
        .expect("alert");
    codec
        .preload::<crate::records::Consultation>(9, "consultation")
        .expect("consultation");
    codec
}

#[test]
fn every_event_type_round_trips_with_every_field_set() {
    let codec = codec();
    for event_type in EventType::ALL {
        match event_type.topic() {
            "bl.incident.v1" => {
                let r = samples::incident(event_type);
                let bytes = codec.encode("bl.incident.v1-value", &r).expect("encode");
                assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1], "wire header");
                assert_eq!(
                    codec
                        .decode_cached::<IncidentEvent>(&bytes)
                        .expect("decode"),
                    r
                );
            }
            "bl.case.v1" => {
                let r = samples::case(event_type);
                let bytes = codec.encode("bl.case.v1-value", &r).expect("encode");
                assert_eq!(codec.decode_cached::<CaseEvent>(&bytes).expect("decode"), r);
            }
            "bl.victim.v1" => {
                let r = samples::victim(event_type);
                let bytes = codec.encode("bl.victim.v1-value", &r).expect("encode");
                assert_eq!(
                    codec.decode_cached::<VictimEvent>(&bytes).expect("decode"),
                    r
                );
            }
            "feed.victim-update.v1" => {
                let r = samples::victim_update();
                let bytes = codec
                    .encode("feed.victim-update.v1-value", &r)
                    .expect("encode");
                assert_eq!(
                    codec.decode_cached::<VictimUpdate>(&bytes).expect("decode"),
                    r
                );
            }
            "audit.disclosure.v1" => {
                let r = samples::disclosure();
                let bytes = codec
                    .encode("audit.disclosure.v1-value", &r)
                    .expect("encode");
                assert_eq!(
                    codec.decode_cached::<Disclosure>(&bytes).expect("decode"),
                    r
                );
            }
            _ => {
                let r = samples::retraction();
                let bytes = codec.encode("feed.retraction", &r).expect("encode");
                assert_eq!(
                    codec.decode_cached::<Retraction>(&bytes).expect("decode"),
                    r
                );
            }
        }
    }
}

#[test]
fn minimal_records_round_trip_too() {
    let codec = codec();
    let r = IncidentEvent::new(
        crate::records::Envelope::new(
            EventType::IncidentOpened,
            "cad",
            "avon-police",
            crate::records::Timestamp(0),
        ),
        "INC-1",
        crate::records::Code::new("bl-incident-type", "FIRE"),
        crate::records::IncidentStatus::Open,
    );
    let bytes = codec.encode("bl.incident.v1-value", &r).expect("encode");
    assert_eq!(
        codec
            .decode_cached::<IncidentEvent>(&bytes)
            .expect("decode"),
        r
    );
}

#[test]
fn malformed_payloads_are_typed_errors_that_say_what_is_wrong() {
    let codec = codec();
    let good = codec
        .encode(
            "bl.incident.v1-value",
            &samples::incident(EventType::IncidentOpened),
        )
        .expect("encode");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "not Confluent wire format: the payload is empty"),
        (vec![0, 0, 0], "3 bytes is too short for the 5-byte header"),
        (
            vec![7, 0, 0, 0, 1, 2],
            "first byte is 0x07, expected the magic byte 0x00",
        ),
        (
            vec![0, 0, 0, 0, 99, 2],
            "schema id 99 is not in the schema registry",
        ),
        (
            good[..good.len() / 2].to_vec(),
            "Avro body does not match schema id 1",
        ),
        (
            [good.as_slice(), &[1, 2, 3]].concat(),
            "3 bytes left over after the record",
        ),
    ];
    for (payload, want) in cases {
        let err = codec
            .decode_cached::<IncidentEvent>(&payload)
            .expect_err(want)
            .to_string();
        assert!(err.contains(want), "want {want:?}, got {err:?}");
    }
    let mut wrong = good.clone();
    wrong[4] = 2; // the case schema's id
    let err = codec
        .decode_cached::<IncidentEvent>(&wrong)
        .expect_err("case schema")
        .to_string();
    assert_eq!(
        err,
        "schema id 2 is uk.bluelight.v1.CaseEvent, but this topic carries uk.bluelight.v1.IncidentEvent"
    );
    let err = codec
        .encode(
            "bl.unknown.v1-value",
            &samples::incident(EventType::IncidentOpened),
        )
        .expect_err("unregistered");
    assert_eq!(err.domain(), crate::ErrorDomain::Internal);
}

#[tokio::test]
async fn an_unreachable_registry_is_an_external_retryable_error() {
    let codec = codec();
    let err = codec
        .decode::<IncidentEvent>(&[0, 0, 0, 0, 42, 0])
        .await
        .expect_err("no registry on port 9");
    assert!(matches!(err, Error::RegistryUnavailable { .. }), "{err:?}");
    assert!(err.retryable());
}

/// Fuzzing the decode path: arbitrary bytes, and valid payloads with bytes flipped, cut short or
/// spliced, must give an error or a record, never a panic. `PROPTEST_CASES` sets the effort.
mod fuzz {
    use super::*;

    fn decode_all(codec: &Codec, payload: &[u8]) {
        let _ = codec.decode_cached::<IncidentEvent>(payload);
        let _ = codec.decode_cached::<CaseEvent>(payload);
        let _ = codec.decode_cached::<VictimEvent>(payload);
        let _ = codec.decode_cached::<VictimUpdate>(payload);
        let _ = codec.decode_cached::<Disclosure>(payload);
        let _ = codec.decode_cached::<Retraction>(payload);
        let _ = split_header(payload);
    }

    fn seeds(codec: &Codec) -> Vec<Vec<u8>> {
        vec![
            codec
                .encode(
                    "bl.incident.v1-value",
                    &samples::incident(EventType::IncidentOpened),
                )
                .expect("seed"),
            codec
                .encode(
                    "bl.case.v1-value",
                    &samples::case(EventType::SuspectCharged),
                )
                .expect("seed"),
            codec
                .encode(
                    "bl.victim.v1-value",
                    &samples::victim(EventType::VictimRegistered),
                )
                .expect("seed"),
            codec
                .encode("feed.victim-update.v1-value", &samples::victim_update())
                .expect("seed"),
            codec
                .encode("audit.disclosure.v1-value", &samples::disclosure())
                .expect("seed"),
            codec
                .encode("feed.retraction", &samples::retraction())
                .expect("seed"),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(header in 1u32..8, body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let codec = codec();
            let mut payload = vec![0];
            payload.extend_from_slice(&header.to_be_bytes());
            payload.extend_from_slice(&body);
            decode_all(codec, &payload);
            decode_all(codec, &body);
        }

        #[test]
        fn mutated_valid_payloads_never_panic(
            seed in 0usize..6,
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            insert in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let codec = codec();
            let mut payload = seeds(codec)[seed].clone();
            for (at, byte) in &flips {
                let i = 5 + at.index(payload.len() - 5);
                payload[i] ^= byte | 1;
            }
            decode_all(codec, &payload);
            let at = 5 + cut.index(payload.len() - 5);
            decode_all(codec, &payload[..at]);
            let spliced: Vec<u8> = payload[..at].iter().chain(&insert).chain(&payload[at..]).copied().collect();
            decode_all(codec, &spliced);
        }
    }
}

/// The field-order writer must give the very bytes apache-avro's schema-aware writer gives, so
/// every other Avro library (Java, Python, Go) reads our records.
#[test]
fn bytes_match_apache_avro() {
    fn check<T: CanonicalRecord + PartialEq + std::fmt::Debug>(subject: &str, r: &T) {
        let ours = codec().encode(subject, r).expect("encode");
        let schema = T::get_schema();
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .expect("writer");
        let mut reference = Vec::new();
        writer
            .write_ser(&mut reference, r)
            .expect("reference encode");
        assert_eq!(&ours[5..], &reference[..], "{subject}");
    }
    for event_type in EventType::ALL {
        match event_type.topic() {
            "bl.incident.v1" => check("bl.incident.v1-value", &samples::incident(event_type)),
            "bl.case.v1" => check("bl.case.v1-value", &samples::case(event_type)),
            "bl.victim.v1" => check("bl.victim.v1-value", &samples::victim(event_type)),
            _ => {}
        }
    }
    check("audit.disclosure.v1-value", &samples::disclosure());
    check("feed.retraction", &samples::retraction());
    check("feed.victim-update.v1-value", &samples::victim_update());
    check("ack", &samples::victim_ack());
    check(
        "alert",
        &samples::victim_alert(EventType::VictimUpdateOverdue),
    );
    check("consultation", &samples::consultation());
    let mut minimal = samples::incident(EventType::IncidentOpened);
    minimal.people.clear();
    minimal.location = None;
    minimal.methane = None;
    check("bl.incident.v1-value", &minimal);
}

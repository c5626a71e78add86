use super::*;
use crate::adapters::{Locator, Translation};
use bluelight_avro::records::Timestamp;

const EXAMPLE: &str = include_str!("../../../examples/cad-incidents.json");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/cad-incidents.json"
);

fn source() -> SourceContext {
    SourceContext {
        org: "avon-police".into(),
        system: "cad".into(),
        received_at: Timestamp(1_795_300_000_000),
    }
}

fn translate(input: &str) -> Translation {
    Cad::new()
        .expect("mappings")
        .translate(input.as_bytes(), &source())
}

/// Example input in, exact canonical records out. Regenerate (and review the diff) with
/// BLUELIGHT_UPDATE_GOLDEN=1.
#[test]
fn golden_example_translates_to_exact_canonical_records() {
    crate::adapters::testkit::assert_golden(
        &Cad::new().expect("mappings"),
        &source(),
        EXAMPLE,
        GOLDEN,
    );
}

fn event(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let doc: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example");
    let mut first = doc["events"][0].as_object().cloned().expect("object");
    edit(&mut first);
    serde_json::json!({ "events": [first] }).to_string()
}

#[test]
fn bad_records_are_refused_with_the_field_and_the_problem() {
    use serde_json::json;
    let set = |k: &'static str, v: serde_json::Value| {
        move |m: &mut serde_json::Map<String, serde_json::Value>| {
            m.insert(k.into(), v);
        }
    };
    let cases: Vec<(String, &str)> = vec![
        (
            event(|m| {
                m.remove("incident_id");
            }),
            "cad JSON /events/0: field incident_id: is required",
        ),
        (
            event(set("incident_id", json!("INC 42"))),
            "cad JSON /events/0: field incident_id: \"INC 42\" is not a reference (1 to 64 characters, no spaces)",
        ),
        (
            event(set("action", json!("reopen"))),
            "cad JSON /events/0: field action: \"reopen\" is not one of open, update, resource, close",
        ),
        (
            event(set("occurred_at", json!("2026-11-22T08:14:03"))),
            "cad JSON /events/0: field occurred_at: \"2026-11-22T08:14:03\" has no time zone offset; write \"2026-11-22T08:14:03Z\" for UTC or add the offset, e.g. \"+01:00\"",
        ),
        (
            event(set("type", json!("UFO"))),
            "cad JSON /events/0: field type: \"UFO\" is not a known code (known: ASSAULT, DOMESTIC, FIRE, FIRE-DWELL, FLOOD, MH, MISPER, RTC, RTC-INJ, SUSPICIOUS, WELFARE)",
        ),
        (
            event(set("grade", json!(1))),
            "cad JSON /events/0: field grade: must be a string, not a number",
        ),
        (
            event(set("classification", json!("SECRET"))),
            "cad JSON /events/0: field classification: \"SECRET\" is not OFFICIAL or OFFICIAL-SENSITIVE; bluelight carries nothing higher",
        ),
        (
            event(|m| {
                m["location"]["postcode"] = json!("BS1");
            }),
            "cad JSON /events/0: field location.postcode: \"BS1\" is not a UK postcode (e.g. \"BS1 6HG\")",
        ),
        (
            event(|m| {
                m["location"]["uprn"] = json!("12AB");
            }),
            "cad JSON /events/0: field location.uprn: \"12AB\" is not a UPRN (1 to 12 digits, e.g. \"100120012345\")",
        ),
        (
            event(|m| {
                m["location"]["lat"] = json!(95.5);
            }),
            "cad JSON /events/0: field location.lat: 95.5 is out of range for a latitude (-90 to 90)",
        ),
        (
            event(|m| {
                m["location"].as_object_mut().expect("obj").remove("lon");
            }),
            "cad JSON /events/0: field location: has only one of lat and lon; give both or neither",
        ),
        (
            event(|m| {
                m.remove("location");
            }),
            "cad JSON /events/0: field location: is required when an incident is opened",
        ),
        (
            event(set("hazards", json!(["FUEL", "LAVA"]))),
            "cad JSON /events/0: field hazards: \"LAVA\" is not a known code (known: DOG, ELEC, FUEL, GAS, SMOKE, TRAPPED, WATER, WEAPON)",
        ),
        (
            event(|m| {
                m["casualties"]["serious"] = json!(-1);
            }),
            "cad JSON /events/0: field casualties.serious: -1 is not a count of people (0 to 100000)",
        ),
        (
            event(|m| {
                m["persons"][1]["dob"] = json!("02/05/1941");
            }),
            "cad JSON /events/0: field persons[1].dob: \"02/05/1941\" is not a date (YYYY-MM-DD, e.g. \"1984-03-07\")",
        ),
        (
            event(|m| {
                m["persons"][0]["role"] = json!("BYSTANDER");
            }),
            "cad JSON /events/0: field persons[0].role: \"BYSTANDER\" is not a known code (known: CALLER, IP, SUBJECT, SUSPECT, VICTIM, WITNESS)",
        ),
        (
            event(|m| {
                m.insert("action".into(), json!("close"));
            }),
            "cad JSON /events/0: field closure_code: is required when an incident is closed",
        ),
        (
            "{\"events\": [42]}".into(),
            "cad JSON /events/0: field (record): must be a JSON object",
        ),
        (
            "{\"events\": [{]}".into(),
            "cad document: field (document): is not valid JSON: key must be a string at line 1 column 14",
        ),
        (
            "\"just text\"".into(),
            "cad document: field (document): must be a JSON object or list, e.g. {\"events\": [...]}",
        ),
    ];
    crate::adapters::testkit::assert_rejections(translate, cases);
}

#[test]
fn one_bad_record_never_stops_the_others_and_keeps_its_bytes() {
    let doc: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example");
    let mut events = doc["events"].as_array().cloned().expect("list");
    events[1]["occurred_at"] = serde_json::json!("not a time");
    let input =
        serde_json::to_string_pretty(&serde_json::json!({ "events": events })).expect("json");
    let t = translate(&input);
    assert_eq!(t.accepted.len(), 2);
    assert_eq!(t.rejected.len(), 1);
    let bad = &t.rejected[0];
    assert_eq!(bad.locator, Locator::JsonPointer("/events/1".into()));
    let original: serde_json::Value =
        serde_json::from_str(&input[bad.span.clone()]).expect("span is the record");
    assert_eq!(
        original, events[1],
        "the dead letter keeps exactly the record's bytes"
    );
    // A bare list and a single object are accepted too.
    let bare = serde_json::to_string(&doc["events"]).expect("json");
    assert_eq!(translate(&bare).accepted.len(), 3);
    assert_eq!(translate(&doc["events"][0].to_string()).accepted.len(), 1);
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Arbitrary bytes, and the example with bytes flipped or cut: never a panic.
        #[test]
        fn the_cad_parser_never_panics(
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let adapter = Cad::new().expect("mappings");
            crate::adapters::testkit::assert_survives_mutation(&adapter, &source(), EXAMPLE, &noise, &flips, cut)?;
        }
    }
}

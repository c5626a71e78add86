use super::*;
use bluelight_avro::records::Timestamp;

const EXAMPLE: &str = include_str!("../../../examples/victim-crm.json");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/victim-crm.json");

fn source() -> SourceContext {
    SourceContext {
        org: "avon-victim-care".into(),
        system: "victim-crm".into(),
        received_at: Timestamp(1_795_300_000_000),
    }
}

fn translate(input: &str) -> Translation {
    VictimCrm::new()
        .expect("mappings")
        .translate(input.as_bytes(), &source())
}

/// Example input in, exact canonical records out (BLUELIGHT_UPDATE_GOLDEN=1 regenerates).
#[test]
fn golden_example_translates_to_exact_canonical_records() {
    crate::adapters::testkit::assert_golden(
        &VictimCrm::new().expect("mappings"),
        &source(),
        EXAMPLE,
        GOLDEN,
    );
}

#[test]
fn the_code_rules_are_applied_an_under_18_gets_enhanced_rights_and_opt_out_is_honoured() {
    let t = translate(EXAMPLE);
    let victims: Vec<&VictimEvent> = t
        .accepted
        .iter()
        .map(|a| {
            if let Canonical::Victim(v) = &a.record {
                &**v
            } else {
                panic!()
            }
        })
        .collect();
    assert_eq!(
        victims[1].enhanced_reasons,
        vec![EnhancedRightsReason::Under18]
    );
    assert!(victims[1].enhanced_rights);
    assert!(
        victims[2].contact.opted_out,
        "an opt-out action opts out whatever the contact block says"
    );
    assert_eq!(victims[2].envelope.event_type, EventType::VictimOptedOut);
}

fn record(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let doc: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example");
    let mut first = doc["victims"][0].as_object().cloned().expect("object");
    edit(&mut first);
    serde_json::json!({ "victims": [first] }).to_string()
}

#[test]
fn bad_records_are_refused_with_the_field_and_the_problem() {
    use serde_json::json;
    let cases: Vec<(String, &str)> = vec![
        (
            record(|m| {
                m.remove("victim_ref");
            }),
            "victim-crm JSON /victims/0: field victim_ref: is required",
        ),
        (
            record(|m| {
                m.insert("action".into(), json!("delete"));
            }),
            "victim-crm JSON /victims/0: field action: \"delete\" is not a known code (known: assess, opt_out, preferences, register)",
        ),
        (
            record(|m| {
                m.insert("occurred_at".into(), json!("22/11/2026 11:30"));
            }),
            "victim-crm JSON /victims/0: field occurred_at: \"22/11/2026 11:30\" is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")",
        ),
        (
            record(|m| {
                m.insert("enhanced_reasons".into(), json!([]));
            }),
            "victim-crm JSON /victims/0: field enhanced_reasons: must name at least one reason when enhanced_rights is true",
        ),
        (
            record(|m| {
                m.insert("enhanced_rights".into(), json!(false));
            }),
            "victim-crm JSON /victims/0: field enhanced_rights: is false but enhanced_reasons are given; set it to true or remove the reasons",
        ),
        (
            record(|m| {
                m.insert("enhanced_rights".into(), json!("yes"));
            }),
            "victim-crm JSON /victims/0: field enhanced_rights: must be true or false, not the string \"yes\"",
        ),
        (
            record(|m| {
                m.insert("enhanced_reasons".into(), json!(["ANGRY"]));
            }),
            "victim-crm JSON /victims/0: field enhanced_reasons: \"ANGRY\" is not a known code (known: DA, INTIMIDATED, PTV, SERIOUS, U18, VULNERABLE)",
        ),
        (
            record(|m| {
                m.remove("contact");
            }),
            "victim-crm JSON /victims/0: field contact: is required: how (and whether) the victim wants to be updated",
        ),
        (
            record(|m| {
                m["contact"]["channel"] = json!("PIGEON");
            }),
            "victim-crm JSON /victims/0: field contact.channel: \"PIGEON\" is not a known code (known: EMAIL, LETTER, PHONE, SMS, TEXT, VISIT)",
        ),
        (
            record(|m| {
                m["contact"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("frequency");
            }),
            "victim-crm JSON /victims/0: field contact.frequency: is required",
        ),
        (
            record(|m| {
                m["person"]["dob"] = json!("2999-01-01");
            }),
            "victim-crm JSON /victims/0: field person.dob: \"2999-01-01\" is in the future",
        ),
        (
            record(|m| {
                m["person"]["address"]["postcode"] = json!("NOWHERE");
            }),
            "victim-crm JSON /victims/0: field person.address.postcode: \"NOWHERE\" is not a UK postcode (e.g. \"BS1 6HG\")",
        ),
        (
            record(|m| {
                m.insert("case_refs".into(), json!(["CRIME 1"]));
            }),
            "victim-crm JSON /victims/0: field case_refs[0]: \"CRIME 1\" is not a reference (1 to 64 characters, no spaces)",
        ),
        (
            record(|m| {
                m.insert("case_refs".into(), json!("CRIME-1"));
            }),
            "victim-crm JSON /victims/0: field case_refs: must be a list, not a string",
        ),
    ];
    crate::adapters::testkit::assert_rejections(translate, cases);
}

#[test]
fn under_18_is_decided_on_the_day_of_the_event() {
    let day = |y, m, d| (jiff::civil::date(y, m, d) - jiff::civil::date(1970, 1, 1)).get_days();
    let at = |y, m, d| i64::from(day(y, m, d)) * MILLIS_PER_DAY + 3_600_000;
    assert!(
        under_18(day(2008, 11, 23), at(2026, 11, 22)),
        "one day short of 18"
    );
    assert!(!under_18(day(2008, 11, 22), at(2026, 11, 22)), "18 today");
    assert!(
        !under_18(day(2008, 2, 29), at(2026, 3, 1)),
        "leap-day birthday"
    );
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Arbitrary bytes, and the example with bytes flipped or cut: never a panic.
        #[test]
        fn the_victim_crm_parser_never_panics(
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let adapter = VictimCrm::new().expect("mappings");
            crate::adapters::testkit::assert_survives_mutation(&adapter, &source(), EXAMPLE, &noise, &flips, cut)?;
        }
    }
}

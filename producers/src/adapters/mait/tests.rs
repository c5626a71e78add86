use super::*;
use crate::adapters::{Locator, Translation};
use bluelight_avro::records::Timestamp;

const EXAMPLE: &str = include_str!("../../../examples/mait-incident.xml");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/mait-incident.json"
);

fn source() -> SourceContext {
    SourceContext {
        org: "avon-fire".into(),
        system: "mait".into(),
        received_at: Timestamp(1_795_300_000_000),
    }
}

fn translate(input: &str) -> Translation {
    Mait::new()
        .expect("mappings")
        .translate(input.as_bytes(), &source())
}

/// Example input in, exact canonical records out. Regenerate (and review the diff) with
/// BLUELIGHT_UPDATE_GOLDEN=1.
#[test]
fn golden_example_translates_to_exact_canonical_records() {
    crate::adapters::testkit::assert_golden(
        &Mait::new().expect("mappings"),
        &source(),
        EXAMPLE,
        GOLDEN,
    );
}

/// The example's `<Incident>` elements, as written.
fn incidents() -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut rest = EXAMPLE;
    while let Some(start) = rest.find("<Incident>") {
        let end = rest[start..].find("</Incident>").expect("closed") + start + "</Incident>".len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// The example's message with only its `n`th incident (0-based), edited by `(from, to)`
/// replacements, each of which must match exactly once.
fn message(n: usize, edits: &[(&str, &str)]) -> String {
    let head = &EXAMPLE[..EXAMPLE.find("  <Incident>").expect("an incident")];
    let mut doc = format!("{head}  {}\n</MAITMessage>\n", incidents()[n]);
    for (from, to) in edits {
        assert_eq!(
            doc.matches(from).count(),
            1,
            "edit {from:?} must match once"
        );
        doc = doc.replace(from, to);
    }
    doc
}

#[test]
fn bad_records_are_refused_with_the_field_and_the_problem() {
    let at1 = "mait XML /MAITMessage/Incident[1]";
    let cases: Vec<(String, String)> = vec![
        (
            message(0, &[("<IncidentID>INC-20261122-0051</IncidentID>", "")]),
            format!("{at1}: field IncidentID: is required"),
        ),
        (
            message(0, &[("INC-20261122-0051", "INC 51")]),
            format!(
                "{at1}: field IncidentID: \"INC 51\" is not a reference (1 to 64 characters, no spaces)"
            ),
        ),
        (
            message(0, &[(">FIRE-DWELL<", ">UFO<")]),
            format!(
                "{at1}: field IncidentType: \"UFO\" is not a known code (known: ASSAULT, COLLAPSE, FIRE, FIRE-COMM, FIRE-DWELL, FLOOD, HAZMAT, MH, RESCUE-WATER, RTC, RTC-INJ, WELFARE)"
            ),
        ),
        (
            message(0, &[("2026-11-22T08:09:00Z", "2026-11-22T08:09:00")]),
            format!(
                "{at1}: field OccurredAt: \"2026-11-22T08:09:00\" has no time zone offset; write \"2026-11-22T08:09:00Z\" for UTC or add the offset, e.g. \"+01:00\""
            ),
        ),
        (
            message(0, &[("bs1 4sb", "BS1")]),
            format!(
                "{at1}: field Location/Postcode: \"BS1\" is not a UK postcode (e.g. \"BS1 6HG\")"
            ),
        ),
        (
            message(0, &[("<UPRN>100120098765</UPRN>", "<UPRN>12AB</UPRN>")]),
            format!(
                "{at1}: field Location/UPRN: \"12AB\" is not a UPRN (1 to 12 digits, e.g. \"100120012345\")"
            ),
        ),
        (
            message(0, &[("<Latitude>51.4508", "<Latitude>95.5")]),
            format!(
                "{at1}: field Location/Latitude: 95.5 is out of range for a latitude (-90 to 90)"
            ),
        ),
        (
            message(0, &[("<Easting>358820", "<Easting>east")]),
            format!("{at1}: field Location/Easting: must be a whole number, not \"east\""),
        ),
        (
            message(0, &[("<Longitude>-2.5943</Longitude>", "")]),
            format!(
                "{at1}: field Location: has only one of Latitude and Longitude; give both or neither"
            ),
        ),
        (
            message(0, &[("<Postcode>bs1 4sb</Postcode>", "<PostCode>BS1 4SB</PostCode>")]),
            format!(
                "{at1}: field Location/PostCode: is not an element of Location (known: UPRN, AddressLine, Postcode, Easting, Northing, Latitude, Longitude, Description)"
            ),
        ),
        (
            message(1, &[("<Location>", "<Place>"), ("</Location>", "</Place>")]),
            format!(
                "{at1}: field Place: is not an element of Incident (known: IncidentID, LocalReference, IncidentType, Priority, Status, OccurredAt, RecordedAt, ProtectiveMarking, Location, METHANE, Hazards, Casualties, AgenciesRequested, Persons, Narrative, ClosureCode, Extensions)\n\
                 {at1}: field Location: is required when an incident is opened"
            ),
        ),
        (
            message(0, &[("<Priority>1</Priority>", "<Priority>1</Priority><Priority>2</Priority>")]),
            format!("{at1}: field Priority: appears 2 times; give it once"),
        ),
        (
            message(0, &[(">true</MajorIncidentDeclared>", ">yes</MajorIncidentDeclared>")]),
            format!("{at1}: field METHANE/MajorIncidentDeclared: must be true or false, not \"yes\""),
        ),
        (
            message(0, &[("<Agency>LA</Agency>\n      </EmergencyServicesRequired>", "<Agency>NAVY</Agency>\n      </EmergencyServicesRequired>")]),
            format!(
                "{at1}: field METHANE/EmergencyServicesRequired/Agency[2]: \"NAVY\" is not a known code (known: AMB, AMBULANCE, COASTGUARD, FIRE, FRS, LA, MHT, POLICE)"
            ),
        ),
        (
            message(1, &[("<Serious>1</Serious>", "<Serious>-1</Serious>")]),
            format!("{at1}: field Casualties/Serious: -1 is not a count of people (0 to 100000)"),
        ),
        (
            message(0, &[("<Hazard>GAS</Hazard>", "<Hazard>LAVA</Hazard>")]),
            format!(
                "{at1}: field Hazards/Hazard[2]: \"LAVA\" is not a known code (known: ASBESTOS, CYLINDERS, DOG, ELEC, FUEL, GAS, SMOKE, TRAPPED, WATER, WEAPON)"
            ),
        ),
        (
            message(0, &[("1938-02-14", "14/02/1938")]),
            format!(
                "{at1}: field Persons/Person[2]/DateOfBirth: \"14/02/1938\" is not a date (YYYY-MM-DD, e.g. \"1984-03-07\")"
            ),
        ),
        (
            message(1, &[("<Role>WITNESS</Role>", "<Role>BYSTANDER</Role>")]),
            format!(
                "{at1}: field Persons/Person[1]/Role: \"BYSTANDER\" is not a known code (known: CALLER, CASUALTY, CONCERN, SUSPECT, VICTIM, WITNESS)"
            ),
        ),
        (
            message(1, &[(">OFFICIAL-SENSITIVE<", ">SECRET<")]),
            format!(
                "{at1}: field ProtectiveMarking/Classification: \"SECRET\" is not OFFICIAL or OFFICIAL-SENSITIVE; bluelight carries nothing higher"
            ),
        ),
        (
            message(1, &[("<MessageType>NEW<", "<MessageType>CLOSE<")]),
            format!("{at1}: field ClosureCode: is required when an incident is closed"),
        ),
        (
            message(
                0,
                &[
                    ("<MessageType>NEW<", "<MessageType>CLOSE<"),
                    ("</Narrative>", "</Narrative><ClosureCode>RESOLVED</ClosureCode>"),
                ],
            ),
            format!(
                "{at1}: field Status: \"ONSCENE\" does not close the incident but the message type is CLOSE"
            ),
        ),
        (
            message(0, &[("<Status>ONSCENE</Status>", "<Status>CLOSED</Status>")]),
            format!(
                "{at1}: field Status: \"CLOSED\" closes the incident but the message type is NEW"
            ),
        ),
        // Every problem of a record is reported at once.
        (
            message(0, &[("bs1 4sb", "BS1"), ("<Priority>1<", "<Priority>9<")]),
            format!(
                "{at1}: field Priority: \"9\" is not a known code (known: 1, 2, 3, 4)\n\
                 {at1}: field Location/Postcode: \"BS1\" is not a UK postcode (e.g. \"BS1 6HG\")"
            ),
        ),
        // The message as a whole.
        (
            message(0, &[("<MessageType>NEW<", "<MessageType>NEWW<")]),
            "mait document: field Header/MessageType: \"NEWW\" is not a known code (known: CLOSE, NEW, RESOURCE, UPDATE)".into(),
        ),
        (
            message(0, &[("<SentAt>2026-11-22T08:21:30Z</SentAt>", "")]),
            "mait document: field Header/SentAt: is required".into(),
        ),
        (
            message(0, &[("<Organisation>swast</Organisation>", "<Organisation>SW AST</Organisation>")]),
            "mait document: field Header/Recipients/Organisation[2]: \"SW AST\" is not a reference (1 to 64 characters, no spaces)".into(),
        ),
        (
            "<MAITMessage><Header><MessageID>M1</MessageID><MessageType>NEW</MessageType><SentAt>2026-11-22T08:21:30Z</SentAt><SenderOrganisation>avon-fire</SenderOrganisation></Header></MAITMessage>".into(),
            "mait document: field Incident: is required: a message carries one or more incidents".into(),
        ),
        (
            incidents()[0].to_owned(),
            "mait document: field (document): has the root element <Incident>; a MAIT message is a <MAITMessage>".into(),
        ),
        (
            message(0, &[("</Location>", "</Locaton>")]),
            "mait document: field (document): is not well-formed XML (line 39): ill-formed document: expected `</Location>`, but `</Locaton>` was found".into(),
        ),
        (
            message(0, &[("<MAITMessage", "<!DOCTYPE MAITMessage [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<MAITMessage"), ("<Narrative>", "<Narrative>&x;")]),
            "mait document: field (document): has a <!DOCTYPE> declaration; DTDs are refused so that no entity is ever expanded (remove the <!DOCTYPE ...>)".into(),
        ),
        (
            message(0, &[("<Narrative>", "<Narrative>&x;")]),
            "mait document: field (document): is not well-formed XML (line 94): &x; is not a character reference or one of the five predefined entities (amp, lt, gt, quot, apos)".into(),
        ),
        (
            "{\"events\": []}".into(),
            "mait document: field (document): is not well-formed XML (line 1): text outside the root element".into(),
        ),
    ];
    assert!(cases.len() >= 12);
    crate::adapters::testkit::assert_rejections(translate, cases);
}

#[test]
fn one_bad_record_never_stops_the_others_and_keeps_its_bytes() {
    let [first, second] = incidents()[..] else {
        panic!("two incidents in the example")
    };
    let bad = second.replace("2026-11-22T08:17:00+00:00", "not a time");
    let head = &EXAMPLE[..EXAMPLE.find("  <Incident>").expect("an incident")];
    let input = format!("{head}  {first}\n  {bad}\n  {first}\n</MAITMessage>\n");
    let t = translate(&input);
    assert_eq!(t.accepted.len(), 2);
    assert_eq!(t.rejected.len(), 1);
    let r = &t.rejected[0];
    assert_eq!(
        r.locator,
        Locator::XmlPath("/MAITMessage/Incident[2]".into())
    );
    assert_eq!(
        r.to_string(),
        "mait XML /MAITMessage/Incident[2]: field OccurredAt: \"not a time\" is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")"
    );
    assert_eq!(
        &input[r.span.clone()],
        bad,
        "the dead letter keeps exactly the record's bytes"
    );
    for a in &t.accepted {
        assert_eq!(&input[a.span.clone()], first);
    }
    assert_eq!(
        t.accepted[1].locator,
        Locator::XmlPath("/MAITMessage/Incident[3]".into())
    );
    // The same incident twice in one message is the same event (same bytes, same header).
    assert_eq!(
        t.accepted[0].record.envelope().event_id,
        t.accepted[1].record.envelope().event_id
    );
}

#[test]
fn the_header_applies_to_every_incident_and_takes_part_in_the_event_id() {
    let new = translate(&message(1, &[]));
    let update = translate(&message(
        1,
        &[("<MessageType>NEW<", "<MessageType>UPDATE<")],
    ));
    let (Canonical::Incident(new), Canonical::Incident(update)) =
        (&new.accepted[0].record, &update.accepted[0].record)
    else {
        panic!("incidents")
    };
    assert_eq!(new.envelope.event_type, EventType::IncidentOpened);
    assert_eq!(update.envelope.event_type, EventType::IncidentUpdated);
    assert_ne!(new.envelope.event_id, update.envelope.event_id);
    // No <RecordedAt>: the message's <SentAt>; the sender owns the local reference.
    assert_eq!(
        new.envelope.recorded_at,
        validate::timestamp("2026-11-22T08:21:30Z").expect("time")
    );
    // A hub submitting for a control room: the envelope names the hub (who the ingest API
    // authenticated), the local reference stays the sending control room's.
    let hub = SourceContext {
        org: "sw-mait-hub".into(),
        ..source()
    };
    let t = Mait::new()
        .expect("mappings")
        .translate(message(1, &[]).as_bytes(), &hub);
    let Canonical::Incident(via_hub) = &t.accepted[0].record else {
        panic!("incident")
    };
    assert_eq!(via_hub.envelope.source_org, "sw-mait-hub");
    assert_eq!(via_hub.local_references[0].org, "avon-fire");
    // An UPDATE needs no location.
    let no_location = message(1, &[("<MessageType>NEW<", "<MessageType>UPDATE<")]);
    let start = no_location.find("<Location>").expect("location");
    let end = no_location.find("</Location>").expect("location") + "</Location>".len();
    let no_location = format!("{}{}", &no_location[..start], &no_location[end..]);
    let t = translate(&no_location);
    assert!(t.rejected.is_empty(), "{:?}", t.rejected);
    let Canonical::Incident(r) = &t.accepted[0].record else {
        panic!("incident")
    };
    assert_eq!(r.location, None);
}

#[test]
fn namespace_prefixes_and_references_are_read() {
    let input = message(1, &[])
        .replace(
            "<MAITMessage xmlns=\"urn:bluelight:mait:1\">",
            "<m:MAITMessage xmlns:m=\"urn:bluelight:mait:1\">",
        )
        .replace("</MAITMessage>", "</m:MAITMessage>")
        .replace(
            "<Forenames>Tom</Forenames>",
            "<Forenames>T&#xF6;m &amp; Jo</Forenames>",
        );
    let t = translate(&input);
    assert!(t.rejected.is_empty(), "{:?}", t.rejected);
    let Canonical::Incident(r) = &t.accepted[0].record else {
        panic!("incident")
    };
    assert_eq!(
        r.people[0]
            .identity
            .as_ref()
            .and_then(|i| i.forenames.as_deref()),
        Some("Töm & Jo")
    );
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Arbitrary bytes, and the example with bytes flipped or cut: never a panic.
        #[test]
        fn the_mait_parser_never_panics(
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let adapter = Mait::new().expect("mappings");
            crate::adapters::testkit::assert_survives_mutation(&adapter, &source(), EXAMPLE, &noise, &flips, cut)?;
        }
    }
}

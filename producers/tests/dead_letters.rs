//! For every adapter: a batch with ten bad records (each broken in a different way) and a good one,
//! published to the real broker. Every bad record lands on the dead-letter topic with its original
//! bytes and its error; the good one is published; nothing is lost.
//! (The precise error texts are asserted per adapter in the unit tests' tables.)

use std::collections::HashMap;

use bluelight_avro::records::Timestamp;
use bluelight_producers::{
    adapters::{SourceContext, by_name},
    publish::Submission,
};
use rdkafka::{Message, message::OwnedMessage};
use serde_json::{Value, json};

mod common;

use common::{header, read_all, setup};

/// Publishes `input` as `adapter` and checks the dead letters against the rejections.
async fn check(adapter: &str, org: &str, input: &str, bad: usize, good: usize) {
    let (publisher, topics, _) = setup(1000).await;
    let source = SourceContext {
        org: org.into(),
        system: adapter.into(),
        received_at: Timestamp(1_795_300_000_000),
    };
    let translation = by_name(adapter)
        .expect("adapter")
        .translate(input.as_bytes(), &source);
    let messages: Vec<String> = translation
        .rejected
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        translation.rejected.len(),
        bad,
        "{adapter}: rejections:\n{}",
        messages.join("\n")
    );
    assert_eq!(translation.accepted.len(), good, "{adapter}");
    let published = publisher
        .publish(Submission {
            input: input.as_bytes(),
            translation: &translation,
            source: &source,
            traceparent: None,
        })
        .await
        .expect("publish");
    assert_eq!(published.dead_lettered, bad);
    let dead = read_all(&topics.dead_letter, bad).await;
    let by_record: HashMap<String, &OwnedMessage> = dead
        .iter()
        .map(|m| (header(m, "bl-record").expect("bl-record"), m))
        .collect();
    assert_eq!(by_record.len(), bad, "one dead letter per bad record");
    for r in &translation.rejected {
        let msg = by_record[&r.locator.to_string()];
        assert_eq!(
            msg.payload(),
            Some(&input.as_bytes()[r.span.clone()]),
            "{adapter} {}: original bytes",
            r.locator
        );
        assert_eq!(header(msg, "bl-error"), Some(r.to_string()));
        assert_eq!(header(msg, "bl-adapter").as_deref(), Some(adapter));
        assert_eq!(header(msg, "bl-source").as_deref(), Some(org));
        assert_eq!(header(msg, "bl-record-context"), r.context.clone());
        match adapter {
            "rms" => assert!(
                r.context
                    .as_deref()
                    .is_some_and(|c| c.starts_with("milestone,crime_ref")),
                "the CSV header travels with the row"
            ),
            "mait" => assert!(
                r.context
                    .as_deref()
                    .is_some_and(|c| c.contains("<MessageType>")),
                "the message header travels with the incident"
            ),
            _ => assert!(r.context.is_none()),
        }
    }
}

fn mutate_json(example: &str, list: &str, edits: &[(&str, Value)]) -> String {
    let doc: Value = serde_json::from_str(example).expect("example");
    let first = doc[list][0].clone();
    let mut records = vec![first.clone()];
    for (pointer, value) in edits {
        let mut r = first.clone();
        *r.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
        records.push(r);
    }
    serde_json::to_string_pretty(&json!({ list: records })).expect("json")
}

#[tokio::test]
async fn cad_bad_records_are_dead_lettered_with_their_bytes() {
    let edits = [
        ("/incident_id", json!("")),
        ("/action", json!("reopen")),
        ("/occurred_at", json!("2026-11-22T08:14:03")),
        ("/type", json!("UFO")),
        ("/grade", json!(9)),
        ("/classification", json!("SECRET")),
        ("/location/postcode", json!("BS1")),
        ("/location/lat", json!(95.0)),
        ("/hazards", json!(["LAVA"])),
        ("/persons/1/dob", json!("02/05/1941")),
    ];
    check(
        "cad",
        "avon-police",
        &mutate_json(
            include_str!("../examples/cad-incidents.json"),
            "events",
            &edits,
        ),
        10,
        1,
    )
    .await;
}

#[tokio::test]
async fn victim_crm_bad_records_are_dead_lettered_with_their_bytes() {
    let edits = [
        ("/victim_ref", json!("")),
        ("/action", json!("delete")),
        ("/occurred_at", json!("yesterday")),
        ("/enhanced_reasons", json!([])),
        ("/enhanced_rights", json!("yes")),
        ("/contact/channel", json!("PIGEON")),
        ("/contact/frequency", json!(7)),
        ("/person/dob", json!("2999-01-01")),
        ("/person/address/postcode", json!("NOWHERE")),
        ("/case_refs", json!("CRIME-1")),
    ];
    check(
        "victim-crm",
        "avon-victim-care",
        &mutate_json(
            include_str!("../examples/victim-crm.json"),
            "victims",
            &edits,
        ),
        10,
        1,
    )
    .await;
}

#[tokio::test]
async fn rms_bad_rows_are_dead_lettered_with_their_bytes() {
    let example = include_str!("../examples/rms-export.csv");
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(example.as_bytes());
    let header = reader.headers().expect("header").clone();
    let first: csv::StringRecord = reader.records().next().expect("row").expect("row");
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let edits = [
        ("milestone", "ESCAPED"),
        ("crime_ref", ""),
        ("occurred_at", "2026-10-03 22:40"),
        ("offence_codes", "8/1"),
        ("oic_force", "99"),
        ("victim_enhanced", "MAYBE"),
        ("victim_enhanced_reasons", "ANGRY"),
        ("victim_contact_channel", "PIGEON"),
        ("classification", "SECRET"),
        ("recorded_at", "soon"),
    ];
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&header).expect("header");
    out.write_record(&first).expect("row");
    for (name, value) in edits {
        let mut row: Vec<String> = first.iter().map(str::to_owned).collect();
        row[column(name)] = value.to_owned();
        out.write_record(&row).expect("row");
    }
    let input = String::from_utf8(out.into_inner().expect("csv")).expect("utf8");
    check("rms", "avon-police", &input, 10, 1).await;
}

#[tokio::test]
async fn mait_bad_incidents_are_dead_lettered_with_their_bytes() {
    let example = include_str!("../examples/mait-incident.xml");
    let start = example.find("<Incident>").expect("incident");
    let end = example.find("</Incident>").expect("end") + "</Incident>".len();
    let incident = &example[start..end];
    let edits = [
        (
            "<IncidentID>INC-20261122-0051</IncidentID>",
            "<IncidentID></IncidentID>",
        ),
        (
            "<IncidentType>FIRE-DWELL</IncidentType>",
            "<IncidentType>UFO</IncidentType>",
        ),
        ("<Priority>1</Priority>", "<Priority>9</Priority>"),
        (
            "<OccurredAt>2026-11-22T08:09:00Z</OccurredAt>",
            "<OccurredAt>2026-11-22 08:09</OccurredAt>",
        ),
        ("<UPRN>100120098765</UPRN>", "<UPRN>12AB</UPRN>"),
        ("<Postcode>bs1 4sb</Postcode>", "<Postcode>NOPE</Postcode>"),
        ("<Latitude>51.4508</Latitude>", "<Latitude>95.5</Latitude>"),
        ("<Hazard>SMOKE</Hazard>", "<Hazard>LAVA</Hazard>"),
        ("<Role>CALLER</Role>", "<Role>BYSTANDER</Role>"),
        (
            "<MajorIncidentDeclared>true</MajorIncidentDeclared>",
            "<MajorIncidentDeclared>perhaps</MajorIncidentDeclared>",
        ),
    ];
    let mut body = String::from(incident);
    for (from, to) in edits {
        assert!(incident.contains(from), "{from}");
        body.push('\n');
        body.push_str(&incident.replacen(from, to, 1));
    }
    let input = format!("{}{}{}", &example[..start], body, &example[end..]);
    check("mait", "avon-fire", &input, 10, 2).await;
}

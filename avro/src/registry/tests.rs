//! Unit tests of the registry without Kafka: the record format, the state machine that applies the
//! log, the writer's proposals and repairs, and the compatibility checks.

use super::{
    compat::{self, CompatibilityLevel},
    service::VersionSpec,
    store::{self, Applied, Decoded, Record, SchemaValue, Settle, State},
};

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Incident","namespace":"bl","fields":[{fields}]}}"#)
}

fn v1() -> String {
    record(r#"{"name":"id","type":"string"}"#)
}

/// v1 plus a field with a default: backward and forward compatible with v1.
fn v2() -> String {
    record(r#"{"name":"id","type":"string"},{"name":"force","type":"string","default":""}"#)
}

/// v1 plus a field without a default: new readers cannot read v1 data.
fn v3_no_default() -> String {
    record(r#"{"name":"id","type":"string"},{"name":"grade","type":"int"}"#)
}

fn value(subject: &str, version: u32, id: u32, schema: &str, deleted: bool) -> SchemaValue {
    SchemaValue {
        subject: subject.into(),
        version,
        id,
        schema_type: None,
        schema: schema.into(),
        references: Vec::new(),
        deleted,
    }
}

fn put(subject: &str, version: u32, id: u32, schema: &str) -> Record {
    Record::Schema {
        subject: subject.into(),
        version,
        value: Some(value(subject, version, id, schema, false)),
    }
}

fn soft_delete(subject: &str, version: u32, id: u32, schema: &str) -> Record {
    Record::Schema {
        subject: subject.into(),
        version,
        value: Some(value(subject, version, id, schema, true)),
    }
}

fn tombstone(subject: &str, version: u32) -> Record {
    Record::Schema {
        subject: subject.into(),
        version,
        value: None,
    }
}

fn key_of(schema: &str) -> std::sync::Arc<str> {
    store::parse(schema).expect("test schema parses").key
}

fn state_of(records: impl IntoIterator<Item = Record>) -> State {
    let mut state = State::default();
    for r in records {
        state.apply(r);
    }
    state
}

/// Everything observable about a state, for comparing two of them.
fn snapshot(state: &State) -> Vec<String> {
    let mut out = Vec::new();
    for subject in state.subjects(true) {
        for version in state.versions(&subject, true) {
            let v = state.value_at(&subject, version).expect("listed version");
            out.push(format!(
                "{subject}/{version} id={} deleted={} {}",
                v.id, v.deleted, v.schema
            ));
        }
        out.push(format!(
            "{subject} level={:?}",
            state.subject_level(&subject)
        ));
    }
    out.push(format!("global={:?}", state.global_level()));
    out
}

// ---- record format ----

#[test]
fn records_are_written_in_confluents_format() {
    let (key, val) = put("bl.incident.v1-value", 1, 7, r#""string""#).encode();
    assert_eq!(
        String::from_utf8(key).expect("utf-8"),
        r#"{"keytype":"SCHEMA","subject":"bl.incident.v1-value","version":1,"magic":1}"#
    );
    assert_eq!(
        String::from_utf8(val.expect("value")).expect("utf-8"),
        r#"{"subject":"bl.incident.v1-value","version":1,"id":7,"schema":"\"string\"","deleted":false}"#
    );

    let (key, val) = Record::Config {
        subject: None,
        level: Some(CompatibilityLevel::Full),
    }
    .encode();
    assert_eq!(key, br#"{"keytype":"CONFIG","subject":null,"magic":0}"#);
    assert_eq!(val.expect("value"), br#"{"compatibilityLevel":"FULL"}"#);

    let (key, val) = Record::Config {
        subject: Some("s".into()),
        level: None,
    }
    .encode();
    assert_eq!(key, br#"{"keytype":"CONFIG","subject":"s","magic":0}"#);
    assert_eq!(val, None);

    let (key, val) = Record::DeleteSubject {
        subject: "s".into(),
        up_to: Some(3),
    }
    .encode();
    assert_eq!(
        key,
        br#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#
    );
    assert_eq!(val.expect("value"), br#"{"subject":"s","version":3}"#);

    assert_eq!(tombstone("s", 2).encode().1, None);
}

#[test]
fn every_record_decodes_to_itself() {
    let records = [
        put("s", 1, 1, &v1()),
        soft_delete("s", 1, 1, &v1()),
        tombstone("s", 1),
        Record::Config {
            subject: None,
            level: Some(CompatibilityLevel::BackwardTransitive),
        },
        Record::Config {
            subject: Some("s".into()),
            level: None,
        },
        Record::DeleteSubject {
            subject: "s".into(),
            up_to: Some(4),
        },
        Record::DeleteSubject {
            subject: "s".into(),
            up_to: None,
        },
    ];
    for r in records {
        let (key, val) = r.encode();
        assert_eq!(
            store::decode(Some(&key), val.as_deref()),
            Ok(Decoded::Record(r.clone()))
        );
    }
}

#[test]
fn records_from_confluent_with_other_field_orders_and_extra_fields_decode() {
    let key = br#"{"magic":1,"version":2,"subject":"s","keytype":"SCHEMA"}"#;
    let val = br#"{"schema":"\"long\"","deleted":false,"id":9,"version":2,"subject":"s","schemaType":"AVRO","metadata":null}"#;
    assert_eq!(
        store::decode(Some(key), Some(val)),
        Ok(Decoded::Record(Record::Schema {
            subject: "s".into(),
            version: 2,
            value: Some(SchemaValue {
                schema_type: Some("AVRO".into()),
                ..value("s", 2, 9, r#""long""#, false)
            }),
        }))
    );
    let config = store::decode(
        Some(br#"{"keytype":"CONFIG","magic":0}"#),
        Some(br#"{"compatibilityLevel":"forward","alias":null}"#),
    );
    assert_eq!(
        config,
        Ok(Decoded::Record(Record::Config {
            subject: None,
            level: Some(CompatibilityLevel::Forward),
        }))
    );
    assert_eq!(
        store::decode(Some(br#"{"keytype":"NOOP","magic":0}"#), None),
        Ok(Decoded::Noop)
    );
    assert_eq!(
        store::decode(
            Some(br#"{"keytype":"MODE","subject":null,"magic":0}"#),
            Some(b"{}")
        ),
        Ok(Decoded::Unknown("MODE".into()))
    );
}

/// A record's key and value bytes as they may lie on the topic.
type RawRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

#[test]
fn malformed_records_are_errors_not_panics() {
    let schema_key = br#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#;
    let cases: [RawRecord; 9] = [
        (None, Some(b"{}")),
        (Some(b"not json"), None),
        (Some(br#"{"subject":"s"}"#), None),
        (Some(br#"{"keytype":"SCHEMA","version":1}"#), None),
        (
            Some(br#"{"keytype":"SCHEMA","subject":"s","version":0}"#),
            None,
        ),
        (Some(schema_key), Some(b"[1,2]")),
        (
            Some(schema_key),
            Some(br#"{"subject":"t","version":1,"id":1,"schema":"\"int\""}"#),
        ),
        (
            Some(schema_key),
            Some(br#"{"subject":"s","version":1,"id":1,"schema":"x","schemaType":"PROTOBUF"}"#),
        ),
        (
            Some(br#"{"keytype":"CONFIG","subject":"s"}"#),
            Some(br#"{"compatibilityLevel":"SIDEWAYS"}"#),
        ),
    ];
    for (key, val) in cases {
        assert!(
            store::decode(key, val).is_err(),
            "{:?} / {:?} should be malformed",
            key.map(String::from_utf8_lossy),
            val.map(String::from_utf8_lossy)
        );
    }
}

// ---- applying the log ----

#[test]
fn one_schema_has_one_id_across_subjects_whatever_was_proposed() {
    let spaced = v1().replace(',', " ,\n ");
    let state = state_of([put("a", 1, 1, &v1()), put("b", 1, 5, &spaced)]);
    assert_eq!(state.slot("b", 1).map(|s| s.id), Some(1));
    assert!(state.schema(5).is_none());
    assert_eq!(state.uses_of(1, false), [("a".into(), 1), ("b".into(), 1)]);
    assert_eq!(&*state.schema(1).expect("id 1").text, v1().as_str());
}

#[test]
fn a_taken_version_or_a_taken_id_makes_a_proposal_lose() {
    let mut state = state_of([put("a", 1, 1, &v1())]);
    assert!(matches!(
        state.apply(put("a", 1, 2, &v2())),
        Applied::Lost(_)
    ));
    assert!(matches!(
        state.apply(put("b", 1, 1, &v2())),
        Applied::Lost(_)
    ));
    assert_eq!(state.apply(put("b", 1, 2, &v2())), Applied::Done);
    assert_eq!(state.slot("a", 1).map(|s| s.id), Some(1));
    assert_eq!(state.find("b", &key_of(&v2()), false), Some((1, 2)));
    assert!(state.slot("a", 2).is_none());
}

#[test]
fn a_record_whose_schema_does_not_parse_is_skipped() {
    let mut state = State::default();
    assert!(matches!(
        state.apply(put("a", 1, 1, "{not avro")),
        Applied::Skipped(_)
    ));
    assert!(state.subjects(true).is_empty());
}

#[test]
fn soft_deletes_hide_versions_but_keep_ids() {
    let mut state = state_of([put("a", 1, 1, &v1()), put("a", 2, 2, &v2())]);
    state.apply(soft_delete("a", 2, 2, &v2()));
    assert_eq!(state.versions("a", false), [1]);
    assert_eq!(state.versions("a", true), [1, 2]);
    assert_eq!(state.find("a", &key_of(&v2()), false), None);
    assert_eq!(state.find("a", &key_of(&v2()), true), Some((2, 2)));
    assert!(
        state.schema(2).is_some(),
        "a soft-deleted id still resolves"
    );

    state.apply(Record::DeleteSubject {
        subject: "a".into(),
        up_to: Some(2),
    });
    assert!(!state.has_subject("a", false));
    assert!(state.has_subject("a", true));
    assert_eq!(state.subjects(false), Vec::<String>::new());
    assert_eq!(state.subjects(true), ["a"]);

    // A version registered after the subject's deletion is not covered by it.
    state.apply(put("a", 3, 1, &v1()));
    assert_eq!(state.versions("a", false), [3]);
    assert_eq!(state.find("a", &key_of(&v1()), false), Some((3, 1)));
}

#[test]
fn tombstones_remove_versions_and_ids_nobody_uses_any_more() {
    let mut state = state_of([
        put("a", 1, 1, &v1()),
        put("b", 1, 1, &v1()),
        put("a", 2, 2, &v2()),
    ]);
    state.apply(tombstone("a", 1));
    assert!(state.schema(1).is_some(), "still used by b");
    state.apply(tombstone("b", 1));
    assert!(state.schema(1).is_none());
    assert_eq!(state.id_of(&key_of(&v1())), None);
    assert_eq!(state.subjects(true), ["a"]);
    state.apply(tombstone("a", 2));
    state.apply(tombstone("a", 2));
    assert!(state.subjects(true).is_empty());
    assert_eq!(state.counts(), (0, 0));
}

#[test]
fn config_records_set_and_clear_levels() {
    let mut state = State::default();
    let default = CompatibilityLevel::BackwardTransitive;
    assert_eq!(state.level_for("s", default), default);
    state.apply(Record::Config {
        subject: None,
        level: Some(CompatibilityLevel::Full),
    });
    assert_eq!(state.level_for("s", default), CompatibilityLevel::Full);
    state.apply(Record::Config {
        subject: Some("s".into()),
        level: Some(CompatibilityLevel::None),
    });
    assert_eq!(state.level_for("s", default), CompatibilityLevel::None);
    assert_eq!(state.level_for("t", default), CompatibilityLevel::Full);
    state.apply(Record::Config {
        subject: Some("s".into()),
        level: None,
    });
    state.apply(Record::Config {
        subject: None,
        level: None,
    });
    assert_eq!(state.level_for("s", default), default);
}

// ---- the writer's side ----

#[test]
fn proposals_continue_versions_and_never_reuse_ids() {
    let mut state = state_of([put("a", 1, 1, &v1()), put("a", 2, 2, &v2())]);
    state.apply(soft_delete("a", 2, 2, &v2()));
    let v3 = v3_no_default();
    let p = state
        .propose("a", &v3, &store::parse(&v3).expect("parses"))
        .expect("proposal");
    assert_eq!(
        (p.version, p.id),
        (3, 3),
        "after the soft-deleted version 2"
    );

    // A schema known under another subject keeps its id (and its first text).
    let spaced = v1().replace(',', " , ");
    let p = state
        .propose("b", &spaced, &store::parse(&spaced).expect("parses"))
        .expect("proposal");
    assert_eq!((p.version, p.id, p.schema.as_str()), (1, 1, v1().as_str()));

    // Hard-deleted ids are not handed out again by this instance.
    state.apply(tombstone("a", 2));
    let p = state
        .propose("c", &v3, &store::parse(&v3).expect("parses"))
        .expect("proposal");
    assert_eq!(p.id, 3);
}

/// The log as compaction leaves it: the last record of each key, in log order, tombstones gone.
fn compacted(log: &[Record]) -> Vec<Record> {
    let key = |r: &Record| r.encode().0;
    let last: Vec<_> = log
        .iter()
        .enumerate()
        .filter(|(i, r)| !log[i + 1..].iter().any(|later| key(later) == key(r)))
        .map(|(_, r)| r.clone())
        .collect();
    last.into_iter()
        .filter(|r| r.encode().1.is_some())
        .collect()
}

fn schema_record(value: SchemaValue) -> Record {
    Record::Schema {
        subject: value.subject.clone(),
        version: value.version,
        value: Some(value),
    }
}

#[test]
fn a_writer_that_lost_its_slot_restates_the_winner() {
    // Two instances both proposed version 1 of "a"; the other one's record came first.
    let mut log = vec![put("a", 1, 1, &v1()), put("a", 1, 2, &v2())];
    let state = state_of(log.clone());
    let Settle::Restate(winner) = state.settle(&value("a", 1, 2, &v2(), false)) else {
        panic!("the slot holds the winner")
    };
    assert_eq!(winner, value("a", 1, 1, &v1(), false));
    log.push(schema_record(winner.clone()));
    let state = state_of(log.clone());
    assert_eq!(state.settle(&winner), Settle::Done);
    // Compaction keeps the restated winner, not the losing record.
    assert_eq!(snapshot(&state_of(compacted(&log))), snapshot(&state));
}

#[test]
fn a_writer_whose_schema_had_another_id_restates_the_id() {
    let state = state_of([put("a", 1, 1, &v1()), put("b", 1, 2, &v1())]);
    // This writer did not know v1 had id 1 yet and proposed id 2.
    let Settle::Restate(actual) = state.settle(&value("b", 1, 2, &v1(), false)) else {
        panic!("the id differs")
    };
    assert_eq!(actual.id, 1);
}

#[test]
fn a_proposal_that_lost_its_id_is_withdrawn_before_compaction_can_revive_it() {
    // `b` v1 proposed id 1, which v1 under `a` holds: it loses and its slot stays empty.
    let mut log = vec![put("a", 1, 1, &v1()), put("b", 1, 1, &v2())];
    let state = state_of(log.clone());
    assert!(state.slot("b", 1).is_none());
    let Settle::Withdraw(withdrawn) = state.settle(&value("b", 1, 1, &v2(), false)) else {
        panic!("the slot is empty")
    };
    assert_eq!((withdrawn.id, withdrawn.deleted), (store::WITHDRAWN, true));
    log.push(schema_record(withdrawn.clone()));
    // Then `a` v1 is soft-deleted: its record moves after the losing one.
    log.push(soft_delete("a", 1, 1, &v1()));
    let state = state_of(log.clone());
    assert_eq!(state.settle(&withdrawn), Settle::Done);
    assert_eq!(snapshot(&state_of(compacted(&log))), snapshot(&state));
    assert_eq!(state.slot("a", 1).map(|s| s.id), Some(1));

    // Without the withdrawal, the compacted log would give id 1 to the loser.
    let unsettled = [
        put("a", 1, 1, &v1()),
        put("b", 1, 1, &v2()),
        soft_delete("a", 1, 1, &v1()),
    ];
    assert_ne!(
        snapshot(&state_of(compacted(&unsettled))),
        snapshot(&state_of(unsettled.clone()))
    );
}

#[test]
fn withdrawn_proposals_change_nothing() {
    let mut state = state_of([put("a", 1, 1, &v1())]);
    let before = snapshot(&state);
    for (subject, schema) in [("a", v1()), ("b", v2())] {
        let withdrawn = SchemaValue {
            id: store::WITHDRAWN,
            ..value(subject, 1, 0, &schema, true)
        };
        assert!(matches!(
            state.apply(schema_record(withdrawn)),
            Applied::Lost(_)
        ));
    }
    assert_eq!(snapshot(&state), before);
}

#[test]
fn replaying_the_same_log_gives_the_same_state() {
    let log = vec![
        put("a", 1, 1, &v1()),
        put("b", 1, 1, &v2()),
        put("b", 1, 2, &v2()),
        put("a", 2, 3, &v2()),
        put("a", 2, 4, &v3_no_default()),
        Record::Config {
            subject: Some("a".into()),
            level: Some(CompatibilityLevel::Forward),
        },
        soft_delete("a", 1, 1, &v1()),
        Record::DeleteSubject {
            subject: "b".into(),
            up_to: Some(1),
        },
        tombstone("b", 1),
        put("b", 1, 5, &v3_no_default()),
    ];
    let first = state_of(log.clone());
    let second = state_of(log);
    assert_eq!(snapshot(&first), snapshot(&second));
    assert_eq!(first.slot("a", 2).map(|s| s.id), Some(2), "v2 kept id 2");
    assert_eq!(first.slot("b", 1).map(|s| s.id), Some(5));
}

// ---- compatibility ----

fn parsed(schema: &str) -> std::sync::Arc<apache_avro::Schema> {
    store::parse(schema).expect("parses").schema
}

#[test]
fn levels_parse_case_insensitively_and_reject_others() {
    for level in CompatibilityLevel::ALL {
        assert_eq!(
            level.as_str().parse::<CompatibilityLevel>().ok(),
            Some(level)
        );
        assert_eq!(
            level
                .as_str()
                .to_lowercase()
                .parse::<CompatibilityLevel>()
                .ok(),
            Some(level)
        );
    }
    assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
}

#[test]
fn backward_needs_defaults_for_new_fields() {
    let old = [(1, parsed(&v1()))];
    assert!(compat::check(CompatibilityLevel::Backward, &parsed(&v2()), &old).is_empty());
    let problems = compat::check(
        CompatibilityLevel::Backward,
        &parsed(&v3_no_default()),
        &old,
    );
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("version 1") && problems[0].contains("grade"),
        "{problems:?}"
    );
    // Forward: the old schema reads new data by ignoring the new field.
    assert!(compat::check(CompatibilityLevel::Forward, &parsed(&v3_no_default()), &old).is_empty());
    assert!(!compat::check(CompatibilityLevel::Full, &parsed(&v3_no_default()), &old).is_empty());
    assert!(compat::check(CompatibilityLevel::None, &parsed(r#""int""#), &old).is_empty());
}

#[test]
fn transitive_levels_check_every_version() {
    // v1 has a string `id`; v2 drops it; v3 brings `id` back as an int. v3 reads v2 data (the
    // default fills `id`) but not v1's (a string is no int).
    let a = record(r#"{"name":"id","type":"string"}"#);
    let b = record(r#"{"name":"other","type":"string","default":""}"#);
    let c = record(r#"{"name":"id","type":"int","default":0}"#);
    let previous = [(1, parsed(&a)), (2, parsed(&b))];
    assert!(compat::check(CompatibilityLevel::Backward, &parsed(&c), &previous).is_empty());
    let problems = compat::check(
        CompatibilityLevel::BackwardTransitive,
        &parsed(&c),
        &previous,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("version 1"), "{problems:?}");
}

#[test]
fn missing_enum_symbols_are_incompatible() {
    let enumeration =
        |symbols: &str| format!(r#"{{"type":"enum","name":"Grade","symbols":[{symbols}]}}"#);
    let old = [(1, parsed(&enumeration(r#""A","B""#)))];
    let fewer = parsed(&enumeration(r#""A""#));
    assert!(!compat::check(CompatibilityLevel::Backward, &fewer, &old).is_empty());
    let more = parsed(&enumeration(r#""A","B","C""#));
    assert!(compat::check(CompatibilityLevel::Backward, &more, &old).is_empty());
}

#[test]
fn versions_parse_like_confluent() {
    assert_eq!(
        "latest".parse::<VersionSpec>().ok(),
        Some(VersionSpec::Latest)
    );
    assert_eq!("-1".parse::<VersionSpec>().ok(), Some(VersionSpec::Latest));
    assert_eq!(
        "7".parse::<VersionSpec>().ok(),
        Some(VersionSpec::Number(7))
    );
    for bad in ["0", "-2", "abc", "2147483648", ""] {
        assert!(bad.parse::<VersionSpec>().is_err(), "{bad}");
    }
}

#[test]
fn the_same_schema_is_decided_by_meaning_not_spelling() {
    let reordered = r#"{"fields":[{"type":"string","name":"id"}],"namespace":"bl","name":"Incident","type":"record"}"#;
    assert_eq!(key_of(&v1()), key_of(reordered));
    // A new default or doc is a new schema (Confluent keeps both), unlike the canonical form.
    let with_default = record(r#"{"name":"id","type":"string","default":"x"}"#);
    assert_ne!(key_of(&v1()), key_of(&with_default));
}

use super::*;

const GOOD_TOPIC: &str = r#"
[[topic]]
name = "bl.incident.v1"
partitions = 6
cleanup_policy = "delete"
retention = "90d"
key = "incident id"
value_subject = "bl.incident.v1-value"
owner = "producers"
description = "incidents"
"#;

fn problems(text: &str) -> Vec<String> {
    match Catalogue::parse(text, "t.toml") {
        Ok(_) => vec![],
        Err(Error::Catalogue { problems, .. }) => problems
            .iter()
            .map(|p| format!("{}:{} {}", p.line, p.column, p.reason))
            .collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[test]
fn the_shipped_catalogue_is_valid_and_has_the_contract_topics() {
    let cat = Catalogue::parse(crate::DEFAULT_CATALOGUE, "topics/topics.toml")
        .expect("shipped catalogue");
    for name in [
        "bl.incident.v1",
        "bl.case.v1",
        "bl.victim.v1",
        "audit.disclosure.v1",
        "dlq.ingest.v1",
        "_schemas",
    ] {
        assert!(cat.get(name).is_some(), "{name} missing");
    }
    let registry = cat.get("_schemas").expect("registry topic");
    assert_eq!(
        (registry.partitions, registry.cleanup_policy),
        (1, CleanupPolicy::Compact)
    );
    let audit = cat.get("audit.disclosure.v1").expect("audit topic");
    assert_eq!(audit.retention, Retention::Millis(7 * 365 * DAY_MS));
    assert!(cat.topics.iter().all(|t| t.replication_factor == 3));
}

#[test]
fn a_good_topic_loads_with_defaults_and_desired_configs() {
    let cat = Catalogue::parse(GOOD_TOPIC, "t.toml").expect("valid");
    let t = &cat.topics[0];
    assert_eq!(t.line, 2);
    assert_eq!(t.replication_factor, 3);
    let configs = t.desired_configs();
    assert_eq!(configs["cleanup.policy"], "delete");
    assert_eq!(configs["retention.ms"], (90 * DAY_MS).to_string());
    let cat = cat.with_replication_factor(1);
    assert_eq!(cat.topics[0].replication_factor, 1);
}

#[test]
fn syntax_and_type_errors_name_the_line() {
    let cases: &[(&str, &str)] = &[
        (
            "[[topic]]\nname = \"bl.a.v1\"\npartitions = \"six\"\n",
            "3:14 invalid type: string \"six\", expected i64",
        ),
        ("[[topic]]\nname = bl.a.v1\n", "2:8 "),
        (
            "[[topic]]\nname = \"bl.a.v1\"\npartitons = 3\n",
            "3:1 unknown field `partitons`",
        ),
        (
            &GOOD_TOPIC.replace("owner = \"producers\"\n", ""),
            "2:1 missing field `owner`",
        ),
    ];
    for (text, want) in cases {
        let got = problems(text);
        assert!(
            got.len() == 1 && got[0].starts_with(want),
            "want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn rule_violations_name_the_line_and_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "partitions = 6",
            "partitions = 0",
            "4:14 topic bl.incident.v1: partitions must be between 1 and 10000, not 0",
        ),
        (
            "bl.incident.v1",
            "bl.Incident.v1",
            "3:8 topic bl.Incident.v1: segment \"Incident\" must start with a lower-case letter",
        ),
        (
            "\"delete\"",
            "\"remove\"",
            "5:18 topic bl.incident.v1: cleanup_policy \"remove\" is not one of",
        ),
        (
            "\"90d\"",
            "\"90 days\"",
            "6:13 topic bl.incident.v1: retention \"90 days\" needs a unit",
        ),
        (
            "\"90d\"",
            "\"0d\"",
            "6:13 topic bl.incident.v1: retention must be longer than zero",
        ),
        (
            "\"bl.incident.v1-value\"",
            "\"incident-value\"",
            "8:17 topic bl.incident.v1: value_subject must be \"bl.incident.v1-value\"",
        ),
        (
            "\"incident id\"",
            "\"  \"",
            "7:7 topic bl.incident.v1: key must say something",
        ),
        (
            "partitions = 6",
            "partitions = 6\nreplication_factor = 0",
            "5:22 topic bl.incident.v1: replication_factor must be at least 1, not 0",
        ),
        (
            "description = \"incidents\"",
            "description = \"incidents\"\n[topic.config]\n\"retention.ms\" = \"5\"",
            "12:18 topic bl.incident.v1: config \"retention.ms\" is set by the topic's own fields",
        ),
    ];
    for (from, to, want) in cases {
        let text = GOOD_TOPIC.replace(from, to);
        let got = problems(&text);
        assert!(
            got.len() == 1 && got[0].starts_with(want),
            "want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn kind_rules_protect_audit_state_and_dead_letters() {
    let topic = |name: &str, policy: &str, retention: &str, subject: bool| {
        let subject = if subject {
            format!("value_subject = \"{name}-value\"\n")
        } else {
            String::new()
        };
        format!(
            "[[topic]]\nname = \"{name}\"\npartitions = 1\ncleanup_policy = \"{policy}\"\nretention = \"{retention}\"\nkey = \"k\"\n{subject}owner = \"o\"\ndescription = \"d\"\n"
        )
    };
    let cases = [
        (
            topic("audit.disclosure.v1", "compact", "forever", true),
            "audit topics are append-only logs and must not be compacted",
        ),
        (
            topic("audit.disclosure.v1", "delete", "30d", true),
            "audit topics must keep records at least 365d, not 30d",
        ),
        (
            topic("state.x.v1", "delete", "30d", true),
            "state topics hold current state and must be compacted",
        ),
        (
            topic("_schemas", "delete", "30d", false),
            "registry topics hold current state and must be compacted",
        ),
        (
            topic("dlq.ingest.v1", "compact", "forever", false),
            "dead-letter topics must not be compacted",
        ),
        (
            topic("state.x.v1", "compact", "30d", false),
            "retention has no effect on a compact-only topic",
        ),
        (
            topic("bl.case.v1", "delete", "30d", false),
            "canonical topics carry Avro values and need value_subject = \"bl.case.v1-value\"",
        ),
    ];
    for (text, want) in cases {
        let got = problems(&text);
        assert!(
            got.len() == 1 && got[0].contains(want),
            "want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once_and_duplicates_are_caught() {
    let text = format!(
        "{GOOD_TOPIC}{GOOD_TOPIC}{}",
        GOOD_TOPIC.replace("partitions = 6", "partitions = -1")
    );
    let got = problems(&text);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("13:8 topic bl.incident.v1 is listed twice"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("24:14 topic bl.incident.v1: partitions"),
        "{got:?}"
    );
    assert_eq!(
        problems("# nothing\n"),
        vec!["1:1 the catalogue lists no topics; add [[topic]] entries".to_owned()]
    );
}

#[test]
fn the_error_message_reads_as_file_line_reason() {
    let err = Catalogue::parse(
        &GOOD_TOPIC.replace("partitions = 6", "partitions = 0"),
        "topics/topics.toml",
    )
    .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "topics/topics.toml is not a valid topic catalogue:\n  line 4, column 14: topic bl.incident.v1: partitions must be between 1 and 10000, not 0"
    );
    assert_eq!(err.domain(), crate::ErrorDomain::User);
}

#[test]
fn retention_parses_units_and_prints_them_back() {
    assert_eq!(Retention::parse("forever"), Ok(Retention::Forever));
    assert_eq!(
        Retention::parse("36h"),
        Ok(Retention::Millis(36 * 3_600_000))
    );
    assert_eq!(
        Retention::parse("2w").map(|r| r.to_string()),
        Ok("14d".into())
    );
    assert_eq!(
        Retention::parse("7y").map(|r| r.to_string()),
        Ok("7y".into())
    );
    assert!(Retention::parse("d").is_err());
    assert!(Retention::parse("99999999999999999y").is_err());
}

//! The `bluelight topics` command as an operator uses it, against the test broker.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use bluelight_topics::testing::{self, unique};

fn bluelight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args(args)
        .env("BLUELIGHT_BROKERS", testing::brokers())
        .env_remove("BLUELIGHT_CATALOGUE")
        .output()
        .expect("run bluelight")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_catalogue(body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("bluelight-cli-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("topics.toml");
    std::fs::write(&path, body).expect("write catalogue");
    path
}

fn entry(name: &str, partitions: u32) -> String {
    format!(
        "[[topic]]\nname = \"{name}\"\npartitions = {partitions}\ncleanup_policy = \"delete\"\nretention = \"1d\"\n\
         key = \"k\"\nvalue_subject = \"{name}-value\"\nowner = \"tests\"\ndescription = \"d\"\n"
    )
}

#[test]
fn apply_twice_creates_then_reports_no_change() {
    let (a, b) = (
        format!("{}.v1", unique("bl.clia")),
        format!("{}.v1", unique("bl.clib")),
    );
    let file = write_catalogue(&[entry(&a, 2), entry(&b, 1)].concat());
    let file = file.to_str().expect("utf8 path");
    let args = [
        "topics",
        "apply",
        "--catalogue",
        file,
        "--replication-factor",
        "1",
    ];

    let first = bluelight(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(out.contains("created 2 topic(s); 0 with drift"), "{out}");

    let second = bluelight(&args);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let out = text(&second.stdout);
    assert!(
        out.contains("no change: every catalogue topic exists; 0 with drift"),
        "{out}"
    );
    for name in [&a, &b] {
        let row = out
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .expect("row per topic");
        assert!(row.ends_with("in sync"), "{row}");
    }

    let list = bluelight(&[
        "topics",
        "list",
        "--catalogue",
        file,
        "--replication-factor",
        "1",
    ]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(
        text(&list.stdout)
            .lines()
            .any(|l| l.starts_with(a.as_str()) && l.ends_with("in sync"))
    );
}

#[test]
fn drift_can_fail_the_command_for_ci() {
    let name = format!("{}.v1", unique("bl.clidrift"));
    let created = bluelight(&[
        "topics",
        "apply",
        "--replication-factor",
        "1",
        "--catalogue",
        write_catalogue(&entry(&name, 1)).to_str().expect("path"),
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));

    let wants_more = write_catalogue(&entry(&name, 4));
    let path = wants_more.to_str().expect("path");
    let lenient = bluelight(&[
        "topics",
        "apply",
        "--replication-factor",
        "1",
        "--catalogue",
        path,
    ]);
    assert!(lenient.status.success());
    assert!(
        text(&lenient.stdout).contains("partitions: catalogue 4, broker 1"),
        "{}",
        text(&lenient.stdout)
    );
    let strict = bluelight(&[
        "topics",
        "apply",
        "--replication-factor",
        "1",
        "--fail-on-drift",
        "--catalogue",
        path,
    ]);
    assert_eq!(strict.status.code(), Some(3));
}

#[test]
fn a_malformed_catalogue_is_refused_with_its_line_and_problem() {
    let bad = entry("bl.incident.v1", 6).replace("partitions = 6", "partitions = 0");
    let file = write_catalogue(&bad);
    let file = file.to_str().expect("path");
    for args in [
        vec!["topics", "check", "--catalogue", file],
        vec!["topics", "apply", "--catalogue", file],
    ] {
        let out = bluelight(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{file} is not a valid topic catalogue:"))
                && err.contains("line 3, column 14: topic bl.incident.v1: partitions must be between 1 and 10000, not 0"),
            "{err}"
        );
    }
    let syntax = write_catalogue("[[topic]]\nname = \"bl.a.v1\"\npartitions = six\n");
    let out = bluelight(&[
        "topics",
        "check",
        "--catalogue",
        syntax.to_str().expect("path"),
    ]);
    assert!(
        text(&out.stderr).contains("line 3, column 14"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_shipped_catalogue_checks_clean_and_help_teaches_the_settings() {
    let out = bluelight(&[
        "topics",
        "check",
        "--catalogue",
        concat!(env!("CARGO_MANIFEST_DIR"), "/topics/topics.toml"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("topics, all valid"));

    let help = text(&bluelight(&["topics", "apply", "--help"]).stdout);
    for needle in [
        "--brokers",
        "BLUELIGHT_BROKERS",
        "--replication-factor",
        "--dry-run",
        "--security-protocol",
        "sasl-ssl",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
    assert!(!help.contains("s3cret"));
}

const AGREEMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/agreements");
const RTC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/agreements/events/rtc-opened.json"
);

#[test]
fn explain_shows_the_clause_each_field_and_why_the_rest_is_withheld() {
    let out = bluelight(&[
        "agreements",
        "explain",
        "--dir",
        AGREEMENTS,
        "--event",
        RTC,
        "--recipient",
        "swast",
        "--on",
        "2026-11-22",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "SHARES under clause casualties to feed.swast.incident.v1",
        "people.person_ref                    pseudonymise",
        "\"psn-",
        "people.identity.date_of_birth        generalise:age-band          [null,\"75+\"]",
        "WITHHELD (not named by the clause; default deny):",
        "    summary",
        "    people.identity.surname",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    assert!(
        !stdout.contains("\"surname\": \""),
        "no surname in the record sent:\n{stdout}"
    );

    // The neighbouring force gets nothing of an incident south of its patch, and says why.
    let out = bluelight(&[
        "agreements",
        "explain",
        "--dir",
        AGREEMENTS,
        "--event",
        RTC,
        "--recipient",
        "gloucestershire-police",
        "--on",
        "2026-11-22",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("SHARES NOTHING: no clause matches")
            && stdout.contains("clause north-of-the-patch: condition"),
        "{stdout}"
    );

    // An unknown recipient is an error that lists the known ones.
    let out = bluelight(&[
        "agreements",
        "explain",
        "--dir",
        AGREEMENTS,
        "--event",
        RTC,
        "--recipient",
        "nobody",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no agreement in") && text(&out.stderr).contains("avon-fire"),
        "{}",
        text(&out.stderr)
    );
}

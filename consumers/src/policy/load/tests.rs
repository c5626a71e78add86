use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../agreements");

fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 22)
}

fn example() -> String {
    std::fs::read_to_string(format!("{DIR}/police-to-fire-rtc.toml")).expect("example")
}

fn problems(text: &str) -> Vec<String> {
    match load_str(&[("a.toml".into(), text.into())], today()) {
        Ok(_) => vec![],
        Err(Error::Agreements(p)) => p.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_example_agreements_load() {
    let policy = load_dir(Path::new(DIR), today()).expect("examples load");
    assert_eq!(policy.agreements.len(), 4);
    let fire = policy
        .agreements
        .iter()
        .find(|a| a.recipient.org == "avon-fire")
        .expect("fire");
    assert!(fire.in_force(today()));
    assert_eq!(fire.clauses[0].fields.len(), 16);
    assert!(
        fire.clauses[0]
            .fields
            .iter()
            .all(|f| !f.path.starts_with("people")),
        "no suspect or personal details to fire"
    );
}

#[test]
fn bad_agreements_are_refused_with_file_line_and_reason() {
    let cases: Vec<(String, &str)> = vec![
        (
            example().replace(
                "\"location.postcode\" = \"keep\"",
                "\"location.postcode_sector\" = \"keep\"",
            ),
            "clause rtc-and-fire-hazards: incident has no field \"location.postcode_sector\"",
        ),
        (
            example().replace(
                "incident_type.code in [\"RTC\", \"FIRE\"]",
                "incident_type.code in [\"RTC\"",
            ),
            "clause rtc-and-fire-hazards: condition does not parse",
        ),
        (
            example().replace(
                "incident_type.code in [\"RTC\", \"FIRE\"]",
                "incident_type.code",
            ),
            "clause rtc-and-fire-hazards: condition \"incident_type.code\" gives String",
        ),
        (
            example().replace(
                "incident_type.code in [\"RTC\", \"FIRE\"]",
                "incident_kind == 1",
            ),
            "fails on a sample incident",
        ),
        (
            example().replace("valid_to = \"2027-12-31\"", "valid_to = \"2026-01-31\""),
            "a.toml:10: expired on 2026-01-31; extend valid_to after review, or remove the file",
        ),
        (
            example().replace("valid_to = \"2027-12-31\"", "valid_to = \"2025-01-31\""),
            "valid_to 2025-01-31 is before valid_from 2026-01-01",
        ),
        (
            example().replace("\"hazards\" = \"keep\"", "\"hazards\" = \"blur\""),
            "transform \"blur\" is not one of keep, redact",
        ),
        (
            example().replace(
                "\"location.address\" = \"keep\"",
                "\"location.address\" = \"generalise:postcode-sector\"",
            ),
            "location.address: generalise:postcode-sector does not apply to this field",
        ),
        (
            example().replace("\"INCIDENT_OPENED\",", "\"SUSPECT_CHARGED\","),
            "clause rtc-and-fire-hazards: SUSPECT_CHARGED is not a incident event",
        ),
        (
            example().replace(
                "classification_ceiling = \"OFFICIAL-SENSITIVE\"",
                "classification_ceiling = \"SECRET\"",
            ),
            "a.toml:12: classification_ceiling \"SECRET\" is not OFFICIAL or OFFICIAL-SENSITIVE",
        ),
        (
            example().replace("feeds = [\"incident\"]", "feeds = [\"case\"]"),
            "the recipient has no incident feed",
        ),
        (
            example().replace("lawful_basis", "lawful_basiss"),
            "unknown field `lawful_basiss`",
        ),
        (
            example().replace(
                "\"INCIDENT_CLOSED\"",
                "\"INCIDENT_CLOSED\", \"INCIDENT_RETRACTED\"",
            ),
            "INCIDENT_RETRACTED cannot be listed: a retraction reaches exactly the recipients",
        ),
        (
            example().replace("\"incident_id\" = \"keep\"\n", ""),
            "clause rtc-and-fire-hazards: must share incident_id (keep or pseudonymise)",
        ),
        (
            example().replace("\"incident_id\" = \"keep\"", "\"incident_id\" = \"redact\""),
            "incident_id cannot be redact",
        ),
        (
            example().replace(
                "\"resources\" = \"keep\"",
                "\"resources.callsign\" = \"keep\"",
            ),
            "shares part of resources but not resources.agency, which every resources has",
        ),
        (
            example().replace("\"priority\" = \"keep\"", "\"priority\" = \"pseudonymise\""),
            "priority: pseudonymise applies to text fields only",
        ),
    ];
    for (text, want) in cases {
        let got = problems(&text);
        assert!(
            got.iter().any(|g| g.contains(want)),
            "want {want:?} in {got:?}"
        );
    }
}

#[test]
fn overlapping_agreements_and_duplicate_ids_are_refused() {
    let a = example();
    let b = a.replace("isa-avon-police-fire-rtc", "isa-avon-police-fire-rtc-2");
    let err = load_str(
        &[("a.toml".into(), a.clone()), ("b.toml".into(), b)],
        today(),
    )
    .expect_err("overlap");
    assert!(
        err.to_string()
            .contains("b.toml: overlaps isa-avon-police-fire-rtc (a.toml)"),
        "{err}"
    );
    let err = load_str(
        &[
            ("a.toml".into(), a.clone()),
            ("c.toml".into(), a.replace("avon-fire", "other-fire")),
        ],
        today(),
    )
    .expect_err("duplicate id");
    assert!(
        err.to_string()
            .contains("id isa-avon-police-fire-rtc is also used by a.toml"),
        "{err}"
    );
    // Consecutive validity periods do not overlap.
    let later = a
        .replace("isa-avon-police-fire-rtc", "isa-next")
        .replace("valid_from = \"2026-01-01\"", "valid_from = \"2028-01-01\"")
        .replace("valid_to = \"2027-12-31\"", "valid_to = \"2029-12-31\"");
    assert!(load_str(&[("a.toml".into(), a), ("d.toml".into(), later)], today()).is_ok());
}

#[test]
fn context_clauses_are_checked_and_fields_cannot_share_the_block() {
    let ambulance = std::fs::read_to_string(format!("{DIR}/police-to-ambulance-casualties.toml"))
        .expect("example");
    let policy = load_str(&[("a.toml".into(), ambulance.clone())], today()).expect("loads");
    let c = policy.agreements[0]
        .context
        .as_ref()
        .expect("a context clause");
    assert!(c.people && c.location && c.roles.is_empty());
    assert_eq!(c.identity, Transform::Pseudonymise);
    let without = ambulance
        .split("[[context]]")
        .next()
        .expect("text")
        .to_owned();
    let with = |clause: &str| format!("{without}\n[[context]]\n{clause}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            with("id = \"c\"\nabout = [\"household\"]\nshare = [\"flags\"]"),
            "context c: about \"household\" is not \"person\" or \"location\"",
        ),
        (
            with("id = \"c\"\nabout = [\"person\"]\nshare = [\"narrative\"]"),
            "context c: share \"narrative\" is not one of flags, counts, open_cases, markers, last_contact",
        ),
        (
            with("id = \"c\"\nabout = [\"person\"]\nshare = []"),
            "context c: share names nothing",
        ),
        (
            with("id = \"c\"\nabout = [\"location\"]\nroles = [\"VICTIM\"]\nshare = [\"flags\"]"),
            "context c: roles choose people, but about does not name \"person\"",
        ),
        (
            with("id = \"c\"\nabout = [\"person\"]\nroles = [\"BYSTANDER\"]\nshare = [\"flags\"]"),
            "context c: role \"BYSTANDER\" is not one of",
        ),
        (
            with("id = \"c\"\nabout = [\"person\"]\nshare = [\"flags\"]\nidentity = \"keep\""),
            "context c: identity \"keep\" would send the person references clause casualties sends pseudonymise",
        ),
        (
            format!(
                "{}\n[[context]]\nid = \"d\"\nabout = [\"person\"]\nshare = [\"flags\"]\n",
                with("id = \"c\"\nabout = [\"person\"]\nshare = [\"flags\"]")
            ),
            "context d: an agreement has one [[context]] clause; merge it into c",
        ),
        (
            without.replace(
                "\"incident_type\" = \"keep\"",
                "\"incident_type\" = \"keep\"\n\"context.subjects.flags\" = \"keep\"",
            ),
            "clause casualties: context.subjects.flags: the context block is shared by a [[context]] clause, not by fields",
        ),
        (
            std::fs::read_to_string(format!("{DIR}/police-to-cps-charged.toml")).expect("cps")
                + "\n[[context]]\nid = \"c\"\nabout = [\"person\"]\nshare = [\"flags\"]\n",
            "context c: the recipient has no incident feed",
        ),
    ];
    for (text, want) in cases {
        let got = problems(&text);
        assert!(
            got.iter().any(|p| p.contains(want)),
            "wanted {want:?}, got {got:#?}"
        );
        assert!(got.iter().all(|p| p.starts_with("a.toml:")), "{got:#?}");
    }
}

use super::*;
use crate::adapters::{Locator, Translation};
use bluelight_avro::records::Timestamp;

const EXAMPLE: &str = include_str!("../../../examples/rms-export.csv");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/rms-export.json");

fn source() -> SourceContext {
    SourceContext {
        org: "avon-police".into(),
        system: "rms".into(),
        received_at: Timestamp(1_795_300_000_000),
    }
}

fn translate(input: &str) -> Translation {
    Rms::new()
        .expect("mappings")
        .translate(input.as_bytes(), &source())
}

/// Example input in, exact canonical records out. Regenerate (and review the diff) with
/// BLUELIGHT_UPDATE_GOLDEN=1.
#[test]
fn golden_example_translates_to_exact_canonical_records() {
    crate::adapters::testkit::assert_golden(
        &Rms::new().expect("mappings"),
        &source(),
        EXAMPLE,
        GOLDEN,
    );
}

/// The example's header line and data lines (comments left out).
fn lines() -> (&'static str, Vec<&'static str>) {
    let mut data = EXAMPLE.lines().filter(|l| !l.starts_with('#'));
    let header = data.next().expect("header");
    (header, data.collect())
}

/// A file of the example's header and its `n`th data row (0-based), with columns set to new
/// values; the row is on line 2.
fn row(n: usize, set: &[(&str, &str)]) -> String {
    let (header, rows) = lines();
    let names: Vec<&str> = header.split(',').collect();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(rows[n].as_bytes());
    let mut fields: Vec<String> = reader
        .records()
        .next()
        .expect("a row")
        .expect("csv")
        .iter()
        .map(str::to_owned)
        .collect();
    for (column, value) in set {
        let i = names
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| panic!("no column {column}"));
        fields[i] = (*value).to_owned();
    }
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(&fields).expect("write");
    let row = String::from_utf8(w.into_inner().expect("flush")).expect("utf-8");
    format!("{header}\n{row}")
}

// Data rows of the example, by milestone.
const RECORDED: usize = 0;
const ARREST: usize = 1;
const BAIL: usize = 3;
const CHARGE: usize = 5;
const HEARING_LISTED: usize = 6;
const HEARING_RESULT: usize = 7;
const NFA: usize = 15;

#[test]
fn bad_records_are_refused_with_the_field_and_the_problem() {
    let at = "rms line 2";
    let cases: Vec<(String, String)> = vec![
        (
            row(RECORDED, &[("offence_codes", "8/1")]),
            format!(
                "{at}: field offence_codes: \"8/1\" is not a Home Office offence code (NNN/NN, e.g. \"008/01\")"
            ),
        ),
        (
            row(CHARGE, &[("offence_codes", "008/01;105-01")]),
            format!(
                "{at}: field offence_codes: \"105-01\" is not a Home Office offence code (NNN/NN, e.g. \"008/01\")"
            ),
        ),
        (
            row(CHARGE, &[("offence_codes", "")]),
            format!("{at}: field offence_codes: is required for SUSPECT_CHARGED"),
        ),
        (
            row(RECORDED, &[("crime_ref", "")]),
            format!("{at}: field crime_ref: is required"),
        ),
        (
            row(RECORDED, &[("crime_ref", "CR 4711")]),
            format!(
                "{at}: field crime_ref: \"CR 4711\" is not a reference (1 to 64 characters, no spaces)"
            ),
        ),
        (
            row(RECORDED, &[("milestone", "ESCAPED")]),
            format!(
                "{at}: field milestone: \"ESCAPED\" is not a known code (known: ARREST, BAIL, BAIL_VARY, CHARGE, CLOSED, HEARING_LISTED, HEARING_RESULT, INTERVIEW, NFA, NOT_INVESTIGATED, OOCD, RECORDED, RUI)"
            ),
        ),
        (
            row(RECORDED, &[("occurred_at", "2026-10-03T22:40:00")]),
            format!(
                "{at}: field occurred_at: \"2026-10-03T22:40:00\" has no time zone offset; write \"2026-10-03T22:40:00Z\" for UTC or add the offset, e.g. \"+01:00\""
            ),
        ),
        (
            row(RECORDED, &[("classification", "SECRET")]),
            format!(
                "{at}: field classification: \"SECRET\" is not OFFICIAL or OFFICIAL-SENSITIVE; bluelight carries nothing higher"
            ),
        ),
        (
            row(ARREST, &[("suspect_ref", "")]),
            format!("{at}: field suspect_ref: is required for SUSPECT_ARRESTED"),
        ),
        (
            row(BAIL, &[("bail_return_at", "")]),
            format!("{at}: field bail_return_at: is required for SUSPECT_BAILED"),
        ),
        (
            row(BAIL, &[("bail_conditions", "NCV;GAG")]),
            format!(
                "{at}: field bail_conditions: \"GAG\" is not a known code (known: CURFEW, EXCL, NCV, NCW, PASSPORT, REPORT, RESIDE)"
            ),
        ),
        (
            row(HEARING_LISTED, &[("court", "")]),
            format!("{at}: field court: is required for HEARING_SCHEDULED"),
        ),
        (
            row(HEARING_LISTED, &[("hearing_start", "16/11/2026 10:00")]),
            format!(
                "{at}: field hearing_start: \"16/11/2026 10:00\" is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")"
            ),
        ),
        (
            row(HEARING_LISTED, &[("hearing_type", "CHAT")]),
            format!(
                "{at}: field hearing_type: \"CHAT\" is not a known code (known: BAIL_APP, FAH, MENTION, PTPH, SENTENCE, TRIAL)"
            ),
        ),
        (
            row(HEARING_RESULT, &[("hearing_outcome", "")]),
            format!("{at}: field hearing_outcome: is required for HEARING_OUTCOME"),
        ),
        (
            row(HEARING_LISTED, &[("hearing_outcome", "GP")]),
            format!(
                "{at}: field hearing_outcome: is only given on HEARING_OUTCOME milestones, not HEARING_SCHEDULED"
            ),
        ),
        (
            row(CHARGE, &[("court", "Bristol Magistrates' Court")]),
            format!(
                "{at}: field hearing_start: is required when any hearing column is given\n\
                 {at}: field hearing_type: is required when any hearing column is given"
            ),
        ),
        (
            row(RECORDED, &[("victim_enhanced", "maybe")]),
            format!("{at}: field victim_enhanced: must be Y or N, not \"maybe\""),
        ),
        (
            row(RECORDED, &[("victim_enhanced_reasons", "")]),
            format!(
                "{at}: field victim_enhanced_reasons: must name at least one reason when victim_enhanced is Y"
            ),
        ),
        (
            row(RECORDED, &[("victim_enhanced", "N")]),
            format!(
                "{at}: field victim_enhanced: is not Y but victim_enhanced_reasons are given; set it to Y or remove the reasons"
            ),
        ),
        (
            row(RECORDED, &[("victim_ref", "")]),
            format!("{at}: field victim_ref: is required when victim_enhanced is given"),
        ),
        (
            row(RECORDED, &[("victim_contact_channel", "PIGEON")]),
            format!(
                "{at}: field victim_contact_channel: \"PIGEON\" is not a known code (known: EMAIL, LETTER, PHONE, SMS, TEXT, VISIT)"
            ),
        ),
        (
            row(RECORDED, &[("victim_contact_frequency", "")]),
            format!(
                "{at}: field victim_contact_frequency: is required when victim contact preferences are given"
            ),
        ),
        (
            row(RECORDED, &[("oic_collar", "")]),
            format!("{at}: field oic_collar: is required when oic_force is given"),
        ),
        (
            row(RECORDED, &[("oic_force", "99")]),
            format!(
                "{at}: field oic_force: \"99\" is not a known code (known: 50, 52, 53, 54, 55)"
            ),
        ),
        (
            row(NFA, &[("outcome_code", "")]),
            format!("{at}: field outcome_code: is required for RELEASED_NO_FURTHER_ACTION"),
        ),
        (
            row(NFA, &[("outcome_code", "99")]),
            format!(
                "{at}: field outcome_code: \"99\" is not a known code (known: 1, 14, 15, 16, 18, 2, 21, 22, 3, 6, 8, ACQUITTED, CONVICTED)"
            ),
        ),
        // Every problem of a row is reported at once.
        (
            row(
                BAIL,
                &[("occurred_at", "yesterday"), ("bail_return_at", "next week")],
            ),
            format!(
                "{at}: field occurred_at: \"yesterday\" is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")\n\
                 {at}: field bail_return_at: \"next week\" is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")"
            ),
        ),
        (
            format!("{}\nRECORDED,CR-1,,2026-10-03T22:40:00Z\n", lines().0),
            format!("{at}: field (row): has 4 fields but the header has 26 columns"),
        ),
        (
            "milestone,crime_ref,occurred_at,court\nHEARING_LISTED,CR-1,2026-10-03T22:40:00Z,Bristol Crown Court\n".into(),
            format!(
                "{at}: field hearing_start: is required for HEARING_SCHEDULED\n\
                 {at}: field hearing_type: is required for HEARING_SCHEDULED"
            ),
        ),
        // The file as a whole.
        (
            row(RECORDED, &[]).replacen("crime_ref", "crime_reference", 1),
            "rms document: field crime_ref: is a required column but the header does not have it".into(),
        ),
        (
            row(RECORDED, &[]).replacen("offence_text", "court", 1),
            "rms document: field court: appears twice in the header (columns 9 and 21)".into(),
        ),
        (
            "# nothing but a comment\n\n".into(),
            "rms document: field (document): is empty; the first row must name the columns, e.g. milestone,crime_ref,occurred_at,...".into(),
        ),
    ];
    assert!(cases.len() >= 12);
    crate::adapters::testkit::assert_rejections(translate, cases);
}

#[test]
fn a_value_that_is_not_utf8_is_named_by_its_column() {
    let mut input =
        b"milestone,crime_ref,occurred_at,court\nRECORDED,CR-1,2026-10-03T22:40:00Z,Bristol "
            .to_vec();
    input.extend_from_slice(b"\xFF\n");
    let t = Rms::new().expect("mappings").translate(&input, &source());
    assert_eq!(
        t.rejected
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["rms line 2: field court: is not UTF-8\n\
          rms line 2: field offence_codes: is required for CRIME_RECORDED"]
    );
}

#[test]
fn one_bad_record_never_stops_the_others_and_keeps_its_bytes() {
    let (_, rows) = lines();
    let bad_line = rows[BAIL].replace("2026-11-01T10:00:00Z", "soon");
    let input = EXAMPLE.replace(rows[BAIL], &bad_line);
    let n = EXAMPLE.lines().position(|l| l == rows[BAIL]).expect("row") + 1;
    for input in [input.clone(), input.replace('\n', "\r\n")] {
        let t = translate(&input);
        assert_eq!(t.accepted.len(), rows.len() - 1);
        assert_eq!(t.rejected.len(), 1);
        let r = &t.rejected[0];
        assert_eq!(r.locator, Locator::Line(n));
        assert_eq!(
            r.to_string(),
            format!(
                "rms line {n}: field bail_return_at: \"soon\" is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")"
            )
        );
        assert_eq!(
            &input[r.span.clone()],
            bad_line,
            "the dead letter keeps exactly the row's bytes"
        );
        for (a, line) in t
            .accepted
            .iter()
            .zip(rows.iter().filter(|l| **l != rows[BAIL]))
        {
            assert_eq!(&input[a.span.clone()], *line);
        }
    }
}

#[test]
fn quoted_line_breaks_blank_rows_a_bom_and_header_case_are_handled() {
    let (header, rows) = lines();
    let multi = rows[RECORDED].replace("\"Assault, actual bodily harm\"", "\"Assault,\nABH\"");
    let bad = rows[ARREST].replace(",S-3301,", ",,");
    let input = format!(
        "\u{FEFF}{}\n{multi}\n\n,,,\n# a comment between rows\n{bad}\n{}\n",
        header.to_ascii_uppercase(),
        rows[CHARGE]
    );
    let t = translate(&input);
    assert_eq!(t.accepted.len(), 2, "{:?}", t.rejected);
    assert_eq!(&input[t.accepted[0].span.clone()], multi);
    assert_eq!(t.accepted[0].locator, Locator::Line(2));
    assert_eq!(t.accepted[1].locator, Locator::Line(8));
    assert_eq!(
        t.rejected
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["rms line 7: field suspect_ref: is required for SUSPECT_ARRESTED"]
    );
    assert_eq!(&input[t.rejected[0].span.clone()], bad);
}

#[test]
fn milestones_carry_what_the_case_needs() {
    let t = translate(EXAMPLE);
    let cases: Vec<&CaseEvent> = t
        .accepted
        .iter()
        .map(|a| match &a.record {
            Canonical::Case(c) => &**c,
            _ => panic!("case"),
        })
        .collect();
    let types: Vec<EventType> = cases.iter().map(|c| c.envelope.event_type).collect();
    for t in CASE_EVENTS {
        assert!(types.contains(&t), "the example has no {t:?}");
    }
    let bail = &cases[BAIL];
    assert_eq!(
        bail.bail.as_ref().map(|b| b.conditions.len()),
        Some(2),
        "bail conditions"
    );
    let victim = &bail.victims[0];
    assert!(victim.enhanced_rights);
    assert_eq!(
        victim.enhanced_reasons,
        [
            EnhancedRightsReason::DomesticAbuse,
            EnhancedRightsReason::Intimidated
        ]
    );
    // No recorded_at: when bluelight received the file.
    assert_eq!(
        cases[2].envelope.recorded_at,
        source().received_at,
        "INTERVIEW row has no recorded_at"
    );
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Arbitrary bytes, and the example with bytes flipped or cut: never a panic.
        #[test]
        fn the_rms_parser_never_panics(
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let adapter = Rms::new().expect("mappings");
            crate::adapters::testkit::assert_survives_mutation(&adapter, &source(), EXAMPLE, &noise, &flips, cut)?;
        }
    }
}

use super::*;

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");

/// The `.avsc` files are what partners read and what Python clients load: they must be exactly the
/// schemas the Rust types produce, field for field, docs and defaults included.
#[test]
fn avsc_files_match_the_typed_records_field_for_field() {
    if std::env::var_os("BLUELIGHT_UPDATE_SCHEMAS").is_some() {
        export(Path::new(SCHEMA_DIR)).expect("export schemas");
    }
    for def in all() {
        let path = Path::new(SCHEMA_DIR).join(format!("{}.avsc", def.file));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `bluelight schemas export` (or this test with BLUELIGHT_UPDATE_SCHEMAS=1)", path.display()));
        let in_file: serde_json::Value = serde_json::from_str(&text).expect("file is JSON");
        let derived: serde_json::Value = serde_json::to_value(&def.schema).expect("schema to JSON");
        assert_eq!(
            in_file,
            derived,
            "{} differs from the Rust type; run `bluelight schemas export` (or this test with BLUELIGHT_UPDATE_SCHEMAS=1)",
            path.display()
        );
        let parsed = Schema::parse_str(&text).expect("file parses as Avro");
        assert_eq!(parsed.canonical_form(), def.schema.canonical_form());
    }
}

/// Every field of every record says what it is for, so the standard documents itself.
#[test]
fn every_record_and_field_has_a_doc() {
    fn walk(value: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("type").and_then(|t| t.as_str()) == Some("record") {
                    let name = map.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                    if map.get("doc").is_none() {
                        missing.push(format!("{path}{name}"));
                    }
                    for field in map
                        .get("fields")
                        .and_then(|f| f.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let fname = field.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                        if field.get("doc").is_none() {
                            missing.push(format!("{path}{name}.{fname}"));
                        }
                        if let Some(t) = field.get("type") {
                            walk(t, &format!("{path}{name}."), missing);
                        }
                    }
                } else {
                    for v in map.values() {
                        walk(v, path, missing);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, path, missing)),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for def in all() {
        walk(
            &serde_json::to_value(&def.schema).expect("json"),
            "",
            &mut missing,
        );
    }
    assert!(
        missing.is_empty(),
        "records or fields without a doc:\n{}",
        missing.join("\n")
    );
}

#[test]
fn topics_and_subjects_follow_the_contract() {
    let defs = all();
    let subjects: Vec<_> = defs.iter().filter_map(SchemaDef::subject).collect();
    assert_eq!(
        subjects,
        [
            "bl.incident.v1-value",
            "bl.case.v1-value",
            "bl.victim.v1-value",
            "feed.victim-update.v1-value",
            "audit.disclosure.v1-value",
            "bl.victim-notification-ack.v1-value",
            "feed.victim-update-overdue.v1-value",
            "audit.consultation.v1-value"
        ]
    );
    assert!(
        defs.iter()
            .all(|d| d.full_name.starts_with("uk.bluelight.v1.")),
        "namespace"
    );
}

//! `bluelight ingest --file`: a backfill from a file, with a summary and a non-zero exit when
//! anything was rejected.

mod common;

use std::process::Command;

use common::{ensure_canonical_topics, start_registry};

fn ingest_file(registry: &str, file: &str, source: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bluelight"))
        .args([
            "ingest",
            "--file",
            file,
            "--source",
            source,
            "--schema-registry",
            registry,
        ])
        .args([
            "--sources",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/local/demo-sources.toml"
            ),
        ])
        .env("BLUELIGHT_BROKERS", bluelight_topics::testing::brokers())
        .output()
        .expect("run bluelight ingest --file")
}

#[tokio::test]
async fn a_file_loads_with_a_summary_and_rejections_make_the_exit_non_zero() {
    ensure_canonical_topics().await;
    let (registry, _) = start_registry().await;
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/producers/examples/rms-export.csv"
    );
    let out = ingest_file(&registry.url, example, "avon-police-rms");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = std::fs::read_to_string(example)
        .expect("example")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
        - 1;
    assert!(
        stdout.contains(&format!(
            "{rows} records read, {rows} accepted, 0 rejected, 0 dead-lettered"
        )),
        "{stdout}"
    );

    let bad = std::env::temp_dir().join(bluelight_topics::testing::unique("bad-rms-"));
    let text = std::fs::read_to_string(example)
        .expect("example")
        .replacen("008/01", "8/1", 1);
    std::fs::write(&bad, text).expect("write");
    let out = ingest_file(
        &registry.url,
        bad.to_str().expect("path"),
        "avon-police-rms",
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a rejected record makes the exit non-zero"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("field offence_codes: \"8/1\" is not a Home Office offence code"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 rejected, 1 dead-lettered"));

    let unknown = ingest_file(&registry.url, example, "nobody");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no source \"nobody\" in the sources file")
    );
    let _ = std::fs::remove_file(bad);
}

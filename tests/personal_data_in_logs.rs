//! No personal data in any log line. A source publishes an incident naming a caller (and two bad
//! records naming them too, which go to the dead-letter topic); the projector shares it under the
//! example agreements and a control room reads it through the gateway. Every service logs as JSON
//! (`--log-format json`) to a file, and the caller's name and phone number appear in none of it,
//! while the submission's trace id does.

mod common;

use std::time::{Duration, Instant};

use bluelight_topics::testing::unique;
use common::{
    LOG_TO,
    gateway::{start_gateway_env, start_ingest},
    project::{setup, start_projector_env},
};

const FORENAMES: &str = "Quintessa";
const SURNAME: &str = "Zebedee-Marchbanks";
const PHONE: &str = "07700 900999";

fn batch(incident: &str) -> serde_json::Value {
    let caller = serde_json::json!({
        "ref": "P-1", "role": "CALLER", "forenames": FORENAMES, "surname": SURNAME, "phone": PHONE
    });
    let open = serde_json::json!({
        "action": "open",
        "incident_id": incident,
        "log_number": "AP-0042",
        "occurred_at": "2026-11-22T08:14:03Z",
        "recorded_at": "2026-11-22T08:14:41Z",
        "type": "RTC-INJ",
        "grade": "1",
        "classification": "OFFICIAL-SENSITIVE",
        "location": { "address": "Temple Way, Bristol", "postcode": "bs1 6hg",
                      "lat": 51.4545, "lon": -2.5879 },
        "hazards": ["FUEL", "TRAPPED"],
        "casualties": { "fatal": 0, "serious": 1, "minor": 2 },
        "agencies_requested": ["FIRE", "AMB"],
        "persons": [caller.clone()],
        "narrative": format!("{FORENAMES} {SURNAME} reports two vehicles in collision.")
    });
    // Bad records carrying the name where a value is checked: the errors must name the field
    // and the problem, not repeat the value into a log line.
    let mut bad_time = open.clone();
    bad_time["incident_id"] = format!("{incident}-b").into();
    bad_time["occurred_at"] = format!("{FORENAMES} {SURNAME}").into();
    let mut bad_dob = open.clone();
    bad_dob["incident_id"] = format!("{incident}-c").into();
    bad_dob["persons"][0]["dob"] = SURNAME.into();
    serde_json::json!({ "events": [open, bad_time, bad_dob] })
}

fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_name_sent_through_the_pipeline_appears_in_no_log_line() {
    common::ensure_canonical_topics().await;
    let s = setup("pii").await;
    let logs = s.dir.with_extension("logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let log = |name: &str| logs.join(format!("{name}.log")).display().to_string();
    let (p_log, i_log, g_log) = (log("projector"), log("ingest"), log("gateway"));
    let env = |path: &str| {
        vec![
            ("BLUELIGHT_LOG_FORMAT", "json".to_owned()),
            (LOG_TO, path.to_owned()),
        ]
    };
    let (p_env, i_env, g_env) = (env(&p_log), env(&i_log), env(&g_log));

    let projector = start_projector_env(&s, &unique("pii-"), "0", &refs(&p_env)).await;
    let (ingest, source_token) = start_ingest(&s, &refs(&i_env)).await;
    let fire_token = format!("fire-{}", unique(""));
    let gateway = start_gateway_env(
        &s,
        &[("fire-control", &s.fire, "control-room", &fire_token)],
        &[],
        &refs(&g_env),
    )
    .await;

    let incident = format!("INC-{}", unique("pii"));
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/sources/test-cad/events", ingest.url))
        .bearer_auth(&source_token)
        .json(&batch(&incident))
        .send()
        .await
        .expect("post");
    let status = answer.status();
    let trace_id = answer
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split('-').nth(1))
        .expect("a traceparent on the answer")
        .to_owned();
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(status, 400, "two of the three records are bad: {body}");
    assert_eq!(body["accepted"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(2), "{body}");

    // The good record reaches the fire service's view: the name went all the way through.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/incidents/{incident}", gateway.url))
            .bearer_auth(&fire_token)
            .send()
            .await
            .expect("get");
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{incident} never reached the view"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop((projector, ingest, gateway));

    let personal = [FORENAMES, SURNAME, PHONE, "Zebedee"];
    let mut mentions_submission = 0;
    // Lines logged inside the submission's span carry its trace id as a field of their own.
    let mut trace_field = 0;
    for path in [&p_log, &i_log, &g_log] {
        let text = std::fs::read_to_string(path).expect("log");
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{path} is empty");
        for line in &lines {
            let parsed: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{path}: not a JSON log line ({e}): {line}"));
            assert!(
                parsed["level"].is_string() && parsed["fields"].is_object(),
                "{path}: {line}"
            );
            for p in personal {
                assert!(
                    !line.to_lowercase().contains(&p.to_lowercase()),
                    "{path} logs personal data ({p:?}): {line}"
                );
            }
            if line.contains(&trace_id) {
                mentions_submission += 1;
            }
            if parsed["span"]["trace_id"].as_str() == Some(trace_id.as_str()) {
                trace_field += 1;
            }
        }
    }
    assert!(
        mentions_submission > 0,
        "the ingest log should name the submission by its trace id, or this test proves nothing"
    );
    assert!(
        trace_field > 0,
        "a log line inside the submission's span carries span.trace_id = {trace_id}"
    );
}

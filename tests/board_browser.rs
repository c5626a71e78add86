//! The control-room board in a real browser (headless Chromium over WebDriver), with the whole
//! path live: a CAD record posted to the ingest API, projected under the fire agreement, streamed
//! by the gateway, drawn on the board. Saves a screenshot to target/test-artifacts/board.png.

mod common;

use std::time::{Duration, Instant};

use bluelight_avro::records::{Code, EventType};
use bluelight_topics::testing::unique;
use common::{
    browser::Browser,
    ensure_canonical_topics,
    gateway::{start_gateway, start_ingest},
    project::{incident, producer, publish, setup, start_projector},
};

const CAD_EXAMPLE: &str = include_str!("../producers/examples/cad-incidents.json");

/// The board must show a new incident within this long of the ingest API accepting it.
const WITHIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn the_fire_service_sees_an_ingested_rtc_within_two_seconds_and_others_do_not() {
    ensure_canonical_topics().await;
    let s = setup("board").await;
    let _projector = start_projector(&s, &unique("board-")).await;

    // The controller's CAD publishes through the ingest API.
    let (ingest, cad_token) = start_ingest(&s, &[]).await;

    let u = unique("");
    let (fire_t, other_t, ops_t) = (
        format!("fire-{u}"),
        format!("vcare-{u}"),
        format!("ops-{u}"),
    );
    let other_org = format!("vcare-{u}");
    let gw = start_gateway(
        &s,
        &[
            ("avon-fire-control", &s.fire, "control-room", &fire_t),
            ("victim-care-desk", &other_org, "control-room", &other_t),
            ("ops-desk", "bluelight-ops", "ops", &ops_t),
        ],
        &[
            "--ops-target",
            &format!("ingest={}", ingest.url),
            "--ops-target",
            &format!("project={}", _projector.url),
        ],
    )
    .await;
    let board = format!("{}/board/", gw.url);

    let browser = Browser::start().await;
    browser.sign_in(&board, &fire_t).await;
    let who = browser
        .eval("return document.getElementById('who').textContent;")
        .await;
    assert!(
        who.as_str().is_some_and(|w| w.contains(&s.fire)),
        "signed in as fire: {who}"
    );

    let doc: serde_json::Value = serde_json::from_str(CAD_EXAMPLE).expect("example");
    let template = doc["events"][0].clone();
    let post = |events: Vec<serde_json::Value>| {
        let mut body = doc.clone();
        body["events"] = events.into();
        let (url, token) = (
            format!("{}/v1/sources/test-cad/events", ingest.url),
            cad_token.clone(),
        );
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("ingest");
            assert_eq!(r.status(), 202, "{:?}", r.text().await);
        }
    };
    let event = |id: &str, kind: &str, grade: &str, hazards: &[&str], n: f64| {
        let mut e = template.clone();
        let now = jiff::Timestamp::now().to_string();
        e["incident_id"] = id.into();
        e["type"] = kind.into();
        e["grade"] = grade.into();
        e["hazards"] = serde_json::json!(hazards);
        e["occurred_at"] = now.clone().into();
        e["recorded_at"] = now.into();
        e["location"]["lat"] = (51.40 + 0.013 * (n % 7.0)).into();
        e["location"]["lon"] = (-2.65 + 0.021 * (n % 5.0)).into();
        e["location"]["address"] = format!("{} Gloucester Road, Bristol", 10 + n as u32).into();
        e
    };

    // The day so far: fires and collisions fire should see, welfare calls it should not. These
    // also take the projector through its first record on each partition (it catches up its
    // receipts then), so what is measured below is the steady-state path.
    let earlier: Vec<_> = (0..24)
        .map(|i| {
            let (kind, grade, hazards): (&str, &str, &[&str]) = match i % 3 {
                0 => ("FIRE-DWELL", "2", &["SMOKE", "GAS"]),
                1 => ("RTC", "3", &["FUEL"]),
                _ => ("WELFARE", "2", &[]),
            };
            event(
                &format!("INC-{u}-{i:02}"),
                kind,
                grade,
                hazards,
                f64::from(i),
            )
        })
        .collect();
    post(earlier).await;
    let shown = browser
        .wait_for(
            "return document.querySelectorAll('#incidents li.incident').length === 16;",
            Duration::from_secs(30),
        )
        .await;
    assert!(
        shown.is_some(),
        "the 16 fires and collisions of the day are on the board, the 8 welfare calls are not"
    );

    // An RTC with a driver trapped, through the ingest API: timed.
    let incident_id = format!("INC-{u}");
    let mut rtc = event(&incident_id, "RTC-INJ", "1", &["FUEL", "TRAPPED"], 2.5);
    rtc["location"] = template["location"].clone();
    let posted = Instant::now();
    post(vec![rtc]).await;
    let accepted = posted.elapsed();

    let card = format!("document.querySelector('[data-incident-id=\"{incident_id}\"]')");
    let seen = browser
        .wait_for(&format!("return {card} !== null;"), Duration::from_secs(20))
        .await;
    let seen = seen.map(|d| d + accepted);
    println!(
        "board: {incident_id} on the fire board {seen:?} after the ingest request was sent (accepted after {accepted:?})"
    );
    // The controller withdraws one of the day's collisions (a duplicate): every recipient that
    // had it is told, and the board strikes it through with the reason.
    let withdrawn = format!("INC-{u}-01");
    let mut retract = incident(&s, &withdrawn, "RTC", EventType::IncidentRetracted);
    retract.closure = Some(Code::labelled(
        "bl-closure",
        "DUPLICATE",
        "Duplicate of another incident",
    ));
    publish(&s.codec, &producer(), &[retract]).await;
    let struck = browser
        .wait_for(
            &format!("const c = document.querySelector('[data-incident-id=\"{withdrawn}\"]'); return c !== null && c.classList.contains('retracted') && c.textContent.includes('Retracted');"),
            Duration::from_secs(30),
        )
        .await;
    assert!(
        struck.is_some(),
        "the withdrawn incident is struck through with the reason"
    );

    // What the card shows: the type, the hazards, what the agreement allowed.
    let text = browser
        .eval(&format!("return {card} ? {card}.textContent : '';"))
        .await;
    let text = text.as_str().unwrap_or_default().to_owned();
    std::fs::create_dir_all(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/test-artifacts"
    ))
    .expect("artifacts dir");
    let shot = browser.screenshot().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/test-artifacts/board.png"
    );
    std::fs::write(path, &shot).expect("screenshot");
    println!("board: screenshot saved to {path} ({} bytes)", shot.len());
    let seen = seen.expect("the RTC appears on the fire board");
    assert!(
        seen <= WITHIN,
        "the RTC took {seen:?} to appear (limit {WITHIN:?})"
    );
    assert!(
        text.contains("isa-avon-police-fire-rtc"),
        "shows the agreement: {text}"
    );
    assert!(text.contains(&incident_id));
    assert!(!text.contains("Sam"), "no caller name reaches fire: {text}");
    let marker = browser
        .eval("return document.querySelectorAll('svg#map circle').length;")
        .await;
    assert!(marker.as_u64().unwrap_or(0) >= 1, "plotted on the map");

    // Another agency with no agreement: signs in, sees no such incident.
    browser.click("#sign-out").await;
    browser.sign_in(&board, &other_t).await;
    let none = browser
        .wait_for(&format!("return {card} !== null;"), Duration::from_secs(4))
        .await;
    let line = browser
        .eval("return document.getElementById('feeds-line').textContent;")
        .await;
    assert!(none.is_none(), "the incident is absent for {other_org}");
    assert!(
        line.as_str().is_some_and(|l| l.contains("No agreement")),
        "the board says why it is empty: {line}"
    );

    // The ops page: live charts from every service, for an ops token.
    browser.goto(&format!("{}/ops/", gw.url)).await;
    browser.type_into("#token", &ops_t).await;
    browser.click("#sign-in").await;
    // A trickle of incidents while it watches: the rates rise above zero.
    let events: Vec<_> = (0..20)
        .map(|i| {
            event(
                &format!("INC-{u}-t{i:02}"),
                "RTC",
                "3",
                &["FUEL"],
                f64::from(i),
            )
        })
        .collect();
    let trickle = async {
        for e in events {
            post(vec![e]).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    };
    let watch = browser.wait_for(
            "return document.querySelectorAll('#services .up').length === 3 && [...document.querySelectorAll('#chart-out polyline')].some(p => p.getAttribute('points').split(' ').some(xy => parseFloat(xy.split(',')[1]) < 140));",
            Duration::from_secs(30),
        );
    let ((), charted) = tokio::join!(trickle, watch);
    let ops_shot = browser.screenshot().await;
    let ops_path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-artifacts/ops.png");
    std::fs::write(ops_path, &ops_shot).expect("screenshot");
    println!("board: ops page screenshot saved to {ops_path}");
    assert!(
        charted.is_some(),
        "the ops page charts throughput and shows ingest, project and gateway up"
    );
    let agreements = browser
        .eval("return document.getElementById('legend-agreements').textContent;")
        .await;
    assert!(
        agreements
            .as_str()
            .is_some_and(|t| t.contains("isa-avon-police-fire-rtc")),
        "disclosures per agreement: {agreements}"
    );
}

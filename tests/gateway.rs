//! `bluelight gateway` against the real broker, registry and projector: who may read what, the
//! consultation record of every read, resuming a stream with Last-Event-ID, and a client that
//! never reads.
//!
//! Each test has its own controller and recipients (see `common::project::setup`), so other tests'
//! events cannot reach its feeds.

mod common;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use bluelight_avro::records::{ConsultationAction, IncidentEvent};
use bluelight_topics::testing::unique;
use common::{
    gateway::{Sse, consultations, request, start_gateway},
    project::{producer, publish, rtcs, setup, start_projector},
    rss_kib,
};
use rdkafka::producer::FutureRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn feed(org: &str) -> String {
    format!("feed.{org}.incident.v1")
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

/// The incident as `token`'s organisation holds it, waiting for the view and the projector.
async fn incident_when_there(gateway: &str, token: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(&format!("{gateway}/v1/incidents/{id}"), Some(token)).await;
        if r.status() == 200 {
            return r.json().await.expect("json");
        }
        assert!(
            [404, 503].contains(&r.status().as_u16()),
            "unexpected {}",
            r.status()
        );
        assert!(Instant::now() < deadline, "{id} never reached the view");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn recipients_read_only_their_own_feeds_and_every_read_is_logged() {
    let s = setup("gw-access").await;
    let _projector = start_projector(&s, &unique("gw-access-")).await;
    let u = unique("");
    let (fire_t, amb_t, other_t, ops_t) = (
        format!("fire-{u}"),
        format!("amb-{u}"),
        format!("other-{u}"),
        format!("ops-{u}"),
    );
    let other_org = format!("vcare-{u}");
    let ops_org = format!("ops-{u}");
    let gw = start_gateway(
        &s,
        &[
            ("fire-control", &s.fire, "control-room", &fire_t),
            ("amb-control", &s.ambulance, "control-room", &amb_t),
            ("vcare-desk", &other_org, "control-room", &other_t),
            ("ops-desk", &ops_org, "ops", &ops_t),
        ],
        &[],
    )
    .await;
    let url = &gw.url;

    // 401 without a token or with a wrong one, with a challenge; never data.
    for token in [None, Some("not-a-token")] {
        let r = get(&format!("{url}/v1/feeds"), token).await;
        assert_eq!(r.status(), 401, "token {token:?}");
        assert!(r.headers().get("www-authenticate").is_some());
        let r = request(url, token.unwrap_or(""), &feed(&s.fire), None, None).await;
        assert_eq!(r.status(), 401);
        // Even when the rest of the request is wrong too.
        let r = get(
            &format!("{url}/v1/feeds/{}/events?from=a&from=b", feed(&s.fire)),
            token,
        )
        .await;
        assert_eq!(r.status(), 401);
    }

    // Each recipient's feeds, and only those.
    let mine: serde_json::Value = get(&format!("{url}/v1/feeds"), Some(&fire_t))
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = mine["feeds"]
        .as_array()
        .expect("feeds")
        .iter()
        .filter_map(|f| f["feed"].as_str())
        .collect();
    assert_eq!(names, [feed(&s.fire).as_str()]);
    let none: serde_json::Value = get(&format!("{url}/v1/feeds"), Some(&other_t))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none["feeds"], serde_json::json!([]));

    // 403 for another recipient's feed, for an ops credential, and for a made-up feed.
    for (token, topic) in [
        (&fire_t, feed(&s.ambulance)),
        (&amb_t, feed(&s.fire)),
        (&other_t, feed(&s.fire)),
        (&ops_t, feed(&s.fire)),
        (&fire_t, "bl.incident.v1".to_owned()),
    ] {
        let r = request(url, token, &topic, None, Some("earliest")).await;
        assert_eq!(r.status(), 403, "{topic}");
        let body = r.text().await.expect("body");
        assert!(!body.contains("incident_id"), "a refusal carries no data");
    }

    // Fire opens its stream, an RTC is projected, fire reads the incident; ambulance and the
    // recipient without an agreement do not find it.
    let mut stream = Sse::open(url, &fire_t, &feed(&s.fire), None, Some("latest")).await;
    let opened = stream
        .next(Duration::from_secs(5))
        .await
        .expect("open event");
    assert_eq!(opened.event, "open");
    let sent = rtcs(&s, 1);
    let id = sent[0].incident_id.clone();
    publish(&s.codec, &producer(), &sent).await;
    let got = stream.records(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "the RTC arrives on fire's stream");
    let record = &got[0].json()["record"];
    assert_eq!(record["incident_id"], id.as_str());
    assert_eq!(
        record["envelope"]["disclosure"]["recipient"],
        s.fire.as_str()
    );
    let state = incident_when_there(url, &fire_t, &id).await;
    assert_eq!(state["record"]["incident_type"]["code"], "RTC");
    assert!(state["retracted"].is_null());
    let r = get(&format!("{url}/v1/incidents/{id}"), Some(&other_t)).await;
    assert_eq!(r.status(), 403, "no incident feed, no incident reads");
    let missing = get(&format!("{url}/v1/incidents/INC-none-{u}"), Some(&fire_t)).await;
    assert_eq!(missing.status(), 404);

    // One consultation record per read: the stream, the incident reads (found or not).
    let logged = consultations(&s.codec, &s.fire, 1).await;
    let streams = logged
        .iter()
        .filter(|c| c.action == ConsultationAction::FeedStreamOpened)
        .count();
    assert_eq!(streams, 1, "one stream opened by fire: {logged:#?}");
    let reads: Vec<_> = logged
        .iter()
        .filter(|c| c.action == ConsultationAction::IncidentRead)
        .collect();
    assert!(
        reads
            .iter()
            .any(|c| c.subject_id.as_deref() == Some(id.as_str()) && c.found),
        "the successful read is logged: {reads:#?}"
    );
    assert!(
        reads
            .iter()
            .any(|c| c.subject_id.as_deref() == Some(format!("INC-none-{u}").as_str()) && !c.found),
        "the read that found nothing is logged too"
    );
    for c in &logged {
        assert_eq!(c.user, "fire-control");
        assert_eq!(c.role, "control-room");
        assert_eq!(c.feed, feed(&s.fire));
    }
    let fire_reads_of_id = reads
        .iter()
        .filter(|c| c.subject_id.as_deref() == Some(id.as_str()))
        .count();
    let http_reads = common::metric_sum(
        url,
        "bluelight_gateway_consultations_total",
        "incident-read",
    )
    .await
    .expect("metrics");
    assert!(http_reads >= fire_reads_of_id as f64);
    // Refused requests wrote nothing.
    assert!(consultations(&s.codec, &other_org, 0).await.is_empty());
    assert!(consultations(&s.codec, &ops_org, 0).await.is_empty());
}

#[tokio::test]
async fn a_stream_resumes_with_last_event_id_missing_and_repeating_nothing() {
    let s = setup("gw-resume").await;
    let _projector = start_projector(&s, &unique("gw-resume-")).await;
    let token = format!("fire-{}", unique(""));
    let gw = start_gateway(
        &s,
        &[("fire-control", &s.fire, "control-room", &token)],
        &[],
    )
    .await;
    let topic = feed(&s.fire);
    let producer = producer();

    let mut first = Sse::open(&gw.url, &token, &topic, None, Some("latest")).await;
    assert_eq!(
        first.next(Duration::from_secs(5)).await.map(|e| e.event),
        Some("open".into())
    );
    let before = rtcs(&s, 5);
    publish(&s.codec, &producer, &before).await;
    let got = first.records(5, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 5);
    let last_id = got[4].id.clone().expect("record events carry an id");
    drop(first); // the client goes away

    let after = rtcs(&s, 7);
    publish(&s.codec, &producer, &after).await;
    // Let them reach the feed before reconnecting, so the resume has a gap to fill.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut second = Sse::open(&gw.url, &token, &topic, Some(&last_id), None).await;
    let open = second.next(Duration::from_secs(5)).await.expect("open");
    assert_eq!(open.event, "open");
    assert_eq!(open.id.as_deref(), Some(last_id.as_str()));
    let mut resumed = second.records(7, Duration::from_secs(30)).await;
    // Anything more within 3 s would be a repeat.
    resumed.extend(second.records(1, Duration::from_secs(3)).await);
    let ids: Vec<String> = resumed
        .iter()
        .map(|e| {
            e.json()["record"]["incident_id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = after.iter().map(|r| r.incident_id.clone()).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>(),
        expected.iter().collect::<BTreeSet<_>>(),
        "exactly the events published while away"
    );
    assert_eq!(ids.len(), expected.len(), "nothing repeated: {ids:?}");
    let seen_before: BTreeSet<String> = before.iter().map(|r| r.incident_id.clone()).collect();
    assert!(ids.iter().all(|i| !seen_before.contains(i)));

    // A made-up id is refused clearly.
    let bad = request(&gw.url, &token, &topic, Some("0:999999999"), None).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("past the end"));
    let worse = request(&gw.url, &token, &topic, Some("yesterday"), None).await;
    assert_eq!(worse.status(), 400);
}

/// Fills `topic` with `n` copies of an incident, as the projector would write them.
async fn fill_feed(s: &common::project::Setup, topic: &str, n: usize) -> usize {
    let subject = format!("{topic}-value");
    s.codec
        .register::<IncidentEvent>(&subject)
        .await
        .expect("register");
    let producer = producer();
    let template = rtcs(s, 1).remove(0);
    let mut bytes = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let mut sends = Vec::new();
        for i in chunk {
            let mut r = template.clone();
            r.incident_id = format!("{}-{i}", template.incident_id);
            r.envelope.event_id = bluelight_avro::records::Id::random();
            let payload = s.codec.encode(&subject, &r).expect("encode");
            bytes += payload.len();
            sends.push(
                producer
                    .send_result(
                        FutureRecord::to(topic)
                            .key(&r.incident_id)
                            .payload(&payload),
                    )
                    .map_err(|(e, _)| e)
                    .expect("queue"),
            );
        }
        for d in sends {
            d.await.expect("delivery").expect("acknowledged");
        }
    }
    bytes
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_as_lagged_and_memory_stays_flat() {
    let s = setup("gw-slow").await;
    let topic = feed(&s.fire);
    common::ensure_topics(&[(&topic, false)]).await;
    let n = 30_000;
    let avro_bytes = fill_feed(&s, &topic, n).await;
    let token = format!("fire-{}", unique(""));
    let gw = start_gateway(
        &s,
        &[("fire-control", &s.fire, "control-room", &token)],
        &[
            "--stream-buffer",
            "64",
            "--slow-client-grace",
            "2",
            "--prefetch-kib",
            "256",
            "--max-streams",
            "1",
        ],
    )
    .await;
    let pid = gw.child.id();
    let baseline = rss_kib(pid);

    // A client that asks for everything and then reads nothing.
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let req = format!(
        "GET /v1/feeds/{topic}/events?from=earliest HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("send");
    let mut peak = baseline;
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed = common::metric_sum(&gw.url, "bluelight_gateway_streams_closed_total", "lagged")
        .await
        .expect("metrics");
    println!(
        "never-reading client: {n} records ({} KiB of Avro) on the feed; gateway RSS {baseline} KiB before, peak {peak} KiB while the client read nothing (+{} KiB); lagged closes: {closed}",
        avro_bytes / 1024,
        peak.saturating_sub(baseline)
    );
    assert_eq!(
        closed, 1.0,
        "the stream is closed as lagged while the client still reads nothing"
    );
    // The stream's buffer is 64 events and librdkafka's pre-fetch 256 KiB; the feed's JSON is
    // tens of MiB. Flat means bounded by the buffers, not by the feed.
    assert!(
        peak.saturating_sub(baseline) < 24 * 1024,
        "RSS grew by {} KiB with a client that reads nothing",
        peak - baseline
    );

    // Its buffered events are still held for it, so it still counts against --max-streams.
    let busy = request(&gw.url, &token, &topic, None, Some("latest")).await;
    assert_eq!(
        busy.status(),
        503,
        "one stream allowed, and the lagged one still holds it"
    );
    assert!(busy.headers().get("retry-after").is_some());
    drop(busy);

    // Now it reads: what was buffered, then the closing event with where to resume.
    let mut text = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("the closing event within 30 s");
        match tokio::time::timeout(left, sock.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(k)) => text.extend_from_slice(&chunk[..k]),
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => panic!("no end of stream within 30 s"),
        }
    }
    let text = String::from_utf8_lossy(&text);
    let at = text
        .find("event: lagged")
        .expect("a closing `lagged` event");
    let block = &text[at..];
    let block = &block[..block.find("\n\n").expect("complete event")];
    let ev = common::gateway::parse(block).expect("event");
    let data = ev.json();
    let resume = data["resume_from"]
        .as_str()
        .expect("resume_from")
        .to_owned();
    assert!(
        data["reason"]
            .as_str()
            .expect("reason")
            .contains("fell behind")
    );
    let received = text.matches("event: record").count();
    assert!(received > 0 && received < n, "some, not all: {received}");

    // Resuming from there carries on where it stopped.
    let mut again = Sse::open(&gw.url, &token, &topic, Some(&resume), None).await;
    let more = again.records(10, Duration::from_secs(10)).await;
    assert_eq!(more.len(), 10);
}

#[tokio::test]
async fn the_ops_figures_come_from_every_service_and_only_ops_tokens_read_them() {
    let s = setup("gw-ops").await;
    let projector = start_projector(&s, &unique("gw-ops-")).await;
    let u = unique("");
    let (ops_t, fire_t) = (format!("ops-{u}"), format!("fire-{u}"));
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let gw = start_gateway(
        &s,
        &[
            ("ops-desk", &format!("ops-{u}"), "ops", &ops_t),
            ("fire-control", &s.fire, "control-room", &fire_t),
        ],
        &[
            "--ops-target",
            &format!("project={}", projector.url),
            "--ops-target",
            &format!("gone={dead}"),
        ],
    )
    .await;
    let url = format!("{}/v1/ops", gw.url);
    assert_eq!(get(&url, None).await.status(), 401);
    assert_eq!(
        get(&url, Some(&fire_t)).await.status(),
        403,
        "a control-room token does not read the ops figures"
    );
    let sent = rtcs(&s, 6);
    publish(&s.codec, &producer(), &sent).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let ops = loop {
        let v: serde_json::Value = get(&url, Some(&ops_t)).await.json().await.expect("json");
        if v["figures"]["disclosures_by_agreement"]["isa-avon-police-fire-rtc"]
            .as_f64()
            .unwrap_or(0.0)
            >= 6.0
        {
            break v;
        }
        assert!(Instant::now() < deadline, "no disclosures counted: {v:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let services = ops["services"].as_array().expect("services");
    let state = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["up"].as_bool())
    };
    assert_eq!(state("gateway"), Some(Some(true)));
    assert_eq!(state("project"), Some(Some(true)));
    assert_eq!(
        state("gone"),
        Some(Some(false)),
        "an unreachable service shows as down"
    );
    assert!(
        ops["figures"]["in"]["projector_consumed"]
            .as_f64()
            .unwrap_or(0.0)
            >= 6.0
    );
    assert!(ops["figures"]["lag"]["projector"].is_number());
    assert!(ops["figures"]["victims_code"]["overdue"].is_number());
}

#[tokio::test]
async fn a_token_over_its_rate_is_answered_429_and_other_tokens_are_not() {
    let s = setup("gw-rate").await;
    let u = unique("");
    let (fire_t, amb_t) = (format!("fire-{u}"), format!("amb-{u}"));
    let gw = start_gateway(
        &s,
        &[
            ("fire-control", &s.fire, "control-room", &fire_t),
            ("amb-control", &s.ambulance, "control-room", &amb_t),
        ],
        &["--rate-limit", "0.2", "--rate-burst", "3"],
    )
    .await;
    let me = format!("{}/v1/me", gw.url);
    for i in 0..3 {
        assert_eq!(get(&me, Some(&fire_t)).await.status(), 200, "request {i}");
    }
    let limited = get(&me, Some(&fire_t)).await;
    assert_eq!(limited.status(), 429);
    let retry = common::retry_after(&limited);
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        get(&me, Some(&amb_t)).await.status(),
        200,
        "another token keeps its own allowance"
    );
    assert_eq!(
        get(&me, Some("not-a-token")).await.status(),
        401,
        "a bad token is refused as such, not counted against anyone"
    );
}

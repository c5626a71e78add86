//! Victim-update deadlines end to end, against the real broker and registry: updates nobody
//! delivered are reported overdue once (through a kill -9 of victim-updates), the gauges say so,
//! and they close when `bluelight notify` delivers them to a webhook that fails often, or when the
//! HTTP callback acknowledges one. (The notifier's own crash test is in `notify.rs`: a notifier
//! reads every update on the feed, so the two must not run at once.)

mod common;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use bluelight_avro::{
    Codec,
    records::{ContactChannel, EventType, Id, Timestamp, VictimUpdateAlert},
};
use bluelight_topics::testing::unique;
use common::{
    Service, metric_sum,
    notify::{notifier, provider},
    project::read_all,
    victims::{case, send, setup, start, updates_for, victim},
};

async fn metric(service: &Service, name: &str) -> f64 {
    metric_sum(&service.url, name, "")
        .await
        .expect("/metrics answers")
}

async fn wait_metric(service: &Service, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = metric(service, name).await;
        if (got - want).abs() < f64::EPSILON {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {got}, not {want}, after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A metric once it has held still for three seconds: a new group first works through every case
/// event already on the shared test topic (other tests'), and those count too.
async fn settled(service: &Service, name: &str) -> f64 {
    let mut last = metric(service, name).await;
    let mut still = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while still < 3 {
        assert!(
            Instant::now() < deadline,
            "{name} still changing after 60 s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = metric(service, name).await;
        still = if (now - last).abs() < f64::EPSILON {
            still + 1
        } else {
            0
        };
        last = now;
    }
    last
}

async fn alerts_for(codec: &Codec, case_id: &str) -> Vec<VictimUpdateAlert> {
    let mut out = Vec::new();
    for (key, payload, _) in read_all("feed.victim-update-overdue.v1", 1, Duration::from_secs(20)) {
        if key == case_id {
            out.push(codec.decode(&payload).await.expect("alert decodes"));
        }
    }
    out
}

/// London wall time `days` ago at 10:00, as the case helper wants it.
fn days_ago(days: i64) -> String {
    let z = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Europe/London").expect("tz"))
        .checked_sub(jiff::Span::new().days(days))
        .expect("date");
    format!("{}T10:00", z.date())
}

#[tokio::test(flavor = "multi_thread")]
async fn undelivered_updates_are_reported_overdue_once_and_close_when_delivered() {
    let (registry, codec) = setup().await;
    let u = unique("");
    let (a, case_id) = (format!("victim-{u}"), format!("CASE-{u}"));
    send(
        &codec,
        "bl.victim.v1",
        &victim(&a, true, false, ContactChannel::Sms),
    )
    .await;
    let group = unique("victim-updates-");
    let mut service = start(&registry.url, &group).await;
    let open0 = settled(&service, "bluelight_victim_updates_open").await;
    let overdue0 = settled(&service, "bluelight_victim_updates_overdue").await;
    // A domestic abuse case: arrest, charge and hearing long past (nobody told the victim), and
    // an interview today (due tomorrow or later: neither due soon nor overdue).
    for (t, at) in [
        (EventType::SuspectArrested, days_ago(30)),
        (EventType::SuspectCharged, days_ago(20)),
        (EventType::HearingScheduled, days_ago(10)),
        (EventType::SuspectInterviewed, days_ago(0)),
    ] {
        send(&codec, "bl.case.v1", &case(&case_id, &[&a], t, &at)).await;
    }
    let mut updates = updates_for(&codec, &case_id).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while updates.len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        updates = updates_for(&codec, &case_id).await;
    }
    assert_eq!(updates.len(), 4, "four updates owed: {updates:?}");

    // With nothing delivering them, the three past due_by are reported overdue, once each.
    wait_metric(&service, "bluelight_victim_updates_overdue", overdue0 + 3.0).await;
    wait_metric(&service, "bluelight_victim_updates_open", open0 + 4.0).await;
    let alerts = alerts_for(&codec, &case_id).await;
    let late: BTreeSet<Id> = updates
        .iter()
        .filter(|u| u.due_by.0 < Timestamp::now().0)
        .map(|u| u.envelope.event_id)
        .collect();
    assert_eq!(late.len(), 3);
    assert_eq!(
        alerts.iter().map(|a| a.update_id).collect::<BTreeSet<_>>(),
        late,
        "an alert for each overdue update: {alerts:?}"
    );
    assert_eq!(alerts.len(), 3, "each once: {alerts:?}");
    assert!(
        alerts
            .iter()
            .all(|x| x.envelope.event_type == EventType::VictimUpdateOverdue && x.victim_ref == a)
    );

    // kill -9: the open updates come back from Kafka, and no alert is raised twice.
    service.child.kill().expect("kill -9");
    let _ = service.child.wait();
    let service = start(&registry.url, &group).await;
    wait_metric(&service, "bluelight_victim_updates_open", open0 + 4.0).await;
    wait_metric(&service, "bluelight_victim_updates_overdue", overdue0 + 3.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        alerts_for(&codec, &case_id).await.len(),
        3,
        "no alert repeated after kill -9"
    );

    // The HTTP callback: bad ids are refused by name, unknown ones are 404, an open one closes.
    let http = reqwest::Client::new();
    let post = |id: String| {
        let (http, url) = (http.clone(), service.url.clone());
        async move {
            let r = http
                .post(format!("{url}/v1/victim-updates/{id}/delivered"))
                .json(&serde_json::json!({ "notifier": "witness-care-unit" }))
                .send()
                .await
                .expect("callback");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, text) = post("not-a-uuid".into()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("update_id"), "names the field: {text}");
    let (status, text) = post(Id::random().to_string()).await;
    assert_eq!(status, 404, "{text}");
    let today = updates
        .iter()
        .find(|u| u.trigger_event_type == EventType::SuspectInterviewed)
        .expect("today's update");
    let (status, text) = post(today.envelope.event_id.to_string()).await;
    assert_eq!(status, 202, "{text}");
    wait_metric(&service, "bluelight_victim_updates_open", open0 + 3.0).await;

    // The notifier delivers the rest (and any older update of this group) through a webhook
    // failing often; they all close.
    let (webhook, sent) = provider().await;
    let _notify = notifier(&registry.url, &webhook, &unique("notify-")).await;
    wait_metric(&service, "bluelight_victim_updates_open", 0.0).await;
    wait_metric(&service, "bluelight_victim_updates_overdue", 0.0).await;
    let p = sent.lock().expect("provider");
    let ours: Vec<_> = p
        .sent
        .iter()
        .filter(|(k, _)| p.case_of[*k] == case_id)
        .collect();
    assert_eq!(
        ours.len(),
        4,
        "each of the case's four updates sent: {ours:?}"
    );
    assert!(ours.iter().all(|(_, n)| **n == 1));
    println!(
        "deadlines: 4 updates, 3 reported overdue once (also after kill -9), 1 closed by the HTTP callback, 4 delivered through a webhook that failed {} of {} requests",
        p.requests - p.sent.len(),
        p.requests
    );
}

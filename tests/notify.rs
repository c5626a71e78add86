//! `bluelight notify` against the real broker and registry: a webhook that fails often is
//! retried with backoff, a refused update is dead-lettered, and through a kill -9 every update is
//! sent once (the idempotency key) and acknowledged.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use bluelight_avro::records::{Id, VictimNotificationAck, VictimUpdate, samples};
use bluelight_topics::testing::unique;
use common::{
    notify::{Provider, notifier, provider},
    project::read_all,
    victims::{send, setup},
};

#[tokio::test(flavor = "multi_thread")]
async fn the_notifier_retries_a_failing_webhook_and_through_kill_9_sends_each_message_once() {
    let (registry, codec) = setup().await;
    let u = unique("");
    const N: usize = 60;
    let mut updates = Vec::new();
    for i in 0..N {
        let mut up = samples::victim_update();
        up.envelope.event_id = Id::random();
        up.case_id = format!("NOTIFY-{u}-{}", i % 6);
        up.victim_ref = format!("victim-{u}-{i}");
        if i == 7 {
            up.template_id = "refuse-me".into();
        }
        updates.push(up);
    }
    for up in &updates {
        send(&codec, "feed.victim-update.v1", up).await;
    }
    let (webhook, sent) = provider().await;
    let group = unique("notify-");
    let mut first = notifier(&registry.url, &webhook, &group).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = sent.lock().expect("provider").sent.len();
        if n >= N / 3 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} sent within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    let _second = notifier(&registry.url, &webhook, &group).await;

    let ours = |p: &Provider| {
        p.sent
            .keys()
            .filter(|k| p.case_of[*k].starts_with(&format!("NOTIFY-{u}-")))
            .cloned()
            .collect::<BTreeSet<String>>()
    };
    let want: BTreeSet<String> = updates
        .iter()
        .filter(|u| u.template_id != "refuse-me")
        .map(|u| u.envelope.event_id.to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while ours(&sent.lock().expect("provider")) != want {
        assert!(
            Instant::now() < deadline,
            "not every update sent within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (requests, repeats) = {
        let p = sent.lock().expect("provider");
        let repeats = p
            .attempts
            .iter()
            .filter(|(k, n)| want.contains(*k) && **n > 2)
            .count();
        (p.requests, repeats)
    };

    // Every delivered update is acknowledged (a repeat carries the same id); the refused one
    // is dead-lettered, not acknowledged.
    let mut acked = BTreeMap::<String, BTreeSet<Id>>::new();
    for (_, payload, _) in read_all(
        "bl.victim-notification-ack.v1",
        want.len(),
        Duration::from_secs(30),
    ) {
        let Ok(a) = codec.decode::<VictimNotificationAck>(&payload).await else {
            continue;
        };
        if a.case_id.starts_with(&format!("NOTIFY-{u}-")) {
            acked
                .entry(a.update_id.to_string())
                .or_default()
                .insert(a.envelope.event_id);
        }
    }
    assert_eq!(
        acked.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "each delivery acknowledged"
    );
    assert!(
        acked.values().all(|ids| ids.len() == 1),
        "a repeated acknowledgement is the same record"
    );
    let refused = updates
        .iter()
        .find(|u| u.template_id == "refuse-me")
        .expect("refused");
    let dead: Vec<_> = read_all("dlq.notify.v1", 1, Duration::from_secs(20))
        .into_iter()
        .filter(|(key, _, _)| *key == refused.case_id)
        .collect();
    // Once, or again if the kill came between its dead letter and the offset commit.
    assert!(!dead.is_empty(), "the refused update is dead-lettered");
    for (_, payload, _) in &dead {
        let decoded: VictimUpdate = codec.decode(payload).await.expect("the original bytes");
        assert_eq!(decoded.envelope.event_id, refused.envelope.event_id);
    }
    println!(
        "notify: {} of {N} updates sent once each through kill -9 ({requests} requests, {repeats} updates asked more than twice), 1 refused and dead-lettered",
        want.len()
    );
}

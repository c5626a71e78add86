//! The context service in tests: starting an instance, and reading what a group holds.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use bluelight_consumers::context::SubjectState;
use bluelight_topics::testing::unique;
use rdkafka::{
    Message,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
};

use super::{Service, client, start_group_at_history, start_service};

/// One instance of `bluelight context` in `group`, its route stage starting where the shared
/// topics stood when this test binary began.
pub async fn start_context(
    key_file: &Path,
    registry_url: &str,
    group: &str,
    instance: &str,
) -> Service {
    start_group_at_history(&format!("{group}-route"));
    start_service(&[
        "context",
        "--pseudonym-key-file",
        key_file.to_str().expect("key"),
        "--schema-registry",
        registry_url,
        "--group",
        group,
        "--instance",
        instance,
        "--batch-ms",
        "50",
        "--transaction-timeout",
        "10",
    ])
    .await
}

/// The latest state of each of `subjects` that `group` wrote, once every one of them holds
/// `contacts[subject]` contacts (or at the deadline).
pub fn states(
    group: &str,
    want: &BTreeMap<String, usize>,
    within: Duration,
) -> BTreeMap<String, SubjectState> {
    let consumer: BaseConsumer = client()
        .set("group.id", unique("context-reader-"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&["state.context.v1"])
        .expect("subscribe");
    let deadline = Instant::now() + within;
    let mut latest: BTreeMap<String, SubjectState> = BTreeMap::new();
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let ours = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "bl-group").and_then(|h| h.value))
                == Some(group.as_bytes());
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            if ours && want.contains_key(&key) {
                let state: SubjectState =
                    serde_json::from_slice(m.payload().unwrap_or_default()).expect("state");
                latest.insert(key, state);
            }
        } else if want.iter().all(|(k, n)| {
            latest
                .get(k)
                .is_some_and(|s| s.history.contacts.len() == *n)
        }) {
            break;
        }
    }
    latest
}

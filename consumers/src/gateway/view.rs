//! The incident view behind `GET /v1/incidents/{id}`: the current state of each incident on each
//! recipient's incident feed, rebuilt from the feeds on start (read_committed, from the earliest
//! record they hold) and kept up to date as records arrive. Keyed by (feed, incident), so a
//! recipient's read can only ever find what its own feed received.
//!
//! Each entry holds the latest record the recipient received, a bounded timeline of the events
//! behind it, and which of those were withdrawn. An incident reads as retracted when every event
//! the recipient holds of it was withdrawn; a correction withdraws one event and sends its
//! replacement, so the incident stays live with the corrected record.
//!
//! Bounded: at most `max` incidents (the least recently updated goes first) and
//! [`TIMELINE_MAX`] timeline entries per incident.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bluelight_avro::Codec;
use rdkafka::{
    ClientConfig, Message, Offset,
    consumer::{Consumer, StreamConsumer},
};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{metrics::METRICS, stream};
use crate::{Error, Result, eos::Status, policy::Entity};

/// Timeline entries kept per incident; older ones are dropped (the count says how many).
pub const TIMELINE_MAX: usize = 50;

/// One incident as a recipient holds it. Stored compactly (the record as its JSON text, the
/// timeline as small structs): a `Value` tree costs ten times the bytes, and the view holds
/// tens of thousands of incidents.
#[derive(Debug, Default)]
struct Entry {
    record: Box<str>,
    timeline: VecDeque<Step>,
    dropped: u64,
    /// (reason, recorded_at) once every event held was withdrawn.
    retracted: Option<(Box<str>, Value)>,
    seq: u64,
}

/// One event of an incident's timeline.
#[derive(Debug)]
struct Step {
    event_id: Box<str>,
    event_type: Box<str>,
    occurred_at: Value,
    offset: i64,
    kind: StepKind,
}

#[derive(Debug)]
enum StepKind {
    /// A new state; `withdrawn` holds the reason once a later event withdraws it.
    Update {
        status: Value,
        priority: Value,
        withdrawn: Option<Box<str>>,
    },
    /// A retraction or correction notice withdrawing `target`.
    Withdraws { target: Box<str>, reason: Box<str> },
}

impl Step {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "event_id": &*self.event_id, "event_type": &*self.event_type,
            "occurred_at": self.occurred_at, "offset": self.offset,
        });
        match &self.kind {
            StepKind::Update {
                status,
                priority,
                withdrawn,
            } => {
                v["status"] = status.clone();
                v["priority"] = priority.clone();
                v["withdrawn"] = withdrawn.as_deref().map_or(Value::Null, Value::from);
            }
            StepKind::Withdraws { target, reason } => {
                v["withdraws"] = Value::from(&**target);
                v["reason"] = Value::from(&**reason);
            }
        }
        v
    }
}

fn text(v: &Value) -> Box<str> {
    v.as_str().unwrap_or_default().into()
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<(String, String), Entry>,
    by_age: BTreeMap<u64, (String, String)>,
    seq: u64,
}

/// The view; shared by the request handlers and its reader task.
#[derive(Debug)]
pub struct View {
    inner: Mutex<Inner>,
    max: usize,
    ready: AtomicBool,
}

impl View {
    pub fn new(max: usize) -> Self {
        View {
            inner: Mutex::default(),
            max: max.max(1),
            ready: AtomicBool::new(false),
        }
    }

    /// Whether the view has read every feed up to where it stood at start.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one decoded feed record (`record` is the canonical JSON the feed carries).
    pub fn apply(&self, feed: &str, key: &str, offset: i64, record: Value) {
        let Ok(mut g) = self.inner.lock() else { return };
        g.seq += 1;
        let seq = g.seq;
        let k = (feed.to_owned(), key.to_owned());
        if !g.entries.contains_key(&k) && g.entries.len() >= self.max {
            let oldest = g.by_age.first_key_value().map(|(s, k)| (*s, k.clone()));
            if let Some((s, old)) = oldest {
                g.by_age.remove(&s);
                g.entries.remove(&old);
            }
        }
        let entry = g.entries.entry(k.clone()).or_default();
        let old_seq = std::mem::replace(&mut entry.seq, seq);
        let env = &record["envelope"];
        let (event_id, event_type) = (text(&env["event_id"]), text(&env["event_type"]));
        let occurred_at = env["occurred_at"].clone();
        if let Some(w) = env.get("retracts").filter(|r| !r.is_null()) {
            let (target, reason) = (text(&w["event_id"]), text(&w["reason"]));
            for t in &mut entry.timeline {
                if let StepKind::Update { withdrawn, .. } = &mut t.kind
                    && t.event_id == target
                {
                    *withdrawn = Some(reason.clone());
                }
            }
            let live = entry.timeline.iter().any(|t| {
                matches!(
                    &t.kind,
                    StepKind::Update {
                        withdrawn: None,
                        ..
                    }
                )
            });
            if !live {
                entry.retracted = Some((reason.clone(), env["recorded_at"].clone()));
            }
            entry.timeline.push_back(Step {
                event_id,
                event_type,
                occurred_at,
                offset,
                kind: StepKind::Withdraws { target, reason },
            });
        } else {
            entry.timeline.push_back(Step {
                event_id,
                event_type,
                occurred_at,
                offset,
                kind: StepKind::Update {
                    status: record["status"].clone(),
                    priority: record["priority"].clone(),
                    withdrawn: None,
                },
            });
            entry.retracted = None;
            entry.record = record.to_string().into();
        }
        while entry.timeline.len() > TIMELINE_MAX {
            entry.timeline.pop_front();
            entry.dropped += 1;
        }
        g.by_age.remove(&old_seq);
        g.by_age.insert(seq, k);
        METRICS
            .view_incidents
            .set(i64::try_from(g.entries.len()).unwrap_or(i64::MAX));
    }

    /// One incident as `feed`'s recipient holds it, or `None`.
    pub fn get(&self, feed: &str, incident_id: &str) -> Option<Value> {
        let g = self.inner.lock().ok()?;
        let e = g.entries.get(&(feed.to_owned(), incident_id.to_owned()))?;
        Some(json!({
            "incident_id": incident_id,
            "feed": feed,
            "record": serde_json::from_str::<Value>(&e.record).unwrap_or(Value::Null),
            "retracted": e.retracted.as_ref().map(|(reason, at)| json!({"reason": &**reason, "at": at})),
            "timeline": e.timeline.iter().map(Step::to_json).collect::<Vec<_>>(),
            "timeline_dropped": e.dropped,
        }))
    }
}

/// Reads every incident feed in `topics` into `view` until `shutdown`; marks the view ready once
/// it has read up to where each feed stood when it started. Runs as a task.
pub async fn follow(
    view: Arc<View>,
    base: ClientConfig,
    topics: Vec<String>,
    codec: Arc<Codec>,
    status: Arc<Status>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    if topics.is_empty() {
        view.ready.store(true, Ordering::Relaxed);
        return Ok(());
    }
    let mut cfg = base;
    cfg.set(
        "group.id",
        format!("bluelight-gateway-view-{}", uuid::Uuid::new_v4()),
    )
    .set("enable.auto.commit", "false")
    .set("auto.offset.reset", "earliest")
    .set("isolation.level", "read_committed")
    .set("topic.metadata.refresh.interval.ms", "10000")
    .set("queued.max.messages.kbytes", "8192");
    let consumer: StreamConsumer = cfg
        .create()
        .map_err(|e| Error::Kafka(format!("creating the view consumer: {e}")))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| Error::Kafka(format!("subscribing to the feeds: {e}")))?;
    status.set(Some("incident view: reading the feeds".into()));
    let targets = loop {
        match watermarks(&consumer, &topics) {
            Ok(t) => break t,
            Err(e) => {
                status.set(Some(format!("incident view: {e}")));
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    };
    let mut check = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = check.tick(), if !view.is_ready() => {
                if caught_up(&consumer, &targets) {
                    view.ready.store(true, Ordering::Relaxed);
                    status.set(None);
                    tracing::info!(incidents = view.len(), "incident view is up to date");
                }
            }
            m = consumer.recv() => match m {
                Ok(m) => {
                    let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else { continue };
                    let topic = m.topic().to_owned();
                    let offset = m.offset();
                    match stream::decode(&codec, Entity::Incident, m.payload()).await {
                        Ok(record) => {
                            view.apply(&topic, &key, offset, record);
                            METRICS.view_records.with_label_values(&[&topic]).inc();
                        }
                        Err(error) => super::metrics::Undecodable {
                            feed: &topic, partition: m.partition(), offset, error: &error,
                        }.emit(),
                    }
                }
                Err(e) => tracing::debug!(error = %e, "view consumer error"),
            }
        }
    }
}

type Targets = Vec<(String, i32, i64)>;

/// Where each existing partition of `topics` ends now.
fn watermarks(consumer: &StreamConsumer, topics: &[String]) -> Result<Targets> {
    let mut out = Vec::new();
    for t in topics {
        let md = consumer
            .fetch_metadata(Some(t), Duration::from_secs(5))
            .map_err(|e| Error::Kafka(format!("looking up {t}: {e}")))?;
        for mt in md.topics().iter().filter(|m| m.error().is_none()) {
            for p in mt.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(t, p.id(), Duration::from_secs(5))
                    .map_err(|e| Error::Kafka(format!("looking up {t}: {e}")))?;
                if high > low {
                    out.push((t.clone(), p.id(), high));
                }
            }
        }
    }
    Ok(out)
}

fn caught_up(consumer: &StreamConsumer, targets: &Targets) -> bool {
    let Ok(pos) = consumer.position() else {
        return false;
    };
    targets.iter().all(|(t, p, high)| {
        pos.find_partition(t, *p)
            .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *high))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, event_id: &str, status: &str, retracts: Option<(&str, &str)>) -> Value {
        json!({
            "incident_id": id,
            "status": status,
            "envelope": {
                "event_id": event_id, "event_type": "INCIDENT_UPDATED", "occurred_at": 1,
                "recorded_at": 2,
                "retracts": retracts.map(|(e, r)| json!({"event_id": e, "reason": r})),
            },
        })
    }

    #[test]
    fn corrections_stay_live_and_whole_retractions_strike_the_incident() {
        let v = View::new(10);
        v.apply("f", "INC-1", 0, rec("INC-1", "e1", "OPEN", None));
        v.apply(
            "f",
            "INC-1",
            1,
            rec("INC-1", "n1", "RETRACTED", Some(("e1", "corrected by x"))),
        );
        assert!(!v.get("f", "INC-1").expect("held")["retracted"].is_null());
        v.apply("f", "INC-1", 2, rec("INC-1", "e2", "OPEN", None));
        let got = v.get("f", "INC-1").expect("held");
        assert!(got["retracted"].is_null(), "{got}");
        assert_eq!(got["record"]["envelope"]["event_id"], "e2");
        assert_eq!(got["timeline"][0]["withdrawn"], "corrected by x");
        v.apply(
            "f",
            "INC-1",
            3,
            rec("INC-1", "n2", "RETRACTED", Some(("e2", "withdrawn by p"))),
        );
        let got = v.get("f", "INC-1").expect("held");
        assert_eq!(got["retracted"]["reason"], "withdrawn by p");
        assert_eq!(
            got["record"]["envelope"]["event_id"], "e2",
            "the last record stays readable"
        );
        assert!(v.get("other-feed", "INC-1").is_none(), "keyed by feed");
    }

    #[test]
    fn the_view_and_each_timeline_are_bounded() {
        let v = View::new(3);
        for i in 0..5 {
            v.apply("f", &format!("INC-{i}"), i, rec("x", "e", "OPEN", None));
        }
        assert_eq!(v.len(), 3);
        assert!(v.get("f", "INC-0").is_none() && v.get("f", "INC-4").is_some());
        for i in 0..(TIMELINE_MAX as i64 + 7) {
            v.apply("f", "INC-4", i, rec("x", &format!("e{i}"), "OPEN", None));
        }
        let got = v.get("f", "INC-4").expect("held");
        assert_eq!(got["timeline"].as_array().map(Vec::len), Some(TIMELINE_MAX));
        assert_eq!(got["timeline_dropped"], 8);
    }
}

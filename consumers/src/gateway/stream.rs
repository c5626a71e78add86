//! One feed stream: a Kafka reader of one feed topic (assigned partitions, no consumer group,
//! read_committed) feeding a bounded channel that the SSE response drains.
//!
//! The server's memory per stream is bounded by `--stream-buffer` events in the channel and
//! librdkafka's pre-fetch queue (`queued.max.messages.kbytes`). When a client stops reading, the
//! socket fills, the response stops draining, the channel fills; after `--slow-client-grace`
//! with the channel still full the reader stops, drops its Kafka consumer and leaves one closing
//! `lagged` event, sent after everything already buffered, naming the id to resume from.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::response::sse::Event as SseEvent;
use bluelight_avro::{
    Codec,
    records::{CaseEvent, IncidentEvent, VictimEvent},
};
use futures_util::Stream;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::{BorrowedMessage, Headers},
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::{
    cursor::{Cursor, Start},
    metrics::{self, StreamClosed, Undecodable},
};
use crate::{Error, Result, policy::Entity};

/// A feed topic and what its records are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub topic: String,
    pub entity: Entity,
}

/// Limits for one stream.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Events buffered between the Kafka reader and the client.
    pub buffer: usize,
    /// How long the buffer may stay full before the client is declared behind.
    pub grace: Duration,
    /// librdkafka's pre-fetch queue per stream, in KiB.
    pub prefetch_kib: u32,
    /// Timeout for the metadata and offset look-ups when opening.
    pub lookup_timeout: Duration,
}

/// Why a position cannot be served; the message is for the client.
#[derive(Debug)]
pub enum OpenError {
    /// The client's `Last-Event-ID` or `from` does not fit this feed.
    BadPosition(String),
    /// The broker could not be asked.
    Unavailable(Error),
}

/// Resolves `start` to a concrete cursor for every partition of `topic`, with `consumer`.
pub fn resolve(
    consumer: &StreamConsumer,
    topic: &str,
    start: &Start,
    timeout: Duration,
) -> std::result::Result<Cursor, OpenError> {
    let unavailable = |e: rdkafka::error::KafkaError| {
        OpenError::Unavailable(Error::Kafka(format!("looking up {topic}: {e}")))
    };
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(unavailable)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(OpenError::Unavailable(Error::Kafka(format!(
            "feed topic {topic} does not exist yet (the projector creates it when it starts)"
        ))));
    }
    let mut out = BTreeMap::new();
    let mut times = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(unavailable)?;
        let at = match start {
            Start::Latest => high,
            Start::Earliest => low,
            Start::Time(ms) => {
                times
                    .add_partition_offset(topic, p, Offset::Offset(*ms))
                    .map_err(unavailable)?;
                high
            }
            Start::Resume(c) => match c.0.get(&p) {
                // A partition the client never saw (added since): everything it holds.
                None => low,
                Some(&o) if o > high => {
                    return Err(OpenError::BadPosition(format!(
                        "Last-Event-ID {c} is past the end of partition {p} of {topic} (offset {o}, end {high}): it is not an id from this feed"
                    )));
                }
                // Records the client missed have expired; it gets what is left (the gap is logged).
                Some(&o) if o < low => {
                    tracing::warn!(
                        topic,
                        partition = p,
                        resume = o,
                        earliest = low,
                        "resuming past expired records"
                    );
                    low
                }
                Some(&o) => o,
            },
        };
        out.insert(p, at);
    }
    if let Start::Resume(c) = start
        && let Some(p) = c.0.keys().find(|p| !partitions.contains(p))
    {
        return Err(OpenError::BadPosition(format!(
            "Last-Event-ID {c} names partition {p}, which {topic} does not have"
        )));
    }
    if matches!(start, Start::Time(_)) {
        let found = consumer
            .offsets_for_times(times, timeout)
            .map_err(unavailable)?;
        for e in found.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert(e.partition(), o);
            }
        }
    }
    Ok(Cursor(out))
}

/// A consumer for one stream: no group membership or commits, transactional records only when
/// committed, and a small pre-fetch queue.
pub fn consumer(base: &ClientConfig, limits: &StreamLimits) -> Result<StreamConsumer> {
    let mut cfg = base.clone();
    cfg.set("group.id", "bluelight-gateway-streams")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        // A resume position that retention removed meanwhile: carry on from what the feed still
        // holds (logged at open), never silently jump to the end.
        .set("auto.offset.reset", "earliest")
        .set(
            "queued.max.messages.kbytes",
            limits.prefetch_kib.to_string(),
        )
        .set("queued.min.messages", "100")
        // A live board: a record should reach the screen well inside a second.
        .set("fetch.wait.max.ms", "100")
        .set("fetch.max.bytes", "1048576");
    cfg.create()
        .map_err(|e| Error::Kafka(format!("creating a stream consumer: {e}")))
}

/// Who a stream is for and what ends it.
#[derive(Debug)]
pub struct Client {
    /// For the log lines; never a metric label.
    pub user: String,
    /// Flips to true when the gateway stops; the stream then closes with a resumable event.
    pub shutdown: watch::Receiver<bool>,
    /// The stream's place under `--max-streams`, released when the response ends: a stream
    /// closed as lagged still holds its buffered events until the client reads them or goes, so
    /// it keeps counting against the limit (memory stays bounded by streams × buffer).
    pub permit: tokio::sync::OwnedSemaphorePermit,
}

/// Starts reading `feed` from `cursor`, returning the SSE event stream for the response.
pub fn start(
    consumer: StreamConsumer,
    feed: Feed,
    cursor: Cursor,
    codec: Arc<Codec>,
    limits: &StreamLimits,
    client: Client,
) -> Result<impl Stream<Item = std::result::Result<SseEvent, Infallible>> + Send + 'static> {
    let Client {
        user,
        mut shutdown,
        permit,
    } = client;
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in &cursor.0 {
        tpl.add_partition_offset(&feed.topic, p, Offset::Offset(o))
            .map_err(|e| Error::Kafka(e.to_string()))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::Kafka(format!("assigning {}: {e}", feed.topic)))?;
    let (tx, rx) = mpsc::channel::<SseEvent>(limits.buffer.max(1));
    let closing: Arc<Mutex<Option<SseEvent>>> = Arc::default();
    let opening = SseEvent::default()
        .event("open")
        .id(cursor.to_string())
        .data(json!({"feed": feed.topic, "cursor": cursor.to_string()}).to_string());
    // The first event always fits: the channel is new.
    let _ = tx.try_send(opening);
    let grace = limits.grace;
    let closing_w = closing.clone();
    tokio::spawn(async move {
        let mut cursor = cursor;
        let mut sent = 0u64;
        let reason = loop {
            let m = tokio::select! {
                () = tx.closed() => break "client-gone",
                _ = shutdown.changed() => {
                    set(&closing_w, closing_event("shutdown", "the gateway is shutting down; reconnect with Last-Event-ID to resume", &cursor));
                    break "shutdown";
                }
                m = consumer.recv() => m,
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    // Transport errors are retried by librdkafka; the stream waits.
                    tracing::debug!(topic = %feed.topic, error = %e, "stream consumer error");
                    continue;
                }
            };
            let (p, o) = (m.partition(), m.offset());
            let ts = m.timestamp().to_millis();
            let data = record_json(&codec, &feed, &m).await;
            cursor.0.insert(p, o + 1);
            let ev = match data {
                Ok(v) => SseEvent::default()
                    .event("record")
                    .id(cursor.to_string())
                    .data(v.to_string()),
                Err(error) => {
                    Undecodable {
                        feed: &feed.topic,
                        partition: p,
                        offset: o,
                        error: &error,
                    }
                    .emit();
                    SseEvent::default().event("undecodable").id(cursor.to_string()).data(
                        json!({"partition": p, "offset": o, "error": "the record does not decode; it is reported to the gateway's operators"}).to_string(),
                    )
                }
            };
            drop(m);
            let permit = tokio::select! {
                r = tokio::time::timeout(grace, tx.reserve()) => r,
                _ = shutdown.changed() => {
                    cursor.0.insert(p, o);
                    set(&closing_w, closing_event("shutdown", "the gateway is shutting down; reconnect with Last-Event-ID to resume", &cursor));
                    break "shutdown";
                }
            };
            match permit {
                Ok(Ok(permit)) => {
                    permit.send(ev);
                    sent += 1;
                    metrics::event_sent(&feed.topic, ts);
                }
                Ok(Err(_)) => break "client-gone",
                Err(_) => {
                    cursor.0.insert(p, o);
                    set(
                        &closing_w,
                        closing_event(
                            "lagged",
                            &format!(
                                "the client fell behind: {} events waited unread for {} s; reconnect with Last-Event-ID to resume",
                                tx.max_capacity(),
                                grace.as_secs()
                            ),
                            &cursor,
                        ),
                    );
                    break "lagged";
                }
            }
        };
        // The consumer (and its pre-fetched records) goes now, not when the client finally reads;
        // closing it waits on librdkafka, so not on a runtime worker.
        drop(tokio::task::spawn_blocking(move || drop(consumer)));
        StreamClosed {
            feed: &feed.topic,
            user: &user,
            reason,
            sent,
        }
        .emit();
    });
    Ok(futures_util::stream::unfold(
        (rx, closing, false, permit),
        |(mut rx, closing, done, permit)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(ev) => Some((Ok(ev), (rx, closing, false, permit))),
                None => {
                    let last = closing.lock().ok().and_then(|mut g| g.take());
                    last.map(|ev| (Ok(ev), (rx, closing, true, permit)))
                }
            }
        },
    ))
}

fn set(slot: &Mutex<Option<SseEvent>>, ev: SseEvent) {
    if let Ok(mut g) = slot.lock() {
        *g = Some(ev);
    }
}

fn closing_event(kind: &str, reason: &str, cursor: &Cursor) -> SseEvent {
    SseEvent::default()
        .event(kind)
        .id(cursor.to_string())
        .data(json!({"reason": reason, "resume_from": cursor.to_string()}).to_string())
}

/// A feed record as the client sees it: where it is, its key and time, the decoded record, and
/// the trace it belongs to.
async fn record_json(
    codec: &Codec,
    feed: &Feed,
    m: &BorrowedMessage<'_>,
) -> std::result::Result<Value, String> {
    let parent = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == "traceparent")
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    });
    // The last hop of the record's trace: ingest, projector, then this stream.
    let span = tracing::info_span!("gateway.stream", feed = %feed.topic, partition = m.partition(), offset = m.offset(), trace_id = tracing::field::Empty);
    let traceparent = bluelight_topics::trace::link(&span, parent);
    let record = decode(codec, feed.entity, m.payload())
        .instrument(span)
        .await?;
    Ok(json!({
        "feed": feed.topic,
        "partition": m.partition(),
        "offset": m.offset(),
        "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "timestamp": m.timestamp().to_millis(),
        "traceparent": traceparent,
        "record": record,
    }))
}

/// Decodes a feed record of `entity` to JSON (schemas fetched once by id, then cached).
pub async fn decode(
    codec: &Codec,
    entity: Entity,
    payload: Option<&[u8]>,
) -> std::result::Result<Value, String> {
    let payload = payload.ok_or("the record has no value")?;
    let v = match entity {
        Entity::Incident => codec
            .decode::<IncidentEvent>(payload)
            .await
            .map(serde_json::to_value),
        Entity::Case => codec
            .decode::<CaseEvent>(payload)
            .await
            .map(serde_json::to_value),
        Entity::Victim => codec
            .decode::<VictimEvent>(payload)
            .await
            .map(serde_json::to_value),
    };
    v.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
}

//! `bluelight notify`: a reference notification client. Reads `feed.victim-update.v1` as a
//! consumer group, delivers each update to a webhook (retries with backoff, the update id as the
//! idempotency key), writes the acknowledgement that closes the update's deadline, and only then
//! stores the update's offset. A crash repeats requests, never messages: the receiver sees the same
//! idempotency key again.
//!
//! - `webhook.rs`: one delivery, its retries, and what each HTTP answer means;
//! - `metrics.rs`: the Prometheus series.

mod metrics;
pub mod webhook;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bluelight_avro::{
    Codec,
    records::{Envelope, EventType, Id, Timestamp, VictimNotificationAck, VictimUpdate},
};
use bluelight_topics::KafkaArgs;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
};
use uuid::Uuid;

use crate::{
    Error, Result,
    eos::{Status, dead_letter_headers},
};
use metrics::METRICS;
pub use webhook::{Backoff, Outcome};

pub const FEED_TOPIC: &str = "feed.victim-update.v1";
pub const ACK_TOPIC: &str = "bl.victim-notification-ack.v1";
pub const DLQ_TOPIC: &str = "dlq.notify.v1";

/// A record to write: topic, key, value, headers.
type Outgoing = (&'static str, String, Vec<u8>, Option<OwnedHeaders>);

/// Acknowledgement ids are UUIDv5 of the update: a repeated acknowledgement has the same id.
const ACK_NAMESPACE: Uuid = Uuid::from_u128(0x7c2e_9a14_3b5d_4f60_8a1b_2c3d_4e5f_6a7b);

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub kafka: KafkaArgs,
    pub webhook: String,
    pub group: String,
    /// Named in acknowledgements as the service that delivered.
    pub name: String,
    /// Updates delivered at once; also the batch size, so it bounds memory.
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    pub backoff: Backoff,
}

/// Runs until `stop` is set; commits what was acknowledged before returning.
pub async fn run(
    cfg: NotifyConfig,
    codec: Arc<Codec>,
    stop: Arc<AtomicBool>,
    status: Arc<Status>,
) -> Result<()> {
    metrics::init();
    let kafka = |e: rdkafka::error::KafkaError| Error::Kafka(e.to_string());
    let mut c = cfg
        .kafka
        .client_config("notify")
        .map_err(|e| Error::Config(e.to_string()))?;
    c.set("group.id", &cfg.group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", "4096");
    let consumer: StreamConsumer = c.create().map_err(kafka)?;
    consumer.subscribe(&[FEED_TOPIC]).map_err(kafka)?;
    let mut p = cfg
        .kafka
        .client_config("notify")
        .map_err(|e| Error::Config(e.to_string()))?;
    p.set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "10000")
        .set("message.timeout.ms", "30000");
    let producer: FutureProducer = p.create().map_err(kafka)?;
    let client = reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .build()
        .map_err(|e| Error::Config(format!("the HTTP client: {e}")))?;
    codec
        .register::<VictimNotificationAck>(&format!("{ACK_TOPIC}-value"))
        .await?;
    status.set(None);
    tracing::info!(group = %cfg.group, webhook = %cfg.webhook, "delivering {FEED_TOPIC}");

    while !stop.load(Ordering::Relaxed) {
        let batch = poll_batch(&consumer, cfg.max_in_flight, &stop).await;
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        // What each record came to: an update and how its delivery ended, or why it cannot be
        // read (for the dead-letter topic).
        let mut results = Vec::with_capacity(batch.len());
        let mut tasks = tokio::task::JoinSet::new();
        for (i, m) in batch.iter().enumerate() {
            let update = match m.payload() {
                None => Err("a record without a value".to_owned()),
                Some(p) => decode(&codec, p, &stop, &status).await,
            };
            match update {
                Ok(u) => {
                    let (client, url, stop, backoff) = (
                        client.clone(),
                        cfg.webhook.clone(),
                        stop.clone(),
                        cfg.backoff,
                    );
                    METRICS.in_flight.inc();
                    tasks.spawn(async move {
                        let o = webhook::deliver(&client, &url, &u, backoff, &stop).await;
                        METRICS.in_flight.dec();
                        (i, Ok((u, o)))
                    });
                }
                Err(why) => results.push((i, Err(why))),
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        if stop.load(Ordering::Relaxed) {
            // Nothing of this batch is stored; it is read again on restart.
            tasks.abort_all();
            METRICS.in_flight.set(0);
            break;
        }
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(r) => results.push(r),
                Err(e) => return Err(Error::Config(format!("a delivery task failed: {e}"))),
            }
        }
        results.sort_by_key(|(i, _)| *i);
        if results
            .iter()
            .any(|(_, r)| matches!(r, Ok((_, Outcome::Stopped))))
        {
            // Nothing of this batch is stored: what was delivered is asked again (same key).
            break;
        }
        let mut records: Vec<Outgoing> = Vec::new();
        let mut delivered = Vec::new();
        for (i, r) in &results {
            let m = &batch[*i];
            match r {
                Ok((u, Outcome::Delivered)) => {
                    let ack = acknowledgement(u, &cfg.name);
                    let payload = codec.encode(&format!("{ACK_TOPIC}-value"), &ack)?;
                    records.push((ACK_TOPIC, u.case_id.clone(), payload, None));
                    delivered.push(u.right.clone());
                }
                Ok((_, Outcome::Refused { status, reason })) => {
                    records.push(dead_letter(
                        m,
                        "refused",
                        &format!("HTTP {status}: {reason}"),
                    ));
                }
                Ok((_, Outcome::Stopped)) => {}
                Err(why) => records.push(dead_letter(m, "undecodable", why)),
            }
        }
        write_all(&producer, &records, &stop, &status).await?;
        for right in delivered {
            METRICS.delivered.with_label_values(&[&right]).inc();
        }
        METRICS.delivery.observe(started.elapsed().as_secs_f64());
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in &batch {
            next.insert(m.partition(), m.offset() + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next {
            tpl.add_partition_offset(FEED_TOPIC, p, Offset::Offset(o))
                .map_err(kafka)?;
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            // Revoked meanwhile: the new owner asks again, with the same idempotency key.
            tracing::debug!(error = %e, "offsets not stored");
        }
        status.set(None);
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit");
    }
    tracing::info!("stopping: acknowledged updates are committed");
    Ok(())
}

/// Decodes an update, fetching its writer schema once; waits out a registry that is away (an
/// error for which that cannot help is returned, for the dead-letter topic).
async fn decode(
    codec: &Codec,
    payload: &[u8],
    stop: &AtomicBool,
    status: &Status,
) -> std::result::Result<VictimUpdate, String> {
    let mut wait = Duration::from_millis(200);
    loop {
        match codec.decode::<VictimUpdate>(payload).await {
            Ok(u) => return Ok(u),
            Err(e) if e.retryable() && !stop.load(Ordering::Relaxed) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "decoding an update");
                status.set(Some(format!("schema registry: {e}")));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Up to `max` records: waits for the first, then takes what is ready within 100 ms.
async fn poll_batch(consumer: &StreamConsumer, max: usize, stop: &AtomicBool) -> Vec<OwnedMessage> {
    let mut batch = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    while batch.len() < max && !stop.load(Ordering::Relaxed) {
        let wait = if batch.is_empty() {
            tokio::time::Instant::now() + Duration::from_millis(500)
        } else {
            deadline
        };
        match tokio::time::timeout_at(wait, consumer.recv()).await {
            Ok(Ok(m)) => batch.push(m.detach()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading {FEED_TOPIC}");
                break;
            }
            Err(_) => break,
        }
    }
    batch
}

/// Writes acknowledgements and dead letters, retrying while Kafka is away: an update's offset is
/// stored only once its acknowledgement is safe.
async fn write_all(
    producer: &FutureProducer,
    records: &[Outgoing],
    stop: &AtomicBool,
    status: &Status,
) -> Result<()> {
    let mut wait = Duration::from_millis(200);
    loop {
        let sends: Vec<_> = records
            .iter()
            .map(|(topic, key, payload, headers)| {
                let mut r = FutureRecord::to(topic)
                    .key(key.as_str())
                    .payload(payload.as_slice());
                if let Some(h) = headers {
                    r = r.headers(h.clone());
                }
                producer.send(r, Duration::from_secs(10))
            })
            .collect();
        let mut failed = None;
        for s in sends {
            if let Err((e, _)) = s.await {
                failed = Some(e);
            }
        }
        let Some(e) = failed else { return Ok(()) };
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Kafka(format!(
                "stopping with acknowledgements unwritten: {e}"
            )));
        }
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "writing acknowledgements");
        status.set(Some(format!("writing acknowledgements: {e}")));
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

fn acknowledgement(u: &VictimUpdate, notifier: &str) -> VictimNotificationAck {
    let now = Timestamp::now();
    let mut envelope = Envelope::new(
        EventType::VictimNotified,
        "bluelight-notify",
        &u.envelope.source_org,
        now,
    );
    envelope.event_id = Id(Uuid::new_v5(
        &ACK_NAMESPACE,
        u.envelope.event_id.0.as_bytes(),
    ));
    envelope.causation_id = Some(u.envelope.event_id);
    envelope.correlation_id = u.envelope.correlation_id;
    envelope.marking = u.envelope.marking.clone();
    VictimNotificationAck {
        envelope,
        update_id: u.envelope.event_id,
        case_id: u.case_id.clone(),
        right: u.right.clone(),
        delivered_at: now,
        channel: u.channel,
        notifier: notifier.to_owned(),
    }
}

fn dead_letter(m: &OwnedMessage, reason: &'static str, detail: &str) -> Outgoing {
    METRICS.dead_letters.with_label_values(&[reason]).inc();
    tracing::warn!(
        partition = m.partition(),
        offset = m.offset(),
        reason,
        "to {DLQ_TOPIC}: {detail}"
    );
    let headers = dead_letter_headers(reason, detail, FEED_TOPIC, m.partition(), m.offset());
    (
        DLQ_TOPIC,
        String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
        m.payload().unwrap_or_default().to_vec(),
        Some(headers),
    )
}

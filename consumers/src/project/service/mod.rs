//! `bluelight project`: the exactly-once Kafka service around the [`Projector`].
//!
//! One thread runs the read-process-write loop: poll a batch from the canonical topics
//! (read_committed), and in one Kafka transaction write every feed record, its audit record, the
//! subjects' new receipts on `state.disclosures.v1`, any dead letters, and the batch's consumer
//! offsets. A crash before the commit leaves nothing visible downstream and the batch is read
//! again; after it, everything is there once. An abort rolls the in-memory receipts back and
//! rewinds the batch's partitions.
//!
//! - `config.rs`: settings and the librdkafka configuration;
//! - `state.rs`: reading `state.disclosures.v1` back into [`Receipts`] on start and following
//!   other instances' writes;
//! - `metrics.rs`: the Prometheus series.
//!
//! Backpressure: the batch size, the producer's queue and the consumer's prefetch are bounded;
//! when the queue is full the consumer's partitions pause until it drains.

mod config;
pub(crate) mod metrics;
mod state;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bluelight_avro::{
    Codec,
    records::{Disclosure, IncidentEvent, Timestamp},
};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
    producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer},
};

pub use config::ProjectConfig;
use metrics::METRICS;

use super::{Event, Projector, Receipt, Receipts, receipts::Sent};
use crate::{
    Error, Result,
    policy::{Entity, Policy, load_dir},
};

pub const AUDIT_TOPIC: &str = "audit.disclosure.v1";
pub const DLQ_TOPIC: &str = "dlq.projector.v1";
pub const STATE_TOPIC: &str = "state.disclosures.v1";
/// Identifies this service in audit records (s62: who disclosed).
pub const DISCLOSED_BY: &str = "bluelight-project";

/// What the HTTP side reads: ready or why not.
#[derive(Debug, Default)]
pub struct Status {
    pub not_ready: Mutex<Option<String>>,
}

impl Status {
    pub fn set(&self, why: Option<String>) {
        if let Ok(mut g) = self.not_ready.lock() {
            *g = why;
        }
    }

    pub fn get(&self) -> Option<String> {
        self.not_ready.lock().ok().and_then(|g| g.clone())
    }
}

/// Runs until `stop` is set; returns an error only for what a restart might cure (fenced by a
/// newer instance, broker gone past every timeout).
pub fn run(
    cfg: ProjectConfig,
    codec: Arc<Codec>,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    status: Arc<Status>,
) -> Result<()> {
    metrics::init();
    let today = || jiff::Zoned::now().date();
    let policy = Arc::new(load_dir(&cfg.agreements, today())?);
    status.set(Some("starting: connecting to Kafka".into()));
    let mut producer = new_producer(&cfg, &stop, &status)?;
    let mut restarts: Vec<Instant> = Vec::new();
    let mut projector = Projector::new(policy.clone(), &cfg.secret, DISCLOSED_BY);
    prepare(&cfg, &policy, &codec, &rt, &stop, &status)?;

    status.set(Some("starting: reading state.disclosures.v1".into()));
    let mut receipts = Receipts::new(cfg.receipts_capacity);
    let mut marks = state::Marks::new();
    let follower = state::Follower::start(&cfg, &mut receipts, &mut marks, &stop)?;
    tracing::info!(
        subjects = receipts.len(),
        "receipts rebuilt from {STATE_TOPIC}"
    );

    let consumer: BaseConsumer<LagContext> = cfg
        .consumer_config()?
        .create_with_context(LagContext::default())
        .map_err(kafka)?;
    let topics: Vec<&str> = cfg.topics.iter().map(|(t, _)| t.as_str()).collect();
    consumer.subscribe(&topics).map_err(kafka)?;
    status.set(None);
    tracing::info!(
        group = %cfg.group,
        transactional_id = %cfg.transactional_id,
        agreements = policy.agreements.len(),
        policy_version = %policy.version,
        "projecting {}",
        topics.join(", ")
    );

    let mut watch = Watch::new(&cfg);
    let mut settled = Instant::now() - cfg.reload_every;
    let mut out = Vec::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        if let Some(new) = watch.changed(&cfg, today()) {
            match prepare(&cfg, &new, &codec, &rt, &stop, &status) {
                Ok(()) => {
                    announce_changes(projector.policy(), &new);
                    projector = Projector::new(new, &cfg.secret, DISCLOSED_BY);
                }
                Err(e) => {
                    tracing::error!(error = %e, "agreements changed but cannot be applied; keeping the previous set")
                }
            }
        }
        follower.apply(&mut receipts, &mut marks, &cfg);
        if settled.elapsed() >= cfg.reload_every {
            settled = Instant::now();
            if let Err(e) = settle(
                &cfg,
                &codec,
                &producer,
                &consumer,
                projector.policy(),
                &mut marks,
                today(),
                &stop,
            ) {
                tracing::warn!(error = %e, "announcing ended agreements failed; retrying");
                if !abort(&producer, &cfg, &stop)? {
                    producer = new_producer(&cfg, &stop, &status)?;
                }
            }
        }
        METRICS
            .receipts
            .set(i64::try_from(receipts.len()).unwrap_or(i64::MAX));
        METRICS
            .receipts_evicted
            .inc_by(receipts.evicted - METRICS.receipts_evicted.get());

        let batch = poll_batch(&consumer, &cfg, &stop);
        if consumer.context().assigned.swap(false, Ordering::Relaxed) {
            // Partitions may have moved here: what their last owner recorded must be in
            // memory before their events are decided (its last transaction has committed,
            // or these offsets would not be ours to read).
            follower.catch_up(&mut receipts, &mut marks, &cfg);
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = transact(
            &cfg,
            &producer,
            &consumer,
            &projector,
            &codec,
            &rt,
            &mut receipts,
            &batch,
            &mut out,
            &stop,
        );
        match result {
            Ok(recorded) => {
                receipts.commit();
                METRICS.commit.observe(metrics::seconds(started.elapsed()));
                let now = Timestamp::now().0;
                for at in recorded {
                    METRICS
                        .end_to_end
                        .observe(((now - at).max(0) as f64) / 1000.0);
                }
                status.set(None);
            }
            Err(e) => {
                receipts.rollback();
                let reason = abort_reason(&e);
                METRICS.aborts.with_label_values(&[reason]).inc();
                tracing::warn!(error = %e, records = batch.len(), "transaction aborted; the batch will be read again");
                if !abort(&producer, &cfg, &stop)? {
                    // The producer is unusable: fenced (after the broker timed the transaction
                    // out) or failed fatally. A new one with the same id fences any zombie and
                    // carries on; only a real twin (two instances with one id) repeats this fast.
                    restarts.retain(|t| t.elapsed() < Duration::from_secs(60));
                    restarts.push(Instant::now());
                    if restarts.len() > 3 {
                        return Err(Error::Config(format!(
                            "the producer was fenced {} times in a minute: another instance is running with transactional id {}; give each instance its own --instance",
                            restarts.len(),
                            cfg.transactional_id
                        )));
                    }
                    tracing::warn!(error = %e, "the transactional producer is unusable; starting a new one");
                    drop(producer);
                    producer = new_producer(&cfg, &stop, &status)?;
                }
                status.set(Some(format!("retrying after: {e}")));
                rewind(&consumer, &batch, cfg.timeout);
                backoff(&stop, Duration::from_millis(500));
            }
        }
    }
    tracing::info!("stopping: the last transaction is committed");
    Ok(())
}

/// One consumed record, copied out of librdkafka's buffer so the batch outlives the poll.
struct Input {
    topic: String,
    entity: Entity,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    traceparent: Option<Vec<u8>>,
}

fn poll_batch(
    consumer: &BaseConsumer<LagContext>,
    cfg: &ProjectConfig,
    stop: &AtomicBool,
) -> Vec<Input> {
    let deadline = Instant::now() + cfg.batch_time;
    let mut batch = Vec::new();
    while batch.len() < cfg.batch_max && !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(left) {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consumer");
                break;
            }
            Some(Ok(m)) => {
                if let Some(input) = input(cfg, &m) {
                    batch.push(input);
                }
            }
        }
    }
    batch
}

fn input(cfg: &ProjectConfig, m: &BorrowedMessage<'_>) -> Option<Input> {
    let entity = cfg
        .topics
        .iter()
        .find(|(t, _)| t == m.topic())
        .map(|(_, e)| *e)?;
    let traceparent = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == "traceparent")
            .and_then(|h| h.value.map(<[u8]>::to_vec))
    });
    METRICS.consumed.with_label_values(&[m.topic()]).inc();
    Some(Input {
        topic: m.topic().to_owned(),
        entity,
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        traceparent,
    })
}

/// Everything for one batch, in one transaction.
#[allow(clippy::too_many_arguments)]
fn transact(
    cfg: &ProjectConfig,
    producer: &TxProducer,
    consumer: &BaseConsumer<LagContext>,
    projector: &Projector,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    receipts: &mut Receipts,
    batch: &[Input],
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<Vec<i64>> {
    producer.begin_transaction().map_err(kafka)?;
    let mut recorded = Vec::with_capacity(batch.len());
    let today = jiff::Zoned::now().date();
    let mut offsets: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let started = Instant::now();
        offsets.insert((m.topic.as_str(), m.partition), m.offset + 1);
        let event = match decode(codec, rt, m) {
            Ok(e) => e,
            Err(Error::Avro(e)) if e.retryable() => return Err(Error::Avro(e)),
            Err(e) => {
                dead_letter(
                    producer,
                    consumer,
                    &cfg.group,
                    m,
                    "undecodable",
                    &e.to_string(),
                    stop,
                )?;
                continue;
            }
        };
        let now = Timestamp::now();
        recorded.push(event.envelope().recorded_at.0);
        match projector.project(&event, today, now) {
            Ok(p) => {
                for &a in &p.above_ceiling {
                    let id = &projector.policy().agreements[a].id;
                    METRICS.ceiling.with_label_values(&[id]).inc();
                }
                for (a, why) in &p.condition_errors {
                    let id = &projector.policy().agreements[*a].id;
                    METRICS.condition_errors.with_label_values(&[id]).inc();
                    tracing::warn!(agreement = %id, event_id = %event.envelope().event_id, "{why}");
                }
                let key = Receipts::key(event.entity(), event.key());
                let mut latest = None;
                for f in &p.feeds {
                    send_feed(producer, consumer, codec, f, m, out, stop)?;
                    METRICS
                        .disclosures
                        .with_label_values(&[&f.audit.agreement_id, &f.audit.recipient])
                        .inc_by(1);
                    METRICS
                        .fields_withheld
                        .with_label_values(&[&f.audit.agreement_id, "not-shared"])
                        .inc_by(f.audit.fields_withheld.len() as u64);
                    latest = Some(receipts.record(
                        &key,
                        Receipt {
                            feed: f.topic.clone(),
                            recipient: f.audit.recipient.clone(),
                            agreement_id: f.audit.agreement_id.clone(),
                            agreement_version: f.audit.agreement_version.clone(),
                            sent_key: f.key.clone(),
                            events: vec![Sent {
                                event_id: f.audit.source_event_id,
                                clause_id: f.audit.clause_id.clone(),
                                retracted: false,
                            }],
                        },
                    ));
                }
                // Withdrawals and corrections: tell exactly the earlier recipients.
                let env = event.envelope();
                if env.retracts.is_some()
                    || env.supersedes.is_some()
                    || env.event_type == event.entity().retracted()
                {
                    let mut state = receipts.get(&key).to_vec();
                    if state.is_empty() && env.retracts.is_some() && receipts.evicted > 0 {
                        dead_letter(
                            producer,
                            consumer,
                            &cfg.group,
                            m,
                            "unresolved-retraction",
                            "the retracted event's recipients are no longer held (receipts capacity reached); tell them by hand",
                            stop,
                        )?;
                    }
                    let notices = projector.retract(&event, &mut state, now).map_err(|e| {
                        Error::Projection {
                            event_id: env.event_id.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                    for n in &notices {
                        send_feed(producer, consumer, codec, n, m, out, stop)?;
                        METRICS
                            .retractions
                            .with_label_values(&[&n.audit.recipient])
                            .inc();
                    }
                    if !notices.is_empty() {
                        receipts.put(&key, Some(state.clone()));
                        latest = Some(state);
                    }
                }
                if let Some(state) = latest {
                    let value = Receipts::encode(&state);
                    let headers = state::headers(cfg);
                    send(
                        producer,
                        consumer,
                        BaseRecord::to(STATE_TOPIC)
                            .key(key.as_bytes())
                            .payload(&value)
                            .headers(headers),
                        stop,
                    )?;
                }
            }
            Err(e) => dead_letter(
                producer,
                consumer,
                &cfg.group,
                m,
                "projection-failed",
                &e.to_string(),
                stop,
            )?,
        }
        METRICS
            .processing
            .observe(metrics::seconds(started.elapsed()));
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in &offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
            .map_err(kafka)?;
    }
    let group = consumer
        .group_metadata()
        .ok_or_else(|| Error::Kafka("no consumer group metadata".into()))?;
    producer
        .send_offsets_to_transaction(&tpl, &group, cfg.timeout)
        .map_err(kafka)?;
    producer.commit_transaction(cfg.timeout).map_err(kafka)?;
    Ok(recorded)
}

fn decode(codec: &Codec, rt: &tokio::runtime::Handle, m: &Input) -> Result<Event> {
    let payload = m.payload.as_deref().ok_or_else(|| Error::Projection {
        event_id: format!("{}/{}@{}", m.topic, m.partition, m.offset),
        reason: "the record has no value".into(),
    })?;
    match Event::decode(codec, m.entity, payload) {
        Err(bluelight_avro::Error::UnknownSchemaId { id }) => {
            rt.block_on(codec.fetch(id))?;
            Ok(Event::decode(codec, m.entity, payload)?)
        }
        other => Ok(other?),
    }
}

fn send_feed(
    producer: &TxProducer,
    consumer: &BaseConsumer<LagContext>,
    codec: &Codec,
    f: &super::FeedRecord,
    m: &Input,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<()> {
    out.clear();
    f.record
        .encode_into(codec, &format!("{}-value", f.topic), out)?;
    let mut headers = OwnedHeaders::new();
    if let Some(tp) = &m.traceparent {
        headers = headers.insert(Header {
            key: "traceparent",
            value: Some(tp.as_slice()),
        });
    }
    send(
        producer,
        consumer,
        BaseRecord::to(&f.topic)
            .key(f.key.as_bytes())
            .payload(out.as_slice())
            .headers(headers.clone()),
        stop,
    )?;
    out.clear();
    codec.encode_into(&format!("{AUDIT_TOPIC}-value"), &f.audit, out)?;
    send(
        producer,
        consumer,
        BaseRecord::to(AUDIT_TOPIC)
            .key(f.audit.subject_id.as_bytes())
            .payload(out.as_slice())
            .headers(headers),
        stop,
    )
}

fn dead_letter(
    producer: &TxProducer,
    consumer: &BaseConsumer<LagContext>,
    group: &str,
    m: &Input,
    reason: &'static str,
    detail: &str,
    stop: &AtomicBool,
) -> Result<()> {
    tracing::warn!(
        topic = %m.topic, partition = m.partition, offset = m.offset, reason,
        "to {DLQ_TOPIC}: {detail}"
    );
    METRICS.dead_letters.with_label_values(&[reason]).inc();
    let partition = m.partition.to_string();
    let offset = m.offset.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "bl-error",
            value: Some(detail.as_bytes()),
        })
        .insert(Header {
            key: "bl-reason",
            value: Some(reason.as_bytes()),
        })
        .insert(Header {
            key: "bl-source-topic",
            value: Some(m.topic.as_bytes()),
        })
        .insert(Header {
            key: "bl-source-partition",
            value: Some(partition.as_bytes()),
        })
        .insert(Header {
            key: "bl-source-offset",
            value: Some(offset.as_bytes()),
        })
        .insert(Header {
            key: "bl-projector-group",
            value: Some(group.as_bytes()),
        });
    let mut record = BaseRecord::<[u8], [u8]>::to(DLQ_TOPIC).headers(headers);
    if let Some(k) = &m.key {
        record = record.key(k.as_slice());
    }
    if let Some(p) = &m.payload {
        record = record.payload(p.as_slice());
    }
    send(producer, consumer, record, stop)
}

/// Sends one record; when the producer's queue is full, pauses consumption and serves the
/// producer until there is room (backpressure, not a sleep and not an unbounded buffer).
fn send<K, P>(
    producer: &TxProducer,
    consumer: &BaseConsumer<LagContext>,
    mut record: BaseRecord<'_, K, P>,
    stop: &AtomicBool,
) -> Result<()>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let mut paused: Option<TopicPartitionList> = None;
    let result = loop {
        match producer.send(record) {
            Ok(()) => break Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                if paused.is_none() {
                    METRICS.queue_full.inc();
                    METRICS.paused.set(1);
                    let assigned = consumer.assignment().unwrap_or_default();
                    let _ = consumer.pause(&assigned);
                    paused = Some(assigned);
                }
                if stop.load(Ordering::Relaxed) {
                    break Err(Error::Kafka("stopping with the producer queue full".into()));
                }
                producer.poll(Duration::from_millis(100));
                // Keeps the group membership alive (max.poll.interval.ms) while paused.
                let _ = consumer.poll(Duration::ZERO);
            }
            Err((e, _)) => break Err(kafka(e)),
        }
    };
    if let Some(assigned) = paused {
        let _ = consumer.resume(&assigned);
        METRICS.paused.set(0);
    }
    result
}

fn rewind(consumer: &BaseConsumer<LagContext>, batch: &[Input], timeout: Duration) {
    let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        first
            .entry((m.topic.as_str(), m.partition))
            .or_insert(m.offset);
    }
    for ((topic, partition), offset) in first {
        if let Err(e) = consumer.seek(topic, partition, Offset::Offset(offset), timeout) {
            tracing::warn!(error = %e, topic, partition, "rewind failed; the group's committed offset applies after a rebalance");
        }
    }
}

/// Registers the schemas and creates the feed topics the agreements need.
fn prepare(
    cfg: &ProjectConfig,
    policy: &Policy,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    stop: &AtomicBool,
    status: &Status,
) -> Result<()> {
    let mut feeds = Vec::new();
    for a in &policy.agreements {
        for e in &a.recipient.feeds {
            let topic = super::decide::feed_topic(&a.recipient.org, *e);
            if !feeds.iter().any(|(t, _)| t == &topic) {
                feeds.push((topic, *e));
            }
        }
    }
    config::ensure_topics(cfg, feeds.iter().map(|(t, _)| t.as_str()), rt)?;
    retry_until(stop, status, "registering schemas", || {
        rt.block_on(async {
            codec
                .register::<Disclosure>(&format!("{AUDIT_TOPIC}-value"))
                .await?;
            for (topic, entity) in &feeds {
                let subject = format!("{topic}-value");
                match entity {
                    Entity::Incident => codec.register::<IncidentEvent>(&subject).await?,
                    Entity::Case => {
                        codec
                            .register::<bluelight_avro::records::CaseEvent>(&subject)
                            .await?
                    }
                    Entity::Victim => {
                        codec
                            .register::<bluelight_avro::records::VictimEvent>(&subject)
                            .await?
                    }
                };
            }
            Ok::<_, bluelight_avro::Error>(())
        })
        .map_err(Error::from)
    })
}

/// Logs what a new policy ends, so operators and recipients' contacts can be told.
fn announce_changes(old: &Policy, new: &Policy) {
    for a in &old.agreements {
        match new.agreements.iter().find(|b| b.id == a.id) {
            None => {
                tracing::warn!(agreement = %a.id, recipient = %a.recipient.org, "agreement withdrawn: disclosures to this recipient stopped")
            }
            Some(b) if b.version != a.version => {
                tracing::info!(agreement = %a.id, from = %a.version, to = %b.version, "agreement changed")
            }
            Some(_) => {}
        }
    }
    for b in &new.agreements {
        if !old.agreements.iter().any(|a| a.id == b.id) {
            tracing::info!(agreement = %b.id, recipient = %b.recipient.org, "agreement added");
        }
    }
}

/// Polls the agreements directory; a change that loads replaces the policy at once, one that
/// does not is refused (and logged, file by file) while the previous set stays in force.
struct Watch {
    last_check: Instant,
    fingerprint: Vec<(String, std::time::SystemTime, u64)>,
    last_day: jiff::civil::Date,
}

impl Watch {
    fn new(cfg: &ProjectConfig) -> Self {
        Watch {
            last_check: Instant::now(),
            fingerprint: fingerprint(&cfg.agreements),
            last_day: jiff::Zoned::now().date(),
        }
    }

    fn changed(&mut self, cfg: &ProjectConfig, today: jiff::civil::Date) -> Option<Arc<Policy>> {
        if self.last_check.elapsed() < cfg.reload_every {
            return None;
        }
        self.last_check = Instant::now();
        let now = fingerprint(&cfg.agreements);
        // A new day can end an agreement (valid_to): reload so the expiry is logged and checked.
        if now == self.fingerprint && today == self.last_day {
            return None;
        }
        self.fingerprint = now;
        self.last_day = today;
        match load_dir(&cfg.agreements, today) {
            Ok(p) => {
                METRICS.reloads.with_label_values(&["applied"]).inc();
                tracing::info!(policy_version = %p.version, agreements = p.agreements.len(), "agreements reloaded");
                Some(Arc::new(p))
            }
            Err(e) => {
                METRICS.reloads.with_label_values(&["refused"]).inc();
                tracing::error!(error = %e, "agreements changed but do not load; the previous set stays in force");
                None
            }
        }
    }
}

fn fingerprint(dir: &std::path::Path) -> Vec<(String, std::time::SystemTime, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                meta.modified().ok()?,
                meta.len(),
            ))
        })
        .collect();
    out.sort();
    out
}

fn retry_until<T>(
    stop: &AtomicBool,
    status: &Status,
    what: &str,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut wait = Duration::from_millis(200);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && !stop.load(Ordering::Relaxed) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}");
                status.set(Some(format!("{what}: {e}")));
                backoff(stop, wait);
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn backoff(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

type TxProducer = ThreadedProducer<DefaultProducerContext>;

/// Announces agreements that have ended since they were last seen in force (withdrawn, or past
/// their valid_to) on their recipient's feeds, and remembers those now in force, in one
/// transaction. Disclosures under an ended agreement already stopped: `decide` checks each event.
#[allow(clippy::too_many_arguments)]
fn settle(
    cfg: &ProjectConfig,
    codec: &Codec,
    producer: &TxProducer,
    consumer: &BaseConsumer<LagContext>,
    policy: &Policy,
    marks: &mut state::Marks,
    today: jiff::civil::Date,
    stop: &AtomicBool,
) -> Result<()> {
    let mut changes: Vec<super::Ended> = Vec::new();
    for mark in marks.values().filter(|m| m.in_force) {
        let still = policy
            .agreements
            .iter()
            .any(|a| a.id == mark.id && a.in_force(today));
        if !still {
            changes.push(super::Ended {
                in_force: false,
                ..mark.clone()
            });
        }
    }
    for a in policy.agreements.iter().filter(|a| a.in_force(today)) {
        let now = super::Ended::of(a);
        if marks.get(&a.id) != Some(&now) {
            changes.push(now);
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    producer.begin_transaction().map_err(kafka)?;
    let now = Timestamp::now();
    let mut out = Vec::new();
    for change in &changes {
        if !change.in_force {
            for (topic, key, record) in super::sharing_ended(change, now)? {
                out.clear();
                record.encode_into(codec, &format!("{topic}-value"), &mut out)?;
                send(
                    producer,
                    consumer,
                    BaseRecord::to(&topic)
                        .key(key.as_bytes())
                        .payload(out.as_slice()),
                    stop,
                )?;
            }
            METRICS
                .agreements_ended
                .with_label_values(&[&change.id])
                .inc();
            tracing::warn!(agreement = %change.id, recipient = %change.recipient, "agreement ended: the recipient is told on its feeds");
        }
        let value = serde_json::to_vec(change).map_err(|e| Error::Config(e.to_string()))?;
        let key = state::mark_key(&change.id);
        let headers = state::headers(cfg);
        send(
            producer,
            consumer,
            BaseRecord::to(STATE_TOPIC)
                .key(key.as_bytes())
                .payload(&value)
                .headers(headers),
            stop,
        )?;
    }
    producer.commit_transaction(cfg.timeout).map_err(kafka)?;
    tracing::info!(
        in_force = changes.iter().filter(|c| c.in_force).count(),
        ended = changes.iter().filter(|c| !c.in_force).count(),
        "agreement marks written to {STATE_TOPIC}"
    );
    for change in changes {
        marks.insert(change.id.clone(), change);
    }
    Ok(())
}

/// Threaded: delivery reports are served in the background, which commit and abort need.
fn new_producer(cfg: &ProjectConfig, stop: &AtomicBool, status: &Status) -> Result<TxProducer> {
    let producer: TxProducer = cfg.producer_config()?.create().map_err(kafka)?;
    retry_until(stop, status, "initialising transactions", || {
        producer.init_transactions(cfg.timeout).map_err(kafka)
    })?;
    Ok(producer)
}

/// Aborts the open transaction, retrying while the broker is away (a new transaction cannot
/// begin until the abort completes). `Ok(false)`: the producer is unusable (fenced or fatal) and
/// must be replaced. Stopping ends the wait with an error.
fn abort(producer: &TxProducer, cfg: &ProjectConfig, stop: &AtomicBool) -> Result<bool> {
    let mut wait = Duration::from_millis(200);
    loop {
        match producer.abort_transaction(cfg.timeout) {
            Ok(()) => return Ok(true),
            Err(e) if is_fatal(&e) || e.to_string().contains("fenced") => return Ok(false),
            Err(e) if stop.load(Ordering::Relaxed) => return Err(kafka(e)),
            Err(e) => {
                tracing::warn!(error = %e, "abort not complete yet; retrying");
                backoff(stop, wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes librdkafka's per-partition lag from its statistics (every `statistics.interval.ms`),
/// and notes new assignments, after which the receipts are caught up before processing.
#[derive(Default)]
pub(crate) struct LagContext {
    assigned: AtomicBool,
}

impl rdkafka::ClientContext for LagContext {
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    METRICS
                        .lag
                        .with_label_values(&[topic.as_str(), &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Assign(_) = rebalance {
            self.assigned.store(true, Ordering::Relaxed);
        }
    }
}

fn kafka(e: KafkaError) -> Error {
    Error::Kafka(e.to_string())
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

fn abort_reason(e: &Error) -> &'static str {
    match e {
        Error::Avro(_) => "registry",
        Error::Kafka(t) if t.contains("imed out") => "timeout",
        Error::Kafka(_) => "kafka",
        _ => "other",
    }
}

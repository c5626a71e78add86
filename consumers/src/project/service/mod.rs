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

use super::{Event, Projector, Receipts};
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
    let policy = Arc::new(load_policy(&cfg.agreements, today())?);
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

    let mut consumer = new_consumer(&cfg)?;
    let topics: Vec<&str> = cfg.topics.iter().map(|(t, _)| t.as_str()).collect();
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
                &rt,
                &producer,
                &consumer,
                projector.policy(),
                &mut marks,
                today(),
                &stop,
            ) {
                tracing::warn!(error = %e, "announcing ended agreements failed; retrying");
                if !abort(&producer, &cfg, &stop, &status)? {
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

        let batch = match poll_batch(&consumer, &cfg, &stop) {
            Ok(batch) => batch,
            Err(e) => {
                // Nothing of a batch is pending here (transactions end before the next poll):
                // a new consumer starts from the group's committed offsets.
                tracing::warn!(error = %e, "the consumer failed for good; starting a new one");
                status.set(Some(format!("rejoining the group after: {e}")));
                drop(consumer);
                consumer = new_consumer(&cfg)?;
                continue;
            }
        };
        if consumer.context().rebalanced.swap(false, Ordering::Relaxed) {
            // The batch may hold records of partitions given away, or of partitions given back
            // from their committed offsets (to be read again): drop it and start every
            // assigned partition at its committed offset.
            if !batch.is_empty() {
                tracing::debug!(
                    records = batch.len(),
                    "rebalance during the poll: batch dropped"
                );
            }
            rewind(&consumer, cfg.timeout)?;
            continue;
        }
        if batch.is_empty() {
            continue;
        }
        let moved_here = consumer.context().pending.lock().is_ok_and(|mut pending| {
            let hit = batch
                .iter()
                .any(|m| pending.contains(&(m.topic.clone(), m.partition)));
            for m in &batch {
                pending.remove(&(m.topic.clone(), m.partition));
            }
            hit
        });
        if moved_here {
            // The first records of a partition that moved here: its last owner committed
            // before these offsets became ours, so its receipts are readable now.
            follower.catch_up(&mut receipts, &mut marks, &cfg);
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
                if !abort(&producer, &cfg, &stop, &status)? {
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
                rewind(&consumer, cfg.timeout)?;
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

/// A batch of records, or `Err` when the consumer has failed for good (e.g. fenced as a static
/// member after the broker was away longer than its session) and must be replaced.
fn poll_batch(
    consumer: &BaseConsumer<LagContext>,
    cfg: &ProjectConfig,
    stop: &AtomicBool,
) -> std::result::Result<Vec<Input>, KafkaError> {
    let deadline = Instant::now() + cfg.batch_time;
    let mut batch = Vec::new();
    while batch.len() < cfg.batch_max && !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(left) {
            None => break,
            Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(e),
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
    Ok(batch)
}

fn new_consumer(cfg: &ProjectConfig) -> Result<BaseConsumer<LagContext>> {
    let consumer: BaseConsumer<LagContext> = cfg
        .consumer_config()?
        .create_with_context(LagContext::default())
        .map_err(kafka)?;
    let topics: Vec<&str> = cfg.topics.iter().map(|(t, _)| t.as_str()).collect();
    consumer.subscribe(&topics).map_err(kafka)?;
    Ok(consumer)
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
        if m.payload.is_none() {
            // A tombstone: compaction's delete marker (bl.victim.v1 is compacted). Nothing to
            // decide; counted, not dead-lettered.
            METRICS.tombstones.with_label_values(&[&m.topic]).inc();
            continue;
        }
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
                let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
                for f in &p.feeds {
                    send_feed(producer, consumer, codec, rt, f, m, out, stop)?;
                    METRICS
                        .disclosures
                        .with_label_values(&[&f.audit.agreement_id, &f.audit.recipient])
                        .inc_by(1);
                    METRICS
                        .fields_withheld
                        .with_label_values(&[&f.audit.agreement_id, "not-shared"])
                        .inc_by(f.audit.fields_withheld.len() as u64);
                    let receipt = f.receipt();
                    entries.push(Receipts::entry(&key, &receipt, &receipt.events[0]));
                    receipts.record(&key, receipt);
                }
                // Withdrawals and corrections: tell exactly the earlier recipients.
                let env = event.envelope();
                if env.retracts.is_some()
                    || env.supersedes.is_some()
                    || env.event_type == event.entity().retracted()
                {
                    let mut state = receipts.get(&key).to_vec();
                    let notices = projector.retract(&event, &mut state, now).map_err(|e| {
                        Error::Projection {
                            event_id: env.event_id.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                    for n in &notices {
                        send_feed(producer, consumer, codec, rt, n, m, out, stop)?;
                        METRICS
                            .retractions
                            .with_label_values(&[&n.audit.recipient])
                            .inc();
                        let told = n.record.envelope().retracts.as_ref().map(|r| r.event_id);
                        for r in state.iter().filter(|r| r.feed == n.topic) {
                            for sent in r.events.iter().filter(|s| Some(s.event_id) == told) {
                                entries.push(Receipts::entry(&key, r, sent));
                            }
                        }
                    }
                    if !notices.is_empty() {
                        receipts.put(&key, Some(state));
                    }
                    if receipts.is_partial(&key) {
                        dead_letter(
                            producer,
                            consumer,
                            &cfg.group,
                            m,
                            "unresolved-retraction",
                            "this subject's recipients were partly forgotten (receipts capacity reached); those held were told, check state.disclosures.v1 for the rest",
                            stop,
                        )?;
                    }
                }
                for (entry_key, value) in &entries {
                    send(
                        producer,
                        consumer,
                        BaseRecord::to(STATE_TOPIC)
                            .key(entry_key.as_bytes())
                            .payload(value)
                            .headers(state::headers(cfg)),
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
    retry_txn(stop, "sending offsets", || {
        producer.send_offsets_to_transaction(&tpl, &group, cfg.timeout)
    })?;
    retry_txn(stop, "committing", || {
        producer.commit_transaction(cfg.timeout)
    })?;
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

#[allow(clippy::too_many_arguments)]
fn send_feed(
    producer: &TxProducer,
    consumer: &BaseConsumer<LagContext>,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    f: &super::FeedRecord,
    m: &Input,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<()> {
    encode_feed(codec, rt, &f.topic, &f.record, out)?;
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
                // The producer's thread serves delivery reports; this waits for them to free
                // room. The consumer is not polled here: a rebalance mid-transaction would hand
                // records to another instance while their outputs are still in this one.
                producer.poll(Duration::from_millis(100));
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

/// Starts every assigned partition again at the group's committed offset: after an abort, and
/// after a rebalance during a poll. A seek that fails ends the service (a restart reads the
/// committed offsets), because going on could skip records.
fn rewind(consumer: &BaseConsumer<LagContext>, timeout: Duration) -> Result<()> {
    let committed = consumer.committed(timeout).map_err(kafka)?;
    for e in committed.elements() {
        let to = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        consumer
            .seek(e.topic(), e.partition(), to, timeout)
            .map_err(|err| {
                Error::Kafka(format!(
                    "cannot rewind {}/{} to its committed offset ({err}); stopping so a restart resumes from it",
                    e.topic(),
                    e.partition()
                ))
            })?;
    }
    Ok(())
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
                register_feed(codec, &format!("{topic}-value"), *entity).await?;
            }
            Ok::<_, bluelight_avro::Error>(())
        })
        .map_err(Error::from)
    })
}

async fn register_feed(
    codec: &Codec,
    subject: &str,
    entity: Entity,
) -> bluelight_avro::Result<u32> {
    match entity {
        Entity::Incident => codec.register::<IncidentEvent>(subject).await,
        Entity::Case => {
            codec
                .register::<bluelight_avro::records::CaseEvent>(subject)
                .await
        }
        Entity::Victim => {
            codec
                .register::<bluelight_avro::records::VictimEvent>(subject)
                .await
        }
    }
}

/// Encodes a feed record, registering its feed's subject first if this process has not yet (a
/// retraction or an ended-agreement notice can go to a feed no agreement in force names).
fn encode_feed(
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    topic: &str,
    record: &Event,
    out: &mut Vec<u8>,
) -> Result<()> {
    let subject = format!("{topic}-value");
    out.clear();
    match record.encode_into(codec, &subject, out) {
        Err(bluelight_avro::Error::NotRegistered { .. }) => {
            rt.block_on(register_feed(codec, &subject, record.entity()))?;
            out.clear();
            Ok(record.encode_into(codec, &subject, out)?)
        }
        other => Ok(other?),
    }
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
        match load_policy(&cfg.agreements, today) {
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

/// Loads the agreements as `agreements check` does, except that an expired agreement is not an
/// error here: it is kept, out of force (so its end is announced), with a warning to remove it.
/// Otherwise one file past its date would block every other change, or the service's start.
fn load_policy(dir: &std::path::Path, today: jiff::civil::Date) -> Result<Policy> {
    let policy = load_dir(dir, jiff::civil::Date::MIN)?;
    for a in &policy.agreements {
        if let Some(to) = a.valid_to.filter(|to| *to < today) {
            tracing::warn!(agreement = %a.id, file = %a.file, "expired on {to}: not in force; remove the file after review");
        }
    }
    Ok(policy)
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
    rt: &tokio::runtime::Handle,
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
                encode_feed(codec, rt, &topic, &record, &mut out)?;
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
    retry_txn(stop, "committing", || {
        producer.commit_transaction(cfg.timeout)
    })?;
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

/// Repeats a transaction step while librdkafka says it may be retried (a commit or offset send
/// that timed out resumes; it must not be aborted meanwhile).
fn retry_txn(
    stop: &AtomicBool,
    what: &str,
    mut f: impl FnMut() -> rdkafka::error::KafkaResult<()>,
) -> Result<()> {
    let mut wait = Duration::from_millis(200);
    loop {
        match f() {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e))
                if e.is_retriable() && !stop.load(Ordering::Relaxed) =>
            {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}");
                backoff(stop, wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(kafka(e)),
        }
    }
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
fn abort(
    producer: &TxProducer,
    cfg: &ProjectConfig,
    stop: &AtomicBool,
    status: &Status,
) -> Result<bool> {
    let mut wait = Duration::from_millis(200);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match producer.abort_transaction(cfg.timeout) {
            Ok(()) => return Ok(true),
            // An abort that cannot finish (messages that timed out while the broker was away
            // can leave it waiting for ever): a new producer with the same id aborts the
            // transaction on the broker instead.
            Err(e) if attempts >= 3 => {
                tracing::warn!(error = %e, "abort did not complete in {attempts} attempts; replacing the producer");
                return Ok(false);
            }
            Err(e) if is_fatal(&e) || e.to_string().contains("fenced") => return Ok(false),
            Err(e) if stop.load(Ordering::Relaxed) => return Err(kafka(e)),
            Err(e) => {
                tracing::warn!(error = %e, "abort not complete yet; retrying");
                status.set(Some(format!("aborting a transaction: {e}")));
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
    /// A rebalance happened since the flag was last taken.
    rebalanced: AtomicBool,
    /// Partitions assigned whose last owner's receipts may not be in memory yet.
    pending: Mutex<std::collections::BTreeSet<(String, i32)>>,
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
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &rdkafka::consumer::Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::Relaxed);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::Relaxed);
        if let rdkafka::consumer::Rebalance::Assign(tpl) = rebalance
            && let Ok(mut pending) = self.pending.lock()
        {
            for e in tpl.elements() {
                pending.insert((e.topic().to_owned(), e.partition()));
            }
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

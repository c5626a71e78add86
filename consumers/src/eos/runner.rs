//! The Kafka side of an exactly-once service: a read_committed consumer in a group, a
//! transactional producer, and the recovery that keeps them so.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    ClientContext, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    message::{BorrowedMessage, Header, OwnedHeaders},
    producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer},
};

use super::{
    Delivery, ERROR_LOG_EVERY, EosConfig, EosContext, Status, Throttle, TxMetrics, backoff, kafka,
    retry_until,
};
use crate::{Error, Result};

/// Threaded: delivery reports are served in the background, which commit and abort need.
pub type TxProducer = ThreadedProducer<Delivered>;

/// Counts sends the broker did not acknowledge. A transaction fails by itself when one does;
/// at-least-once has no transaction, so its commit checks this before storing any offset.
#[derive(Debug, Default)]
pub struct Delivered {
    failed: std::sync::atomic::AtomicU64,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One consumed record, copied out of librdkafka's buffer so the batch outlives the poll.
#[derive(Debug, Clone)]
pub struct Input {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The W3C trace context the record arrived with, passed on to what it gives rise to.
    pub traceparent: Option<Vec<u8>>,
    /// The `bl-group` header of an internal topic's record: which deployment wrote it.
    pub group: Option<Vec<u8>>,
}

/// What a poll gave.
#[derive(Debug)]
pub struct Polled {
    pub batch: Vec<Input>,
    /// The batch holds the first records of partitions newly assigned here: state their last
    /// owners wrote must be caught up before they are processed (one catch-up covers every
    /// partition assigned so far).
    pub moved_here: bool,
}

pub struct Runner {
    cfg: EosConfig,
    /// Shared with the helper thread of [`Runner::send_offsets`], which may outlive a wedged
    /// call.
    producer: Arc<TxProducer>,
    /// Set when a transaction call hung past its timeout: the producer is replaced, not used.
    wedged: AtomicBool,
    /// Fault injection for the fault suite: the first offsets send hangs this long, as
    /// librdkafka#5456 makes it (`BLUELIGHT_FAULT_HANG_SEND_OFFSETS_MS`; unset in production).
    hang_once: std::sync::Mutex<Option<Duration>>,
    consumer: BaseConsumer<EosContext>,
    metrics: TxMetrics,
    /// When the producer was last fenced: too often means a twin with the same id.
    fenced: Vec<Instant>,
    /// When the last poll ended: the next batch closes `batch_time` after it, so the time spent
    /// projecting and committing counts towards the window and events that queued meanwhile
    /// are not held back a further `batch_time`.
    polled: Instant,
    /// Paces the warning for a consumer error that repeats.
    consumer_errors: Throttle,
    /// Notices a consumer that has stopped delivering.
    watchdog: Watchdog,
}

/// How long a consumer may deliver nothing while records arrive on its partitions before it is
/// replaced (the new one resumes from the committed offsets, so nothing is skipped).
const STALL_WINDOW: Duration = Duration::from_secs(30);

/// How long past its own timeout a `send_offsets_to_transaction` call may take before it is
/// given up as hung.
const OFFSETS_GRACE: Duration = Duration::from_secs(5);

/// How often a wait for the producer (room in its queue, the last acknowledgements before a
/// commit) looks again: short against a commit's 10 to 100 ms, long enough to cost nothing.
const ROOM_CHECK: Duration = Duration::from_micros(500);

/// Records past the committed offset that count as waiting: more than the transaction markers
/// that trail every transaction's records (they are never delivered).
const STALL_GAP: i64 = 5;

/// Committed offset and high watermark of each assigned partition at the start of a window.
type Marks = BTreeMap<(String, i32), (i64, i64)>;

/// A consumer that delivers nothing while records arrive is stuck, however it got so (once,
/// after a broker restart under load, a projector's consumer fetched nothing more and said
/// nothing): checked only when idle, a whole window at a time.
struct Watchdog {
    /// When the window began: the last record delivered, or the last check.
    since: Instant,
    /// Where the partitions stood when it began; empty until the first idle check.
    marks: Marks,
}

impl Watchdog {
    fn new() -> Self {
        Watchdog {
            since: Instant::now(),
            marks: Marks::new(),
        }
    }

    fn progress(&mut self) {
        self.since = Instant::now();
        self.marks.clear();
    }

    /// The first partition that received records in the window while nothing was delivered
    /// from it, with how many wait; `None` when all is well (or the window is not over).
    fn check(&mut self, consumer: &BaseConsumer<EosContext>, timeout: Duration) -> Option<String> {
        if self.since.elapsed() < STALL_WINDOW {
            return None;
        }
        let now = marks(consumer, timeout).unwrap_or_default();
        let stuck = stalled(&self.marks, &now);
        self.since = Instant::now();
        self.marks = if stuck.is_some() { Marks::new() } else { now };
        stuck
    }
}

/// The first partition whose committed offset stood still across the window while records
/// arrived past it (more than trailing transaction markers).
fn stalled(then: &Marks, now: &Marks) -> Option<String> {
    now.iter().find_map(|((topic, p), (committed, high))| {
        let (was_committed, was_high) = then.get(&(topic.clone(), *p))?;
        (committed == was_committed && high > was_high && high - committed >= STALL_GAP).then(
            || {
                format!(
                    "{topic} [{p}]: {} records past offset {committed}",
                    high - committed
                )
            },
        )
    })
}

/// Each assigned partition's committed offset and high watermark (`None` while the broker or
/// the group coordinator does not answer: the window then starts again).
fn marks(consumer: &BaseConsumer<EosContext>, timeout: Duration) -> Option<Marks> {
    // One budget for every request: a broker that is away costs `timeout`, once.
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let committed = consumer.committed(left()).ok()?;
    let mut out = Marks::new();
    for e in committed.elements() {
        let Offset::Offset(at) = e.offset() else {
            continue;
        };
        let (_, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), left())
            .ok()?;
        out.insert((e.topic().to_owned(), e.partition()), (at, high));
    }
    Some(out)
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("group", &self.cfg.group)
            .field("transactional_id", &self.cfg.transactional_id)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Connects (retrying with backoff while the broker is unreachable) and subscribes.
    pub fn start(
        cfg: EosConfig,
        metrics: TxMetrics,
        stop: &AtomicBool,
        status: &Status,
    ) -> Result<Self> {
        let producer = Arc::new(new_producer(&cfg, stop, status)?);
        let consumer = new_consumer(&cfg, &metrics)?;
        Ok(Runner {
            cfg,
            producer,
            wedged: AtomicBool::new(false),
            hang_once: std::sync::Mutex::new(
                std::env::var("BLUELIGHT_FAULT_HANG_SEND_OFFSETS_MS")
                    .ok()
                    .and_then(|ms| ms.parse().ok())
                    .map(Duration::from_millis),
            ),
            consumer,
            metrics,
            polled: Instant::now(),
            consumer_errors: Throttle::new(ERROR_LOG_EVERY),
            fenced: Vec::new(),
            watchdog: Watchdog::new(),
        })
    }

    pub fn config(&self) -> &EosConfig {
        &self.cfg
    }

    /// The partitions of `topic` assigned to this instance now.
    pub fn assigned(&self, topic: &str) -> std::collections::BTreeSet<i32> {
        self.consumer
            .assignment()
            .map(|tpl| {
                tpl.elements_for_topic(topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many partitions `topic` has (0 when its metadata cannot be read now).
    pub fn partition_count(&self, topic: &str) -> i32 {
        self.consumer
            .fetch_metadata(Some(topic), self.cfg.step_timeout())
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0)
    }

    /// Polls a batch. Empty when nothing came, after a rebalance during the poll (the batch is
    /// dropped and every assigned partition starts again at its committed offset: its records
    /// may belong to another instance now, or come again), or after replacing a consumer that
    /// failed for good.
    pub fn poll(&mut self, stop: &AtomicBool, status: &Status) -> Result<Polled> {
        let deadline = self.polled + self.cfg.batch_time;
        let batch = self.poll_batch(stop, deadline);
        self.polled = Instant::now();
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                // Nothing of a batch is pending (transactions end before the next poll): a new
                // consumer starts from the group's committed offsets.
                tracing::warn!(error = %e, "the consumer failed for good; starting a new one");
                status.set(Some(format!("rejoining the group after: {e}")));
                self.replace_consumer("failed")?;
                return Ok(Polled {
                    batch: Vec::new(),
                    moved_here: false,
                });
            }
        };
        if batch.is_empty() {
            if let Some(stuck) = self.watchdog.check(&self.consumer, self.cfg.step_timeout()) {
                tracing::warn!(
                    stuck,
                    window_s = STALL_WINDOW.as_secs(),
                    "the consumer delivered nothing while records arrived; starting a new one, which resumes from the committed offsets"
                );
                self.replace_consumer("stalled")?;
                return Ok(Polled {
                    batch: Vec::new(),
                    moved_here: false,
                });
            }
        } else {
            self.watchdog.progress();
        }
        let ctx = self.consumer.context();
        if ctx.rebalanced.swap(false, Ordering::Relaxed) {
            if !batch.is_empty() {
                tracing::debug!(
                    records = batch.len(),
                    "rebalance during the poll: batch dropped"
                );
            }
            self.rewind(stop, status)?;
            return Ok(Polled {
                batch: Vec::new(),
                moved_here: false,
            });
        }
        // One catch-up, made after every assignment so far, covers every partition still
        // pending (their last owners committed before the assignment reached us), so the first
        // hit clears them all: one read of the state topic per rebalance, not one per partition
        // as each partition's first records arrive (which cost seconds per batch at start).
        let moved_here = ctx.pending.lock().is_ok_and(|mut pending| {
            let hit = !pending.is_empty()
                && batch
                    .iter()
                    .any(|m| pending.contains(&(m.topic.clone(), m.partition)));
            if hit {
                pending.clear();
            }
            hit
        });
        Ok(Polled { batch, moved_here })
    }

    /// Takes records until the batch is full or the deadline has passed. Past the deadline, what
    /// is already fetched is still taken (a zero-wait poll), and an empty batch waits up to one
    /// more window for its first record: a busy projector works in batches as large as the load
    /// makes them, and a lone event waits at most `batch_time`.
    fn poll_batch(
        &self,
        stop: &AtomicBool,
        deadline: Instant,
    ) -> std::result::Result<Vec<Input>, KafkaError> {
        let mut batch = Vec::new();
        while batch.len() < self.cfg.batch_max && !stop.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if batch.is_empty() && left.is_zero() {
                self.cfg.batch_time
            } else {
                left
            };
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(e),
                Some(Err(e)) => {
                    // While the brokers are away every poll fails at once: say so every few
                    // seconds, not thousands of times a second, and wait out the window.
                    if self.consumer_errors.ready() {
                        tracing::warn!(error = %e, "consumer");
                    }
                    std::thread::sleep(
                        left.clamp(Duration::from_millis(50), Duration::from_millis(500)),
                    );
                    break;
                }
                Some(Ok(m)) => batch.push(input(&m)),
            }
        }
        // Counted per run of one topic (a fetch is one partition's records), not per record.
        let mut rest = batch.as_slice();
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|m| m.topic == first.topic).count();
            self.metrics
                .consumed
                .with_label_values(&[&first.topic])
                .inc_by(n as u64);
            rest = &rest[n..];
        }
        Ok(batch)
    }

    pub fn begin(&self) -> Result<()> {
        match self.cfg.delivery {
            Delivery::ExactlyOnce => self.producer.begin_transaction().map_err(kafka),
            Delivery::AtLeastOnce => Ok(()),
        }
    }

    /// Sends one record in the open transaction; when the producer's queue is full, waits for
    /// delivery reports to free room (backpressure, not a sleep and not an unbounded buffer).
    /// No records are taken meanwhile: the consumer is not polled here (a rebalance
    /// mid-transaction would hand records to another instance while their outputs are still in
    /// this one), and its prefetch stays within `queued.max.messages.kbytes`. It is not paused
    /// either: librdkafka drops a paused partition's prefetched records, and fetching them again
    /// after every full queue cost more than the wait.
    pub fn send<K, P>(&self, mut record: BaseRecord<'_, K, P>, stop: &AtomicBool) -> Result<()>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let mut waited = false;
        let result = loop {
            match self.producer.send(record) {
                Ok(()) => break Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if !waited {
                        waited = true;
                        self.metrics.queue_full.inc();
                        self.metrics.paused.set(1);
                    }
                    if stop.load(Ordering::Relaxed) {
                        break Err(Error::Kafka("stopping with the producer queue full".into()));
                    }
                    // The producer's own thread serves the delivery reports that free room;
                    // this one sleeps, it does not poll: rust-rdkafka's `poll` lasts its whole
                    // timeout and rounds what is left down to whole milliseconds, so a 1 ms
                    // poll is 1 ms of spinning, taken from the broker on a small machine.
                    std::thread::sleep(ROOM_CHECK);
                }
                Err((e, _)) => break Err(kafka(e)),
            }
        };
        if waited {
            self.metrics.paused.set(0);
        }
        result
    }

    /// Sends a record that cannot be processed to `dlq` with its original key and bytes, and
    /// headers naming the reason and where it came from.
    pub fn dead_letter(
        &self,
        dlq: &str,
        m: &Input,
        reason: &'static str,
        detail: &str,
        stop: &AtomicBool,
    ) -> Result<()> {
        tracing::warn!(
            topic = %m.topic, partition = m.partition, offset = m.offset, reason,
            "to {dlq}: {detail}"
        );
        let headers =
            dead_letter_headers(reason, detail, &m.topic, m.partition, m.offset).insert(Header {
                key: "bl-projector-group",
                value: Some(self.cfg.group.as_bytes()),
            });
        let mut record = BaseRecord::<[u8], [u8]>::to(dlq).headers(headers);
        if let Some(k) = &m.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &m.payload {
            record = record.payload(p.as_slice());
        }
        self.send(record, stop)
    }

    /// Adds the batch's offsets to the transaction and commits it, resuming steps that timed out
    /// (a commit in progress must not be aborted).
    pub fn commit(&self, batch: &[Input], stop: &AtomicBool) -> Result<()> {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in batch {
            next.insert((m.topic.as_str(), m.partition), m.offset + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &next {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(kafka)?;
        }
        self.commit_offsets(&tpl, stop)
    }

    /// Commits a transaction that consumed nothing (e.g. announcements of its own).
    pub fn commit_alone(&self, stop: &AtomicBool) -> Result<()> {
        match self.cfg.delivery {
            Delivery::ExactlyOnce => retry_txn(stop, "committing", || {
                self.producer.commit_transaction(self.cfg.step_timeout())
            }),
            Delivery::AtLeastOnce => self.acknowledged(stop),
        }
    }

    /// At-least-once: waits until every record sent so far is acknowledged; any that failed
    /// fail the batch, which is then read again.
    fn acknowledged(&self, stop: &AtomicBool) -> Result<()> {
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        loop {
            match self.drain(self.cfg.step_timeout()) {
                Ok(()) => break,
                Err(e) if stop.load(Ordering::Relaxed) => return Err(kafka(e)),
                Err(e) => tracing::warn!(error = %e, "waiting for the broker to acknowledge"),
            }
        }
        let now = self.producer.context().failed.load(Ordering::Relaxed);
        if now != failed {
            return Err(Error::Kafka(format!(
                "{} records were not acknowledged",
                now - failed
            )));
        }
        Ok(())
    }

    /// Waits until the broker has acknowledged every record sent, looking every
    /// [`ROOM_CHECK`] while the producer's thread serves the delivery reports. rust-rdkafka's
    /// `flush` (which `commit_transaction` calls first) polls in 100 ms steps however soon the
    /// last acknowledgement arrives, which made every commit take at least 100 ms; after this,
    /// its flush finds nothing outstanding. Sleeping, not polling: see [`Runner::send`].
    fn drain(&self, timeout: Duration) -> KafkaResult<()> {
        let deadline = Instant::now() + timeout;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            std::thread::sleep(ROOM_CHECK);
        }
        Ok(())
    }

    /// `send_offsets_to_transaction` on a helper thread, given up past its timeout and a grace:
    /// librdkafka can block in it for ever when the group coordinator was unreachable
    /// (its timeout is not checked there: confluentinc/librdkafka#5456, open in 2.12 and
    /// 2.14). A call given up marks the producer wedged, the transaction fails, and
    /// [`Runner::recover`] starts a new producer with the same transactional id, which fences
    /// the old one and aborts its transaction on the broker. The helper keeps the old producer
    /// alive until its call returns.
    fn send_offsets(&self, tpl: &TopicPartitionList, stop: &AtomicBool) -> Result<()> {
        let timeout = self.cfg.step_timeout();
        let mut wait = Duration::from_millis(200);
        loop {
            let group = self
                .consumer
                .group_metadata()
                .ok_or_else(|| Error::Kafka("no consumer group metadata".into()))?;
            let (producer, offsets) = (self.producer.clone(), tpl.clone());
            let hang = self.hang_once.lock().ok().and_then(|mut h| h.take());
            let (done, result) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name("send-offsets".into())
                .spawn(move || {
                    if let Some(hang) = hang {
                        std::thread::sleep(hang);
                    }
                    let _ =
                        done.send(producer.send_offsets_to_transaction(&offsets, &group, timeout));
                })
                .map_err(|e| Error::Kafka(format!("cannot start a thread: {e}")))?;
            match result.recv_timeout(timeout + OFFSETS_GRACE) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(KafkaError::Transaction(e)))
                    if e.is_retriable() && !stop.load(Ordering::Relaxed) =>
                {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "sending offsets");
                    backoff(stop, wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Ok(Err(e)) => return Err(kafka(e)),
                Err(_) => {
                    self.wedged.store(true, Ordering::Relaxed);
                    tracing::error!(
                        timeout_ms = timeout.as_millis() as u64,
                        "sending offsets to the transaction hung past its timeout (librdkafka#5456); the producer will be replaced"
                    );
                    return Err(Error::Kafka(
                        "sending offsets hung past its timeout; the producer is replaced".into(),
                    ));
                }
            }
        }
    }

    fn commit_offsets(&self, tpl: &TopicPartitionList, stop: &AtomicBool) -> Result<()> {
        let started = Instant::now();
        if self.cfg.delivery == Delivery::AtLeastOnce {
            // Offsets only after the outputs are acknowledged: a crash in between repeats, never
            // loses.
            self.acknowledged(stop)?;
            if tpl.count() > 0 {
                self.consumer.commit(tpl, CommitMode::Sync).map_err(kafka)?;
            }
            self.metrics.commit.observe(started.elapsed().as_secs_f64());
            return Ok(());
        }
        if tpl.count() > 0 {
            self.send_offsets(tpl, stop)?;
        }
        let offsets_sent = started.elapsed();
        let mut drained = offsets_sent;
        retry_txn(stop, "committing", || {
            self.drain(self.cfg.step_timeout())?;
            drained = started.elapsed();
            self.producer.commit_transaction(self.cfg.step_timeout())
        })?;
        // Where a commit's time goes: offsets to the group, acknowledgements, the end marker.
        tracing::debug!(
            offsets_ms = offsets_sent.as_millis() as u64,
            acks_ms = (drained - offsets_sent).as_millis() as u64,
            end_ms = (started.elapsed() - drained).as_millis() as u64,
            "transaction committed"
        );
        self.metrics.commit.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// After a failed transaction: abort it (or replace a producer that cannot), start every
    /// assigned partition again at its committed offset, and back off briefly.
    pub fn recover(&mut self, e: &Error, stop: &AtomicBool, status: &Status) -> Result<()> {
        self.metrics
            .aborts
            .with_label_values(&[abort_reason(e)])
            .inc();
        let aborted = match self.cfg.delivery {
            // A call still hangs in the producer: no other call can be made on it.
            Delivery::ExactlyOnce if self.wedged.swap(false, Ordering::Relaxed) => Aborted::Wedged,
            Delivery::ExactlyOnce => self.abort(stop, status)?,
            // Nothing to abort: what was sent stays sent, and the batch comes again.
            Delivery::AtLeastOnce => Aborted::Done,
        };
        match aborted {
            Aborted::Done => {}
            Aborted::Wedged => {
                tracing::warn!(error = %e, "a call still hangs in the transactional producer; starting a new one, which fences it and aborts its transaction");
                self.producer = Arc::new(new_producer(&self.cfg, stop, status)?);
            }
            Aborted::Unusable => {
                tracing::warn!(error = %e, "the transactional producer cannot abort; starting a new one");
                self.producer = Arc::new(new_producer(&self.cfg, stop, status)?);
            }
            Aborted::Fenced => {
                // A broker that timed the transaction out fences its producer once; only a real
                // twin (two instances with one id) fences it again and again.
                self.fenced
                    .retain(|t| t.elapsed() < Duration::from_secs(60));
                self.fenced.push(Instant::now());
                if self.fenced.len() > TWIN_FENCES {
                    return Err(Error::Config(format!(
                        "the producer was fenced {} times in a minute: another instance is running with transactional id {}; give each instance its own --instance",
                        self.fenced.len(),
                        self.cfg.transactional_id
                    )));
                }
                tracing::warn!(error = %e, "the transactional producer was fenced; starting a new one");
                self.producer = Arc::new(new_producer(&self.cfg, stop, status)?);
            }
        }
        status.set(Some(format!("retrying after: {e}")));
        self.rewind(stop, status)?;
        backoff(stop, Duration::from_millis(500));
        Ok(())
    }

    /// Aborts the open transaction, retrying while the broker is away (a new transaction cannot
    /// begin until the abort completes).
    fn abort(&self, stop: &AtomicBool, status: &Status) -> Result<Aborted> {
        let mut wait = Duration::from_millis(200);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.producer.abort_transaction(self.cfg.step_timeout()) {
                Ok(()) => return Ok(Aborted::Done),
                Err(e) if e.to_string().contains("fenced") => return Ok(Aborted::Fenced),
                Err(e) if is_fatal(&e) => return Ok(Aborted::Unusable),
                // Messages that timed out while the broker was away can leave an abort waiting
                // for ever: a new producer with the same id aborts on the broker instead.
                Err(e) if attempts >= 3 => {
                    tracing::warn!(error = %e, "abort did not complete in {attempts} attempts");
                    return Ok(Aborted::Unusable);
                }
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

    /// Starts every assigned partition again at the group's committed offset. When the offsets
    /// cannot be read or sought (the group coordinator still loading after the broker came back,
    /// say), a new consumer takes over: it starts at the committed offsets by itself. Either
    /// way nothing is skipped and the service stays up. A service that is stopping skips it: its
    /// next start reads the committed offsets.
    fn rewind(&mut self, stop: &AtomicBool, status: &Status) -> Result<()> {
        if stop.load(Ordering::Relaxed) {
            // Stopping: the next start reads the committed offsets anyway.
            return Ok(());
        }
        let mut wait = Duration::from_millis(200);
        let mut last = String::new();
        for _ in 0..3 {
            match self.seek_to_committed() {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            backoff(stop, wait);
            wait *= 2;
        }
        tracing::warn!(error = %last, "cannot rewind to the committed offsets; starting a new consumer, which resumes from them");
        status.set(Some(format!("rejoining the group after: {last}")));
        self.replace_consumer("rewind")
    }

    /// A new group consumer in place of this one: it starts from the committed offsets.
    fn replace_consumer(&mut self, reason: &str) -> Result<()> {
        self.metrics
            .consumer_restarts
            .with_label_values(&[reason])
            .inc();
        self.consumer = new_consumer(&self.cfg, &self.metrics)?;
        self.watchdog = Watchdog::new();
        Ok(())
    }

    fn seek_to_committed(&self) -> KafkaResult<()> {
        let timeout = self.cfg.step_timeout();
        let committed = self.consumer.committed(timeout)?;
        for e in committed.elements() {
            let to = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            self.consumer.seek(e.topic(), e.partition(), to, timeout)?;
        }
        Ok(())
    }
}

/// How an abort ended.
enum Aborted {
    Done,
    /// Another producer with our id (or the broker, timing the transaction out) took over.
    Fenced,
    /// Failed for good, or could not finish: a new producer aborts on the broker instead.
    Unusable,
    /// A call hangs in it (see [`Runner::send_offsets`]): no other call can be made on it.
    Wedged,
}

/// More fencings than this in a minute means a twin instance, not a broker that came back.
const TWIN_FENCES: usize = 5;

/// The headers every dead letter carries: why, and where the record came from.
pub fn dead_letter_headers(
    reason: &str,
    detail: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "bl-error",
            value: Some(detail),
        })
        .insert(Header {
            key: "bl-reason",
            value: Some(reason),
        })
        .insert(Header {
            key: "bl-source-topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "bl-source-partition",
            value: Some(&partition.to_string()),
        })
        .insert(Header {
            key: "bl-source-offset",
            value: Some(&offset.to_string()),
        })
}

fn input(m: &BorrowedMessage<'_>) -> Input {
    let header = |name: &str| super::header(m, name).map(<[u8]>::to_vec);
    Input {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        traceparent: header("traceparent"),
        group: header("bl-group"),
    }
}

fn new_producer(cfg: &EosConfig, stop: &AtomicBool, status: &Status) -> Result<TxProducer> {
    let producer: TxProducer = cfg
        .producer_config()?
        .create_with_context(Delivered::default())
        .map_err(kafka)?;
    if cfg.delivery == Delivery::AtLeastOnce {
        return Ok(producer);
    }
    retry_until(stop, status, "initialising transactions", || {
        producer
            .init_transactions(cfg.step_timeout())
            .map_err(kafka)
    })?;
    Ok(producer)
}

fn new_consumer(cfg: &EosConfig, metrics: &TxMetrics) -> Result<BaseConsumer<EosContext>> {
    let consumer: BaseConsumer<EosContext> = cfg
        .consumer_config()?
        .create_with_context(EosContext::new(metrics.lag.clone()))
        .map_err(kafka)?;
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(kafka)?;
    Ok(consumer)
}

/// Repeats a transaction step while librdkafka says it may be retried (a commit or offset send
/// that timed out resumes; it must not be aborted meanwhile).
fn retry_txn(stop: &AtomicBool, what: &str, mut f: impl FnMut() -> KafkaResult<()>) -> Result<()> {
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

fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

fn abort_reason(e: &Error) -> &'static str {
    match e {
        Error::Avro(_) => "registry",
        Error::Kafka(t) if t.contains("hung past") => "hung",
        Error::Kafka(t) if t.contains("imed out") => "timeout",
        Error::Kafka(_) => "kafka",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(list: &[(i32, i64, i64)]) -> Marks {
        list.iter()
            .map(|(p, c, h)| (("bl.incident.v1".to_owned(), *p), (*c, *h)))
            .collect()
    }

    #[test]
    fn a_consumer_is_stalled_only_when_records_arrived_past_a_commit_that_stood_still() {
        let then = at(&[(0, 100, 101), (1, 50, 51)]);
        // Records arrived on partition 1 and its commit did not move: stuck.
        let stuck = stalled(&then, &at(&[(0, 100, 101), (1, 50, 90)]));
        assert_eq!(
            stuck.as_deref(),
            Some("bl.incident.v1 [1]: 40 records past offset 50")
        );
        // The commit moved: working.
        assert_eq!(stalled(&then, &at(&[(0, 100, 101), (1, 89, 90)])), None);
        // Nothing arrived: idle, not stuck.
        assert_eq!(stalled(&then, &at(&[(0, 100, 101), (1, 50, 51)])), None);
        // Only transaction markers arrived (empty or aborted transactions): not stuck.
        assert_eq!(stalled(&then, &at(&[(0, 100, 103), (1, 50, 51)])), None);
        // A partition not seen at the window's start (newly assigned): judged next window.
        assert_eq!(stalled(&Marks::new(), &at(&[(1, 50, 90)])), None);
    }
}

//! Kafka plumbing: the idempotent producer that appends records to the registry topic, and the
//! consumer thread that applies the topic to the state, in order, forever.
//!
//! The consumer is a plain `BaseConsumer` on its own thread (not a tokio task), so applying the log
//! never waits on the HTTP runtime and keeps going however busy requests are. Progress is published
//! through a `watch` channel holding the next offset to apply: a writer waits on it to read its
//! own write, a reader waits on it to be as fresh as the log's end.

use std::{
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientContext, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::{KafkaError, RDKafkaErrorCode},
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{
    RegistryConfig, metrics,
    store::{self, Applied, Decoded, Record, State},
};
use crate::{Error, Result};

/// How long one `poll` blocks, i.e. how fast the thread notices it should stop.
const POLL: Duration = Duration::from_millis(100);
/// How often the thread asks the broker for the high watermark, to learn whether it is reachable
/// (librdkafka reports losing a broker, but not getting it back).
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// What `ready()` reports, shared with the consumer thread and librdkafka's callbacks.
#[derive(Debug, Default)]
struct Health {
    /// The high watermark when the instance started: it is ready once it has applied this far.
    start_target: AtomicI64,
    /// Set once the start target was reached (or the consumer hit the end of the partition).
    caught_up: AtomicBool,
    /// The last broker error since the broker last answered.
    broker_error: Mutex<Option<String>>,
}

impl Health {
    fn broker_failed(&self, why: String) {
        let mut current = self
            .broker_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.is_none() {
            warn!(error = %why, "schema registry lost the Kafka broker");
        }
        *current = Some(why);
    }

    fn broker_ok(&self) {
        let mut current = self
            .broker_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.take().is_some() {
            info!("schema registry reaches the Kafka broker again");
        }
    }
}

/// librdkafka's callbacks land here, so broker trouble shows in `ready()`.
struct LogContext {
    health: Arc<Health>,
}

impl ClientContext for LogContext {
    /// Losing the brokers makes the instance unready; other errors (say, the coordinator of the
    /// unused group id refused by an ACL) are only logged, or `ready()` would flap on them.
    fn error(&self, error: KafkaError, reason: &str) {
        let unreachable = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
            )
        );
        if unreachable {
            self.health.broker_failed(format!("{error} ({reason})"));
        } else if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            // Reaching the end of the log is how catching up is noticed, not a problem.
        } else {
            warn!(%error, reason, "schema registry consumer: librdkafka error");
        }
    }
}

impl ConsumerContext for LogContext {}

/// The registry topic, for one instance: append records, wait until they are applied.
pub(crate) struct Log {
    topic: String,
    producer: FutureProducer,
    /// The next offset the consumer will apply: every record before it is in the state.
    next: watch::Receiver<i64>,
    health: Arc<Health>,
    /// Tells the consumer thread to stop (set when the registry is dropped).
    stop: Arc<AtomicBool>,
    write_timeout: Duration,
    kafka_timeout: Duration,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("topic", &self.topic)
            .field("next", &*self.next.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn kafka_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::RegistryKafka(format!("{what}: {e}"))
}

impl Log {
    /// Checks the topic, starts the consumer thread from the beginning of the topic, and creates
    /// the producer. Blocking (metadata calls): run it off the async runtime.
    pub(crate) fn connect(config: &RegistryConfig, state: Arc<RwLock<State>>) -> Result<Log> {
        let topic = config.topic.clone();
        let health = Arc::new(Health::default());

        let mut consumer_config = config.kafka.clone();
        consumer_config
            // Never committed or used to join a group: librdkafka only wants one to `assign`.
            .set(
                "group.id",
                format!("bluelight-registry-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            // A typo in the topic name must fail, not create an empty registry.
            .set("allow.auto.create.topics", "false");
        let consumer: BaseConsumer<LogContext> = consumer_config
            .create_with_context(LogContext {
                health: health.clone(),
            })
            .map_err(|e| kafka_error("creating the registry consumer", e))?;

        // Right after the topic is created, or while a leader moves, brokers briefly answer "not
        // leader" or do not know the topic yet: retry until the timeout, then say what was wrong.
        let deadline = Instant::now() + config.kafka_timeout;
        let high = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match check_topic(&consumer, &topic, left.max(RETRY_PAUSE)) {
                Ok(high) => break high,
                Err(Check::Transient(_)) if Instant::now() + RETRY_PAUSE < deadline => {
                    thread::sleep(RETRY_PAUSE);
                }
                Err(Check::Transient(e) | Check::Final(e)) => return Err(e),
            }
        };
        health.start_target.store(high, Ordering::Relaxed);

        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .map_err(|e| kafka_error("assigning the registry topic", e))?;
        consumer
            .assign(&assignment)
            .map_err(|e| kafka_error("assigning the registry topic", e))?;

        let mut producer_config = config.kafka.clone();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set(
                "message.timeout.ms",
                config.write_timeout.as_millis().max(1).to_string(),
            );
        let producer: FutureProducer = producer_config
            .create()
            .map_err(|e| kafka_error("creating the registry producer", e))?;

        let (next_tx, next) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let run = Consume {
            consumer,
            topic: topic.clone(),
            state,
            next: next_tx,
            health: health.clone(),
            stop: stop.clone(),
        };
        thread::Builder::new()
            .name("registry-log".into())
            .spawn(move || run.run())
            .map_err(|e| Error::RegistryInternal(format!("starting the consumer thread: {e}")))?;
        info!(topic = %topic, end = high, "schema registry reading its topic");

        Ok(Log {
            topic,
            producer,
            next,
            health,
            stop,
            write_timeout: config.write_timeout,
            kafka_timeout: config.kafka_timeout,
        })
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The bound on a write, also used for a request waiting for the initial catch-up.
    pub(crate) fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    fn caught_up(&self) -> bool {
        if self.health.caught_up.load(Ordering::Relaxed) {
            return true;
        }
        let done = *self.next.borrow() >= self.health.start_target.load(Ordering::Relaxed);
        if done {
            self.health.caught_up.store(true, Ordering::Relaxed);
        }
        done
    }

    /// `Ok` when this instance has read its topic and reaches the broker, else why not.
    pub(crate) fn ready(&self) -> Result<(), String> {
        if self.next.has_changed().is_err() {
            return Err(format!(
                "the consumer of {} stopped (see the logs)",
                self.topic
            ));
        }
        if let Some(e) = self
            .health
            .broker_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Err(format!("cannot reach broker: {e}"));
        }
        if !self.caught_up() {
            return Err(format!(
                "catching up with {} (offset {} of {})",
                self.topic,
                *self.next.borrow(),
                self.health.start_target.load(Ordering::Relaxed)
            ));
        }
        Ok(())
    }

    /// Waits (at most `timeout`) until the topic as it was at start is applied.
    pub(crate) async fn wait_caught_up(&self, timeout: Duration) -> Result<()> {
        let mut next = self.next.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if self.caught_up() {
                    return Ok(());
                }
                if next.changed().await.is_err() {
                    return Err(stopped());
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(Error::RegistryTimeout(format!(
                "still {} after {timeout:?}",
                self.ready().err().unwrap_or_else(|| "catching up".into())
            )))
        })
    }

    /// Appends a record to partition 0 and returns its offset once the broker has it (acks=all).
    pub(crate) async fn append(&self, record: &Record) -> Result<i64> {
        let (key, value) = record.encode();
        let mut out = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .partition(0)
            .key(&key[..]);
        if let Some(value) = &value {
            out = out.payload(&value[..]);
        }
        match self
            .producer
            .send(out, Timeout::After(self.write_timeout))
            .await
        {
            Ok(delivery) => {
                debug!(topic = %self.topic, offset = delivery.offset, ?record, "registry record written");
                Ok(delivery.offset)
            }
            Err((e, _)) => Err(kafka_error(&format!("writing to {}", self.topic), e)),
        }
    }

    /// Waits until the record at `offset` (and all before it) is applied.
    pub(crate) async fn wait_applied(&self, offset: i64) -> Result<()> {
        self.wait_next(offset + 1).await
    }

    /// Waits until everything on the topic now is applied, so the state is at least as fresh as
    /// the log was when this was called (writes from other instances included).
    pub(crate) async fn sync(&self) -> Result<()> {
        let producer = self.producer.clone();
        let (topic, timeout) = (self.topic.clone(), self.kafka_timeout);
        let (_, high) = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match producer
                    .client()
                    .fetch_watermarks(&topic, 0, left.max(RETRY_PAUSE))
                {
                    Err(_) if Instant::now() + RETRY_PAUSE < deadline => {
                        thread::sleep(RETRY_PAUSE);
                    }
                    done => return done,
                }
            }
        })
        .await
        .map_err(|e| Error::RegistryInternal(format!("watermark task: {e}")))?
        .map_err(|e| kafka_error("cannot reach broker", e))?;
        self.wait_next(high).await
    }

    async fn wait_next(&self, target: i64) -> Result<()> {
        let mut next = self.next.clone();
        let timeout = self.write_timeout;
        let waited = tokio::time::timeout(timeout, next.wait_for(|n| *n >= target))
            .await
            .map(|reached| reached.map(|_| ()));
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(Error::RegistryTimeout(format!(
                "waited {timeout:?} for this registry to read {} up to offset {target} (it is at {})",
                self.topic,
                *self.next.borrow()
            ))),
        }
    }
}

/// Pause between attempts of a broker call that failed transiently.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Why the topic check failed: worth retrying (the broker may know better in a moment), or not.
enum Check {
    Transient(Error),
    Final(Error),
}

/// Checks that `topic` exists with one partition; returns its high watermark.
fn check_topic(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    timeout: Duration,
) -> Result<i64, Check> {
    let unreachable = |e: KafkaError| Check::Transient(kafka_error("cannot reach broker", e));
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(unreachable)?;
    let missing = || {
        Check::Transient(Error::RegistryTopic {
            topic: topic.to_owned(),
            reason: "does not exist; create it (bluelight topics apply) with 1 partition and \
                     cleanup.policy=compact"
                .into(),
        })
    };
    let meta = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(missing)?;
    match meta.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return Err(missing()),
        Some(code) => {
            return Err(Check::Transient(Error::RegistryTopic {
                topic: topic.to_owned(),
                reason: format!("cannot be read: {code}"),
            }));
        }
    }
    if meta.partitions().len() != 1 {
        return Err(Check::Final(Error::RegistryTopic {
            topic: topic.to_owned(),
            reason: format!(
                "has {} partitions; the registry needs exactly 1, so every instance reads one order",
                meta.partitions().len()
            ),
        }));
    }
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, timeout)
        .map_err(unreachable)?;
    Ok(high)
}

fn stopped() -> Error {
    Error::RegistryInternal("the registry's topic consumer stopped".into())
}

/// The consumer thread's belongings.
struct Consume {
    consumer: BaseConsumer<LogContext>,
    topic: String,
    state: Arc<RwLock<State>>,
    next: watch::Sender<i64>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
}

impl Consume {
    fn run(self) {
        let mut last_probe = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if last_probe.elapsed() >= PROBE_EVERY {
                last_probe = Instant::now();
                match self
                    .consumer
                    .fetch_watermarks(&self.topic, 0, PROBE_EVERY / 2)
                {
                    Ok(_) => self.health.broker_ok(),
                    Err(e) => self.health.broker_failed(e.to_string()),
                }
            }
            match self.consumer.poll(POLL) {
                None => {}
                Some(Ok(message)) => {
                    self.apply(message.offset(), message.key(), message.payload());
                    self.health.broker_ok();
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // At the end of the partition: everything written so far is applied. The
                    // position also skips offsets that hold no record (transaction markers).
                    let position = self.consumer.position().ok().and_then(|tpl| {
                        tpl.find_partition(&self.topic, 0)
                            .and_then(|p| p.offset().to_raw())
                    });
                    self.health.caught_up.store(true, Ordering::Relaxed);
                    self.health.broker_ok();
                    self.next.send_modify(|next| {
                        if let Some(p) = position.filter(|p| *p > *next) {
                            *next = p;
                        }
                    });
                }
                Some(Err(e)) => {
                    // Logged (once, as a warning) by `broker_failed` until the broker answers.
                    debug!(topic = %self.topic, error = %e, "schema registry consumer error");
                    self.health.broker_failed(e.to_string());
                }
            }
        }
        debug!(topic = %self.topic, "schema registry consumer stopped");
    }

    fn apply(&self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let outcome = match store::decode(key, value) {
            Ok(Decoded::Record(record)) => {
                let applied = {
                    let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                    let applied = state.apply(record);
                    metrics::set_counts(state.counts());
                    applied
                };
                match applied {
                    Applied::Done => "applied",
                    Applied::Lost(why) => {
                        debug!(topic = %self.topic, offset, %why, "registry proposal lost");
                        "lost"
                    }
                    Applied::Skipped(why) => {
                        warn!(topic = %self.topic, offset, %why, "registry record skipped");
                        "skipped"
                    }
                }
            }
            Ok(Decoded::Noop) => "ignored",
            Ok(Decoded::Unknown(keytype)) => {
                warn!(topic = %self.topic, offset, %keytype, "registry record of an unknown key type ignored");
                "ignored"
            }
            Err(why) => {
                warn!(topic = %self.topic, offset, %why, "malformed registry record skipped");
                "skipped"
            }
        };
        metrics::record_applied(outcome);
        self.next.send_replace(offset + 1);
    }
}

//! The settings of an exactly-once read-process-write service, and the librdkafka configuration
//! they become.

use std::time::Duration;

use bluelight_topics::KafkaArgs;
use rdkafka::ClientConfig;

use crate::{Error, Result};

/// How outputs and input offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Outputs and offsets commit in one transaction: nothing lost, nothing repeated.
    #[default]
    ExactlyOnce,
    /// Outputs are sent (idempotent producer, acks=all) and the offsets committed once every
    /// output is acknowledged: nothing lost, but a crash between the two repeats the batch's
    /// outputs. No transaction markers and no commit interval on the latency path.
    AtLeastOnce,
}

impl Delivery {
    pub fn name(self) -> &'static str {
        match self {
            Delivery::ExactlyOnce => "exactly-once",
            Delivery::AtLeastOnce => "at-least-once",
        }
    }
}

impl std::str::FromStr for Delivery {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "exactly-once" => Ok(Delivery::ExactlyOnce),
            "at-least-once" => Ok(Delivery::AtLeastOnce),
            other => Err(format!(
                "{other:?} is not a delivery mode; use exactly-once or at-least-once"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EosConfig {
    pub kafka: KafkaArgs,
    /// Names the service in client ids (`bluelight-<service>`).
    pub service: &'static str,
    /// Consumer group: instances with the same group share the input partitions.
    pub group: String,
    /// Stable per instance: a restarted instance with the same id fences its predecessor and
    /// aborts whatever transaction it left open, instead of waiting for it to time out. Also the
    /// static group member id, so a restarted instance takes its partitions straight back.
    pub transactional_id: String,
    /// The topics read.
    pub topics: Vec<String>,
    /// Most records in one transaction.
    pub batch_max: usize,
    /// Longest a batch waits to fill before it commits.
    pub batch_time: Duration,
    /// For transaction calls (init, send offsets, commit, abort) and message delivery.
    pub timeout: Duration,
    /// The producer's queue bound (records); full means pause and drain.
    pub queue_max_messages: usize,
    /// The consumer's prefetch bound per partition (KiB).
    pub prefetch_kbytes: usize,
    pub delivery: Delivery,
}

impl EosConfig {
    pub fn new(kafka: KafkaArgs, service: &'static str, group: &str, topics: Vec<String>) -> Self {
        EosConfig {
            kafka,
            service,
            group: group.to_owned(),
            transactional_id: format!("{group}-0"),
            topics,
            batch_max: 2_000,
            batch_time: Duration::from_millis(100),
            timeout: Duration::from_secs(30),
            queue_max_messages: 20_000,
            prefetch_kbytes: 4_096,
            delivery: Delivery::ExactlyOnce,
        }
    }

    /// The longest one blocking Kafka call (commit, abort, offsets, metadata) may wait. Calls
    /// that time out are resumed in a loop that checks for a stop request, so a service asked
    /// to stop while the broker is away does so within this, not within `timeout`.
    pub fn step_timeout(&self) -> Duration {
        self.timeout.min(Duration::from_secs(5))
    }

    /// The settings every client of the service shares (brokers, TLS, SASL, client id).
    pub fn base(&self) -> Result<ClientConfig> {
        self.kafka
            .client_config(self.service)
            .map_err(|e| Error::Config(e.to_string()))
    }

    pub(crate) fn producer_config(&self) -> Result<ClientConfig> {
        let mut c = self.base()?;
        if self.delivery == Delivery::ExactlyOnce {
            c.set("transactional.id", &self.transactional_id);
        }
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("transaction.timeout.ms", ms(self.timeout * 2))
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set("queue.buffering.max.kbytes", "65536")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            // The broker answers CONCURRENT_TRANSACTIONS to the next transaction's first request
            // until the last one's markers are written (a few ms here); at librdkafka's 100 ms
            // backoff that wait was most of every commit. Retries still back off exponentially
            // (to `retry.backoff.max.ms`) when something is really wrong.
            .set("retry.backoff.ms", "10")
            .set("message.timeout.ms", ms(self.timeout));
        Ok(c)
    }

    pub(crate) fn consumer_config(&self) -> Result<ClientConfig> {
        let mut c = self.base()?;
        c.set("group.id", &self.group)
            // Static membership: a restarted instance takes its partitions straight back instead
            // of waiting out the dead member's session and a rebalance.
            .set("group.instance.id", &self.transactional_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "queued.max.messages.kbytes",
                self.prefetch_kbytes.to_string(),
            )
            // A lone event on an idle partition is answered within 100 ms instead of librdkafka's
            // 500: a control room waits on single events, not on throughput.
            .set("fetch.wait.max.ms", "100")
            .set("max.poll.interval.ms", "300000")
            // With static membership a dead instance keeps its partitions until its session
            // expires: 10 s bounds how long its partitions wait for another instance.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .set("statistics.interval.ms", "5000");
        Ok(c)
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

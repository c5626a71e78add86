//! Publishing translated records: an idempotent producer (acks=all), Confluent wire-format values
//! keyed by the shared incident or case id, a W3C `traceparent` header on every record, and a
//! dead-letter record for every rejected one, carrying the original bytes.
//!
//! Backpressure is admission control, decided before anything is enqueued: a submission takes one
//! permit per record from a fixed pool and gives them back as the broker acknowledges. When the
//! pool cannot cover a whole submission it is refused at once ([`Error::Saturated`], which the
//! ingest API turns into 429/503 with `Retry-After`), so nothing of a refused submission was sent
//! and retrying it is safe. A submission that was admitted waits for the broker's answer for every
//! record; memory is bounded by the pool, whatever the broker does.

mod dlq;

use std::{sync::Arc, time::Duration};

use bluelight_avro::{
    Codec,
    records::{CaseEvent, Id, IncidentEvent, VictimEvent},
};
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use tokio::sync::Semaphore;

use crate::{
    Error, Result,
    adapters::{Canonical, SourceContext, Translation},
};

/// Where records go.
#[derive(Debug, Clone)]
pub struct Topics {
    pub incident: String,
    pub case: String,
    pub victim: String,
    pub dead_letter: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            incident: "bl.incident.v1".into(),
            case: "bl.case.v1".into(),
            victim: "bl.victim.v1".into(),
            dead_letter: "dlq.ingest.v1".into(),
        }
    }
}

impl Topics {
    fn of(&self, record: &Canonical) -> &str {
        match record {
            Canonical::Incident(_) => &self.incident,
            Canonical::Case(_) => &self.case,
            Canonical::Victim(_) => &self.victim,
        }
    }
}

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub topics: Topics,
    /// Records admitted and not yet acknowledged, across all submissions. Beyond it submissions are
    /// refused (429/503); it also bounds the producer queue and so the memory it holds.
    pub max_in_flight: usize,
    /// How long the producer keeps retrying a record before reporting it failed.
    pub delivery_timeout: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            topics: Topics::default(),
            max_in_flight: 10_000,
            delivery_timeout: Duration::from_secs(120),
        }
    }
}

/// One request body (or file) as translated, with where it came from.
#[derive(Debug)]
pub struct Submission<'a> {
    pub input: &'a [u8],
    pub translation: &'a Translation,
    pub source: &'a SourceContext,
    /// The trace context to write under: the caller's span (see `bluelight_topics::trace::link`);
    /// a new trace when absent or malformed.
    pub traceparent: Option<&'a str>,
}

/// What happened to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Event ids of the accepted records, in input order.
    pub event_ids: Vec<Id>,
    pub dead_lettered: usize,
    pub traceparent: String,
}

/// The idempotent producer shared by the ingest API, batch mode and the simulator.
pub struct Publisher {
    producer: FutureProducer,
    codec: Arc<Codec>,
    permits: Arc<Semaphore>,
    config: PublisherConfig,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("config", &self.config)
            .field("available", &self.available())
            .finish()
    }
}

impl Publisher {
    /// `kafka` is the shared client configuration; producer settings are added here. The codec must
    /// already know the subjects (`<topic>-value`) of the configured topics: see [`Publisher::register`].
    pub fn new(
        mut kafka: ClientConfig,
        codec: Arc<Codec>,
        config: PublisherConfig,
    ) -> Result<Self> {
        kafka
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            )
            // Room for every admitted record plus the dead letters of a full submission.
            .set(
                "queue.buffering.max.messages",
                (config.max_in_flight * 2).max(1000).to_string(),
            );
        let producer = kafka.create().map_err(|e| Error::Kafka {
            operation: "producer creation",
            reason: e.to_string(),
        })?;
        Ok(Publisher {
            producer,
            codec,
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
        })
    }

    /// Registers the canonical schemas under the configured topics' subjects.
    pub async fn register(&self) -> Result<()> {
        let t = &self.config.topics;
        self.codec
            .register::<IncidentEvent>(&subject(&t.incident))
            .await?;
        self.codec.register::<CaseEvent>(&subject(&t.case)).await?;
        self.codec
            .register::<VictimEvent>(&subject(&t.victim))
            .await?;
        Ok(())
    }

    /// Permits free right now (for readiness and metrics).
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    pub fn max_in_flight(&self) -> usize {
        self.config.max_in_flight
    }

    /// Publishes a submission: accepted records to their topics, rejected ones to the dead-letter
    /// topic. Returns once the broker has acknowledged every record, or fails without sending
    /// anything when saturated.
    pub async fn publish(&self, s: Submission<'_>) -> Result<Published> {
        let t = s.translation;
        let count = t.accepted.len() + t.rejected.len();
        if count > self.config.max_in_flight {
            // Could never be admitted: retrying would spin forever.
            return Err(Error::TooManyRecords {
                records: count,
                limit: self.config.max_in_flight,
            });
        }
        let wanted = u32::try_from(count).unwrap_or(u32::MAX);
        let permits = match self.permits.clone().try_acquire_many_owned(wanted) {
            Ok(p) => p,
            Err(_) => {
                return Err(Error::Saturated {
                    needed: count,
                    available: self.available(),
                    limit: self.config.max_in_flight,
                });
            }
        };
        // The caller's span context (see `bluelight_topics::trace::link`); a new trace for
        // callers without one, such as a batch load.
        let traceparent = s
            .traceparent
            .filter(|t| bluelight_topics::trace::parse(t).is_some())
            .map_or_else(new_traceparent, str::to_owned);

        let mut payloads = Vec::with_capacity(t.accepted.len());
        for a in &t.accepted {
            let topic = self.config.topics.of(&a.record);
            let subject = subject(topic);
            let bytes = match &a.record {
                Canonical::Incident(r) => self.codec.encode(&subject, &**r),
                Canonical::Case(r) => self.codec.encode(&subject, &**r),
                Canonical::Victim(r) => self.codec.encode(&subject, &**r),
            }?;
            payloads.push((topic, a.record.key(), bytes, a.record.envelope().event_id));
        }
        let dead = dlq::records(&s, &self.config.topics.dead_letter, &traceparent);

        let mut deliveries = Vec::with_capacity(count);
        for (topic, key, bytes, event_id) in &payloads {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "traceparent",
                    value: Some(traceparent.as_str()),
                })
                .insert(Header {
                    key: "bl-event-id",
                    value: Some(event_id.to_string().as_str()),
                })
                .insert(Header {
                    key: "bl-source",
                    value: Some(s.source.org.as_str()),
                });
            let record = FutureRecord::to(topic)
                .key(*key)
                .payload(bytes)
                .headers(headers);
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(e, _)| delivery_error(&e)),
            );
        }
        for d in &dead {
            let record = FutureRecord::<(), _>::to(&d.topic)
                .payload(d.value)
                .headers(d.headers.clone());
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(e, _)| delivery_error(&e)),
            );
        }
        // The permits travel with the delivery futures into their own task: if the caller goes away
        // (a client disconnects), the records are still queued, so the slots stay taken until the
        // broker has answered for every one of them.
        let waiting = tokio::spawn(async move {
            let mut failure = None;
            for d in deliveries {
                let outcome = match d {
                    Ok(future) => match future.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(delivery_error(&e)),
                        Err(_) => Err(Error::Kafka {
                            operation: "delivery",
                            reason: "the producer was dropped".into(),
                        }),
                    },
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    failure.get_or_insert(e);
                }
            }
            drop(permits);
            failure
        });
        match waiting.await {
            Ok(None) => {}
            Ok(Some(e)) => return Err(e),
            Err(e) => {
                return Err(Error::Kafka {
                    operation: "delivery",
                    reason: format!("delivery task failed: {e}"),
                });
            }
        }
        Ok(Published {
            event_ids: payloads.iter().map(|p| p.3).collect(),
            dead_lettered: dead.len(),
            traceparent,
        })
    }

    /// Waits until everything enqueued has been acknowledged (for shutdown and batch mode).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).map_err(|e| Error::Kafka {
            operation: "flush",
            reason: e.to_string(),
        })
    }
}

/// A record the broker will never take (too large) is the sender's problem; anything else may pass
/// (a refusal of this service's principal passes once an operator grants its ACLs).
fn delivery_error(e: &rdkafka::error::KafkaError) -> Error {
    use rdkafka::types::RDKafkaErrorCode::{
        ClusterAuthorizationFailed, InvalidMessageSize, MessageSizeTooLarge,
        TopicAuthorizationFailed,
    };
    match e.rdkafka_error_code() {
        Some(MessageSizeTooLarge | InvalidMessageSize) => Error::RecordTooLarge(e.to_string()),
        Some(TopicAuthorizationFailed | ClusterAuthorizationFailed) => Error::Kafka {
            operation: "delivery",
            reason: format!(
                "the broker refused this service's principal ({e}): it lacks Write on the topic; see the ACLs in deploy/acls.toml"
            ),
        },
        _ => Error::Kafka {
            operation: "delivery",
            reason: e.to_string(),
        },
    }
}

/// The registry subject of a topic's values (TopicNameStrategy).
pub fn subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// A new W3C trace context: version 00, random trace and span ids, sampled.
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

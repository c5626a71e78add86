//! The consultation log: DPA 2018 s62 asks for a record of consultations as well as disclosures,
//! so every stream opened and every incident read writes one [`Consultation`] to
//! `audit.consultation.v1` before any data is shown. If the record cannot be written, the read
//! is refused (503): nothing is shown that is not logged.

use std::{sync::Arc, time::Duration};

use bluelight_avro::{
    Codec,
    records::{Consultation, ConsultationAction, Envelope, EventType, Id, Timestamp},
};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{metrics, users::User};
use crate::{Error, Result};

pub const CONSULTATION_TOPIC: &str = "audit.consultation.v1";

/// Writes consultation records; cheap to share.
pub struct ConsultationLog {
    producer: FutureProducer,
    codec: Arc<Codec>,
    /// How long a read waits for its record to be acknowledged before it is refused.
    timeout: Duration,
}

impl std::fmt::Debug for ConsultationLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsultationLog").finish_non_exhaustive()
    }
}

/// What was consulted.
#[derive(Debug)]
pub struct Consulted<'a> {
    pub action: ConsultationAction,
    pub feed: &'a str,
    pub subject_id: Option<&'a str>,
    pub position: Option<String>,
    pub found: bool,
}

impl ConsultationLog {
    /// `producer` should be idempotent with `acks=all` and a bounded queue.
    pub fn new(producer: FutureProducer, codec: Arc<Codec>, timeout: Duration) -> Self {
        ConsultationLog {
            producer,
            codec,
            timeout,
        }
    }

    /// Registers the record's schema (at start, so the first read does not wait on it).
    pub async fn prepare(&self) -> Result<()> {
        self.codec
            .register::<Consultation>(&format!("{CONSULTATION_TOPIC}-value"))
            .await?;
        Ok(())
    }

    /// Writes one record and waits for the broker to hold it.
    pub async fn log(&self, user: &User, what: Consulted<'_>) -> Result<Id> {
        let now = Timestamp(jiff::Timestamp::now().as_millisecond());
        let mut envelope = Envelope::new(EventType::RecordConsulted, "gateway", &user.org, now);
        envelope.recorded_at = now;
        let record = Consultation {
            envelope,
            action: what.action,
            user: user.name.clone(),
            organisation: user.org.clone(),
            role: user.role.name().to_owned(),
            feed: what.feed.to_owned(),
            subject_id: what.subject_id.map(str::to_owned),
            position: what.position,
            found: what.found,
        };
        let action = match what.action {
            ConsultationAction::FeedStreamOpened => "feed-stream-opened",
            ConsultationAction::IncidentRead => "incident-read",
        };
        let result = self.write(&record).await;
        metrics::consulted(action, result.is_ok());
        if let Err(e) = &result {
            tracing::error!(error = %e, user = %user.name, action, "cannot write the consultation record; the read is refused");
        }
        result.map(|()| record.envelope.event_id)
    }

    async fn write(&self, record: &Consultation) -> Result<()> {
        let subject = format!("{CONSULTATION_TOPIC}-value");
        let payload = match self.codec.encode(&subject, record) {
            Err(bluelight_avro::Error::NotRegistered { .. }) => {
                self.prepare().await?;
                self.codec.encode(&subject, record)?
            }
            other => other?,
        };
        self.producer
            .send(
                FutureRecord::to(CONSULTATION_TOPIC)
                    .key(record.organisation.as_bytes())
                    .payload(&payload),
                self.timeout,
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| Error::Kafka(format!("writing to {CONSULTATION_TOPIC}: {e}")))
    }
}

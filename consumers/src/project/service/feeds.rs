//! Writing feed records and their audit records, and preparing what feeds need: topics and
//! registered schemas.

use std::sync::atomic::AtomicBool;

use bluelight_avro::{
    Codec,
    records::{Disclosure, IncidentEvent},
};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::BaseRecord,
};

use super::{AUDIT_TOPIC, ProjectConfig, config};
use crate::{
    Error, Result,
    eos::{Input, Runner, Status, retry_until},
    policy::{Entity, Policy},
    project::{Encoded, Event, FeedRecord},
};

pub(super) fn prepare(
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
            let topic = crate::project::feed_topic(&a.recipient.org, *e);
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

pub(super) fn encode_feed(
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

pub(super) fn send_feed(
    runner: &Runner,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    f: &FeedRecord,
    traceparent: &str,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<()> {
    encode_feed(codec, rt, &f.topic, &f.record, out)?;
    send_with_audit(
        runner,
        codec,
        &f.topic,
        &f.key,
        &f.audit,
        traceparent,
        out,
        stop,
    )
}

/// Sends a copy written by the fast path: its body behind the feed subject's header, then its
/// audit record behind the audit subject's.
#[allow(clippy::too_many_arguments)]
pub(super) fn send_encoded(
    runner: &Runner,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    f: &Encoded,
    entity: Entity,
    traceparent: &str,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<()> {
    let subject = format!("{}-value", f.topic);
    out.clear();
    if let Err(bluelight_avro::Error::NotRegistered { .. }) =
        codec.frame_into(&subject, &f.body, out)
    {
        rt.block_on(register_feed(codec, &subject, entity))?;
        out.clear();
        codec.frame_into(&subject, &f.body, out)?;
    }
    send_pair(
        runner,
        &f.topic,
        &f.key,
        &f.subject_id,
        traceparent,
        out,
        stop,
        |out| Ok(codec.frame_into(&format!("{AUDIT_TOPIC}-value"), &f.audit, out)?),
    )
}

/// Sends the feed record in `out`, then its audit record (reusing `out`).
#[allow(clippy::too_many_arguments)]
fn send_with_audit(
    runner: &Runner,
    codec: &Codec,
    topic: &str,
    key: &str,
    audit: &Disclosure,
    traceparent: &str,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<()> {
    send_pair(
        runner,
        topic,
        key,
        &audit.subject_id,
        traceparent,
        out,
        stop,
        |out| Ok(codec.encode_into(&format!("{AUDIT_TOPIC}-value"), audit, out)?),
    )
}

/// Sends the feed record in `out` to `topic`, then the audit record `audit` writes into the
/// cleared buffer, both under the event's trace context.
#[allow(clippy::too_many_arguments)]
fn send_pair(
    runner: &Runner,
    topic: &str,
    key: &str,
    audit_key: &str,
    traceparent: &str,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
    audit: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(traceparent),
    });
    runner.send(
        BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(out.as_slice())
            .headers(headers.clone()),
        stop,
    )?;
    out.clear();
    audit(out)?;
    runner.send(
        BaseRecord::to(AUDIT_TOPIC)
            .key(audit_key.as_bytes())
            .payload(out.as_slice())
            .headers(headers),
        stop,
    )
}

pub(super) fn decode(
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    entity: Entity,
    m: &Input,
) -> Result<Event> {
    let payload = m.payload.as_deref().ok_or_else(|| Error::Projection {
        event_id: format!("{}/{}@{}", m.topic, m.partition, m.offset),
        reason: "the record has no value".into(),
    })?;
    match Event::decode(codec, entity, payload) {
        Err(bluelight_avro::Error::UnknownSchemaId { id }) => {
            rt.block_on(codec.fetch(id))?;
            Ok(Event::decode(codec, entity, payload)?)
        }
        other => Ok(other?),
    }
}

//! The route stage: canonical incident and case events to one observation per subject, keyed
//! by the subject, in one transaction with the input offsets.

use std::sync::atomic::{AtomicBool, Ordering};

use bluelight_avro::{
    Codec,
    records::{CaseEvent, IncidentEvent},
};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::BaseRecord,
};

use super::{CASE_TOPIC, CONTACTS_TOPIC, ContextConfig, DLQ_TOPIC, Status, metrics::METRICS};
use crate::{
    Error, Result,
    context::{SubjectKeys, extract, history::Observation, rules::SubjectKind},
    eos::{Input, Runner},
};

pub(super) fn run(
    cfg: &ContextConfig,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    stop: &AtomicBool,
    status: &Status,
) -> Result<()> {
    let keys = SubjectKeys::new(&cfg.secret);
    let mut runner = Runner::start(cfg.route.clone(), METRICS.route.clone(), stop, status)?;
    status.set(None);
    tracing::info!(group = %cfg.route.group, "routing bl.incident.v1 and bl.case.v1 to {CONTACTS_TOPIC}");
    let mut observations = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let polled = runner.poll(stop, status)?;
        if polled.batch.is_empty() {
            continue;
        }
        match transact(
            &runner,
            codec,
            rt,
            &keys,
            &cfg.fold.group,
            &polled.batch,
            &mut observations,
            stop,
        ) {
            Ok(()) => status.set(None),
            Err(e) => {
                tracing::warn!(error = %e, records = polled.batch.len(), "route transaction aborted; the batch will be read again");
                runner.recover(&e, stop, status)?;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn transact(
    runner: &Runner,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    keys: &SubjectKeys,
    group: &str,
    batch: &[Input],
    observations: &mut Vec<Observation>,
    stop: &AtomicBool,
) -> Result<()> {
    runner.begin()?;
    for m in batch {
        let Some(payload) = m.payload.as_deref() else {
            continue;
        };
        observations.clear();
        let decoded = if m.topic == CASE_TOPIC {
            rt.block_on(codec.decode::<CaseEvent>(payload))
                .map(|e| observations.extend(extract::case(keys, &e)))
        } else {
            rt.block_on(codec.decode::<IncidentEvent>(payload))
                .map(|e| observations.extend(extract::incident(keys, &e)))
        };
        match decoded {
            Ok(()) => {}
            Err(e) if e.retryable() => return Err(Error::Avro(e)),
            Err(e) => {
                METRICS
                    .dead_letters
                    .with_label_values(&["undecodable"])
                    .inc();
                runner.dead_letter(DLQ_TOPIC, m, "undecodable", &e.to_string(), stop)?;
                continue;
            }
        }
        // Which deployment routed it: a fold reads its own route stage's observations only.
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "bl-group",
            value: Some(group.as_bytes()),
        });
        if let Some(tp) = &m.traceparent {
            headers = headers.insert(Header {
                key: "traceparent",
                value: Some(tp.as_slice()),
            });
        }
        for o in observations.iter() {
            let value = serde_json::to_vec(o).map_err(|e| {
                Error::Config(format!("encoding an observation of {}: {e}", o.event_id))
            })?;
            runner.send(
                BaseRecord::to(CONTACTS_TOPIC)
                    .key(o.subject.as_bytes())
                    .payload(&value)
                    .headers(headers.clone()),
                stop,
            )?;
            let kind = match o.kind {
                SubjectKind::Person => "person",
                SubjectKind::Location => "location",
            };
            METRICS.observations.with_label_values(&[kind]).inc();
        }
    }
    runner.commit(batch, stop)
}

//! `bluelight victim-updates`: case events in, the updates victims are owed out, exactly once.
//!
//! Each batch of `bl.case.v1` (read_committed) becomes one transaction holding every update on
//! `feed.victim-update.v1`, one audit record per update (a disclosure to the notification
//! service) and per opted-out victim (a decision to withhold), dead letters, and the offsets.
//!
//! The same transaction records each update as open on `state.victim-updates.v1`; the deadline
//! tracker (its own thread, group and transactions) closes it on acknowledgement and raises its
//! alerts.
//!
//! - `register.rs`: every victim's latest preferences, from `bl.victim.v1`;
//! - `open.rs`: the updates still owed, as held in memory and on `state.victim-updates.v1`;
//! - `deadlines.rs`: the tracker: acknowledgements close, alerts when due soon and overdue;
//! - `metrics.rs`: the Prometheus series.

pub mod deadlines;
mod metrics;
pub mod open;
mod register;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bluelight_avro::{
    Codec,
    records::{
        CaseEvent, Disclosure, DisclosureKind, Envelope, EventType, Id, Timestamp,
        VictimNotificationAck, VictimUpdate, VictimUpdateAlert,
    },
};
use bluelight_topics::KafkaArgs;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::BaseRecord,
};
use uuid::Uuid;

pub use crate::eos::Status;
use crate::{
    Error, Result,
    eos::{EosConfig, Input, Runner, retry_until},
    victims::{Calendar, Owed, VictimsCode, owed},
};
use metrics::METRICS;

pub const FEED_TOPIC: &str = "feed.victim-update.v1";
pub const AUDIT_TOPIC: &str = "audit.disclosure.v1";
pub const DLQ_TOPIC: &str = "dlq.victim-updates.v1";
pub const CASE_TOPIC: &str = "bl.case.v1";
/// The recipient named in audit records: the victim notification service reading the feed.
pub const RECIPIENT: &str = "victim-notification-service";
const DISCLOSED_BY: &str = "bluelight-victim-updates";
/// Prefixes the tracker's reasons in readiness.
const TRACKER: &str = "deadline tracker";

/// Audit ids are UUIDv5 of the update (or of the withheld decision), so a replay repeats them.
const AUDIT_NAMESPACE: Uuid = Uuid::from_u128(0x9d3e_2f41_7a6b_4c58_8e9f_0a1b_2c3d_4e5f);

#[derive(Debug, Clone)]
pub struct VictimUpdatesConfig {
    pub eos: EosConfig,
    pub code: VictimsCode,
    pub calendar: Calendar,
    /// Quoted in audit records: a digest of the rules in force.
    pub code_version: String,
    /// How often the deadline tracker looks for alerts due.
    pub scan_every: Duration,
}

impl VictimUpdatesConfig {
    pub fn new(
        kafka: KafkaArgs,
        code: VictimsCode,
        calendar: Calendar,
        code_version: String,
    ) -> Self {
        VictimUpdatesConfig {
            eos: EosConfig::new(
                kafka,
                "victim-updates",
                "bluelight-victim-updates",
                vec![CASE_TOPIC.to_owned()],
            ),
            code,
            calendar,
            code_version,
            scan_every: deadlines::DEFAULT_SCAN_EVERY,
        }
    }
}

/// Runs the case-event service, and the deadline tracker on a thread of its own, until `stop` is
/// set or either fails. `open` is shared with the acknowledgement callback.
pub fn run(
    cfg: VictimUpdatesConfig,
    codec: Arc<Codec>,
    rt: tokio::runtime::Handle,
    open: Arc<open::OpenUpdates>,
    stop: Arc<AtomicBool>,
    status: Arc<Status>,
) -> Result<()> {
    metrics::init();
    status.set(Some("starting: registering schemas".into()));
    retry_until(&stop, &status, "registering schemas", || {
        rt.block_on(async {
            codec
                .register::<VictimUpdate>(&format!("{FEED_TOPIC}-value"))
                .await?;
            codec
                .register::<Disclosure>(&format!("{AUDIT_TOPIC}-value"))
                .await?;
            codec
                .register::<VictimUpdateAlert>(&format!("{}-value", deadlines::ALERT_TOPIC))
                .await?;
            codec
                .register::<VictimNotificationAck>(&format!("{}-value", deadlines::ACK_TOPIC))
                .await
        })
        .map_err(Error::from)
    })?;
    status.set(Some("starting: reading bl.victim.v1".into()));
    let mut register = register::Register::start(&cfg.eos, &codec, &rt, &stop)?;
    tracing::info!(victims = register.len(), "victim register read");
    let tracker_status = Arc::new(Status::default());
    let tracker = {
        let (cfg, codec, rt, open, stop, status) = (
            cfg.clone(),
            codec.clone(),
            rt.clone(),
            open.clone(),
            stop.clone(),
            tracker_status.clone(),
        );
        std::thread::Builder::new()
            .name("victim-deadlines".into())
            .spawn(move || deadlines::run(cfg, codec, rt, open, stop, status))
            .map_err(|e| Error::Config(format!("starting the deadline tracker: {e}")))?
    };
    let mut runner = Runner::start(cfg.eos.clone(), metrics::tx(), &stop, &status)?;
    status.set(None);
    tracing::info!(group = %cfg.eos.group, entitlements = cfg.code.entitlements.len(), "deciding victim updates from {CASE_TOPIC}");
    let mut out = Vec::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        if tracker.is_finished() {
            stop.store(true, Ordering::Relaxed);
            return match tracker.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Error::Config("the deadline tracker panicked".into())),
            };
        }
        // Ready when both halves are: the tracker's reason shows while it has one.
        match tracker_status.get() {
            Some(why) => status.set(Some(format!("{TRACKER}: {why}"))),
            None if status.get().is_some_and(|s| s.starts_with(TRACKER)) => status.set(None),
            None => {}
        }
        register.follow(&codec, &rt);
        METRICS
            .victims
            .set(i64::try_from(register.len()).unwrap_or(i64::MAX));
        let polled = runner.poll(&stop, &status)?;
        if polled.batch.is_empty() {
            continue;
        }
        match transact(
            &cfg,
            &runner,
            &codec,
            &rt,
            &register,
            &polled.batch,
            &mut out,
            &stop,
        ) {
            Ok(()) => status.set(None),
            Err(e) => {
                tracing::warn!(error = %e, records = polled.batch.len(), "transaction aborted; the batch will be read again");
                runner.recover(&e, &stop, &status)?;
            }
        }
    }
    tracing::info!("stopping: the last transaction is committed");
    match tracker.join() {
        Ok(r) => r,
        Err(_) => Err(Error::Config("the deadline tracker panicked".into())),
    }
}

#[allow(clippy::too_many_arguments)]
fn transact(
    cfg: &VictimUpdatesConfig,
    runner: &Runner,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    register: &register::Register,
    batch: &[Input],
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<()> {
    runner.begin()?;
    for m in batch {
        let Some(payload) = m.payload.as_deref() else {
            continue;
        };
        let case: CaseEvent = match rt.block_on(codec.decode(payload)) {
            Ok(c) => c,
            Err(e) if e.retryable() => return Err(Error::Avro(e)),
            Err(e) => {
                dead_letter(runner, m, "undecodable", &e.to_string(), stop)?;
                continue;
            }
        };
        let now = Timestamp::now();
        let decisions = match owed(&cfg.code, &cfg.calendar, &case, &|v| register.get(v), now) {
            Ok(d) => d,
            Err(e) => {
                dead_letter(runner, m, "undecidable", &e.to_string(), stop)?;
                continue;
            }
        };
        let mut headers = OwnedHeaders::new();
        if let Some(tp) = &m.traceparent {
            headers = headers.insert(Header {
                key: "traceparent",
                value: Some(tp.as_slice()),
            });
        }
        for d in decisions {
            let audit = audit(cfg, &case, &d, now);
            if let Owed::Update(u) = &d {
                out.clear();
                codec.encode_into(&format!("{FEED_TOPIC}-value"), u.as_ref(), out)?;
                runner.send(
                    BaseRecord::to(FEED_TOPIC)
                        .key(u.case_id.as_bytes())
                        .payload(out.as_slice())
                        .headers(headers.clone()),
                    stop,
                )?;
                // Open until acknowledged: the tracker's record, in the same transaction.
                let value = serde_json::to_vec(&open::Open::of(u)).map_err(|e| {
                    Error::Config(format!("encoding open update {}: {e}", u.envelope.event_id))
                })?;
                runner.send(
                    BaseRecord::to(open::STATE_TOPIC)
                        .key(u.envelope.event_id.to_string().as_bytes())
                        .payload(&value)
                        .headers(open::headers(&cfg.eos.group)),
                    stop,
                )?;
                METRICS.updates.with_label_values(&[&u.right]).inc();
            } else {
                METRICS.opted_out.inc();
            }
            out.clear();
            codec.encode_into(&format!("{AUDIT_TOPIC}-value"), &audit, out)?;
            runner.send(
                BaseRecord::to(AUDIT_TOPIC)
                    .key(case.case_id.as_bytes())
                    .payload(out.as_slice())
                    .headers(headers.clone()),
                stop,
            )?;
        }
    }
    runner.commit(batch, stop)
}

/// The s62 record of one decision: an update disclosed to the notification service, or an
/// update withheld because the victim opted out.
fn audit(cfg: &VictimUpdatesConfig, case: &CaseEvent, d: &Owed, now: Timestamp) -> Disclosure {
    let env = &case.envelope;
    let (kind, id, entitlement, fields, withheld) = match d {
        Owed::Update(u) => (
            DisclosureKind::Disclosure,
            u.envelope.event_id,
            cfg.code
                .triggered_by(env.event_type)
                .map_or(String::new(), |e| e.id.clone()),
            [
                "victim_ref",
                "case_id",
                "right",
                "trigger_event_id",
                "triggered_at",
                "due_by",
                "template_id",
                "channel",
            ]
            .iter()
            .map(|f| (*f).to_owned())
            .chain(u.parameters.keys().map(|k| format!("parameters.{k}")))
            .collect(),
            Vec::new(),
        ),
        Owed::OptedOut {
            victim_ref,
            entitlement,
            ..
        } => (
            DisclosureKind::Withheld,
            Id(Uuid::new_v5(
                &AUDIT_NAMESPACE,
                format!("withheld\0{}\0{victim_ref}\0{entitlement}", env.event_id).as_bytes(),
            )),
            entitlement.clone(),
            Vec::new(),
            vec!["the whole update: the victim opted out".to_owned()],
        ),
    };
    let mut envelope = Envelope::new(
        EventType::DisclosureRecorded,
        DISCLOSED_BY,
        &env.source_org,
        now,
    );
    envelope.event_id = Id(Uuid::new_v5(&AUDIT_NAMESPACE, id.0.as_bytes()));
    envelope.recorded_at = now;
    envelope.causation_id = Some(env.event_id);
    Disclosure {
        envelope,
        kind,
        source_event_id: env.event_id,
        source_event_type: env.event_type,
        source_topic: CASE_TOPIC.to_owned(),
        subject_id: case.case_id.clone(),
        recipient: RECIPIENT.to_owned(),
        feed: FEED_TOPIC.to_owned(),
        agreement_id: "victims-code".to_owned(),
        agreement_version: cfg.code_version.clone(),
        clause_id: entitlement,
        purposes: vec!["informing victims under the Victims' Code".to_owned()],
        lawful_basis: "Domestic Violence, Crime and Victims Act 2004 s32 (Code of Practice for Victims of Crime)".to_owned(),
        policy_version: cfg.code_version.clone(),
        disclosed_by: DISCLOSED_BY.to_owned(),
        fields_disclosed: fields,
        fields_transformed: Vec::new(),
        fields_withheld: withheld,
        context_clause_id: None,
        context_evidence: Vec::new(),
    }
}

/// Counts one answer of the HTTP acknowledgement callback.
pub fn count_http_ack(status: u16) {
    METRICS
        .http_acks
        .with_label_values(&[&status.to_string()])
        .inc();
}

fn dead_letter(
    runner: &Runner,
    m: &Input,
    reason: &'static str,
    detail: &str,
    stop: &AtomicBool,
) -> Result<()> {
    METRICS.dead_letters.with_label_values(&[reason]).inc();
    runner.dead_letter(DLQ_TOPIC, m, reason, detail, stop)
}

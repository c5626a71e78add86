//! The deadline tracker: every victim update is open until a notification service acknowledges
//! delivery on `bl.victim-notification-ack.v1`; open updates within the warning window of
//! `due_by`, or past it, raise one alert each on `feed.victim-update-overdue.v1` and count in the
//! `due` and `overdue` gauges.
//!
//! Acknowledgements are read as a consumer group (exactly once: each tombstones its update in the
//! transaction that commits its offset). Open updates are rebuilt from `state.victim-updates.v1`
//! by every instance; the instance assigned acknowledgement partition `p mod n` raises the alerts
//! of state partition `p`, each in the transaction that records the raised stage, so a restart
//! neither repeats nor loses an alert.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bluelight_avro::{
    Codec,
    records::{Envelope, EventType, Id, Timestamp, VictimNotificationAck, VictimUpdateAlert},
};
use rdkafka::producer::BaseRecord;
use uuid::Uuid;

use super::{
    VictimUpdatesConfig,
    metrics::METRICS,
    open::{Open, OpenUpdates, STATE_TOPIC, Stage, headers},
};
use crate::{
    Error, Result,
    eos::{EosConfig, Follower, Input, Runner, Status},
};

pub const ACK_TOPIC: &str = "bl.victim-notification-ack.v1";
pub const ALERT_TOPIC: &str = "feed.victim-update-overdue.v1";

/// Alert ids are UUIDv5 of the update and the stage: the same alert always has the same id.
const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x5e1f_0c2a_9b3d_4e6f_a7b8_c9d0_e1f2_0a3b);
/// Most alerts in one transaction.
const ALERTS_PER_TRANSACTION: usize = 1_000;

/// The tracker's own consumer group and transactional id, beside the case-event service's.
pub fn eos_config(cfg: &VictimUpdatesConfig) -> EosConfig {
    let mut eos = cfg.eos.clone();
    eos.group = format!("{}-deadlines", cfg.eos.group);
    eos.transactional_id = format!("{}-deadlines", cfg.eos.transactional_id);
    eos.topics = vec![ACK_TOPIC.to_owned()];
    eos
}

/// Runs until `stop` is set.
pub fn run(
    cfg: VictimUpdatesConfig,
    codec: Arc<Codec>,
    rt: tokio::runtime::Handle,
    open: Arc<OpenUpdates>,
    stop: Arc<AtomicBool>,
    status: Arc<Status>,
) -> Result<()> {
    let group = cfg.eos.group.clone();
    let mut c = cfg.eos.base()?;
    c.set("group.id", format!("{group}-state-reader"));
    status.set(Some(format!("starting: reading {STATE_TOPIC}")));
    let follower = Follower::start(c, STATE_TOPIC, cfg.eos.timeout, &stop, |m| {
        open.apply(&group, m);
    })?;
    tracing::info!(
        open = open.lock().len(),
        "open victim updates rebuilt from {STATE_TOPIC}"
    );
    let mut runner = Runner::start(
        eos_config(&cfg),
        super::metrics::deadlines_tx(),
        &stop,
        &status,
    )?;
    status.set(None);
    let warning_ms = i64::from(cfg.code.warning_hours) * 3_600_000;
    let mut last_scan = Instant::now() - cfg.scan_every;
    // The acknowledgement partitions held, and the state partitions they own.
    let (mut acks_before, mut owned) = (BTreeSet::new(), BTreeSet::new());
    let mut out = Vec::with_capacity(512);
    while !stop.load(Ordering::Relaxed) {
        follower.apply(|m| open.apply(&group, m));
        let acks = runner.assigned(ACK_TOPIC);
        if acks != acks_before {
            // Until the partition count can be read, the last ownership stands; the next turn
            // tries again.
            let n = runner.partition_count(ACK_TOPIC);
            if n > 0 {
                // Partitions moved here: their last owner's alerts must be known first; then
                // scan at once rather than a whole interval later.
                owned = owned_by(&acks, n, &follower);
                follower.catch_up(|m| open.apply(&group, m));
                acks_before = acks;
                last_scan = Instant::now() - cfg.scan_every;
            }
        }
        if last_scan.elapsed() >= cfg.scan_every {
            last_scan = Instant::now();
            if let Err(e) = alert(
                &cfg, &runner, &codec, &open, &owned, warning_ms, &mut out, &stop,
            ) {
                tracing::warn!(error = %e, "raising alerts failed; retrying");
                runner.recover(&e, &stop, &status)?;
            }
        }
        let polled = runner.poll(&stop, &status)?;
        if polled.batch.is_empty() {
            continue;
        }
        match acknowledge(
            &cfg,
            &runner,
            &codec,
            &rt,
            &open,
            &follower,
            &polled.batch,
            &stop,
        ) {
            Ok(closed) => {
                let mut held = open.lock();
                for id in closed {
                    held.remove(&id);
                }
                status.set(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, records = polled.batch.len(), "transaction aborted; the acknowledgements will be read again");
                runner.recover(&e, &stop, &status)?;
            }
        }
    }
    Ok(())
}

/// The state partitions whose alerts are the holder of acknowledgement partitions `acks` (of
/// `n`): partition `p` belongs to whoever holds `p mod n`.
fn owned_by(acks: &BTreeSet<i32>, n: i32, follower: &Follower) -> BTreeSet<i32> {
    follower
        .partitions()
        .iter()
        .copied()
        .filter(|p| acks.contains(&(p % n)))
        .collect()
}

/// Closes the acknowledged updates: a tombstone each, with the batch's offsets. Returns the
/// update ids closed, to drop from memory once committed.
#[allow(clippy::too_many_arguments)]
fn acknowledge(
    cfg: &VictimUpdatesConfig,
    runner: &Runner,
    codec: &Codec,
    rt: &tokio::runtime::Handle,
    open: &OpenUpdates,
    follower: &Follower,
    batch: &[Input],
    stop: &AtomicBool,
) -> Result<Vec<String>> {
    let group = &cfg.eos.group;
    let mut acks = Vec::with_capacity(batch.len());
    for m in batch {
        let Some(payload) = m.payload.as_deref() else {
            continue;
        };
        match rt.block_on(codec.decode::<VictimNotificationAck>(payload)) {
            Ok(a) => acks.push(a),
            Err(e) if e.retryable() => return Err(Error::Avro(e)),
            Err(e) => {
                // Nothing to close; the notifier's own record of delivery stands.
                METRICS.acks.with_label_values(&["unreadable"]).inc();
                tracing::warn!(error = %e, partition = m.partition, offset = m.offset, "unreadable acknowledgement on {ACK_TOPIC}; skipped");
            }
        }
    }
    // An acknowledgement follows its update's commit, so an update not held yet is only not
    // read yet: read the state topic to its end before calling it unknown.
    if acks
        .iter()
        .any(|a| open.get(&a.update_id.to_string()).is_none())
    {
        follower.catch_up(|m| open.apply(group, m));
    }
    runner.begin()?;
    let mut closed = Vec::new();
    for a in &acks {
        let id = a.update_id.to_string();
        let Some(o) = open.get(&id) else {
            // Another deployment's update, or a repeated acknowledgement.
            METRICS.acks.with_label_values(&["not-open"]).inc();
            continue;
        };
        runner.send(
            BaseRecord::<[u8], [u8]>::to(STATE_TOPIC)
                .key(id.as_bytes())
                .headers(headers(group)),
            stop,
        )?;
        METRICS.acks.with_label_values(&["closed"]).inc();
        let late = a.delivered_at.0 > o.due_by;
        METRICS
            .delivered
            .with_label_values(&[o.right.as_str(), if late { "late" } else { "on-time" }])
            .inc();
        closed.push(id);
    }
    runner.commit(batch, stop)?;
    Ok(closed)
}

/// Raises the alerts due now for the owned partitions, in transactions of at most
/// [`ALERTS_PER_TRANSACTION`], and refreshes the gauges.
#[allow(clippy::too_many_arguments)]
fn alert(
    cfg: &VictimUpdatesConfig,
    runner: &Runner,
    codec: &Codec,
    open: &OpenUpdates,
    owned: &BTreeSet<i32>,
    warning_ms: i64,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<()> {
    let now = Timestamp::now();
    // Every right of the Code has its series, at 0 when nothing is open under it.
    let mut gauges: BTreeMap<String, [i64; 3]> = cfg
        .code
        .entitlements
        .iter()
        .map(|e| (e.right.clone(), [0; 3]))
        .collect();
    let mut due = Vec::new();
    for (id, o) in open
        .lock()
        .iter()
        .filter(|(_, o)| owned.contains(&o.partition))
    {
        let g = gauges.entry(o.right.clone()).or_default();
        g[0] += 1;
        if now.0 >= o.due_by {
            g[2] += 1;
        } else if now.0 >= o.due_by - warning_ms {
            g[1] += 1;
        }
        if let Some(stage) = o.alert_due(now, warning_ms) {
            due.push((id.clone(), o.clone(), stage));
        }
    }
    METRICS.open.reset();
    METRICS.due.reset();
    METRICS.overdue.reset();
    for (right, [all, soon, late]) in gauges {
        METRICS.open.with_label_values(&[&right]).set(all);
        METRICS.due.with_label_values(&[&right]).set(soon);
        METRICS.overdue.with_label_values(&[&right]).set(late);
    }
    for chunk in due.chunks(ALERTS_PER_TRANSACTION) {
        runner.begin()?;
        for (id, o, stage) in chunk {
            let record = alert_record(id, o, *stage, now)?;
            out.clear();
            codec.encode_into(&format!("{ALERT_TOPIC}-value"), &record, out)?;
            runner.send(
                BaseRecord::to(ALERT_TOPIC)
                    .key(o.case_id.as_bytes())
                    .payload(out.as_slice()),
                stop,
            )?;
            let raised = Open {
                stage: *stage,
                ..o.clone()
            };
            let value = serde_json::to_vec(&raised)
                .map_err(|e| Error::Config(format!("encoding open update {id}: {e}")))?;
            runner.send(
                BaseRecord::to(STATE_TOPIC)
                    .key(id.as_bytes())
                    .payload(&value)
                    .headers(headers(&cfg.eos.group)),
                stop,
            )?;
        }
        runner.commit_alone(stop)?;
        let mut held = open.lock();
        for (id, o, stage) in chunk {
            if let Some(h) = held.get_mut(id) {
                h.stage = h.stage.max(*stage);
            }
            let label = if *stage == Stage::Overdue {
                "overdue"
            } else {
                "due-soon"
            };
            METRICS
                .alerts
                .with_label_values(&[o.right.as_str(), label])
                .inc();
            tracing::info!(update_id = %id, right = %o.right, stage = label, "victim update alert raised");
        }
    }
    Ok(())
}

fn alert_record(id: &str, o: &Open, stage: Stage, now: Timestamp) -> Result<VictimUpdateAlert> {
    let update_id: Uuid = id.parse().map_err(|e| {
        Error::Config(format!(
            "update id {id:?} in {STATE_TOPIC} is not a UUID: {e}"
        ))
    })?;
    let event_type = if stage == Stage::Overdue {
        EventType::VictimUpdateOverdue
    } else {
        EventType::VictimUpdateDueSoon
    };
    let mut envelope = Envelope::new(event_type, "bluelight-victim-updates", "bluelight", now);
    envelope.event_id = Id(Uuid::new_v5(
        &ALERT_NAMESPACE,
        format!("{update_id}\0{stage:?}").as_bytes(),
    ));
    envelope.causation_id = Some(Id(update_id));
    Ok(VictimUpdateAlert {
        envelope,
        update_id: Id(update_id),
        victim_ref: o.victim_ref.clone(),
        case_id: o.case_id.clone(),
        right: o.right.clone(),
        due_by: Timestamp(o.due_by),
        template_id: o.template_id.clone(),
    })
}

/// How often the tracker looks for alerts due, when not configured.
pub const DEFAULT_SCAN_EVERY: Duration = Duration::from_secs(30);

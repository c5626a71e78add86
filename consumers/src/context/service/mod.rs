//! `bluelight context`: two exactly-once stages in one process, each its own consumer group and
//! transactions, so the context scales out by subject key like any Kafka Streams topology.
//!
//! - `route.rs`: `bl.incident.v1` and `bl.case.v1` (keyed by incident and case) in; one
//!   [`Observation`](super::Observation) per person and place out, on
//!   `repartition.context-contacts.v1`, keyed by the subject's pseudonymous key: a repartition, so all
//!   of one person's contacts meet on one partition whichever incidents they came from;
//! - `fold.rs`: `repartition.context-contacts.v1` in; each subject's [`History`](super::History) and
//!   its summary as of its newest contact out, on the compacted `state.context.v1`, keyed the
//!   same way. Histories are rebuilt from that topic on start and follow other instances'
//!   writes, so a restart or a rebalance carries on where the last owner committed;
//! - `metrics.rs`: the Prometheus series.

pub(crate) mod fold;
mod metrics;
mod route;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bluelight_avro::Codec;
use bluelight_topics::KafkaArgs;

pub use crate::eos::Status;
use crate::{Error, Result, context::Rules, eos::EosConfig};

pub const INCIDENT_TOPIC: &str = "bl.incident.v1";
pub const CASE_TOPIC: &str = "bl.case.v1";
pub const CONTACTS_TOPIC: &str = "repartition.context-contacts.v1";
pub const STATE_TOPIC: &str = "state.context.v1";
pub const DLQ_TOPIC: &str = "dlq.context.v1";

/// Most histories held in memory by default: some 1 KiB each.
pub const DEFAULT_MAX_SUBJECTS: u64 = 200_000;

#[derive(Debug, Clone)]
pub struct ContextConfig {
    /// The fold stage: its group is the service's `--group`.
    pub fold: EosConfig,
    /// The route stage: `<group>-route`, its own transactional ids.
    pub route: EosConfig,
    pub rules: Rules,
    /// Keys pseudonymous subject keys (the deployment's pseudonym secret).
    pub secret: Vec<u8>,
    /// Bound on histories in memory; past it the least recently seen are dropped from memory
    /// (they stay on `state.context.v1` and come back on the next restart).
    pub max_subjects: usize,
}

impl ContextConfig {
    pub fn new(
        kafka: KafkaArgs,
        group: &str,
        instance: &str,
        rules: Rules,
        secret: Vec<u8>,
    ) -> Self {
        let mut fold = EosConfig::new(
            kafka.clone(),
            "context",
            group,
            vec![CONTACTS_TOPIC.to_owned()],
        );
        fold.transactional_id = format!("{group}-{instance}");
        let mut route = EosConfig::new(
            kafka,
            "context",
            &format!("{group}-route"),
            vec![INCIDENT_TOPIC.to_owned(), CASE_TOPIC.to_owned()],
        );
        route.transactional_id = format!("{group}-{instance}-route");
        ContextConfig {
            fold,
            route,
            rules,
            secret,
            max_subjects: usize::try_from(DEFAULT_MAX_SUBJECTS).unwrap_or(usize::MAX),
        }
    }

    /// Sets the timeout and batch window of both stages.
    pub fn tune(&mut self, timeout: Duration, batch_time: Duration) {
        for eos in [&mut self.fold, &mut self.route] {
            eos.timeout = timeout;
            eos.batch_time = batch_time;
        }
    }
}

/// Runs both stages, the route stage on a thread of its own, until `stop` is set or either
/// fails. Ready when both are.
pub fn run(
    cfg: ContextConfig,
    codec: Arc<Codec>,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    status: Arc<Status>,
) -> Result<()> {
    metrics::init();
    let route_status = Arc::new(Status::default());
    route_status.set(Some("starting".into()));
    let route = {
        let (cfg, codec, rt, stop, route_status) = (
            cfg.clone(),
            codec.clone(),
            rt.clone(),
            stop.clone(),
            route_status.clone(),
        );
        std::thread::Builder::new()
            .name("context-route".into())
            .spawn(move || {
                let r = route::run(&cfg, &codec, &rt, &stop, &route_status);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
            .map_err(|e| Error::Config(format!("starting the route stage: {e}")))?
    };
    let folded = fold::run(&cfg, &stop, &status, &route_status);
    stop.store(true, Ordering::Relaxed);
    let routed = match route.join() {
        Ok(r) => r,
        Err(_) => Err(Error::Config("the route stage panicked".into())),
    };
    folded.and(routed)
}

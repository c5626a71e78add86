//! The workload: simulated multi-agency stories, translated by the real adapters into canonical
//! records and encoded once, each with the number of records the projector writes for it (found
//! by projecting it in memory, which is also what the in-memory figure times).

use std::time::{Duration, Instant};

use anyhow::Context;
use bluelight_avro::{
    Codec,
    records::{CaseEvent, IncidentEvent, Timestamp, VictimEvent},
};
use bluelight_consumers::{
    policy::Entity,
    project::{Event, Projector},
};
use bluelight_producers::{
    adapters::{self, Adapter, Canonical, SourceContext},
    simulate::{self, Simulator},
};

/// One canonical event ready to publish.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub topic: &'static str,
    pub key: String,
    pub payload: Vec<u8>,
    /// Records the projector writes for it: per disclosure the feed record, its audit record and
    /// its receipt on `state.disclosures.v1`. The passthrough writes as many.
    pub outputs: u32,
}

/// The simulator's sources, as `deploy/local/demo-sources.toml` names them.
fn source(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match name {
        simulate::CAD_SOURCE => ("cad", "avon-police", "cad"),
        simulate::CRM_SOURCE => ("victim-crm", "avon-victim-care", "victim-crm"),
        simulate::RMS_SOURCE => ("rms", "avon-police", "rms"),
        simulate::MAIT_SOURCE => ("mait", "avon-fire", "mait"),
        _ => return None,
    })
}

/// Turns stories into prepared events, timing the in-memory projection step as it goes.
pub struct Workload<'a> {
    sim: Simulator,
    adapters: Vec<(&'static str, std::sync::Arc<dyn Adapter>)>,
    codec: &'a Codec,
    projector: &'a Projector,
    pending: std::collections::VecDeque<Prepared>,
    out: Vec<u8>,
    /// Time spent in the in-memory step (decode, decide, transform, encode feeds and audits).
    pub projecting: Duration,
    pub events: u64,
    pub outputs: u64,
}

impl<'a> Workload<'a> {
    pub fn new(seed: u64, codec: &'a Codec, projector: &'a Projector) -> anyhow::Result<Self> {
        let mut list = Vec::new();
        for name in ["cad", "victim-crm", "rms", "mait"] {
            list.push((name, adapters::by_name(name)?));
        }
        Ok(Workload {
            sim: Simulator::new(seed, Timestamp::now(), Vec::new()),
            adapters: list,
            codec,
            projector,
            pending: Default::default(),
            out: Vec::with_capacity(8192),
            projecting: Duration::ZERO,
            events: 0,
            outputs: 0,
        })
    }

    /// The next event of the mix.
    pub fn next_event(&mut self) -> anyhow::Result<Prepared> {
        while self.pending.is_empty() {
            let (_, payloads) = self.sim.next_story();
            for p in payloads {
                let (adapter, org, system) =
                    source(p.source).with_context(|| format!("unknown source {}", p.source))?;
                let adapter = &self
                    .adapters
                    .iter()
                    .find(|(n, _)| *n == adapter)
                    .context("adapter")?
                    .1;
                let ctx = SourceContext {
                    org: org.into(),
                    system: system.into(),
                    received_at: Timestamp::now(),
                };
                let t = adapter.translate(p.body.as_bytes(), &ctx);
                anyhow::ensure!(
                    t.rejected.is_empty(),
                    "the simulator wrote a record its adapter rejects: {:?}",
                    t.rejected.first()
                );
                for r in t.accepted {
                    let prepared = self.prepare(&r.record)?;
                    self.pending.push_back(prepared);
                }
            }
        }
        let e = self.pending.pop_front().context("no event")?;
        self.events += 1;
        self.outputs += u64::from(e.outputs);
        Ok(e)
    }

    fn prepare(&mut self, record: &Canonical) -> anyhow::Result<Prepared> {
        let topic = record.topic();
        let subject = format!("{topic}-value");
        let (payload, entity) = match record {
            Canonical::Incident(r) => (
                self.codec.encode::<IncidentEvent>(&subject, r)?,
                Entity::Incident,
            ),
            Canonical::Case(r) => (self.codec.encode::<CaseEvent>(&subject, r)?, Entity::Case),
            Canonical::Victim(r) => (
                self.codec.encode::<VictimEvent>(&subject, r)?,
                Entity::Victim,
            ),
        };
        // The in-memory step, as the projector does it per event.
        let started = Instant::now();
        let event = Event::decode(self.codec, entity, &payload)?;
        let projected =
            self.projector
                .project_encoded(&event, jiff::Zoned::now().date(), Timestamp::now())?;
        for f in &projected.feeds {
            // As the service sends them: each subject's header, then the body.
            self.out.clear();
            self.codec
                .frame_into(&format!("{}-value", f.topic), &f.body, &mut self.out)?;
            self.out.clear();
            self.codec
                .frame_into("audit.disclosure.v1-value", &f.audit, &mut self.out)?;
        }
        self.projecting += started.elapsed();
        Ok(Prepared {
            topic,
            key: record.key().to_owned(),
            payload,
            outputs: u32::try_from(projected.feeds.len() * 3).unwrap_or(u32::MAX),
        })
    }

    /// In-memory projection steps per second on this thread.
    pub fn inmemory_events_per_s(&self) -> f64 {
        self.events as f64 / self.projecting.as_secs_f64().max(1e-9)
    }
}

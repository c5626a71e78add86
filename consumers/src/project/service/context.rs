//! Following `state.context.v1` for context blocks: the histories the context service keeps,
//! read in full when an agreement first asks for context, then kept in step. A projector whose
//! agreements have no context clause reads none of it.

use std::{
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

use super::{config::ProjectConfig, metrics::METRICS};
use crate::{
    context::{
        History,
        service::{
            STATE_TOPIC,
            fold::{Held, apply},
        },
    },
    eos::Follower,
    project::ContextSource,
};

/// How long to wait before trying again to read a state topic that could not be read.
const RETRY_EVERY: Duration = Duration::from_secs(30);

pub(super) struct ContextState {
    held: Held,
    follower: Option<Follower>,
    /// When reading last failed: blocks go on with what is held (a first contact's worth) and
    /// the read is tried again after [`RETRY_EVERY`].
    failed_at: Option<Instant>,
}

impl ContextState {
    pub(super) fn new(cfg: &ProjectConfig) -> Self {
        ContextState {
            held: Held::new(cfg.context.max_subjects),
            follower: None,
            failed_at: None,
        }
    }

    /// Starts following once `wanted` (an agreement has a context clause), then applies what
    /// arrived since the last call.
    pub(super) fn step(&mut self, cfg: &ProjectConfig, wanted: bool, stop: &AtomicBool) {
        if !wanted {
            return;
        }
        let group = cfg.context.group.as_str();
        match &self.follower {
            Some(f) => {
                let held = &mut self.held;
                f.apply(|m| apply(held, group, m));
            }
            None if self.failed_at.is_none_or(|t| t.elapsed() >= RETRY_EVERY) => {
                let started = Instant::now();
                let held = &mut self.held;
                let follower = cfg.state_config().and_then(|mut c| {
                    c.set("group.id", format!("{}-context-reader", cfg.eos.group));
                    Follower::start(c, STATE_TOPIC, cfg.eos.timeout, stop, |m| {
                        apply(held, group, m);
                    })
                });
                match follower {
                    Ok(f) => {
                        tracing::info!(
                            subjects = self.held.len(),
                            context_group = group,
                            took_ms = started.elapsed().as_millis() as u64,
                            "context histories read from {STATE_TOPIC} for context blocks"
                        );
                        self.follower = Some(f);
                        self.failed_at = None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read {STATE_TOPIC}: context blocks show only what each event says until it can be read (retrying in {}s)", RETRY_EVERY.as_secs());
                        self.failed_at = Some(Instant::now());
                    }
                }
            }
            None => {}
        }
        METRICS
            .context_subjects
            .set(i64::try_from(self.held.len()).unwrap_or(i64::MAX));
    }
}

impl ContextSource for ContextState {
    fn with_history(&self, subject: &str, f: &mut dyn FnMut(&History)) {
        if let Some(h) = self.held.history(subject) {
            f(h);
        }
    }
}

//! The updates still owed: `state.victim-updates.v1`, one JSON record per undelivered update
//! (keyed by update id), written with the update, rewritten when an alert is raised for it, and
//! tombstoned when a notification service acknowledges delivery. Held in memory by every
//! instance, shared with the HTTP acknowledgement callback.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use bluelight_avro::records::{ContactChannel, Timestamp, VictimUpdate};
use rdkafka::{
    Message,
    message::{BorrowedMessage, Header, OwnedHeaders},
};
use serde::{Deserialize, Serialize};

pub const STATE_TOPIC: &str = "state.victim-updates.v1";

/// How far an undelivered update has come towards its deadline. Only ever rises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    #[default]
    Open,
    /// A DUE_SOON alert was raised.
    DueSoon,
    /// An OVERDUE alert was raised.
    Overdue,
}

/// One undelivered update, as much as the alerts and the acknowledgement callback need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub case_id: String,
    pub victim_ref: String,
    pub right: String,
    /// Milliseconds since the epoch.
    pub due_by: i64,
    pub template_id: String,
    pub channel: ContactChannel,
    #[serde(default)]
    pub stage: Stage,
    /// Which state partition holds it: the instance owning that partition raises its alerts.
    #[serde(skip)]
    pub partition: i32,
}

impl Open {
    pub fn of(u: &VictimUpdate) -> Self {
        Open {
            case_id: u.case_id.clone(),
            victim_ref: u.victim_ref.clone(),
            right: u.right.clone(),
            due_by: u.due_by.0,
            template_id: u.template_id.clone(),
            channel: u.channel,
            stage: Stage::Open,
            partition: -1,
        }
    }

    /// The alert due now, if any: DUE_SOON within `warning_ms` of `due_by`, OVERDUE after it,
    /// each once.
    pub fn alert_due(&self, now: Timestamp, warning_ms: i64) -> Option<Stage> {
        if now.0 >= self.due_by {
            (self.stage < Stage::Overdue).then_some(Stage::Overdue)
        } else if now.0 >= self.due_by - warning_ms {
            (self.stage < Stage::DueSoon).then_some(Stage::DueSoon)
        } else {
            None
        }
    }
}

/// The headers of every state record: which deployment (group) wrote it, so deployments sharing
/// the topic (tests; a blue/green pair) keep apart.
pub fn headers(group: &str) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header {
        key: "bl-group",
        value: Some(group.as_bytes()),
    })
}

/// Every undelivered update of one deployment, by update id.
#[derive(Debug, Default)]
pub struct OpenUpdates {
    inner: Mutex<HashMap<String, Open>>,
}

impl OpenUpdates {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Open>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, id: &str) -> Option<Open> {
        self.lock().get(id).cloned()
    }

    /// Applies one state record of `group`: a tombstone closes, a value opens or raises the
    /// stage (never lowers it: an echo read late must not re-raise an alert).
    pub fn apply(&self, group: &str, m: &BorrowedMessage<'_>) {
        let ours = crate::eos::header(m, "bl-group").is_some_and(|g| g == group.as_bytes());
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        if !ours {
            return;
        }
        let mut open = self.lock();
        let Some(payload) = m.payload() else {
            open.remove(key);
            return;
        };
        match serde_json::from_slice::<Open>(payload) {
            Ok(mut o) => {
                o.partition = m.partition();
                match open.get_mut(key) {
                    Some(held) => held.stage = held.stage.max(o.stage),
                    None => {
                        open.insert(key.to_owned(), o);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, key, "unreadable record in {STATE_TOPIC}; skipped")
            }
        }
    }
}

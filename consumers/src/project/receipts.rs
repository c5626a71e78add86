//! Who received what: the state that lets a retraction reach exactly the recipients of the
//! retracted events.
//!
//! In memory, per subject (incident, case or victim): for each feed it reached, under which
//! agreement, with which key, and which events. On the compacted `state.disclosures.v1`, one
//! small record per (subject, feed, event), written in the same transaction as the disclosure it
//! records (and again when it is retracted), so nothing in memory can overwrite history in
//! Kafka. Every instance reads the topic back on start (and follows it while running), so the
//! state survives restarts and partition moves. Memory is bounded: past `capacity` subjects, the
//! least recently touched is forgotten and counted, and the subject is remembered as partial; a
//! retraction for a partial subject still reaches the recipients held, and also goes to the
//! dead-letter topic for a person to check the rest, never silently nowhere.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::{Hash, Hasher},
};

use bluelight_avro::records::Id;
use serde::{Deserialize, Serialize};

use crate::policy::Entity;

/// Events kept per receipt; an incident with more updates than this is implausible, and the
/// oldest are dropped (and counted) rather than letting one subject grow without limit.
pub const MAX_EVENTS_PER_RECEIPT: usize = 1_000;

/// What one feed received about one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub feed: String,
    pub recipient: String,
    pub agreement_id: String,
    pub agreement_version: String,
    /// The key the recipient knows the subject by (pseudonymised when the clause said so).
    pub sent_key: String,
    pub events: Vec<Sent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub event_id: Id,
    pub clause_id: String,
    /// Already withdrawn: a second retraction does not tell the recipient twice.
    #[serde(default)]
    pub retracted: bool,
}

#[derive(Debug, Default)]
pub struct Receipts {
    map: HashMap<String, (u64, Vec<Receipt>)>,
    /// Touch order, for forgetting the least recently used subject at capacity.
    order: BTreeMap<u64, String>,
    seq: u64,
    capacity: usize,
    /// Values before the open transaction touched them, to roll back on abort.
    undo: HashMap<String, Option<Vec<Receipt>>>,
    /// Hashes of subjects whose receipts in memory may be incomplete (forgotten at capacity);
    /// past its own bound every subject counts as possibly incomplete.
    partial: HashSet<u64>,
    partial_overflow: bool,
    pub evicted: u64,
    pub events_dropped: u64,
}

/// One state record's value: one feed's receipt of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub recipient: String,
    pub agreement_id: String,
    pub agreement_version: String,
    pub clause_id: String,
    pub sent_key: String,
    #[serde(default)]
    pub retracted: bool,
}

impl Receipts {
    pub fn new(capacity: usize) -> Self {
        Receipts {
            capacity: capacity.max(1),
            ..Receipts::default()
        }
    }

    /// The state topic's key for a subject.
    pub fn key(entity: Entity, subject: &str) -> String {
        format!("{}/{subject}", entity.name())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &str) -> &[Receipt] {
        self.map.get(key).map_or(&[], |(_, r)| r.as_slice())
    }

    /// Replaces a subject's receipts (from the state topic, or after an update).
    pub fn put(&mut self, key: &str, receipts: Option<Vec<Receipt>>) {
        if !self.undo.contains_key(key) {
            let before = self.map.get(key).map(|(_, r)| r.clone());
            self.undo.insert(key.to_owned(), before);
        }
        self.set(key, receipts);
    }

    fn set(&mut self, key: &str, receipts: Option<Vec<Receipt>>) {
        if let Some((seq, _)) = self.map.remove(key) {
            self.order.remove(&seq);
        }
        let Some(receipts) = receipts else { return };
        self.seq += 1;
        self.order.insert(self.seq, key.to_owned());
        self.map.insert(key.to_owned(), (self.seq, receipts));
        while self.map.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
            self.evicted += 1;
            self.mark_partial(&oldest);
        }
    }

    /// Records that `feed` received `event_id`. Changes the subject's receipts in place: only
    /// the first change in a transaction keeps a copy, for the rollback.
    pub fn record(&mut self, key: &str, receipt: Receipt) {
        if !self.undo.contains_key(key) {
            let before = self.map.get(key).map(|(_, r)| r.clone());
            self.undo.insert(key.to_owned(), before);
        }
        let mut all = match self.map.remove(key) {
            Some((seq, all)) => {
                self.order.remove(&seq);
                all
            }
            None => Vec::new(),
        };
        match all
            .iter_mut()
            .find(|r| r.feed == receipt.feed && r.agreement_id == receipt.agreement_id)
        {
            Some(r) => {
                r.agreement_version = receipt.agreement_version;
                r.sent_key = receipt.sent_key;
                for s in receipt.events {
                    if !r.events.iter().any(|e| e.event_id == s.event_id) {
                        r.events.push(s);
                    }
                }
                if r.events.len() > MAX_EVENTS_PER_RECEIPT {
                    let extra = r.events.len() - MAX_EVENTS_PER_RECEIPT;
                    r.events.drain(..extra);
                    self.events_dropped += extra as u64;
                    self.mark_partial(key);
                }
            }
            None => all.push(receipt),
        }
        self.set(key, Some(all));
    }

    /// The transaction committed: its changes stay.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The transaction aborted: back to the state as of the last commit.
    pub fn rollback(&mut self) {
        for (key, before) in std::mem::take(&mut self.undo) {
            self.set(&key, before);
        }
    }

    fn mark_partial(&mut self, key: &str) {
        if self.partial.len() >= self.capacity.saturating_mul(4) {
            self.partial_overflow = true;
        } else {
            self.partial.insert(hash(key));
        }
    }

    /// Whether the recipients held for a subject may be fewer than those it reached.
    pub fn is_partial(&self, key: &str) -> bool {
        self.partial_overflow || self.partial.contains(&hash(key))
    }

    /// The state record of one feed's receipt of one event: `<subject key>#<feed>#<event id>`.
    pub fn entry(subject: &str, receipt: &Receipt, sent: &Sent) -> (String, Vec<u8>) {
        let key = format!("{subject}#{}#{}", receipt.feed, sent.event_id);
        let value = Entry {
            recipient: receipt.recipient.clone(),
            agreement_id: receipt.agreement_id.clone(),
            agreement_version: receipt.agreement_version.clone(),
            clause_id: sent.clause_id.clone(),
            sent_key: receipt.sent_key.clone(),
            retracted: sent.retracted,
        };
        (key, serde_json::to_vec(&value).unwrap_or_default())
    }

    /// Applies one state record read back from Kafka (outside any transaction).
    pub fn load_entry(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let mut parts = key.rsplitn(3, '#');
        let (Some(event), Some(feed), Some(subject)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("key {key:?} is not <subject>#<feed>#<event id>"));
        };
        let event_id: Id = event.parse().map_err(|e| format!("{event:?}: {e}"))?;
        let entry: Entry = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let mut all = self.get(subject).to_vec();
        let sent = Sent {
            event_id,
            clause_id: entry.clause_id,
            retracted: entry.retracted,
        };
        match all
            .iter_mut()
            .find(|r| r.feed == feed && r.agreement_id == entry.agreement_id)
        {
            Some(r) => match r.events.iter_mut().find(|e| e.event_id == event_id) {
                Some(e) => e.retracted |= sent.retracted,
                None => r.events.push(sent),
            },
            None => all.push(Receipt {
                feed: feed.to_owned(),
                recipient: entry.recipient,
                agreement_id: entry.agreement_id,
                agreement_version: entry.agreement_version,
                sent_key: entry.sent_key,
                events: vec![sent],
            }),
        }
        self.set(subject, Some(all));
        Ok(())
    }
}

fn hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(feed: &str, event: u128) -> Receipt {
        Receipt {
            feed: feed.into(),
            recipient: "r".into(),
            agreement_id: "isa".into(),
            agreement_version: "1".into(),
            sent_key: "k".into(),
            events: vec![Sent {
                event_id: Id(uuid::Uuid::from_u128(event)),
                clause_id: "c".into(),
                retracted: false,
            }],
        }
    }

    #[test]
    fn receipts_merge_per_feed_and_roll_back_on_abort() {
        let mut r = Receipts::new(10);
        r.record("incident/1", receipt("feed.a.incident.v1", 1));
        r.commit();
        r.record("incident/1", receipt("feed.a.incident.v1", 2));
        r.record("incident/1", receipt("feed.b.incident.v1", 2));
        assert_eq!(r.get("incident/1").len(), 2);
        assert_eq!(r.get("incident/1")[0].events.len(), 2);
        r.rollback();
        assert_eq!(r.get("incident/1").len(), 1);
        assert_eq!(r.get("incident/1")[0].events.len(), 1);
    }

    #[test]
    fn state_records_rebuild_the_receipts() {
        let mut r = Receipts::new(10);
        let a = receipt("feed.a.incident.v1", 1);
        let mut b = receipt("feed.b.incident.v1", 2);
        b.events[0].retracted = true;
        let mut rebuilt = Receipts::new(10);
        for x in [&a, &b] {
            r.record("incident/INC-1", x.clone());
            let (key, value) = Receipts::entry("incident/INC-1", x, &x.events[0]);
            rebuilt.load_entry(&key, &value).expect("entry");
        }
        assert_eq!(rebuilt.get("incident/INC-1"), r.get("incident/INC-1"));
        assert!(rebuilt.load_entry("nonsense", b"{}").is_err());
    }

    #[test]
    fn at_capacity_the_least_recently_touched_subject_is_forgotten_and_counted() {
        let mut r = Receipts::new(2);
        r.record("incident/1", receipt("f", 1));
        r.record("incident/2", receipt("f", 2));
        r.record("incident/1", receipt("f", 3));
        r.record("incident/3", receipt("f", 4));
        assert_eq!(r.len(), 2);
        assert!(
            r.get("incident/2").is_empty(),
            "2 was the least recently touched"
        );
        assert_eq!(r.get("incident/1")[0].events.len(), 2);
        assert_eq!(r.evicted, 1);
    }

    #[test]
    fn one_subject_keeps_a_bounded_number_of_events() {
        let mut r = Receipts::new(2);
        for e in 0..(MAX_EVENTS_PER_RECEIPT as u128 + 5) {
            r.record("incident/1", receipt("f", e));
        }
        assert_eq!(r.get("incident/1")[0].events.len(), MAX_EVENTS_PER_RECEIPT);
        assert_eq!(r.events_dropped, 5);
    }
}

//! Who received what: the state that lets a retraction reach exactly the recipients of the
//! retracted events.
//!
//! In memory, per subject (incident, case or victim): for each feed it reached, under which
//! agreement, with which key, and which events, packed into a couple of hundred bytes (a backlog
//! of a million events holds some 300,000 subjects). On the compacted `state.disclosures.v1`, one
//! small record per (subject, feed, event), written in the same transaction as the disclosure it
//! records (and again when it is retracted), so nothing in memory can overwrite history in
//! Kafka. Every instance reads the topic back on start (and follows it while running), so the
//! state survives restarts and partition moves. Memory is bounded: past `capacity` subjects, the
//! least recently touched (a hundredth of the capacity at a time) are forgotten and counted, and
//! each is remembered as partial; a
//! retraction for a partial subject still reaches the recipients held, and also goes to the
//! dead-letter topic for a person to check the rest, never silently nowhere.

use std::{
    collections::{HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::Arc,
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
    /// Each subject's receipts, packed (see [`Packed`]), and when it was last touched (a
    /// sequence number, for forgetting the least recently touched at capacity; no separate
    /// order index, which cost as much memory as the receipts).
    map: HashMap<Box<str>, (u64, Packed)>,
    seq: u64,
    capacity: usize,
    /// The strings receipts repeat, each held once.
    symbols: Symbols,
    /// Values before the open transaction touched them, to roll back on abort.
    undo: HashMap<Box<str>, Option<Packed>>,
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

/// [`Entry`] borrowed from the receipt it describes, for writing without copying.
#[derive(Serialize)]
struct EntryRef<'a> {
    recipient: &'a str,
    agreement_id: &'a str,
    agreement_version: &'a str,
    clause_id: &'a str,
    sent_key: &'a str,
    retracted: bool,
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

    /// A subject's receipts, as the retraction path reads and changes them.
    pub fn get(&self, key: &str) -> Vec<Receipt> {
        self.map.get(key).map_or_else(Vec::new, |(_, p)| {
            Unpacked::read(p).materialise(key, &self.symbols)
        })
    }

    /// The feeds that have already received `event_id` about this subject (empty for an event
    /// not seen, or a subject forgotten at capacity).
    pub fn received(&self, key: &str, event_id: Id) -> Vec<&str> {
        let Some((_, packed)) = self.map.get(key) else {
            return Vec::new();
        };
        let u = Unpacked::read(packed);
        let id = *event_id.0.as_bytes();
        let Some(index) = u.events.iter().position(|e| *e == id) else {
            return Vec::new();
        };
        u.receipts
            .iter()
            .filter(|h| h.sent.iter().any(|s| s.event as usize == index))
            .map(|h| self.symbols.name(h.feed))
            .collect()
    }

    /// Replaces a subject's receipts (after a retraction changed them).
    pub fn put(&mut self, key: &str, receipts: Option<Vec<Receipt>>) {
        self.keep_undo(key);
        let packed = match receipts {
            None => None,
            Some(all) => {
                let mut u = Unpacked::default();
                let mut complete = true;
                for r in &all {
                    complete &= u.absorb(key, r, &mut self.symbols).is_some();
                }
                if !complete {
                    self.mark_partial(key);
                }
                Some(u.pack())
            }
        };
        self.set(key, packed);
    }

    fn keep_undo(&mut self, key: &str) {
        if !self.undo.contains_key(key) {
            let before = self.map.get(key).map(|(_, p)| p.clone());
            self.undo.insert(key.into(), before);
        }
    }

    /// Takes a subject out of the map, unpacked for a change.
    fn take(&mut self, key: &str) -> Unpacked {
        self.map
            .remove(key)
            .map_or_else(Unpacked::default, |(_, packed)| Unpacked::read(&packed))
    }

    fn set(&mut self, key: &str, packed: Option<Packed>) {
        let Some(packed) = packed else {
            self.map.remove(key);
            return;
        };
        self.seq += 1;
        match self.map.get_mut(key) {
            Some(held) => *held = (self.seq, packed),
            None => {
                self.map.insert(key.into(), (self.seq, packed));
            }
        }
        if self.map.len() > self.capacity {
            self.forget_oldest();
        }
    }

    /// Forgets the least recently touched hundredth of the capacity (at least one subject) in
    /// one pass over the map: a scan per that many new subjects, not an order index.
    fn forget_oldest(&mut self) {
        let excess = self.map.len() - self.capacity;
        let count = excess.max(self.capacity / 100).max(1).min(self.map.len());
        let mut seqs: Vec<u64> = self.map.values().map(|(seq, _)| *seq).collect();
        let (_, &mut threshold, _) = seqs.select_nth_unstable(count - 1);
        let mut forgotten = Vec::with_capacity(count);
        self.map.retain(|key, (seq, _)| {
            let keep = *seq > threshold;
            if !keep {
                forgotten.push(hash(key));
            }
            keep
        });
        self.evicted += forgotten.len() as u64;
        for h in forgotten {
            self.mark_partial_hash(h);
        }
    }

    /// Records that `feed` received `event_id`. Only the first change in a transaction keeps a
    /// copy, for the rollback.
    pub fn record(&mut self, key: &str, receipt: Receipt) {
        self.record_all(key, std::iter::once(receipt));
    }

    /// [`Receipts::record`] for every copy of one event: the subject is unpacked and packed
    /// once, not once per recipient.
    pub fn record_all(&mut self, key: &str, receipts: impl IntoIterator<Item = Receipt>) {
        let mut receipts = receipts.into_iter().peekable();
        if receipts.peek().is_none() {
            return;
        }
        self.keep_undo(key);
        let mut u = self.take(key);
        for receipt in receipts {
            if u.absorb(key, &receipt, &mut self.symbols).is_none() {
                self.mark_partial(key);
            }
        }
        let dropped = u.bound(MAX_EVENTS_PER_RECEIPT);
        if dropped > 0 {
            self.events_dropped += dropped as u64;
            self.mark_partial(key);
        }
        self.set(key, Some(u.pack()));
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
        self.mark_partial_hash(hash(key));
    }

    fn mark_partial_hash(&mut self, h: u64) {
        if self.partial.len() >= self.capacity.saturating_mul(4) {
            self.partial_overflow = true;
        } else {
            self.partial.insert(h);
        }
    }

    /// Whether the recipients held for a subject may be fewer than those it reached.
    pub fn is_partial(&self, key: &str) -> bool {
        self.partial_overflow || self.partial.contains(&hash(key))
    }

    /// The state record of one feed's receipt of one event: `<subject key>#<feed>#<event id>`.
    pub fn entry(subject: &str, receipt: &Receipt, sent: &Sent) -> (String, Vec<u8>) {
        let key = format!("{subject}#{}#{}", receipt.feed, sent.event_id);
        let value = EntryRef {
            recipient: &receipt.recipient,
            agreement_id: &receipt.agreement_id,
            agreement_version: &receipt.agreement_version,
            clause_id: &sent.clause_id,
            sent_key: &receipt.sent_key,
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
        let receipt = Receipt {
            feed: feed.to_owned(),
            recipient: entry.recipient,
            agreement_id: entry.agreement_id,
            agreement_version: entry.agreement_version,
            sent_key: entry.sent_key,
            events: vec![Sent {
                event_id,
                clause_id: entry.clause_id,
                retracted: entry.retracted,
            }],
        };
        let mut u = self.take(subject);
        if u.absorb(subject, &receipt, &mut self.symbols).is_none() {
            self.mark_partial(subject);
        }
        self.set(subject, Some(u.pack()));
        Ok(())
    }
}

/// At most this many distinct strings in receipts (feeds, recipients, agreement ids and
/// versions, clause ids): they come from agreements, so a deployment has hundreds. A receipt
/// that would pass the bound is not held, and its subject is remembered as partial.
pub const MAX_SYMBOLS: usize = 1 << 16;

#[derive(Debug, Default)]
struct Symbols {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Symbols {
    fn id(&mut self, s: &str) -> Option<u32> {
        if let Some(&i) = self.index.get(s) {
            return Some(i);
        }
        if self.names.len() >= MAX_SYMBOLS {
            return None;
        }
        let i = u32::try_from(self.names.len()).ok()?;
        let name: Arc<str> = Arc::from(s);
        self.names.push(name.clone());
        self.index.insert(name, i);
        Some(i)
    }

    fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", |s| s)
    }
}

/// One subject's receipts in a few hundred bytes, because a backlog holds hundreds of thousands
/// of subjects: strings as symbols, each event id once, pseudonyms as their 12 bytes, numbers
/// as LEB128 varints. Only [`Unpacked`] reads and writes it.
type Packed = Box<[u8]>;

/// A subject's receipts unpacked for a change: event ids in a table, receipts pointing into it.
#[derive(Debug, Default)]
struct Unpacked {
    events: Vec<[u8; 16]>,
    receipts: Vec<Held>,
}

#[derive(Debug)]
struct Held {
    feed: u32,
    recipient: u32,
    agreement: u32,
    version: u32,
    key: SentKey,
    sent: Vec<HeldSent>,
}

#[derive(Debug, Clone, Copy)]
struct HeldSent {
    /// Index into [`Unpacked::events`].
    event: u32,
    clause: u32,
    retracted: bool,
}

/// The key the recipient knows the subject by, as it is most often: the subject's own id, or a
/// pseudonym (`psn-` and 24 hex digits).
#[derive(Debug, PartialEq, Eq)]
enum SentKey {
    Subject,
    Pseudonym([u8; 12]),
    Other(Box<str>),
}

const PSEUDONYM_PREFIX: &str = "psn-";

impl SentKey {
    fn of(sent: &str, subject_key: &str) -> SentKey {
        if sent == subject_id(subject_key) {
            return SentKey::Subject;
        }
        if let Some(bytes) = sent.strip_prefix(PSEUDONYM_PREFIX).and_then(unhex) {
            return SentKey::Pseudonym(bytes);
        }
        SentKey::Other(sent.into())
    }

    fn text(&self, subject_key: &str) -> String {
        match self {
            SentKey::Subject => subject_id(subject_key).to_owned(),
            SentKey::Pseudonym(bytes) => {
                let mut s = String::with_capacity(PSEUDONYM_PREFIX.len() + 24);
                s.push_str(PSEUDONYM_PREFIX);
                for b in bytes {
                    s.push(char::from(HEX[usize::from(b >> 4)]));
                    s.push(char::from(HEX[usize::from(b & 0xf)]));
                }
                s
            }
            SentKey::Other(s) => s.to_string(),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 24 lower-case hex digits (as [`SentKey::text`] writes them, so the round trip is exact).
fn unhex(hex: &str) -> Option<[u8; 12]> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    let h = hex.as_bytes();
    if h.len() != 24 {
        return None;
    }
    let mut out = [0u8; 12];
    for (o, pair) in out.iter_mut().zip(h.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// `incident/INC-1` → `INC-1`.
fn subject_id(subject_key: &str) -> &str {
    subject_key
        .split_once('/')
        .map_or(subject_key, |(_, id)| id)
}

impl Unpacked {
    /// Merges one receipt in: a feed's receipts under one agreement are one, its events unique.
    /// `None` when a string could not be given a symbol (the bound is reached).
    fn absorb(&mut self, subject_key: &str, r: &Receipt, symbols: &mut Symbols) -> Option<()> {
        let feed = symbols.id(&r.feed)?;
        let agreement = symbols.id(&r.agreement_id)?;
        let version = symbols.id(&r.agreement_version)?;
        let recipient = symbols.id(&r.recipient)?;
        let key = SentKey::of(&r.sent_key, subject_key);
        let at = match self
            .receipts
            .iter()
            .position(|h| h.feed == feed && h.agreement == agreement)
        {
            Some(i) => {
                let h = &mut self.receipts[i];
                h.version = version;
                h.key = key;
                i
            }
            None => {
                self.receipts.push(Held {
                    feed,
                    recipient,
                    agreement,
                    version,
                    key,
                    sent: Vec::new(),
                });
                self.receipts.len() - 1
            }
        };
        for s in &r.events {
            let clause = symbols.id(&s.clause_id)?;
            let id = *s.event_id.0.as_bytes();
            let event = match self.events.iter().position(|e| *e == id) {
                Some(i) => i,
                None => {
                    self.events.push(id);
                    self.events.len() - 1
                }
            };
            let event = u32::try_from(event).ok()?;
            let held = &mut self.receipts[at];
            match held.sent.iter_mut().find(|h| h.event == event) {
                Some(h) => h.retracted |= s.retracted,
                None => held.sent.push(HeldSent {
                    event,
                    clause,
                    retracted: s.retracted,
                }),
            }
        }
        Some(())
    }

    /// Keeps at most `max` events per receipt, dropping the oldest; returns how many went.
    fn bound(&mut self, max: usize) -> usize {
        let mut dropped = 0;
        for h in &mut self.receipts {
            if h.sent.len() > max {
                let extra = h.sent.len() - max;
                h.sent.drain(..extra);
                dropped += extra;
            }
        }
        dropped
    }

    fn materialise(&self, subject_key: &str, symbols: &Symbols) -> Vec<Receipt> {
        self.receipts
            .iter()
            .map(|h| Receipt {
                feed: symbols.name(h.feed).to_owned(),
                recipient: symbols.name(h.recipient).to_owned(),
                agreement_id: symbols.name(h.agreement).to_owned(),
                agreement_version: symbols.name(h.version).to_owned(),
                sent_key: h.key.text(subject_key),
                events: h
                    .sent
                    .iter()
                    .map(|s| Sent {
                        event_id: Id(uuid::Uuid::from_bytes(
                            self.events
                                .get(s.event as usize)
                                .copied()
                                .unwrap_or_default(),
                        )),
                        clause_id: symbols.name(s.clause).to_owned(),
                        retracted: s.retracted,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Writes the packed form, keeping only the events some receipt still refers to.
    fn pack(&self) -> Packed {
        let mut renumber = vec![u32::MAX; self.events.len()];
        let mut table: Vec<[u8; 16]> = Vec::new();
        for s in self.receipts.iter().flat_map(|h| &h.sent) {
            if let Some(slot) = renumber.get_mut(s.event as usize)
                && *slot == u32::MAX
                && let Some(id) = self.events.get(s.event as usize)
            {
                *slot = table.len() as u32;
                table.push(*id);
            }
        }
        let mut out = Vec::with_capacity(2 + table.len() * 16 + self.receipts.len() * 24);
        varint(&mut out, table.len() as u64);
        for id in &table {
            out.extend_from_slice(id);
        }
        varint(&mut out, self.receipts.len() as u64);
        for h in &self.receipts {
            for s in [h.feed, h.recipient, h.agreement, h.version] {
                varint(&mut out, u64::from(s));
            }
            match &h.key {
                SentKey::Subject => out.push(0),
                SentKey::Pseudonym(bytes) => {
                    out.push(1);
                    out.extend_from_slice(bytes);
                }
                SentKey::Other(s) => {
                    out.push(2);
                    varint(&mut out, s.len() as u64);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            varint(&mut out, h.sent.len() as u64);
            for s in &h.sent {
                let event = renumber.get(s.event as usize).copied().unwrap_or(0);
                varint(&mut out, (u64::from(event) << 1) | u64::from(s.retracted));
                varint(&mut out, u64::from(s.clause));
            }
        }
        out.into_boxed_slice()
    }

    /// Reads what [`Unpacked::pack`] wrote. The bytes never leave this process, so a short
    /// read cannot happen; were it to, what was read so far is kept.
    fn read(packed: &[u8]) -> Unpacked {
        let mut u = Unpacked::default();
        let _ = u.read_into(&mut Reader(packed));
        u
    }

    fn read_into(&mut self, r: &mut Reader<'_>) -> Option<()> {
        let events = r.varint()?;
        for _ in 0..events {
            self.events.push(r.bytes::<16>()?);
        }
        let receipts = r.varint()?;
        for _ in 0..receipts {
            let feed = r.varint()? as u32;
            let recipient = r.varint()? as u32;
            let agreement = r.varint()? as u32;
            let version = r.varint()? as u32;
            let key = match r.byte()? {
                0 => SentKey::Subject,
                1 => SentKey::Pseudonym(r.bytes::<12>()?),
                _ => {
                    let len = r.varint()? as usize;
                    SentKey::Other(std::str::from_utf8(r.take(len)?).ok()?.into())
                }
            };
            let n = r.varint()?;
            let mut sent = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let e = r.varint()?;
                let clause = r.varint()? as u32;
                sent.push(HeldSent {
                    event: (e >> 1) as u32,
                    clause,
                    retracted: e & 1 == 1,
                });
            }
            self.receipts.push(Held {
                feed,
                recipient,
                agreement,
                version,
                key,
                sent,
            });
        }
        Some(())
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
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
    fn packing_keeps_every_field_and_a_subject_takes_a_few_hundred_bytes() {
        let mut r = Receipts::new(10);
        let key = "incident/INC-2026-000123";
        let mut all = Vec::new();
        for (i, sent_key) in [
            "INC-2026-000123",
            "psn-0123456789abcdef01234567",
            "psn-0123456789ABCDEF01234567",
            "someone else's key",
        ]
        .iter()
        .enumerate()
        {
            for e in 0..3u128 {
                let mut x = receipt(&format!("feed.recipient-{i}.incident.v1"), e);
                x.sent_key = (*sent_key).into();
                x.agreement_id = format!("police-to-recipient-{i}");
                x.events[0].retracted = e == 2 && i == 1;
                x.events[0].clause_id = format!("clause-{e}");
                r.record(key, x.clone());
                all.push(x);
            }
        }
        let got = r.get(key);
        assert_eq!(got.len(), 4);
        for (held, sent) in got.iter().zip(all.chunks(3)) {
            assert_eq!(held.sent_key, sent[0].sent_key);
            assert_eq!(held.agreement_id, sent[0].agreement_id);
            let events: Vec<_> = sent.iter().map(|s| s.events[0].clone()).collect();
            assert_eq!(held.events, events);
        }
        let packed = r.map.get(key).map(|(_, p)| p.len()).unwrap_or_default();
        assert!(
            packed < 200,
            "four feeds, three events each: {packed} bytes packed"
        );
    }

    #[test]
    fn past_the_symbol_bound_a_receipt_is_not_held_and_its_subject_is_partial() {
        let mut r = Receipts::new(10);
        for i in 0..MAX_SYMBOLS {
            assert!(r.symbols.id(&format!("s{i}")).is_some());
        }
        r.record("incident/1", receipt("a new feed", 1));
        assert!(r.get("incident/1").is_empty());
        assert!(r.is_partial("incident/1"));
        assert!(!r.is_partial("incident/2"));
    }

    #[test]
    fn past_capacity_the_oldest_hundredth_is_forgotten_at_once() {
        let mut r = Receipts::new(1_000);
        for i in 0..1_000u128 {
            r.record(&format!("incident/{i}"), receipt("f", i));
        }
        r.record("incident/0", receipt("f", 5_000));
        r.record("incident/new", receipt("f", 5_001));
        assert_eq!(r.len(), 991, "ten forgotten in one pass, leaving room");
        assert_eq!(r.evicted, 10);
        assert_eq!(r.get("incident/0").len(), 1, "touched again, so kept");
        for i in 1..=10 {
            assert!(r.is_partial(&format!("incident/{i}")), "{i} forgotten");
        }
        assert!(!r.is_partial("incident/11"));
        assert!(!r.get("incident/11").is_empty());
    }

    #[test]
    fn the_feeds_that_received_an_event_are_known() {
        let mut r = Receipts::new(10);
        r.record("incident/1", receipt("feed.a", 1));
        r.record("incident/1", receipt("feed.b", 1));
        r.record("incident/1", receipt("feed.b", 2));
        let id = |n| Id(uuid::Uuid::from_u128(n));
        assert_eq!(r.received("incident/1", id(1)), ["feed.a", "feed.b"]);
        assert_eq!(r.received("incident/1", id(2)), ["feed.b"]);
        assert!(r.received("incident/1", id(3)).is_empty());
        assert!(r.received("incident/2", id(1)).is_empty());
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

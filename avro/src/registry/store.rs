//! The `_schemas` log: Confluent Schema Registry's record format, and the state machine that folds
//! the log, in offset order, into the registry's in-memory view.
//!
//! Nothing here touches Kafka or a clock, so every rule is unit-tested (`tests.rs`).
//!
//! Several registry instances may write to the log at once, so a SCHEMA record is a *proposal*: the
//! id and version it carries are checked when it is applied, by every instance identically, since all
//! read the same single-partition log in the same order:
//! - the (subject, version) slot already holds a different schema: the record loses (ignored);
//! - the schema already has an id (under any subject): that id is used, whatever was proposed;
//! - otherwise the proposed id is taken if no other schema holds it, else the record loses.
//!
//! The writer reads its record back and retries if it lost (see `service.rs`). Because compaction
//! keeps only the last record of each key, the writer also *settles* the key it wrote: if its
//! record lost, it appends what the state holds for that slot, or a withdrawn proposal when the
//! slot is empty ([`State::settle`]), so no losing record is ever a key's last and a replay of
//! the compacted log gives the same ids and versions.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use super::compat::CompatibilityLevel;

/// Ids and versions are Java `int`s in Confluent's clients and wire format.
pub(crate) const MAX_NUMBER: u32 = i32::MAX as u32;

/// The id of a withdrawn proposal: never handed out, and a record carrying it changes nothing.
/// A writer whose proposal lost and left its slot empty writes one under the same key, so the
/// losing record is not the key's last (the one compaction keeps) and cannot apply on a replay
/// where the record that beat it has moved (see [`State::settle`]).
pub(crate) const WITHDRAWN: u32 = 0;

/// A schema text parsed once, with the key that decides whether two texts are the same schema.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) schema: Arc<Schema>,
    /// The parsed schema written back as JSON. Whitespace and attribute order no longer matter,
    /// but docs, defaults, aliases and custom properties do, as in Confluent: the bare Avro
    /// Parsing Canonical Form drops defaults, so "add a default to field x" would otherwise be
    /// taken for the same schema and never reach the log.
    pub(crate) key: Arc<str>,
}

pub(crate) fn parse(text: &str) -> Result<Parsed, String> {
    let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
    let key = serde_json::to_string(&schema).map_err(|e| e.to_string())?;
    Ok(Parsed {
        schema: Arc::new(schema),
        key: key.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Records as they are on the log

/// One record of the log, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// `value: None` is a tombstone: the version is deleted permanently.
    Schema {
        subject: String,
        version: u32,
        value: Option<SchemaValue>,
    },
    /// `subject: None` is the global setting; `level: None` deletes the setting.
    Config {
        subject: Option<String>,
        level: Option<CompatibilityLevel>,
    },
    /// Soft-deletes every version up to `up_to`; a tombstone (`None`) changes nothing.
    DeleteSubject { subject: String, up_to: Option<u32> },
}

/// The value of a SCHEMA record, field for field as Confluent writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaValue {
    pub(crate) subject: String,
    pub(crate) version: u32,
    pub(crate) id: u32,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) schema_type: Option<String>,
    pub(crate) schema: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) references: Vec<serde_json::Value>,
    #[serde(default)]
    pub(crate) deleted: bool,
}

/// What a log record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    Record(Record),
    /// Confluent's leader-election marker.
    Noop,
    /// A key type this registry does not use (MODE, CONTEXT, ...).
    Unknown(String),
}

// Keys are written with Confluent's field order: compaction compares key bytes, so every writer
// must spell the same key the same way.
#[derive(Serialize)]
struct SchemaKeyOut<'a> {
    keytype: &'static str,
    subject: &'a str,
    version: u32,
    magic: u8,
}

#[derive(Serialize)]
struct SubjectKeyOut<'a> {
    keytype: &'static str,
    subject: Option<&'a str>,
    magic: u8,
}

#[derive(Serialize, Deserialize)]
struct ConfigValue {
    #[serde(rename = "compatibilityLevel", default)]
    level: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DeleteSubjectValue {
    subject: String,
    version: u32,
}

#[derive(Deserialize)]
struct RawKey {
    keytype: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    version: Option<i64>,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Structs of strings and integers always serialize.
    serde_json::to_vec(value).expect("registry records serialize to JSON")
}

impl Record {
    /// The record's key and value bytes (`None`: tombstone).
    pub(crate) fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            Record::Schema {
                subject,
                version,
                value,
            } => (
                to_json(&SchemaKeyOut {
                    keytype: "SCHEMA",
                    subject,
                    version: *version,
                    magic: 1,
                }),
                value.as_ref().map(to_json),
            ),
            Record::Config { subject, level } => (
                to_json(&SubjectKeyOut {
                    keytype: "CONFIG",
                    subject: subject.as_deref(),
                    magic: 0,
                }),
                level.map(|l| {
                    to_json(&ConfigValue {
                        level: Some(l.as_str().to_owned()),
                    })
                }),
            ),
            Record::DeleteSubject { subject, up_to } => (
                to_json(&SubjectKeyOut {
                    keytype: "DELETE_SUBJECT",
                    subject: Some(subject),
                    magic: 0,
                }),
                up_to.map(|version| {
                    to_json(&DeleteSubjectValue {
                        subject: subject.clone(),
                        version,
                    })
                }),
            ),
        }
    }
}

/// Decodes one log record; `Err` says why it is malformed.
pub(crate) fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Decoded, String> {
    let key = key.ok_or("record without a key")?;
    let raw: RawKey =
        serde_json::from_slice(key).map_err(|e| format!("key is not a registry key: {e}"))?;
    let subject = || {
        raw.subject
            .clone()
            .ok_or_else(|| format!("{} key without a subject", raw.keytype))
    };
    match raw.keytype.as_str() {
        "SCHEMA" => {
            let subject = subject()?;
            let version = raw
                .version
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| (1..=MAX_NUMBER).contains(v))
                .ok_or_else(|| format!("SCHEMA key of {subject} with version {:?}", raw.version))?;
            let value = match value {
                None => None,
                Some(bytes) => Some(schema_value(&subject, version, bytes)?),
            };
            Ok(Decoded::Record(Record::Schema {
                subject,
                version,
                value,
            }))
        }
        "CONFIG" => {
            let level = match value {
                None => None,
                Some(bytes) => {
                    let v: ConfigValue =
                        serde_json::from_slice(bytes).map_err(|e| format!("CONFIG value: {e}"))?;
                    match v.level {
                        None => None,
                        Some(l) => Some(l.parse().map_err(|_| format!("CONFIG level {l:?}"))?),
                    }
                }
            };
            Ok(Decoded::Record(Record::Config {
                subject: raw.subject,
                level,
            }))
        }
        "DELETE_SUBJECT" => {
            let subject = subject()?;
            let up_to = match value {
                None => None,
                Some(bytes) => {
                    let v: DeleteSubjectValue = serde_json::from_slice(bytes)
                        .map_err(|e| format!("DELETE_SUBJECT value: {e}"))?;
                    Some(v.version)
                }
            };
            Ok(Decoded::Record(Record::DeleteSubject { subject, up_to }))
        }
        "NOOP" => Ok(Decoded::Noop),
        other => Ok(Decoded::Unknown(other.to_owned())),
    }
}

fn schema_value(subject: &str, version: u32, bytes: &[u8]) -> Result<SchemaValue, String> {
    let v: SchemaValue =
        serde_json::from_slice(bytes).map_err(|e| format!("SCHEMA value of {subject}: {e}"))?;
    if v.subject != subject || v.version != version {
        return Err(format!(
            "SCHEMA key says {subject} version {version}, value says {} version {}",
            v.subject, v.version
        ));
    }
    if v.id > MAX_NUMBER {
        return Err(format!("SCHEMA value of {subject} with id {}", v.id));
    }
    if let Some(t) = v
        .schema_type
        .as_deref()
        .filter(|t| !t.eq_ignore_ascii_case("AVRO"))
    {
        return Err(format!(
            "{subject} version {version} is a {t} schema; only Avro is served"
        ));
    }
    if !v.references.is_empty() {
        return Err(format!(
            "{subject} version {version} has schema references, which are not supported"
        ));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// The state the log folds into

/// One distinct schema and how many (subject, version) slots point at it.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The text as first written with this id; what `GET /schemas/ids/{id}` returns.
    pub(crate) text: Arc<str>,
    pub(crate) parsed: Parsed,
    /// Slots (soft-deleted ones too) using this id; at zero the id is gone (hard delete).
    refs: usize,
}

/// A (subject, version) slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) id: u32,
    pub(crate) deleted: bool,
}

/// What applying a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    /// A proposal that lost to an earlier record (its writer retries).
    Lost(String),
    /// A record that cannot be applied at all (its schema does not parse).
    Skipped(String),
}

#[derive(Debug, Default)]
pub(crate) struct State {
    schemas: BTreeMap<u32, Stored>,
    ids_by_key: HashMap<Arc<str>, u32>,
    subjects: BTreeMap<String, BTreeMap<u32, Slot>>,
    global_level: Option<CompatibilityLevel>,
    subject_levels: BTreeMap<String, CompatibilityLevel>,
    /// The highest id ever applied, so a running instance does not hand out the id of a
    /// hard-deleted schema again. Only proposals use it; applying checks the live ids.
    max_id: u32,
}

impl State {
    pub(crate) fn apply(&mut self, record: Record) -> Applied {
        match record {
            Record::Schema {
                subject,
                version,
                value: Some(value),
            } => self.apply_schema(subject, version, value),
            Record::Schema {
                subject,
                version,
                value: None,
            } => {
                self.remove_slot(&subject, version);
                Applied::Done
            }
            Record::Config { subject, level } => {
                match (subject, level) {
                    (None, level) => self.global_level = level,
                    (Some(s), Some(level)) => {
                        self.subject_levels.insert(s, level);
                    }
                    (Some(s), None) => {
                        self.subject_levels.remove(&s);
                    }
                }
                Applied::Done
            }
            Record::DeleteSubject { subject, up_to } => {
                if let (Some(up_to), Some(slots)) = (up_to, self.subjects.get_mut(&subject)) {
                    for slot in slots.range_mut(..=up_to).map(|(_, s)| s) {
                        slot.deleted = true;
                    }
                }
                Applied::Done
            }
        }
    }

    fn apply_schema(&mut self, subject: String, version: u32, value: SchemaValue) -> Applied {
        if value.id == WITHDRAWN {
            return Applied::Lost(format!("{subject} version {version}: a withdrawn proposal"));
        }
        let parsed = match parse(&value.schema) {
            Ok(p) => p,
            Err(e) => {
                return Applied::Skipped(format!(
                    "{subject} version {version} is not valid Avro: {e}"
                ));
            }
        };
        if let Some(slot) = self
            .subjects
            .get_mut(&subject)
            .and_then(|slots| slots.get_mut(&version))
        {
            let same = self
                .schemas
                .get(&slot.id)
                .is_some_and(|s| s.parsed.key == parsed.key);
            if !same {
                return Applied::Lost(format!(
                    "{subject} version {version} already holds schema id {}",
                    slot.id
                ));
            }
            // The same schema again: only the soft-delete flag can change.
            slot.deleted = value.deleted;
            return Applied::Done;
        }
        let id = match self.ids_by_key.get(&parsed.key) {
            Some(&id) => id,
            None if self.schemas.contains_key(&value.id) => {
                return Applied::Lost(format!(
                    "id {} already belongs to another schema ({subject} version {version})",
                    value.id
                ));
            }
            None => {
                self.ids_by_key.insert(parsed.key.clone(), value.id);
                self.schemas.insert(
                    value.id,
                    Stored {
                        text: value.schema.into(),
                        parsed,
                        refs: 0,
                    },
                );
                self.max_id = self.max_id.max(value.id);
                value.id
            }
        };
        if let Some(stored) = self.schemas.get_mut(&id) {
            stored.refs += 1;
        }
        self.subjects.entry(subject).or_default().insert(
            version,
            Slot {
                id,
                deleted: value.deleted,
            },
        );
        Applied::Done
    }

    fn remove_slot(&mut self, subject: &str, version: u32) {
        let Some(slots) = self.subjects.get_mut(subject) else {
            return;
        };
        let Some(slot) = slots.remove(&version) else {
            return;
        };
        if slots.is_empty() {
            self.subjects.remove(subject);
        }
        if let Some(stored) = self.schemas.get_mut(&slot.id) {
            stored.refs = stored.refs.saturating_sub(1);
            if stored.refs == 0 {
                let key = stored.parsed.key.clone();
                self.schemas.remove(&slot.id);
                self.ids_by_key.remove(&key);
            }
        }
    }

    // ---- queries ----

    pub(crate) fn schema(&self, id: u32) -> Option<&Stored> {
        self.schemas.get(&id)
    }

    pub(crate) fn id_of(&self, key: &str) -> Option<u32> {
        self.ids_by_key.get(key).copied()
    }

    pub(crate) fn slot(&self, subject: &str, version: u32) -> Option<Slot> {
        self.subjects.get(subject)?.get(&version).copied()
    }

    fn slots(&self, subject: &str, include_deleted: bool) -> impl Iterator<Item = (u32, Slot)> {
        self.subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(move |(_, s)| include_deleted || !s.deleted)
            .map(|(v, s)| (*v, *s))
    }

    /// The subject's versions, oldest first.
    pub(crate) fn versions(&self, subject: &str, include_deleted: bool) -> Vec<u32> {
        self.slots(subject, include_deleted)
            .map(|(v, _)| v)
            .collect()
    }

    pub(crate) fn has_subject(&self, subject: &str, include_deleted: bool) -> bool {
        self.slots(subject, include_deleted).next().is_some()
    }

    pub(crate) fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, slots)| include_deleted || slots.values().any(|s| !s.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// The first version of `subject` holding the schema with this key: `(version, id)`.
    pub(crate) fn find(
        &self,
        subject: &str,
        key: &str,
        include_deleted: bool,
    ) -> Option<(u32, u32)> {
        let id = self.id_of(key)?;
        self.slots(subject, include_deleted)
            .find(|(_, s)| s.id == id)
            .map(|(v, _)| (v, id))
    }

    /// Every (subject, version) using `id`.
    pub(crate) fn uses_of(&self, id: u32, include_deleted: bool) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .flat_map(|(subject, slots)| {
                slots
                    .iter()
                    .filter(move |(_, s)| s.id == id && (include_deleted || !s.deleted))
                    .map(move |(v, _)| (subject.clone(), *v))
            })
            .collect()
    }

    /// The live versions' schemas, oldest first: what compatibility is checked against.
    pub(crate) fn live_schemas(&self, subject: &str) -> Vec<(u32, Arc<Schema>)> {
        self.slots(subject, false)
            .filter_map(|(v, s)| Some((v, self.schemas.get(&s.id)?.parsed.schema.clone())))
            .collect()
    }

    pub(crate) fn subject_level(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subject_levels.get(subject).copied()
    }

    pub(crate) fn global_level(&self) -> Option<CompatibilityLevel> {
        self.global_level
    }

    /// The level that applies to `subject`: its own, else the global one, else `default`.
    pub(crate) fn level_for(
        &self,
        subject: &str,
        default: CompatibilityLevel,
    ) -> CompatibilityLevel {
        self.subject_level(subject)
            .or(self.global_level)
            .unwrap_or(default)
    }

    /// (distinct schemas, subjects with a live version), for the gauges.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let live = self
            .subjects
            .values()
            .filter(|slots| slots.values().any(|s| !s.deleted));
        (self.schemas.len(), live.count())
    }

    /// The SCHEMA value that describes a slot as it stands: what a soft delete rewrites, and what
    /// a writer re-writes when its own record for that slot lost (so that after compaction, which
    /// keeps only the last record of each key, the log still says what every instance applied).
    pub(crate) fn value_at(&self, subject: &str, version: u32) -> Option<SchemaValue> {
        let slot = self.slot(subject, version)?;
        let stored = self.schemas.get(&slot.id)?;
        Some(SchemaValue {
            subject: subject.to_owned(),
            version,
            id: slot.id,
            schema_type: None,
            schema: stored.text.to_string(),
            references: Vec::new(),
            deleted: slot.deleted,
        })
    }

    /// The proposal for registering a schema not yet live under `subject`: the next version
    /// (after every version, soft-deleted ones too) and the schema's id if it has one, else the
    /// next unused id. `None` when the numbers ran out.
    pub(crate) fn propose(
        &self,
        subject: &str,
        text: &str,
        parsed: &Parsed,
    ) -> Option<SchemaValue> {
        let version = self
            .subjects
            .get(subject)
            .and_then(|slots| slots.keys().next_back())
            .map_or(Some(1), |v| v.checked_add(1))
            .filter(|v| *v <= MAX_NUMBER)?;
        let (id, schema) = match self.id_of(&parsed.key) {
            // Write the text the id already has, so every slot of an id carries one text.
            Some(id) => (id, self.schemas.get(&id)?.text.to_string()),
            None => (
                self.max_id.checked_add(1).filter(|i| *i <= MAX_NUMBER)?,
                text.to_owned(),
            ),
        };
        Some(SchemaValue {
            subject: subject.to_owned(),
            version,
            id,
            schema_type: None,
            schema,
            references: Vec::new(),
            deleted: false,
        })
    }

    /// After `written` was applied: what its writer must append so that the last record of that
    /// key says what every instance applied. Compaction keeps only that last record, and a
    /// record that lost (its slot was taken, or its id) must not win on a later replay where the
    /// record that beat it sits after it (say, soft-deleted since).
    pub(crate) fn settle(&self, written: &SchemaValue) -> Settle {
        match self.value_at(&written.subject, written.version) {
            Some(actual)
                if actual.id == written.id
                    && actual.deleted == written.deleted
                    && actual.schema == written.schema =>
            {
                Settle::Done
            }
            Some(actual) => Settle::Restate(actual),
            None if written.id == WITHDRAWN => Settle::Done,
            None => Settle::Withdraw(SchemaValue {
                id: WITHDRAWN,
                deleted: true,
                ..written.clone()
            }),
        }
    }
}

/// What a writer appends after its SCHEMA record was applied (see [`State::settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settle {
    /// The record is what the state holds.
    Done,
    /// The slot holds something else: write that again, so the key ends with it.
    Restate(SchemaValue),
    /// The slot is empty: write this withdrawn proposal (then settle it in turn, in case a
    /// record of another instance filled the slot meanwhile).
    Withdraw(SchemaValue),
}

//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then Avro binary.
//!
//! Talking to the registry (fetch by id, register under a subject) goes through
//! `schema_registry_converter`'s async client, which works with Confluent Schema Registry, Karapace,
//! Apicurio and `bluelight registry` alike. The hot path does not: each schema id is fetched and
//! resolved once, then kept in a copy-on-write map behind an `ArcSwap`, so a decode or encode is
//! one atomic load and a hash lookup, with no lock and no schema parsing. Bodies are read with
//! apache-avro's schema-aware serde straight into the typed records, never through a `Value`
//! tree, and written by `fast.rs` in field order (a record is only ever written under its own
//! derived schema, so no field needs looking up).
//!
//! Decoding uses the *writer's* schema (the id in the payload) and lets serde match fields by name,
//! so records written with an older or newer compatible schema decode into today's types: fields
//! the type lacks are skipped, fields the writer lacked take their defaults.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use apache_avro::{Schema, reader::datum::GenericDatumReader};
use arc_swap::ArcSwap;
use schema_registry_converter::{
    async_impl::schema_registry::{SrSettings, get_schema_by_id, post_schema},
    error::SRCError,
    schema_registry_common::{SchemaType, SuppliedSchema},
};

use crate::{Error, Result, records::CanonicalRecord};

/// Largest body the decoder will allocate for one string, array or map: well above Kafka's default
/// 1 MiB message limit, far below what a corrupt length prefix could ask for.
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

const MAGIC: u8 = 0;
const HEADER_LEN: usize = 5;

/// Splits a Confluent wire-format payload into schema id and Avro body.
pub fn split_header(payload: &[u8]) -> Result<(u32, &[u8])> {
    match payload {
        [] => Err(Error::WireFormat(
            "the payload is empty (a tombstone?)".into(),
        )),
        [first, ..] if *first != MAGIC => Err(Error::WireFormat(format!(
            "first byte is {first:#04x}, expected the magic byte 0x00; was it written by a schema-registry serializer?"
        ))),
        _ if payload.len() < HEADER_LEN => Err(Error::WireFormat(format!(
            "{} bytes is too short for the 5-byte header (magic byte and schema id)",
            payload.len()
        ))),
        [_, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => Err(Error::WireFormat("unreachable header shape".into())),
    }
}

/// Appends the wire-format header for `id` to `out`.
pub fn write_header(id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
}

/// A schema fetched from the registry, resolved once. The schema is leaked on purpose: the reader
/// borrows it for the life of the process, the set of ids a service meets is bounded by the
/// registry, and an id's schema never changes.
struct Resolved {
    full_name: String,
    reader: GenericDatumReader<'static>,
    schema: &'static Schema,
    /// Whether the writer's schema is the reading type's own (the usual case), so the body
    /// can be read in field order (`fast::read`); decided on the first decode.
    own: std::sync::OnceLock<bool>,
}

/// The schema id a subject is written under; the schema is the record type's own.
struct Writer {
    id: u32,
}

/// Encodes and decodes canonical records in Confluent wire format.
pub struct Codec {
    url: String,
    registry: SrSettings,
    /// Schema id → resolved writer schema; readers never lock.
    by_id: ArcSwap<HashMap<u32, Arc<Resolved>>>,
    /// Subject → the id and writer this service encodes with.
    by_subject: ArcSwap<HashMap<String, Arc<Writer>>>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("registry", &self.url)
            .field("schemas", &self.by_id.load().len())
            .field(
                "subjects",
                &self.by_subject.load().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Codec {
    /// A codec that fetches schemas from the Confluent-compatible registry at `url`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self> {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let registry = SrSettings::new_builder(url.trim_end_matches('/').to_owned())
            .set_timeout(timeout)
            .build()
            .map_err(|e| Error::RegistryUnavailable {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Codec {
            url: url.to_owned(),
            registry,
            by_id: ArcSwap::from_pointee(HashMap::new()),
            by_subject: ArcSwap::from_pointee(HashMap::new()),
        })
    }

    /// Registers `T`'s schema under `subject` (or finds it, if already there) and keeps it for
    /// [`Codec::encode`]. Call once per subject at start-up, not per record.
    pub async fn register<T: CanonicalRecord>(&self, subject: &str) -> Result<u32> {
        let schema = T::get_schema();
        let text = serde_json::to_string(&schema).map_err(|e| Error::Encode {
            record: T::FILE,
            reason: e.to_string(),
        })?;
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, text);
        let registered = post_schema(&self.registry, subject.to_owned(), supplied)
            .await
            .map_err(|e| self.classify(e, None, subject))?;
        let writer = Arc::new(Writer { id: registered.id });
        self.by_subject.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(subject.to_owned(), writer.clone());
            map
        });
        tracing::debug!(subject, id = registered.id, "schema registered");
        Ok(registered.id)
    }

    /// Encodes `record` with the schema registered for `subject`. Synchronous and lock-free.
    pub fn encode<T: CanonicalRecord>(&self, subject: &str, record: &T) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        self.encode_into(subject, record, &mut out)?;
        Ok(out)
    }

    /// Like [`Codec::encode`], appending to a buffer the caller reuses.
    pub fn encode_into<T: CanonicalRecord>(
        &self,
        subject: &str,
        record: &T,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let subjects = self.by_subject.load();
        let writer = subjects.get(subject).ok_or_else(|| Error::NotRegistered {
            subject: subject.to_owned(),
        })?;
        let start = out.len();
        write_header(writer.id, out);
        fast::write(record, out).map_err(|e| {
            // Nothing half-written stays in a buffer the caller reuses.
            out.truncate(start);
            Error::Encode {
                record: T::FILE,
                reason: e.to_string(),
            }
        })
    }

    /// Appends `body`, an Avro datum already written for `subject`'s schema (e.g. by
    /// [`fast::write`]), behind the subject's wire-format header.
    pub fn frame_into(&self, subject: &str, body: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let id = self
            .schema_id(subject)
            .ok_or_else(|| Error::NotRegistered {
                subject: subject.to_owned(),
            })?;
        write_header(id, out);
        out.extend_from_slice(body);
        Ok(())
    }

    /// Decodes a wire-format payload into `T`, fetching the writer's schema on first sight of its id.
    pub async fn decode<T: CanonicalRecord>(&self, payload: &[u8]) -> Result<T> {
        let (id, _) = split_header(payload)?;
        if !self.by_id.load().contains_key(&id) {
            self.fetch(id).await?;
        }
        self.decode_cached(payload)
    }

    /// Decodes using only schemas already fetched; an unseen id is [`Error::UnknownSchemaId`].
    pub fn decode_cached<T: CanonicalRecord>(&self, payload: &[u8]) -> Result<T> {
        let (id, mut body) = split_header(payload)?;
        let by_id = self.by_id.load();
        let resolved = by_id.get(&id).ok_or(Error::UnknownSchemaId { id })?;
        let expected = T::FULL_NAME;
        if resolved.full_name != expected {
            return Err(Error::WrongSchema {
                id,
                found: resolved.full_name.clone(),
                expected,
            });
        }
        let own = *resolved
            .own
            .get_or_init(|| T::get_schema().canonical_form() == resolved.schema.canonical_form());
        if own {
            let (record, left) = fast::read::<T>(body).map_err(|e| Error::Malformed {
                id,
                reason: e.to_string(),
            })?;
            if !left.is_empty() {
                return Err(Error::Malformed {
                    id,
                    reason: format!("{} bytes left over after the record", left.len()),
                });
            }
            return Ok(record);
        }
        let record = resolved
            .reader
            .read_deser::<T>(&mut body)
            .map_err(|e| Error::Malformed {
                id,
                reason: e.to_string(),
            })?;
        if !body.is_empty() {
            return Err(Error::Malformed {
                id,
                reason: format!("{} bytes left over after the record", body.len()),
            });
        }
        Ok(record)
    }

    /// Fetches and resolves schema `id` once; concurrent callers may both fetch, the map keeps one.
    pub async fn fetch(&self, id: u32) -> Result<()> {
        let registered = get_schema_by_id(id, &self.registry)
            .await
            .map_err(|e| self.classify(e, Some(id), ""))?;
        let schema = Schema::parse_str(&registered.schema)
            .map_err(|e| Error::InvalidSchema(format!("schema id {id}: {e}")))?;
        let full_name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            other => format!("{other:?}"),
        };
        let schema: &'static Schema = Box::leak(Box::new(schema));
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(|e| Error::InvalidSchema(format!("schema id {id}: {e}")))?;
        let resolved = Arc::new(Resolved {
            full_name,
            reader,
            schema,
            own: std::sync::OnceLock::new(),
        });
        self.by_id.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(id).or_insert_with(|| resolved.clone());
            map
        });
        Ok(())
    }

    /// Uses `T`'s own schema as schema `id`, for decoding and for encoding `subject`, without asking
    /// a registry: for benchmarks, fuzzing and offline tools that already know the id.
    pub fn preload<T: CanonicalRecord>(&self, id: u32, subject: &str) -> Result<()> {
        let schema: &'static Schema = Box::leak(Box::new(T::get_schema()));
        let invalid = |e: apache_avro::Error| Error::InvalidSchema(format!("{}: {e}", T::FILE));
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(invalid)?;
        let resolved = Arc::new(Resolved {
            full_name: T::FULL_NAME.to_owned(),
            reader,
            schema,
            own: std::sync::OnceLock::from(true),
        });
        let writer = Arc::new(Writer { id });
        self.by_id.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(id, resolved.clone());
            map
        });
        self.by_subject.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(subject.to_owned(), writer.clone());
            map
        });
        Ok(())
    }

    /// The schema id this codec encodes `subject` with, once registered.
    pub fn schema_id(&self, subject: &str) -> Option<u32> {
        self.by_subject.load().get(subject).map(|w| w.id)
    }

    fn classify(&self, e: SRCError, id: Option<u32>, subject: &str) -> Error {
        let text = format!("{} {}", e.error, e.cause.as_deref().unwrap_or_default());
        // Only the registry's own "schema not found" (40403) means the id is unknown; a bare 404 is a
        // wrong URL or proxy, and 401/403/408/429 are the registry's side: none of those is the
        // record's fault, so none may send a good record to a dead-letter topic.
        let registry_side = [
            "status 401",
            "status 403",
            "status 404",
            "status 408",
            "status 429",
            "status 5",
        ];
        match id {
            Some(id) if text.contains("40403") => Error::UnknownSchemaId { id },
            _ if e.retriable
                || text.contains("error sending request")
                || registry_side.iter().any(|s| text.contains(s)) =>
            {
                Error::RegistryUnavailable {
                    url: self.url.clone(),
                    reason: text.trim().to_owned(),
                }
            }
            _ => Error::Refused {
                subject: subject.to_owned(),
                reason: text.trim().to_owned(),
            },
        }
    }
}

pub mod fast;

#[cfg(test)]
mod tests;

//! Pieces every adapter uses: deterministic envelopes and code mapping into canonical codes and enums.

use bluelight_avro::records::{Code, Envelope, EventType, Id, Timestamp};
use serde::de::DeserializeOwned;

use super::{Mappings, SourceContext, json::Problems};

/// Namespace of bluelight's derived event ids (UUID v5).
const EVENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c0f_4b1e_9d5a_4f0c_8e37_2b1a_9c4d_5e60);

/// An envelope whose event id is derived from the source and the record's exact bytes: a source
/// that sends the same record twice (a retry after a timeout) produces the same event id, so
/// consumers de-duplicate it instead of sharing it twice.
pub(crate) fn envelope(
    event_type: EventType,
    source: &SourceContext,
    occurred_at: Timestamp,
    recorded_at: Option<Timestamp>,
    raw: &str,
) -> Envelope {
    let name = [
        source.org.as_bytes(),
        b"\0",
        source.system.as_bytes(),
        b"\0",
        raw.as_bytes(),
    ]
    .concat();
    Envelope {
        event_id: Id(uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, &name)),
        recorded_at: recorded_at.unwrap_or(source.received_at),
        ..Envelope::new(event_type, &source.system, &source.org, occurred_at)
    }
}

/// Maps a source code through table `table`, recording a problem against `field` if unknown.
pub(crate) fn map_code(
    m: &Mappings,
    table: &str,
    field: &str,
    value: &str,
    p: &mut Problems,
) -> Option<Code> {
    p.check(field, m.table(table).map(value))
}

/// Maps a source code to a canonical enum symbol through table `table`.
pub(crate) fn enum_code<T: DeserializeOwned>(
    m: &Mappings,
    table: &str,
    field: &str,
    value: &str,
    p: &mut Problems,
) -> Option<T> {
    let code = map_code(m, table, field, value, p)?;
    match serde_json::from_value(serde_json::Value::String(code.code.clone())) {
        Ok(v) => Some(v),
        Err(_) => {
            p.add(
                field,
                format!(
                    "maps to {:?}, which the canonical standard does not know (fix {})",
                    code.code, m.file
                ),
            );
            None
        }
    }
}

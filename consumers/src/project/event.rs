//! One canonical event of any entity, typed, with the JSON view the policy works on.

use bluelight_avro::{
    Codec,
    records::{CanonicalRecord, CaseEvent, Envelope, IncidentEvent, VictimEvent},
};
use serde_json::Value;

use crate::policy::Entity;

// Held one at a time on the hot path; boxing the large variant would add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Incident(IncidentEvent),
    Case(CaseEvent),
    Victim(VictimEvent),
}

impl Event {
    pub fn entity(&self) -> Entity {
        match self {
            Event::Incident(_) => Entity::Incident,
            Event::Case(_) => Entity::Case,
            Event::Victim(_) => Entity::Victim,
        }
    }

    pub fn envelope(&self) -> &Envelope {
        match self {
            Event::Incident(r) => &r.envelope,
            Event::Case(r) => &r.envelope,
            Event::Victim(r) => &r.envelope,
        }
    }

    /// The incident, case or victim id: the record key.
    pub fn key(&self) -> &str {
        match self {
            Event::Incident(r) => r.key(),
            Event::Case(r) => r.key(),
            Event::Victim(r) => r.key(),
        }
    }

    pub fn to_json(&self) -> serde_json::Result<Value> {
        match self {
            Event::Incident(r) => serde_json::to_value(r),
            Event::Case(r) => serde_json::to_value(r),
            Event::Victim(r) => serde_json::to_value(r),
        }
    }

    pub fn from_json(entity: Entity, v: Value) -> serde_json::Result<Self> {
        Ok(match entity {
            Entity::Incident => Event::Incident(serde_json::from_value(v)?),
            Entity::Case => Event::Case(serde_json::from_value(v)?),
            Entity::Victim => Event::Victim(serde_json::from_value(v)?),
        })
    }

    /// Reads a canonical record in the Confluent wire format with schemas already cached.
    pub fn decode(codec: &Codec, entity: Entity, payload: &[u8]) -> bluelight_avro::Result<Self> {
        Ok(match entity {
            Entity::Incident => Event::Incident(codec.decode_cached(payload)?),
            Entity::Case => Event::Case(codec.decode_cached(payload)?),
            Entity::Victim => Event::Victim(codec.decode_cached(payload)?),
        })
    }

    /// Writes the record under `subject`, appending to `out`.
    pub fn encode_into(
        &self,
        codec: &Codec,
        subject: &str,
        out: &mut Vec<u8>,
    ) -> bluelight_avro::Result<()> {
        match self {
            Event::Incident(r) => codec.encode_into(subject, r, out),
            Event::Case(r) => codec.encode_into(subject, r, out),
            Event::Victim(r) => codec.encode_into(subject, r, out),
        }
    }
}

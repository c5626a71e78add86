//! The field paths of each canonical entity, read from its Avro schema: what a clause may name.
//!
//! A path names a field through records and lists alike, e.g. `location.postcode` or
//! `people.identity.surname` (every person's surname). Naming a record shares all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bluelight_avro::records::{CaseEvent, EventType, IncidentEvent, VictimEvent};
use serde_json::Value;

/// What a clause's records are.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    Incident,
    Case,
    Victim,
}

impl Entity {
    pub fn name(self) -> &'static str {
        match self {
            Entity::Incident => "incident",
            Entity::Case => "case",
            Entity::Victim => "victim",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "incident" => Some(Entity::Incident),
            "case" => Some(Entity::Case),
            "victim" => Some(Entity::Victim),
            _ => None,
        }
    }

    /// Every field path of the entity's record, records included.
    pub fn paths(self) -> BTreeSet<String> {
        self.fields().into_keys().collect()
    }

    /// Every field path with what the schema says of it.
    pub fn fields(self) -> BTreeMap<String, Field> {
        use apache_avro::AvroSchema as _;
        let schema = match self {
            Entity::Incident => IncidentEvent::get_schema(),
            Entity::Case => CaseEvent::get_schema(),
            Entity::Victim => VictimEvent::get_schema(),
        };
        let json = serde_json::to_value(&schema).unwrap_or_default();
        let mut named = HashMap::new();
        let mut out = BTreeMap::new();
        walk(&json, "", &mut named, &mut out);
        out
    }

    /// The field that keys the entity's records (and its feed records).
    pub fn key_field(self) -> &'static str {
        match self {
            Entity::Incident => "incident_id",
            Entity::Case => "case_id",
            Entity::Victim => "victim_ref",
        }
    }

    /// The event type a retraction notice on this entity's feeds carries.
    pub fn retracted(self) -> EventType {
        match self {
            Entity::Incident => EventType::IncidentRetracted,
            Entity::Case => EventType::CaseRetracted,
            Entity::Victim => EventType::VictimRetracted,
        }
    }

    /// The entity whose canonical topic carries events of this type.
    pub fn of(event_type: EventType) -> Option<Self> {
        match event_type.topic() {
            "bl.incident.v1" => Some(Entity::Incident),
            "bl.case.v1" => Some(Entity::Case),
            "bl.victim.v1" => Some(Entity::Victim),
            _ => None,
        }
    }
}

/// What the schema says of one field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field may be left out of a record (a union with null, or it has a default): a
    /// recipient can be denied it. A required field must be shared for its record to be shared.
    pub optional: bool,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Record,
    /// A list of records.
    RecordList,
    String,
    Other,
}

/// Collects paths; `named` remembers record definitions so later references by name expand too.
fn walk(
    t: &Value,
    prefix: &str,
    named: &mut HashMap<String, Value>,
    out: &mut BTreeMap<String, Field>,
) {
    match t {
        Value::Array(union) => union.iter().for_each(|v| walk(v, prefix, named, out)),
        Value::String(name) => {
            if let Some(def) = named.get(name.rsplit('.').next().unwrap_or(name)).cloned() {
                walk(&def, prefix, named, out);
            }
        }
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("record") => {
                if let Some(name) = o.get("name").and_then(Value::as_str) {
                    named.entry(name.to_owned()).or_insert_with(|| t.clone());
                }
                for f in o
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(name) = f.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let path = if prefix.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    let Some(ft) = f.get("type") else { continue };
                    let nullable = ft
                        .as_array()
                        .is_some_and(|u| u.iter().any(|v| v.as_str() == Some("null")));
                    out.insert(
                        path.clone(),
                        Field {
                            optional: nullable || f.get("default").is_some(),
                            kind: kind(ft, named),
                        },
                    );
                    walk(ft, &path, named, out);
                }
            }
            Some("array") => {
                if let Some(items) = o.get("items") {
                    walk(items, prefix, named, out);
                }
            }
            _ => {}
        },
        _ => {}
    }
}

fn kind(t: &Value, named: &HashMap<String, Value>) -> Kind {
    match t {
        Value::Array(union) => union
            .iter()
            .find(|v| v.as_str() != Some("null"))
            .map_or(Kind::Other, |v| kind(v, named)),
        Value::String(s) if s == "string" => Kind::String,
        Value::String(name) => match named.get(name.rsplit('.').next().unwrap_or(name)) {
            Some(def) => kind(def, named),
            None => Kind::Other,
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("record") => Kind::Record,
            Some("array") => match o.get("items").map(|i| kind(i, named)) {
                Some(Kind::Record) => Kind::RecordList,
                _ => Kind::Other,
            },
            // A logical type (uuid, timestamp-millis, date) annotates its base type.
            Some("string") if o.get("logicalType").is_none() => Kind::String,
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_through_records_lists_and_named_types() {
        let incident = Entity::Incident.paths();
        for p in [
            "incident_id",
            "location.postcode",
            "people.identity.surname",
            "people.role",
            "envelope.marking.classification",
            "methane.casualties.serious",
            "resources.callsign",
        ] {
            assert!(incident.contains(p), "{p}");
        }
        assert!(!incident.contains("people.identity.shoe_size"));
        let fields = Entity::Incident.fields();
        let f = |p: &str| fields[p];
        assert_eq!(f("people").kind, Kind::RecordList);
        assert!(!f("people.person_ref").optional && f("people.person_ref").kind == Kind::String);
        assert!(f("people.identity").optional && f("people.identity").kind == Kind::Record);
        assert!(f("summary").optional && f("summary").kind == Kind::String);
        assert_eq!(
            f("envelope.event_id").kind,
            Kind::Other,
            "a UUID is not free text"
        );
        assert!(
            f("hazards").optional,
            "a list with a default can be left empty"
        );
        let case = Entity::Case.paths();
        assert!(
            case.contains("victims.contact.opted_out")
                && case.contains("hearing.court")
                && case.contains("suspects.identity.surname")
        );
    }
}

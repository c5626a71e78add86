//! The field paths of each canonical entity, read from its Avro schema: what a clause may name.
//!
//! A path names a field through records and lists alike, e.g. `location.postcode` or
//! `people.identity.surname` (every person's surname). Naming a record shares all of it.

use std::collections::BTreeSet;

use bluelight_avro::records::{CaseEvent, IncidentEvent, VictimEvent};
use serde_json::Value;

/// What a clause's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
        use apache_avro::AvroSchema as _;
        let schema = match self {
            Entity::Incident => IncidentEvent::get_schema(),
            Entity::Case => CaseEvent::get_schema(),
            Entity::Victim => VictimEvent::get_schema(),
        };
        let json = serde_json::to_value(&schema).unwrap_or_default();
        let mut named = std::collections::HashMap::new();
        let mut out = BTreeSet::new();
        walk(&json, "", &mut named, &mut out);
        out
    }
}

/// Collects paths; `named` remembers record definitions so later references by name expand too.
fn walk(
    t: &Value,
    prefix: &str,
    named: &mut std::collections::HashMap<String, Value>,
    out: &mut BTreeSet<String>,
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
                    out.insert(path.clone());
                    if let Some(ft) = f.get("type") {
                        walk(ft, &path, named, out);
                    }
                }
            }
            Some("array") => {
                if let Some(items) = o.get("items") {
                    walk(items, prefix, named, out);
                }
            }
            Some("map") => {}
            _ => {}
        },
        _ => {}
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
        let case = Entity::Case.paths();
        assert!(
            case.contains("victims.contact.opted_out")
                && case.contains("hearing.court")
                && case.contains("suspects.identity.surname")
        );
    }
}

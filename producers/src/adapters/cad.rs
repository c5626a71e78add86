//! Command and control (CAD) incidents as JSON: open, update, resource, close.
//!
//! The format is documented in `producers/README.md`; codes are mapped by `mappings/cad.toml`.

use bluelight_avro::records::{
    AgencyKind, CasualtyCounts, Classification, EventType, IncidentEvent, IncidentStatus,
    LocalReference, Location, PersonIdentity, PersonLink, PersonRole, Priority, Resource,
    ResourceStatus, Vulnerability,
};
use serde_json::Value;

use super::{
    Adapter, Canonical, Mappings, SourceContext, Translation,
    common::{enum_code, envelope, map_code},
    json::{self, Obj, Problems},
};
use crate::{Result, validate};

#[cfg(test)]
mod tests;

const TABLES: [&str; 8] = [
    "incident_type",
    "grade",
    "hazard",
    "agency",
    "unit_status",
    "role",
    "flag",
    "closure",
];

/// The CAD JSON adapter.
#[derive(Debug)]
pub struct Cad {
    mappings: Mappings,
}

impl Cad {
    /// With the mapping tables shipped in `producers/mappings/cad.toml`.
    pub fn new() -> Result<Self> {
        Self::with_mappings(Mappings::parse(
            include_str!("../../mappings/cad.toml"),
            "producers/mappings/cad.toml",
        )?)
    }

    pub fn with_mappings(mappings: Mappings) -> Result<Self> {
        Ok(Cad {
            mappings: mappings.require(&TABLES)?,
        })
    }

    fn incident(
        &self,
        o: Obj<'_>,
        raw: &str,
        source: &SourceContext,
        p: &mut Problems,
    ) -> Option<IncidentEvent> {
        let m = &self.mappings;
        let action = o.req_str("action", p);
        let (event_type, default_status) = match action.map(str::to_ascii_lowercase).as_deref() {
            Some("open") => (Some(EventType::IncidentOpened), IncidentStatus::Open),
            Some("update") => (Some(EventType::IncidentUpdated), IncidentStatus::Open),
            Some("resource") => (
                Some(EventType::IncidentResourced),
                IncidentStatus::Resourced,
            ),
            Some("close") => (Some(EventType::IncidentClosed), IncidentStatus::Closed),
            Some(other) => {
                p.add(
                    "action",
                    format!("{other:?} is not one of open, update, resource, close"),
                );
                (None, IncidentStatus::Open)
            }
            None => (None, IncidentStatus::Open),
        };
        let incident_id = o
            .req_str("incident_id", p)
            .and_then(|v| p.check("incident_id", validate::reference(v)));
        let log_number = o
            .req_str("log_number", p)
            .and_then(|v| p.check("log_number", validate::reference(v)));
        let occurred_at = o
            .req_str("occurred_at", p)
            .and_then(|v| p.check("occurred_at", validate::timestamp(v)));
        let recorded_at = o
            .opt_str("recorded_at", p)
            .and_then(|v| p.check("recorded_at", validate::timestamp(v)));
        let incident_type = o
            .req_str("type", p)
            .and_then(|v| map_code(m, "incident_type", "type", v, p));
        let priority = o
            .opt_str("grade", p)
            .and_then(|v| enum_code::<Priority>(m, "grade", "grade", v, p));
        let classification = match o.opt_str("classification", p) {
            None => Some(Classification::Official),
            Some(v) => p.check("classification", validate::classification(v)),
        };
        let location = self.location(o, p);
        if event_type == Some(EventType::IncidentOpened) && location.is_none() {
            p.add("location", "is required when an incident is opened");
        }
        let hazards = o
            .str_list("hazards", p)
            .into_iter()
            .filter_map(|h| map_code(m, "hazard", "hazards", h, p))
            .collect();
        let agencies_requested = o
            .str_list("agencies_requested", p)
            .into_iter()
            .filter_map(|a| enum_code::<AgencyKind>(m, "agency", "agencies_requested", a, p))
            .collect();
        let casualties_path = o.field("casualties");
        let casualties = o.opt_obj("casualties", &casualties_path, p).map(|c| {
            let mut n = |key: &str| {
                c.opt_i64(key, p)
                    .and_then(|v| p.check(&c.field(key), validate::count(v)))
            };
            CasualtyCounts {
                fatalities: n("fatal"),
                serious: n("serious"),
                minor: n("minor"),
                uninjured: n("uninjured"),
            }
        });
        let resources = self.units(o, p);
        let people = self.persons(o, p);
        let closure = o
            .opt_str("closure_code", p)
            .and_then(|v| map_code(m, "closure", "closure_code", v, p));
        if event_type == Some(EventType::IncidentClosed)
            && closure.is_none()
            && !p.0.iter().any(|x| x.field == "closure_code")
        {
            p.add("closure_code", "is required when an incident is closed");
        }
        let caveats = o
            .str_list("caveats", p)
            .into_iter()
            .map(str::to_owned)
            .collect();

        let (event_type, incident_id, log_number, occurred_at, incident_type, classification) = (
            event_type?,
            incident_id?,
            log_number?,
            occurred_at?,
            incident_type?,
            classification?,
        );
        if !p.0.is_empty() {
            return None;
        }
        let mut env = envelope(event_type, source, occurred_at, recorded_at, raw);
        env.marking.classification = classification;
        env.marking.caveats = caveats;
        Some(IncidentEvent {
            local_references: vec![LocalReference {
                org: source.org.clone(),
                reference: log_number,
            }],
            priority,
            location,
            hazards,
            casualties,
            agencies_requested,
            resources,
            people,
            summary: o.opt_str("narrative", p).map(str::to_owned),
            closure,
            context: None,
            ..IncidentEvent::new(env, &incident_id, incident_type, default_status)
        })
    }

    fn location(&self, o: Obj<'_>, p: &mut Problems) -> Option<Location> {
        let path = o.field("location");
        let l = o.opt_obj("location", &path, p)?;
        let f = |k: &str| l.field(k);
        let loc = Location {
            uprn: l
                .opt_str("uprn", p)
                .and_then(|v| p.check(&f("uprn"), validate::uprn(v))),
            address: l.opt_str("address", p).map(str::to_owned),
            postcode: l
                .opt_str("postcode", p)
                .and_then(|v| p.check(&f("postcode"), validate::postcode(v))),
            easting: l
                .opt_i64("easting", p)
                .and_then(|v| p.check(&f("easting"), validate::easting(v))),
            northing: l
                .opt_i64("northing", p)
                .and_then(|v| p.check(&f("northing"), validate::northing(v))),
            latitude: l
                .opt_f64("lat", p)
                .and_then(|v| p.check(&f("lat"), validate::latitude(v))),
            longitude: l
                .opt_f64("lon", p)
                .and_then(|v| p.check(&f("lon"), validate::longitude(v))),
            description: l.opt_str("description", p).map(str::to_owned),
        };
        let given = |k: &str| l.map.get(k).is_some_and(|v| !v.is_null());
        if given("lat") != given("lon") {
            p.add(
                path.clone(),
                "has only one of lat and lon; give both or neither",
            );
        }
        if given("easting") != given("northing") {
            p.add(
                path.clone(),
                "has only one of easting and northing; give both or neither",
            );
        }
        if loc == Location::default() && !p.0.iter().any(|x| x.field.starts_with(&path)) {
            p.add(
                path,
                "says nothing; give a uprn, postcode, coordinates or a description",
            );
        }
        Some(loc)
    }

    fn units(&self, o: Obj<'_>, p: &mut Problems) -> Vec<Resource> {
        let mut out = Vec::new();
        for (i, v) in o.list("units", p).iter().enumerate() {
            let path = format!("{}[{i}]", o.field("units"));
            let Value::Object(map) = v else {
                p.add(path, "must be an object");
                continue;
            };
            let u = Obj { map, path: &path };
            let callsign = u
                .req_str("callsign", p)
                .and_then(|v| p.check(&u.field("callsign"), validate::reference(v)));
            let org = u.req_str("org", p).map(str::to_owned);
            let agency = u.req_str("agency", p).and_then(|v| {
                enum_code::<AgencyKind>(&self.mappings, "agency", &u.field("agency"), v, p)
            });
            let status = u.req_str("status", p).and_then(|v| {
                enum_code::<ResourceStatus>(&self.mappings, "unit_status", &u.field("status"), v, p)
            });
            let status_at = u
                .opt_str("at", p)
                .and_then(|v| p.check(&u.field("at"), validate::timestamp(v)));
            if let (Some(callsign), Some(org), Some(agency), Some(status)) =
                (callsign, org, agency, status)
            {
                out.push(Resource {
                    org,
                    agency,
                    callsign,
                    status,
                    status_at,
                });
            }
        }
        out
    }

    fn persons(&self, o: Obj<'_>, p: &mut Problems) -> Vec<PersonLink> {
        let mut out = Vec::new();
        for (i, v) in o.list("persons", p).iter().enumerate() {
            let path = format!("{}[{i}]", o.field("persons"));
            let Value::Object(map) = v else {
                p.add(path, "must be an object");
                continue;
            };
            let s = Obj { map, path: &path };
            let person_ref = s
                .req_str("ref", p)
                .and_then(|v| p.check(&s.field("ref"), validate::reference(v)));
            let role = s.req_str("role", p).and_then(|v| {
                enum_code::<PersonRole>(&self.mappings, "role", &s.field("role"), v, p)
            });
            let vulnerabilities = s
                .str_list("flags", p)
                .into_iter()
                .filter_map(|f| {
                    enum_code::<Vulnerability>(&self.mappings, "flag", &s.field("flags"), f, p)
                })
                .collect();
            let identity = PersonIdentity {
                forenames: s.opt_str("forenames", p).map(str::to_owned),
                surname: s.opt_str("surname", p).map(str::to_owned),
                date_of_birth: s
                    .opt_str("dob", p)
                    .and_then(|v| p.check(&s.field("dob"), validate::date(v))),
                age_band: None,
                gender: None,
                phone: s.opt_str("phone", p).map(str::to_owned),
                address: None,
            };
            if let (Some(person_ref), Some(role)) = (person_ref, role) {
                let subject_category = role.subject_category();
                let identity = (identity != PersonIdentity::default()).then_some(identity);
                out.push(PersonLink {
                    person_ref,
                    role,
                    subject_category,
                    vulnerabilities,
                    identity,
                });
            }
        }
        out
    }
}

impl Adapter for Cad {
    fn name(&self) -> &'static str {
        "cad"
    }

    fn content_types(&self) -> &'static [&'static str] {
        &["application/json"]
    }

    fn translate(&self, input: &[u8], source: &SourceContext) -> Translation {
        json::translate(self.name(), input, "events", |o, raw, p| {
            self.incident(o, raw, source, p)
                .map(|r| Canonical::Incident(Box::new(r)))
        })
    }
}

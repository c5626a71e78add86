//! MAIT-style XML incident transfers: one `<MAITMessage>` from a control room (directly or through
//! a MAIT hub) carrying one or more `<Incident>` elements, each of which becomes one canonical
//! incident event.
//!
//! The element design and how it maps to the canonical standard is documented in
//! `producers/MAIT.md`; codes are mapped by `mappings/mait.toml`. Parsing never reads a DTD or
//! expands an entity (see [`super::xml`]).

use bluelight_avro::records::{
    AgencyKind, CasualtyCounts, Classification, EventType, IncidentEvent, IncidentStatus,
    LocalReference, Location, Methane, PersonIdentity, PersonLink, PersonRole, Priority,
    SubjectCategory, Timestamp, Vulnerability,
};

use super::{
    Adapter, Canonical, Locator, Mappings, Rejected, SourceContext, Translated, Translation,
    common::{enum_code, envelope, map_code},
    json::Problems,
    xml::{self, El},
};
use crate::{Result, validate};

#[cfg(test)]
mod tests;

const TABLES: [&str; 10] = [
    "message_type",
    "incident_type",
    "priority",
    "status",
    "hazard",
    "agency",
    "role",
    "subject_category",
    "vulnerability",
    "closure",
];

/// The elements each container may hold. Anything else is refused, so a misspelt element is
/// reported rather than silently dropped; `<Extensions>` holds whatever a sender adds of its own.
const MESSAGE: [&str; 3] = ["Header", "Incident", "Extensions"];
const HEADER: [&str; 5] = [
    "MessageID",
    "MessageType",
    "SentAt",
    "SenderOrganisation",
    "Recipients",
];
const INCIDENT: [&str; 17] = [
    "IncidentID",
    "LocalReference",
    "IncidentType",
    "Priority",
    "Status",
    "OccurredAt",
    "RecordedAt",
    "ProtectiveMarking",
    "Location",
    "METHANE",
    "Hazards",
    "Casualties",
    "AgenciesRequested",
    "Persons",
    "Narrative",
    "ClosureCode",
    "Extensions",
];
const MARKING: [&str; 2] = ["Classification", "Caveat"];
const LOCATION: [&str; 8] = [
    "UPRN",
    "AddressLine",
    "Postcode",
    "Easting",
    "Northing",
    "Latitude",
    "Longitude",
    "Description",
];
const METHANE: [&str; 9] = [
    "MajorIncidentDeclared",
    "ExactLocation",
    "IncidentType",
    "Hazards",
    "Access",
    "Casualties",
    "EmergencyServicesPresent",
    "EmergencyServicesRequired",
    "ReportedAt",
];
const CASUALTIES: [&str; 4] = ["Fatal", "Serious", "Minor", "Uninjured"];
const PERSON: [&str; 8] = [
    "PersonRef",
    "Role",
    "SubjectCategory",
    "Vulnerabilities",
    "Forenames",
    "Surname",
    "DateOfBirth",
    "Phone",
];

/// The event types a MAIT message type may map to.
const INCIDENT_EVENTS: [EventType; 4] = [
    EventType::IncidentOpened,
    EventType::IncidentUpdated,
    EventType::IncidentResourced,
    EventType::IncidentClosed,
];

/// The MAIT-style XML adapter.
#[derive(Debug)]
pub struct Mait {
    mappings: Mappings,
}

/// What the message header says about every incident in the message.
struct Header<'a> {
    event_type: EventType,
    /// The message type as the sender wrote it, for messages.
    message_type: &'a str,
    /// The sending organisation, which owns the incidents' local references.
    sender: String,
    sent_at: Timestamp,
    /// The header element's exact bytes: part of every event id, so the same incident bytes in
    /// a NEW and in an UPDATE message are different events, and a resent message is the same.
    raw: &'a str,
}

/// The canonical symbol of an enum value, e.g. `INCIDENT_OPENED`.
fn symbol<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl Mait {
    /// With the mapping tables shipped in `producers/mappings/mait.toml`.
    pub fn new() -> Result<Self> {
        Self::with_mappings(Mappings::parse(
            include_str!("../../mappings/mait.toml"),
            "producers/mappings/mait.toml",
        )?)
    }

    pub fn with_mappings(mappings: Mappings) -> Result<Self> {
        Ok(Mait {
            mappings: mappings.require(&TABLES)?,
        })
    }

    fn header<'a>(&self, message: &El<'a>, text: &'a str, p: &mut Problems) -> Option<Header<'a>> {
        let m = &self.mappings;
        let Some(h) = message.child("Header", p) else {
            p.add("Header", "is required");
            return None;
        };
        h.known(&HEADER, p);
        let message_id = h
            .req_text("MessageID", p)
            .and_then(|v| p.check(&h.field("MessageID"), validate::reference(v)));
        let message_type = h.req_text("MessageType", p);
        let event_type = message_type.and_then(|v| {
            let field = h.field("MessageType");
            let t = enum_code::<EventType>(m, "message_type", &field, v, p)?;
            if INCIDENT_EVENTS.contains(&t) {
                Some(t)
            } else {
                p.add(
                    field,
                    format!(
                        "maps to {:?}, which is not an incident event (fix {})",
                        symbol(&t),
                        m.file
                    ),
                );
                None
            }
        });
        let sent_at = h
            .req_text("SentAt", p)
            .and_then(|v| p.check(&h.field("SentAt"), validate::timestamp(v)));
        let sender = h
            .req_text("SenderOrganisation", p)
            .and_then(|v| p.check(&h.field("SenderOrganisation"), validate::reference(v)));
        for (field, org) in h.texts("Recipients", "Organisation", p) {
            p.check(&field, validate::reference(org));
        }
        message_id?;
        Some(Header {
            event_type: event_type?,
            message_type: message_type?,
            sender: sender?,
            sent_at: sent_at?,
            raw: text.get(h.el.span.clone()).unwrap_or_default(),
        })
    }

    fn incident(
        &self,
        x: &El<'_>,
        h: &Header<'_>,
        raw: &str,
        source: &SourceContext,
        p: &mut Problems,
    ) -> Option<IncidentEvent> {
        let m = &self.mappings;
        x.known(&INCIDENT, p);
        let incident_id = x
            .req_text("IncidentID", p)
            .and_then(|v| p.check("IncidentID", validate::reference(v)));
        let local_reference = x
            .req_text("LocalReference", p)
            .and_then(|v| p.check("LocalReference", validate::reference(v)));
        let incident_type = x
            .req_text("IncidentType", p)
            .and_then(|v| map_code(m, "incident_type", "IncidentType", v, p));
        let priority = x
            .text("Priority", p)
            .and_then(|v| enum_code::<Priority>(m, "priority", "Priority", v, p));
        let status = self.status(x, h, p);
        let occurred_at = x
            .req_text("OccurredAt", p)
            .and_then(|v| p.check("OccurredAt", validate::timestamp(v)));
        // When the sender does not say when it recorded the incident, its message time does.
        let recorded_at = x
            .text("RecordedAt", p)
            .and_then(|v| p.check("RecordedAt", validate::timestamp(v)))
            .unwrap_or(h.sent_at);
        let (classification, caveats) = marking(x, p);
        let location = location(x, p);
        if h.event_type == EventType::IncidentOpened
            && location.is_none()
            && !p.0.iter().any(|x| x.field == "Location")
        {
            p.add("Location", "is required when an incident is opened");
        }
        let methane = self.methane(x, p);
        let hazards = x
            .texts("Hazards", "Hazard", p)
            .into_iter()
            .filter_map(|(f, v)| map_code(m, "hazard", &f, v, p))
            .collect();
        let casualties = casualties(x, p);
        let agencies_requested = self.agencies(x, "AgenciesRequested", p);
        let people = self.persons(x, p);
        let summary = x.text("Narrative", p).map(str::to_owned);
        let closure = x
            .text("ClosureCode", p)
            .and_then(|v| map_code(m, "closure", "ClosureCode", v, p));
        if h.event_type == EventType::IncidentClosed
            && closure.is_none()
            && !p.0.iter().any(|x| x.field == "ClosureCode")
        {
            p.add("ClosureCode", "is required when an incident is closed");
        }

        let (incident_id, local_reference, incident_type, status, occurred_at, classification) = (
            incident_id?,
            local_reference?,
            incident_type?,
            status?,
            occurred_at?,
            classification?,
        );
        if !p.0.is_empty() {
            return None;
        }
        let mut env = envelope(h.event_type, source, occurred_at, Some(recorded_at), raw);
        env.marking.classification = classification;
        env.marking.caveats = caveats;
        Some(IncidentEvent {
            local_references: vec![LocalReference {
                org: h.sender.clone(),
                reference: local_reference,
            }],
            priority,
            location,
            methane,
            hazards,
            casualties,
            agencies_requested,
            people,
            summary,
            closure,
            context: None,
            ..IncidentEvent::new(env, &incident_id, incident_type, status)
        })
    }

    /// The status after this event: as given, or what the message type implies; a given status
    /// must agree with whether the message closes the incident.
    fn status(&self, x: &El<'_>, h: &Header<'_>, p: &mut Problems) -> Option<IncidentStatus> {
        let implied = match h.event_type {
            EventType::IncidentResourced => IncidentStatus::Resourced,
            EventType::IncidentClosed => IncidentStatus::Closed,
            _ => IncidentStatus::Open,
        };
        let Some(v) = x.text("Status", p) else {
            return Some(implied);
        };
        let status = enum_code::<IncidentStatus>(&self.mappings, "status", "Status", v, p)?;
        let closing = h.event_type == EventType::IncidentClosed;
        if closing && status != IncidentStatus::Closed {
            p.add(
                "Status",
                format!(
                    "{v:?} does not close the incident but the message type is {}",
                    h.message_type
                ),
            );
        } else if !closing && status == IncidentStatus::Closed {
            p.add(
                "Status",
                format!(
                    "{v:?} closes the incident but the message type is {}",
                    h.message_type
                ),
            );
        }
        Some(status)
    }

    fn agencies(&self, x: &El<'_>, list: &str, p: &mut Problems) -> Vec<AgencyKind> {
        x.texts(list, "Agency", p)
            .into_iter()
            .filter_map(|(f, v)| enum_code::<AgencyKind>(&self.mappings, "agency", &f, v, p))
            .collect()
    }

    fn methane(&self, x: &El<'_>, p: &mut Problems) -> Option<Methane> {
        let e = x.child("METHANE", p)?;
        e.known(&METHANE, p);
        let declared_field = e.field("MajorIncidentDeclared");
        let major_incident_declared = e
            .req_text("MajorIncidentDeclared", p)
            .and_then(|v| xml::boolean(&declared_field, v, p));
        let words = |name: &str, p: &mut Problems| e.text(name, p).map(str::to_owned);
        let methane = Methane {
            major_incident_declared: false,
            exact_location: words("ExactLocation", p),
            incident_type: words("IncidentType", p),
            hazards: words("Hazards", p),
            access: words("Access", p),
            casualties: casualties(&e, p),
            services_present: self.agencies(&e, "EmergencyServicesPresent", p),
            services_required: self.agencies(&e, "EmergencyServicesRequired", p),
            reported_at: e
                .text("ReportedAt", p)
                .and_then(|v| p.check(&e.field("ReportedAt"), validate::timestamp(v))),
        };
        Some(Methane {
            major_incident_declared: major_incident_declared?,
            ..methane
        })
    }

    fn persons(&self, x: &El<'_>, p: &mut Problems) -> Vec<PersonLink> {
        let m = &self.mappings;
        let Some(list) = x.child("Persons", p) else {
            return Vec::new();
        };
        list.known(&["Person"], p);
        let mut out = Vec::new();
        for s in list.each("Person") {
            s.known(&PERSON, p);
            let person_ref = s
                .req_text("PersonRef", p)
                .and_then(|v| p.check(&s.field("PersonRef"), validate::reference(v)));
            let role = s
                .req_text("Role", p)
                .and_then(|v| enum_code::<PersonRole>(m, "role", &s.field("Role"), v, p));
            let category = s.text("SubjectCategory", p).and_then(|v| {
                enum_code::<SubjectCategory>(
                    m,
                    "subject_category",
                    &s.field("SubjectCategory"),
                    v,
                    p,
                )
            });
            let vulnerabilities = s
                .texts("Vulnerabilities", "Vulnerability", p)
                .into_iter()
                .filter_map(|(f, v)| enum_code::<Vulnerability>(m, "vulnerability", &f, v, p))
                .collect();
            let identity = PersonIdentity {
                forenames: s.text("Forenames", p).map(str::to_owned),
                surname: s.text("Surname", p).map(str::to_owned),
                date_of_birth: s
                    .text("DateOfBirth", p)
                    .and_then(|v| p.check(&s.field("DateOfBirth"), validate::date(v))),
                age_band: None,
                gender: None,
                phone: s.text("Phone", p).map(str::to_owned),
                address: None,
            };
            if let (Some(person_ref), Some(role)) = (person_ref, role) {
                // DPA 2018 Part 3 category: as the sender says, or what the role implies.
                let subject_category = category.unwrap_or(role.subject_category());
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

/// The protective marking: OFFICIAL unless the sender marks it; nothing above OFFICIAL-SENSITIVE
/// is carried.
fn marking(x: &El<'_>, p: &mut Problems) -> (Option<Classification>, Vec<String>) {
    let Some(pm) = x.child("ProtectiveMarking", p) else {
        return (Some(Classification::Official), Vec::new());
    };
    pm.known(&MARKING, p);
    let classification = pm
        .req_text("Classification", p)
        .and_then(|v| p.check(&pm.field("Classification"), validate::classification(v)));
    let mut caveats = Vec::new();
    for c in pm.each("Caveat") {
        match c.own_text(p) {
            Some(t) => caveats.push(t.to_owned()),
            None if c.el.children.is_empty() => p.add(c.path, "is empty"),
            None => {}
        }
    }
    (classification, caveats)
}

fn location(x: &El<'_>, p: &mut Problems) -> Option<Location> {
    let l = x.child("Location", p)?;
    l.known(&LOCATION, p);
    let f = |k: &str| l.field(k);
    let lines: Vec<&str> = l
        .each("AddressLine")
        .iter()
        .filter_map(|a| a.own_text(p))
        .collect();
    let loc = Location {
        uprn: l
            .text("UPRN", p)
            .and_then(|v| p.check(&f("UPRN"), validate::uprn(v))),
        address: (!lines.is_empty()).then(|| lines.join(", ")),
        postcode: l
            .text("Postcode", p)
            .and_then(|v| p.check(&f("Postcode"), validate::postcode(v))),
        easting: l
            .int("Easting", p)
            .and_then(|(f, v)| p.check(&f, validate::easting(v))),
        northing: l
            .int("Northing", p)
            .and_then(|(f, v)| p.check(&f, validate::northing(v))),
        latitude: l
            .num("Latitude", p)
            .and_then(|(f, v)| p.check(&f, validate::latitude(v))),
        longitude: l
            .num("Longitude", p)
            .and_then(|(f, v)| p.check(&f, validate::longitude(v))),
        description: l.text("Description", p).map(str::to_owned),
    };
    if l.given("Latitude") != l.given("Longitude") {
        p.add(
            l.path.clone(),
            "has only one of Latitude and Longitude; give both or neither",
        );
    }
    if l.given("Easting") != l.given("Northing") {
        p.add(
            l.path.clone(),
            "has only one of Easting and Northing; give both or neither",
        );
    }
    let prefix = format!("{}/", l.path);
    if loc == Location::default()
        && !p
            .0
            .iter()
            .any(|x| x.field == l.path || x.field.starts_with(&prefix))
    {
        p.add(
            l.path.clone(),
            "says nothing; give a UPRN, postcode, coordinates or a description",
        );
    }
    Some(loc)
}

fn casualties(x: &El<'_>, p: &mut Problems) -> Option<CasualtyCounts> {
    let c = x.child("Casualties", p)?;
    c.known(&CASUALTIES, p);
    let mut n = |k: &str| {
        c.int(k, p)
            .and_then(|(f, v)| p.check(&f, validate::count(v)))
    };
    Some(CasualtyCounts {
        fatalities: n("Fatal"),
        serious: n("Serious"),
        minor: n("Minor"),
        uninjured: n("Uninjured"),
    })
}

impl Adapter for Mait {
    fn name(&self) -> &'static str {
        "mait"
    }

    fn content_types(&self) -> &'static [&'static str] {
        &["application/xml", "text/xml"]
    }

    fn translate(&self, input: &[u8], source: &SourceContext) -> Translation {
        let mut out = Translation::default();
        let whole = |problems| Rejected {
            adapter: self.name(),
            locator: Locator::Document,
            problems,
            span: 0..input.len(),
            context: None,
        };
        let root = match xml::parse(input) {
            Ok(root) => root,
            Err(problem) => {
                out.rejected.push(whole(vec![problem]));
                return out;
            }
        };
        // `parse` accepted it, so it is UTF-8.
        let text = std::str::from_utf8(input).unwrap_or_default();
        let mut p = Problems::default();
        if root.name != "MAITMessage" {
            p.add(
                "(document)",
                format!(
                    "has the root element <{}>; a MAIT message is a <MAITMessage>",
                    root.name
                ),
            );
            out.rejected.push(whole(p.0));
            return out;
        }
        // Problems with the message as a whole (its header) reject every incident in it: the
        // dead letter keeps the whole document, header included, so it can be replayed.
        let message = El::root(&root);
        message.known(&MESSAGE, &mut p);
        let header = self.header(&message, text, &mut p);
        let incidents = message.each("Incident");
        if incidents.is_empty() {
            p.add(
                "Incident",
                "is required: a message carries one or more incidents",
            );
        }
        let header = match header {
            Some(h) if p.0.is_empty() => h,
            _ => {
                out.rejected.push(whole(p.0));
                return out;
            }
        };
        for (i, incident) in incidents.iter().enumerate() {
            let locator = Locator::XmlPath(format!("/MAITMessage/Incident[{}]", i + 1));
            let span = incident.el.span.clone();
            let raw = format!(
                "{}\n{}",
                header.raw,
                text.get(span.clone()).unwrap_or_default()
            );
            let mut p = Problems::default();
            match self.incident(&El::root(incident.el), &header, &raw, source, &mut p) {
                Some(record) if p.0.is_empty() => out.accepted.push(Translated {
                    record: Canonical::Incident(Box::new(record)),
                    locator,
                    span,
                }),
                _ => out.rejected.push(Rejected {
                    adapter: self.name(),
                    locator,
                    problems: p.0,
                    span,
                    context: Some(header.raw.to_owned()),
                }),
            }
        }
        out
    }
}

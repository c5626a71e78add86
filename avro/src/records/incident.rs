//! Incidents from command and control (CAD) and MAIT transfers: `bl.incident.v1`.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::{
    common::{AgencyKind, Code, Envelope, Location, PersonLink, Timestamp},
    context::ContextBlock,
};

/// Call grading: how fast the response must be.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum Priority {
    // Grade 1 / Category 1: risk to life, attend now.
    Immediate,
    // Grade 2: attend within the hour.
    Priority,
    // Grade 3: a planned response.
    Scheduled,
    // Grade 4: resolved without deployment (by phone, referral).
    ResolutionWithoutDeployment,
}

/// Where an incident stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum IncidentStatus {
    Open,
    Resourced,
    OnScene,
    Closed,
    Retracted,
}

/// Counts of people harmed, as known at the time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct CasualtyCounts {
    /// People who have died.
    pub fatalities: Option<i32>,
    /// Casualties needing hospital treatment.
    pub serious: Option<i32>,
    /// Casualties treated at scene or walking wounded.
    pub minor: Option<i32>,
    /// People affected but unhurt (e.g. evacuated).
    pub uninjured: Option<i32>,
}

/// The JESIP M/ETHANE message: the structured report for a major or complex incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Methane {
    /// M: has a major incident been declared?
    pub major_incident_declared: bool,
    /// E: exact location, in words the responders use.
    pub exact_location: Option<String>,
    /// T: type of incident.
    pub incident_type: Option<String>,
    /// H: hazards present or suspected.
    pub hazards: Option<String>,
    /// A: access routes and rendezvous points.
    pub access: Option<String>,
    /// N: number and severity of casualties.
    pub casualties: Option<CasualtyCounts>,
    /// E: emergency services present.
    #[serde(default)]
    #[avro(default = "[]")]
    pub services_present: Vec<AgencyKind>,
    /// E: emergency services required.
    #[serde(default)]
    #[avro(default = "[]")]
    pub services_required: Vec<AgencyKind>,
    /// When the report was made.
    pub reported_at: Option<Timestamp>,
}

/// An agency's own reference for the same incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct LocalReference {
    /// Organisation code, e.g. "avon-fire".
    pub org: String,
    /// That organisation's reference, e.g. its CAD log number.
    pub reference: String,
}

/// A resource's status on an incident.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum ResourceStatus {
    Assigned,
    EnRoute,
    OnScene,
    Cleared,
}

/// A unit sent to the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Resource {
    /// Organisation code of the unit's service.
    pub org: String,
    /// The kind of service the unit belongs to.
    pub agency: AgencyKind,
    /// Call sign, e.g. "BRAVO21" or "RRV4".
    pub callsign: String,
    /// What the unit is doing.
    pub status: ResourceStatus,
    /// When the status was set.
    pub status_at: Option<Timestamp>,
}

/// An incident event: opened, updated, resourced, closed or retracted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct IncidentEvent {
    /// Common event header.
    pub envelope: Envelope,
    /// The shared incident id agreed across agencies; the record key.
    pub incident_id: String,
    /// Each agency's own reference for the incident.
    #[serde(default)]
    #[avro(default = "[]")]
    pub local_references: Vec<LocalReference>,
    /// Incident type from the canonical code list (scheme "bl-incident-type"), e.g. RTC, FIRE, WELFARE.
    pub incident_type: Option<Code>,
    /// Call grading, when graded.
    pub priority: Option<Priority>,
    /// Where the incident stands after this event.
    pub status: Option<IncidentStatus>,
    /// Where the incident is.
    pub location: Option<Location>,
    /// Set when a major or complex incident has an M/ETHANE report.
    pub methane: Option<Methane>,
    /// Hazards at scene (scheme "bl-hazard"), e.g. FUEL_SPILL, ENTRAPMENT, WEAPON.
    #[serde(default)]
    #[avro(default = "[]")]
    pub hazards: Vec<Code>,
    /// Casualties as known at this event.
    pub casualties: Option<CasualtyCounts>,
    /// Agencies asked to attend or assist.
    #[serde(default)]
    #[avro(default = "[]")]
    pub agencies_requested: Vec<AgencyKind>,
    /// Units assigned to the incident and their status.
    #[serde(default)]
    #[avro(default = "[]")]
    pub resources: Vec<Resource>,
    /// People involved, one link per role.
    #[serde(default)]
    #[avro(default = "[]")]
    pub people: Vec<PersonLink>,
    /// Free-text summary from the source system. Withheld unless an agreement shares it by name.
    pub summary: Option<String>,
    /// Why it was closed (scheme "bl-closure"), on close events.
    pub closure: Option<Code>,
    /// Feeds only: the people and place in the light of earlier contacts, set by bluelight's
    /// projector under an agreement's `[[context]]` clause. Sources leave it empty; whatever a
    /// source sends here is never carried.
    #[serde(default)]
    pub context: Option<ContextBlock>,
}

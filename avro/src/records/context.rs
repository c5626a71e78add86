//! The context block an incident feed record may carry: the person and the place in the light of
//! every agency's earlier contacts (Right Care, Right Person). Only bluelight's projector writes
//! it, and only under an agreement's `[[context]]` clause; a source's value is never carried.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::{AgencyKind, Id, PersonRole, Timestamp, Vulnerability};

/// What a context subject is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum ContextSubjectKind {
    // A person linked to the incident.
    Person,
    // The incident's place, by its UPRN.
    Location,
}

/// The incident's people and place as earlier contacts show them, as of the incident's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct ContextBlock {
    /// The moment the counts are as of: when the incident event occurred.
    pub as_of: Timestamp,
    /// The agreement's context clause it is shared under.
    pub clause_id: String,
    /// Version (digest) of the flag rules that raised the flags.
    pub rules_version: String,
    /// One entry per person or place with anything to show, in the record's order.
    #[serde(default)]
    #[avro(default = "[]")]
    pub subjects: Vec<ContextSubject>,
}

/// One person's or place's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct ContextSubject {
    /// A person or a place.
    pub kind: ContextSubjectKind,
    /// The person reference or UPRN as the agreement sends it: pseudonymised (the same pseudonym
    /// as `people.person_ref` under the same agreement) unless the agreement keeps identities.
    pub subject_ref: String,
    /// The person's roles in this incident; empty for a place.
    #[serde(default)]
    #[avro(default = "[]")]
    pub roles: Vec<PersonRole>,
    /// Contacts in the last 7, 30 and 90 days, when the clause shares counts.
    #[serde(default)]
    #[avro(default = "[]")]
    pub windows: Vec<ContextWindow>,
    /// Cases not yet closed, when the clause shares them.
    pub open_cases: Option<i32>,
    /// Vulnerability markers recorded in the window, when the clause shares them.
    #[serde(default)]
    #[avro(default = "[]")]
    pub markers: Vec<Vulnerability>,
    /// The most recent earlier contact, when the clause shares it.
    pub last_contact: Option<ContextLastContact>,
    /// Rules that hold, with their evidence, when the clause shares flags.
    #[serde(default)]
    #[avro(default = "[]")]
    pub flags: Vec<ContextFlag>,
}

/// Contacts in one window before the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct ContextWindow {
    /// The window's length in days (7, 30 or 90).
    pub days: i32,
    /// Incidents and cases begun in the window, this one included.
    pub contacts: i32,
    /// Contacts each agency was requested for or attended, by agency kind.
    #[serde(default)]
    #[avro(default = "[]")]
    pub by_agency: Vec<ContextCount>,
    /// Contacts by incident type code (scheme "bl-incident-type").
    #[serde(default)]
    #[avro(default = "[]")]
    pub by_type: Vec<ContextCount>,
}

/// A count under a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct ContextCount {
    /// An agency kind or an incident type code.
    pub code: String,
    /// How many contacts.
    pub count: i32,
}

/// The latest contact before or at the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct ContextLastContact {
    /// When it began.
    pub at: Timestamp,
    /// Its incident type code, if an incident.
    pub incident_type: Option<String>,
    /// The agencies requested for or attending it.
    #[serde(default)]
    #[avro(default = "[]")]
    pub agencies: Vec<AgencyKind>,
}

/// A rule that holds, and why: counts and event ids, never narratives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct ContextFlag {
    /// The rule's id, e.g. "repeat-welfare-concern".
    pub rule: String,
    /// The rule's explanation with its figures, e.g. "repeat welfare concern: 4 contacts in 30
    /// days, last by ambulance".
    pub explanation: String,
    /// Contacts the rule counted.
    pub count: i32,
    /// The rule's window in days.
    pub window_days: i32,
    /// The rule's threshold: it holds from this many contacts in the window.
    pub at_least: i32,
    /// The opening event id of each contact counted, oldest first.
    #[serde(default)]
    #[avro(default = "[]")]
    pub evidence: Vec<Id>,
}

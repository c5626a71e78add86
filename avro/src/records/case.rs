//! Case milestones from records and case management: `bl.case.v1`.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::{
    common::{Code, Envelope, PersonIdentity, PersonLink, Timestamp},
    victim::{ContactPreferences, EnhancedRightsReason},
};

/// An offence, by Home Office offence code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Offence {
    /// Home Office offence classification code, "NNN/NN" (e.g. "008/01").
    pub ho_code: String,
    /// Offence title as the source gives it.
    pub title: Option<String>,
}

/// The officer responsible for the investigation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Officer {
    /// Organisation code of the officer's force.
    pub org: String,
    /// Collar or staff number; names are not carried.
    pub reference: String,
}

/// A victim of the crime, with what the Victims' Code entitles them to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct CaseVictim {
    /// The source's stable reference for the victim (matches `bl.victim.v1` keys).
    pub victim_ref: String,
    /// Entitled to Enhanced Rights under the Victims' Code (shorter deadlines).
    pub enhanced_rights: bool,
    /// Why Enhanced Rights apply.
    #[serde(default)]
    #[avro(default = "[]")]
    pub enhanced_reasons: Vec<EnhancedRightsReason>,
    /// How the victim wants to be updated, if recorded on the case.
    pub contact: Option<ContactPreferences>,
    /// Who the victim is; withheld unless an agreement shares it.
    pub identity: Option<PersonIdentity>,
}

/// Bail details, on bail and bail-variation events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Bail {
    /// When the person must answer bail.
    pub return_at: Option<Timestamp>,
    /// Coded conditions (scheme "bl-bail-condition"), e.g. NO_CONTACT_VICTIM, EXCLUSION_ZONE.
    #[serde(default)]
    #[avro(default = "[]")]
    pub conditions: Vec<Code>,
}

/// A court hearing, on hearing events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Hearing {
    /// Court name, e.g. "Bristol Magistrates' Court".
    pub court: String,
    /// Court code where known.
    pub court_code: Option<String>,
    /// Date and time the hearing starts.
    pub starts_at: Timestamp,
    /// Hearing type (scheme "bl-hearing-type"), e.g. FIRST_APPEARANCE, TRIAL, SENTENCE.
    pub hearing_type: Code,
    /// Outcome (scheme "bl-hearing-outcome") on hearing-outcome events.
    pub outcome: Option<Code>,
}

/// A case milestone: crime recorded, arrest, interview, release, bail, charge, disposal, hearing,
/// closure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct CaseEvent {
    /// Common event header.
    pub envelope: Envelope,
    /// Crime or case reference; the record key.
    pub case_id: String,
    /// The incident the case came from, when known.
    pub incident_id: Option<String>,
    /// Offences recorded or charged, by Home Office code.
    #[serde(default)]
    #[avro(default = "[]")]
    pub offences: Vec<Offence>,
    /// The officer in charge of the investigation.
    pub officer_in_charge: Option<Officer>,
    /// Victims of the crime and their Victims' Code entitlements.
    #[serde(default)]
    #[avro(default = "[]")]
    pub victims: Vec<CaseVictim>,
    /// Suspects the milestone is about (e.g. the person arrested or charged).
    #[serde(default)]
    #[avro(default = "[]")]
    pub suspects: Vec<PersonLink>,
    /// On bail events.
    pub bail: Option<Bail>,
    /// On hearing events.
    pub hearing: Option<Hearing>,
    /// Outcome code (scheme "bl-case-outcome") for disposals, NFA and closure.
    pub outcome: Option<Code>,
}

//! Victim registrations and contact preferences from victim CRMs: `bl.victim.v1`.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::{Envelope, PersonIdentity};

/// Why a victim has Enhanced Rights under the Victims' Code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum EnhancedRightsReason {
    MostSeriousCrime,
    DomesticAbuse,
    PersistentlyTargeted,
    Vulnerable,
    Intimidated,
    Under18,
}

/// How a victim wants to hear from the services.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum ContactChannel {
    Email,
    Sms,
    Phone,
    Letter,
    InPerson,
}

/// How often a victim wants updates.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum UpdateFrequency {
    // At every milestone the Code gives a right to hear about.
    EveryMilestone,
    Weekly,
    Monthly,
    // Only when the victim asks.
    OnRequest,
}

/// What a victim agreed about being updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct ContactPreferences {
    /// How the victim wants to be contacted.
    pub channel: ContactChannel,
    /// How often the victim wants updates.
    pub frequency: UpdateFrequency,
    /// The victim asked not to be updated at all; no update may be sent.
    pub opted_out: bool,
}

/// A victim registration or change from a victim CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct VictimEvent {
    /// Common event header.
    pub envelope: Envelope,
    /// The CRM's stable victim reference; the record key (compacted: the latest state survives).
    pub victim_ref: String,
    /// Cases the victim is linked to.
    #[serde(default)]
    #[avro(default = "[]")]
    pub case_ids: Vec<String>,
    /// Entitled to Enhanced Rights under the Victims' Code (shorter deadlines).
    pub enhanced_rights: bool,
    /// Why Enhanced Rights apply.
    #[serde(default)]
    #[avro(default = "[]")]
    pub enhanced_reasons: Vec<EnhancedRightsReason>,
    /// How the victim wants to be updated, including opting out.
    pub contact: ContactPreferences,
    /// Who the victim is; withheld unless an agreement shares it.
    pub identity: Option<PersonIdentity>,
}

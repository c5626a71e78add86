//! Records bluelight's own consumers write: victim updates, disclosure audit records, retractions.

use std::collections::HashMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::{
    common::{Envelope, EventType, Id, Timestamp},
    victim::ContactChannel,
};

/// An update a victim is owed under the Victims' Code: `feed.victim-update.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct VictimUpdate {
    /// Common event header; `event_type` is VICTIM_UPDATE_DUE.
    pub envelope: Envelope,
    /// The victim owed the update.
    pub victim_ref: String,
    /// The case the update is about; the record key.
    pub case_id: String,
    /// The Code's right number, e.g. "6" (told about suspect milestones), "8" (hearings).
    pub right: String,
    /// The case event that created the entitlement.
    pub trigger_event_id: Id,
    /// What happened on the case.
    pub trigger_event_type: EventType,
    /// When the triggering event occurred; the deadline counts from here.
    pub triggered_at: Timestamp,
    /// The end of the last working day on which the update is still on time (Europe/London).
    pub due_by: Timestamp,
    /// The message template the notification service should use.
    pub template_id: String,
    /// Plain-English facts for the template (never free text copied from police systems).
    #[serde(default)]
    #[avro(default = "{}")]
    pub parameters: HashMap<String, String>,
    /// The victim's chosen channel.
    pub channel: ContactChannel,
}

/// A notification service's word that it delivered a victim update:
/// `bl.victim-notification-ack.v1`, keyed by the update id. Closes the update's deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct VictimNotificationAck {
    /// Common event header; `event_type` is VICTIM_NOTIFIED.
    pub envelope: Envelope,
    /// The update delivered (its `envelope.event_id`, also the idempotency key it was sent with).
    pub update_id: Id,
    /// The case the update was about.
    pub case_id: String,
    /// The Code's right the update served.
    pub right: String,
    /// When the notification service delivered it.
    pub delivered_at: Timestamp,
    /// How it reached the victim.
    pub channel: ContactChannel,
    /// Which notification service delivered it.
    pub notifier: String,
}

/// An undelivered victim update near or past its deadline: `feed.victim-update-overdue.v1`, keyed
/// by case id. One DUE_SOON record when the warning window opens, one OVERDUE record at `due_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct VictimUpdateAlert {
    /// Common event header; `event_type` is VICTIM_UPDATE_DUE_SOON or VICTIM_UPDATE_OVERDUE.
    pub envelope: Envelope,
    /// The undelivered update (its `envelope.event_id` on feed.victim-update.v1).
    pub update_id: Id,
    /// The victim still waiting, so the victim care unit can act.
    pub victim_ref: String,
    /// The case; the record key.
    pub case_id: String,
    /// The Code's right at stake.
    pub right: String,
    /// The update's deadline.
    pub due_by: Timestamp,
    /// The message the victim is owed.
    pub template_id: String,
}

/// What a disclosure record is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum DisclosureKind {
    // Fields of an event went to a recipient.
    Disclosure,
    // A recipient was told an earlier disclosure is withdrawn.
    Retraction,
    // A disclosure was decided against (opted-out victim, ceiling) and recorded as such.
    Withheld,
}

/// A field that was disclosed in a changed form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct FieldTransform {
    /// Field path, e.g. "people.identity.date_of_birth".
    pub field: String,
    /// The transform, e.g. "pseudonymise", "generalise:age-band".
    pub transform: String,
}

/// One DPA 2018 s62 log record per disclosure: `audit.disclosure.v1`. Names fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Disclosure {
    /// `envelope.event_id` is the disclosure id quoted on the feed record.
    pub envelope: Envelope,
    /// Disclosure, retraction, or a decision to withhold.
    pub kind: DisclosureKind,
    /// The canonical event disclosed.
    pub source_event_id: Id,
    /// The disclosed event's type.
    pub source_event_type: EventType,
    /// The canonical topic it came from.
    pub source_topic: String,
    /// The incident or case id (the record key), so an incident's disclosures can be listed.
    pub subject_id: String,
    /// Organisation code of the recipient.
    pub recipient: String,
    /// The feed topic written to.
    pub feed: String,
    /// The Information Sharing Agreement that allowed it.
    pub agreement_id: String,
    /// The agreement's version at the time.
    pub agreement_version: String,
    /// The clause of the agreement that matched.
    pub clause_id: String,
    /// Purposes the agreement allows this sharing for.
    #[serde(default)]
    #[avro(default = "[]")]
    pub purposes: Vec<String>,
    /// Lawful basis, e.g. "DPA 2018 s35(2)(b); Crime and Disorder Act 1998 s115".
    pub lawful_basis: String,
    /// Version (hash) of the whole policy set in force when deciding.
    pub policy_version: String,
    /// Which service disclosed it (s62: as far as possible, who disclosed).
    pub disclosed_by: String,
    /// Field paths sent unchanged.
    #[serde(default)]
    #[avro(default = "[]")]
    pub fields_disclosed: Vec<String>,
    /// Field paths sent pseudonymised, generalised or redacted, with how.
    #[serde(default)]
    #[avro(default = "[]")]
    pub fields_transformed: Vec<FieldTransform>,
    /// Field paths the recipient did not get (default deny).
    #[serde(default)]
    #[avro(default = "[]")]
    pub fields_withheld: Vec<String>,
    /// The agreement's context clause, when the copy carried a `context` block.
    #[serde(default)]
    pub context_clause_id: Option<String>,
    /// The event ids the context block's flags cite: which other contacts the recipient was
    /// told of.
    #[serde(default)]
    #[avro(default = "[]")]
    pub context_evidence: Vec<Id>,
}

/// What a person did with shared data through the gateway.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum ConsultationAction {
    // Opened (or resumed) a live stream of a feed.
    FeedStreamOpened,
    // Read the current state of one incident.
    IncidentRead,
}

/// One DPA 2018 s62 log record per consultation (s62 covers reads as well as disclosures):
/// `audit.consultation.v1`, keyed by the reader's organisation. Says what was looked at, never
/// what it contained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Consultation {
    /// `event_type` RECORD_CONSULTED; `occurred_at` is when; `source_org` the reader's
    /// organisation.
    pub envelope: Envelope,
    /// What was done.
    pub action: ConsultationAction,
    /// Who: the name of the credential used (one per person or console, as issued).
    pub user: String,
    /// The organisation the credential belongs to.
    pub organisation: String,
    /// The credential's role, e.g. "control-room", "ops".
    pub role: String,
    /// The feed topic read.
    pub feed: String,
    /// The incident read, for INCIDENT_READ; null for a stream.
    pub subject_id: Option<String>,
    /// Where a stream started: "latest", "earliest", a time, or the resumed position.
    pub position: Option<String>,
    /// Whether anything was found: false when the incident is not in the caller's view.
    pub found: bool,
}

/// A notice to a recipient that something it received is withdrawn or corrected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Retraction {
    /// Common event header; `event_type` is RETRACTION_ISSUED.
    pub envelope: Envelope,
    /// The source event withdrawn.
    pub retracted_event_id: Id,
    /// The incident or case id it was about.
    pub subject_id: String,
    /// Why, as the source gave it.
    pub reason: String,
    /// The correcting event, when this is a correction rather than a withdrawal.
    pub replaced_by: Option<Id>,
}

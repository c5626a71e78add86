//! Types shared by every canonical record: the envelope, times, codes, places and people.

use std::collections::HashSet;

use apache_avro::{
    AvroSchema, Schema,
    schema::{Name, NamespaceRef, RecordField, UuidSchema},
    serde::AvroSchemaComponent,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A UUID carried as an Avro `string` with logical type `uuid` (the form every Avro library reads),
/// written hyphenated and lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub Uuid);

impl Id {
    /// A new random (v4) id.
    pub fn random() -> Self {
        Id(Uuid::new_v4())
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for Id {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Id)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Id;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a UUID string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Id, E> {
                Uuid::parse_str(v)
                    .map(Id)
                    .map_err(|e| E::custom(format!("{v:?} is not a UUID: {e}")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl AvroSchemaComponent for Id {
    fn get_schema_in_ctxt(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
        Schema::Uuid(UuidSchema::String)
    }

    fn get_record_fields_in_ctxt(
        _: &mut HashSet<Name>,
        _: NamespaceRef,
    ) -> Option<Vec<RecordField>> {
        None
    }
}

/// A point in time: milliseconds since the Unix epoch, UTC (Avro `timestamp-millis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    }
}

impl AvroSchemaComponent for Timestamp {
    fn get_schema_in_ctxt(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
        Schema::TimestampMillis
    }

    fn get_record_fields_in_ctxt(
        _: &mut HashSet<Name>,
        _: NamespaceRef,
    ) -> Option<Vec<RecordField>> {
        None
    }
}

/// A calendar date: days since 1970-01-01 (Avro `date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Date(pub i32);

impl AvroSchemaComponent for Date {
    fn get_schema_in_ctxt(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
        Schema::Date
    }

    fn get_record_fields_in_ctxt(
        _: &mut HashSet<Name>,
        _: NamespaceRef,
    ) -> Option<Vec<RecordField>> {
        None
    }
}

/// What happened, across every canonical entity. Agreements name these to say which events a clause
/// covers. New symbols are added at the end; they are never renamed or removed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum EventType {
    IncidentOpened,
    IncidentUpdated,
    IncidentResourced,
    IncidentClosed,
    IncidentRetracted,
    CrimeRecorded,
    SuspectArrested,
    SuspectInterviewed,
    ReleasedNoFurtherAction,
    SuspectBailed,
    ReleasedUnderInvestigation,
    BailVaried,
    SuspectCharged,
    OutOfCourtDisposal,
    NotInvestigated,
    HearingScheduled,
    HearingOutcome,
    CaseClosed,
    CaseRetracted,
    VictimRegistered,
    VictimEligibilityAssessed,
    VictimPreferencesChanged,
    VictimOptedOut,
    VictimRetracted,
    VictimUpdateDue,
    DisclosureRecorded,
    RetractionIssued,
    // On a recipient's feed: an agreement it received records under was withdrawn or has
    // expired, so nothing more will come under it. The record's key field holds
    // `agreement/<agreement id>`; `envelope.disclosure` names the agreement.
    SharingEnded,
    // A notification service delivered a victim update (bl.victim-notification-ack.v1).
    VictimNotified,
    // An undelivered victim update is within the warning window of its deadline.
    VictimUpdateDueSoon,
    // An undelivered victim update is past its deadline.
    VictimUpdateOverdue,
    // Somebody read shared data through the gateway (audit.consultation.v1).
    RecordConsulted,
}

/// Government Security Classification of a record. Bluelight carries OFFICIAL information only;
/// OFFICIAL-SENSITIVE marks data whose need-to-know must be rigorously enforced.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum Classification {
    Official,
    OfficialSensitive,
}

/// The protective marking a source put on an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct SecurityMarking {
    /// The classification; agreements have a ceiling above which nothing is shared.
    pub classification: Classification,
    /// Handling caveats or descriptors, e.g. "PERSONAL", "LOCSEN"; recipients must honour them.
    #[serde(default)]
    #[avro(default = "[]")]
    pub caveats: Vec<String>,
}

/// A reference to an earlier event, with why it is referred to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct EventRef {
    /// The earlier event's `envelope.event_id`.
    pub event_id: Id,
    /// Why, in plain words (e.g. "created in error", "wrong address corrected").
    pub reason: String,
}

/// Set only on feed records: which disclosure put this record on the feed, so a recipient can quote
/// it back and the audit log can be joined to what was received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct DisclosureRef {
    /// The id of the matching record on `audit.disclosure.v1`.
    pub disclosure_id: Id,
    /// The Information Sharing Agreement that allowed the disclosure.
    pub agreement_id: String,
    /// The clause of that agreement.
    pub clause_id: String,
    /// Organisation code of the recipient.
    pub recipient: String,
}

/// The common header of every canonical event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Envelope {
    /// Unique id of this event (UUID); consumers de-duplicate on it.
    pub event_id: Id,
    /// What happened.
    pub event_type: EventType,
    /// When it happened in the world (UTC).
    pub occurred_at: Timestamp,
    /// When the source system recorded it (UTC).
    pub recorded_at: Timestamp,
    /// The system that produced it, e.g. "cad", "rms", "mait", "victim-crm".
    pub source_system: String,
    /// Organisation code of the controller that produced it, e.g. "wessex-police".
    pub source_org: String,
    /// Groups events of one story across systems (e.g. the CAD incident that became a case).
    pub correlation_id: Option<Id>,
    /// The event that caused this one, if any.
    pub causation_id: Option<Id>,
    /// An earlier event this one corrects; recipients replace it.
    pub supersedes: Option<EventRef>,
    /// An earlier event this one withdraws; every recipient of it must be told.
    pub retracts: Option<EventRef>,
    /// Classification and handling caveats.
    pub marking: SecurityMarking,
    /// Minor revision of the canonical standard the producer wrote to (the major is in the topic).
    #[avro(default = "1")]
    #[serde(default = "one")]
    pub schema_version: i32,
    /// Set on feed records only: the disclosure that delivered it. Null on canonical topics.
    pub disclosure: Option<DisclosureRef>,
}

fn one() -> i32 {
    1
}

/// A value from a code list (iHub/POLE style codes rather than free text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Code {
    /// The code list, e.g. "bl-incident-type", "ho-offence", "bl-hazard".
    pub scheme: String,
    /// The code within the list, e.g. "RTC", "008/01".
    pub code: String,
    /// Human-readable label, for display only; decisions use the code.
    pub label: Option<String>,
}

/// A place: any of UPRN, address, postcode, grid reference and coordinates the source knows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct Location {
    /// Unique Property Reference Number (up to 12 digits), the key MAIT uses for places.
    pub uprn: Option<String>,
    /// Postal address on one line.
    pub address: Option<String>,
    /// Postcode, upper case with a single space (e.g. "BS1 4ST").
    pub postcode: Option<String>,
    /// OSGB36 easting in metres.
    pub easting: Option<i32>,
    /// OSGB36 northing in metres.
    pub northing: Option<i32>,
    /// WGS84 latitude in degrees.
    pub latitude: Option<f64>,
    /// WGS84 longitude in degrees.
    pub longitude: Option<f64>,
    /// Where exactly, when an address does not say (e.g. "M5 J19 northbound hard shoulder").
    pub description: Option<String>,
}

/// The kind of organisation, for requests and attendance.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum AgencyKind {
    Police,
    FireRescue,
    Ambulance,
    Coastguard,
    LocalAuthority,
    MentalHealth,
    Prosecution,
    WitnessCare,
    VictimServices,
    Other,
}

/// The part a person plays in an event; one link per role (a victim who is also a witness has two).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum PersonRole {
    Caller,
    Victim,
    Witness,
    Suspect,
    PersonOfConcern,
}

/// Categories of data subject that DPA 2018 Part 3 (s38) asks controllers to distinguish.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum SubjectCategory {
    Suspect,
    Convicted,
    Victim,
    Witness,
    Other,
}

/// Vulnerability markers that change how agencies respond.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "uk.bluelight.v1")]
pub enum Vulnerability {
    Child,
    MentalHealth,
    SelfHarmRisk,
    LearningDisability,
    PhysicalDisability,
    Elderly,
    DomesticAbuseRisk,
    SubstanceMisuse,
    RepeatVictim,
    Intimidated,
}

/// Who a person is. Kept apart from the event facts so an agreement can share the facts (and a
/// pseudonymous `person_ref`) without the identity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct PersonIdentity {
    /// Given names.
    pub forenames: Option<String>,
    /// Family name.
    pub surname: Option<String>,
    /// Date of birth; agreements may generalise it to an age band.
    pub date_of_birth: Option<Date>,
    /// A ten-year age band such as "30-39", set in place of `date_of_birth` when an agreement
    /// generalises it; sources leave it empty.
    #[serde(default)]
    pub age_band: Option<String>,
    /// Coded gender (iHub style, e.g. scheme "ihub-gender", code "GNDR_0001").
    pub gender: Option<Code>,
    /// Contact telephone number, as given.
    pub phone: Option<String>,
    /// Home or contact address.
    pub address: Option<Location>,
}

/// A POLE person-to-event link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "uk.bluelight.v1")]
pub struct PersonLink {
    /// The source's stable reference for the person (pseudonymised on feeds where agreed).
    pub person_ref: String,
    /// The part the person plays.
    pub role: PersonRole,
    /// DPA 2018 Part 3 category.
    pub subject_category: SubjectCategory,
    /// Vulnerability markers.
    #[serde(default)]
    #[avro(default = "[]")]
    pub vulnerabilities: Vec<Vulnerability>,
    /// Who the person is; withheld unless an agreement shares it.
    pub identity: Option<PersonIdentity>,
}

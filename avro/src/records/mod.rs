//! The typed records of the canonical standard. Each top-level record is one topic's value; the
//! `.avsc` files in `avro/schemas/` are generated from these types and checked against them.

mod build;
mod case;
mod common;
mod context;
mod incident;
mod outputs;
pub mod samples;
mod victim;

pub use case::{Bail, CaseEvent, CaseVictim, Hearing, Offence, Officer};
pub use common::{
    AgencyKind, Classification, Code, Date, DisclosureRef, Envelope, EventRef, EventType, Id,
    Location, PersonIdentity, PersonLink, PersonRole, SecurityMarking, SubjectCategory, Timestamp,
    Vulnerability,
};
pub use context::{
    ContextBlock, ContextCount, ContextFlag, ContextLastContact, ContextSubject,
    ContextSubjectKind, ContextWindow,
};
pub use incident::{
    CasualtyCounts, IncidentEvent, IncidentStatus, LocalReference, Methane, Priority, Resource,
    ResourceStatus,
};
pub use outputs::{
    Consultation, ConsultationAction, Disclosure, DisclosureKind, FieldTransform, Retraction,
    VictimNotificationAck, VictimUpdate, VictimUpdateAlert,
};
pub use victim::{
    ContactChannel, ContactPreferences, EnhancedRightsReason, UpdateFrequency, VictimEvent,
};

use apache_avro::AvroSchema;
use serde::{Serialize, de::DeserializeOwned};

/// A top-level canonical record: the value of one topic.
pub trait CanonicalRecord:
    Serialize + DeserializeOwned + AvroSchema + Send + Sync + 'static
{
    /// Stem of the schema file, `avro/schemas/<FILE>.avsc`.
    const FILE: &'static str;
    /// The topic whose values use this schema (subject `<topic>-value`); `None` for records that
    /// travel on per-recipient feeds named at run time.
    const TOPIC: Option<&'static str>;
    /// Fully qualified Avro record name; a payload whose schema has another name is refused.
    const FULL_NAME: &'static str;

    fn envelope(&self) -> &Envelope;

    /// The Kafka record key: the shared incident or case id (or the victim reference).
    fn key(&self) -> &str;
}

macro_rules! canonical {
    ($ty:ident, $file:literal, $topic:expr, |$r:ident| $key:expr) => {
        impl CanonicalRecord for $ty {
            const FILE: &'static str = $file;
            const TOPIC: Option<&'static str> = $topic;
            const FULL_NAME: &'static str = concat!("uk.bluelight.v1.", stringify!($ty));

            fn envelope(&self) -> &Envelope {
                &self.envelope
            }

            fn key(&self) -> &str {
                let $r = self;
                $key
            }
        }
    };
}

canonical!(IncidentEvent, "incident", Some("bl.incident.v1"), |r| &r
    .incident_id);
canonical!(CaseEvent, "case", Some("bl.case.v1"), |r| &r.case_id);
canonical!(VictimEvent, "victim", Some("bl.victim.v1"), |r| &r
    .victim_ref);
canonical!(
    VictimUpdate,
    "victim-update",
    Some("feed.victim-update.v1"),
    |r| &r.case_id
);
canonical!(Disclosure, "disclosure", Some("audit.disclosure.v1"), |r| {
    &r.subject_id
});
canonical!(
    Consultation,
    "consultation",
    Some("audit.consultation.v1"),
    |r| &r.organisation
);
canonical!(Retraction, "retraction", None, |r| &r.subject_id);
canonical!(
    VictimNotificationAck,
    "victim-notification-ack",
    Some("bl.victim-notification-ack.v1"),
    |r| &r.case_id
);
canonical!(
    VictimUpdateAlert,
    "victim-update-alert",
    Some("feed.victim-update-overdue.v1"),
    |r| &r.case_id
);

//! Constructors that make valid records short to write, in adapters and tests.

use super::*;

impl Envelope {
    /// A new OFFICIAL event with a random id, recorded now.
    pub fn new(
        event_type: EventType,
        source_system: &str,
        source_org: &str,
        occurred_at: Timestamp,
    ) -> Self {
        Self::with_id(
            Id::random(),
            event_type,
            source_system,
            source_org,
            occurred_at,
            Timestamp::now(),
        )
    }

    /// A new OFFICIAL event with the id and recording time given: for ids derived from what
    /// the event is about (no random draw, which costs a system call, on a hot path).
    pub fn with_id(
        event_id: Id,
        event_type: EventType,
        source_system: &str,
        source_org: &str,
        occurred_at: Timestamp,
        recorded_at: Timestamp,
    ) -> Self {
        Envelope {
            event_id,
            event_type,
            occurred_at,
            recorded_at,
            source_system: source_system.to_owned(),
            source_org: source_org.to_owned(),
            correlation_id: None,
            causation_id: None,
            supersedes: None,
            retracts: None,
            marking: SecurityMarking {
                classification: Classification::Official,
                caveats: Vec::new(),
            },
            schema_version: 1,
            disclosure: None,
        }
    }
}

impl Code {
    pub fn new(scheme: &str, code: &str) -> Self {
        Code {
            scheme: scheme.to_owned(),
            code: code.to_owned(),
            label: None,
        }
    }

    pub fn labelled(scheme: &str, code: &str, label: &str) -> Self {
        Code {
            label: Some(label.to_owned()),
            ..Code::new(scheme, code)
        }
    }
}

impl IncidentEvent {
    /// An incident event with only the required facts; add the rest with struct update syntax.
    pub fn new(
        envelope: Envelope,
        incident_id: &str,
        incident_type: Code,
        status: IncidentStatus,
    ) -> Self {
        IncidentEvent {
            envelope,
            incident_id: incident_id.to_owned(),
            local_references: Vec::new(),
            incident_type: Some(incident_type),
            priority: None,
            status: Some(status),
            location: None,
            methane: None,
            hazards: Vec::new(),
            casualties: None,
            agencies_requested: Vec::new(),
            resources: Vec::new(),
            people: Vec::new(),
            summary: None,
            closure: None,
            context: None,
        }
    }
}

impl CaseEvent {
    pub fn new(envelope: Envelope, case_id: &str) -> Self {
        CaseEvent {
            envelope,
            case_id: case_id.to_owned(),
            incident_id: None,
            offences: Vec::new(),
            officer_in_charge: None,
            victims: Vec::new(),
            suspects: Vec::new(),
            bail: None,
            hearing: None,
            outcome: None,
        }
    }
}

impl VictimEvent {
    pub fn new(envelope: Envelope, victim_ref: &str, contact: ContactPreferences) -> Self {
        VictimEvent {
            envelope,
            victim_ref: victim_ref.to_owned(),
            case_ids: Vec::new(),
            enhanced_rights: false,
            enhanced_reasons: Vec::new(),
            contact,
            identity: None,
        }
    }
}

impl Classification {
    /// Reads a marking as people write it: "OFFICIAL" or "OFFICIAL-SENSITIVE". Anything else,
    /// higher markings included, is `None`: bluelight carries nothing above OFFICIAL-SENSITIVE.
    pub fn from_marking(marking: &str) -> Option<Self> {
        match marking {
            "OFFICIAL" => Some(Classification::Official),
            "OFFICIAL-SENSITIVE" => Some(Classification::OfficialSensitive),
            _ => None,
        }
    }
}

impl PersonRole {
    /// The DPA 2018 Part 3 category a role implies, when the source does not say.
    pub fn subject_category(self) -> SubjectCategory {
        match self {
            PersonRole::Victim => SubjectCategory::Victim,
            PersonRole::Witness => SubjectCategory::Witness,
            PersonRole::Suspect => SubjectCategory::Suspect,
            PersonRole::Caller | PersonRole::PersonOfConcern => SubjectCategory::Other,
        }
    }
}

impl EventType {
    /// Every event type, in schema order.
    pub const ALL: [EventType; 32] = [
        EventType::IncidentOpened,
        EventType::IncidentUpdated,
        EventType::IncidentResourced,
        EventType::IncidentClosed,
        EventType::IncidentRetracted,
        EventType::CrimeRecorded,
        EventType::SuspectArrested,
        EventType::SuspectInterviewed,
        EventType::ReleasedNoFurtherAction,
        EventType::SuspectBailed,
        EventType::ReleasedUnderInvestigation,
        EventType::BailVaried,
        EventType::SuspectCharged,
        EventType::OutOfCourtDisposal,
        EventType::NotInvestigated,
        EventType::HearingScheduled,
        EventType::HearingOutcome,
        EventType::CaseClosed,
        EventType::CaseRetracted,
        EventType::VictimRegistered,
        EventType::VictimEligibilityAssessed,
        EventType::VictimPreferencesChanged,
        EventType::VictimOptedOut,
        EventType::VictimRetracted,
        EventType::VictimUpdateDue,
        EventType::DisclosureRecorded,
        EventType::RetractionIssued,
        EventType::SharingEnded,
        EventType::VictimNotified,
        EventType::VictimUpdateDueSoon,
        EventType::VictimUpdateOverdue,
        EventType::RecordConsulted,
    ];

    /// The canonical topic an event of this type is published to.
    pub fn topic(self) -> &'static str {
        use EventType::*;
        match self {
            IncidentOpened | IncidentUpdated | IncidentResourced | IncidentClosed
            | IncidentRetracted => "bl.incident.v1",
            VictimRegistered
            | VictimEligibilityAssessed
            | VictimPreferencesChanged
            | VictimOptedOut
            | VictimRetracted => "bl.victim.v1",
            VictimUpdateDue => "feed.victim-update.v1",
            VictimNotified => "bl.victim-notification-ack.v1",
            VictimUpdateDueSoon | VictimUpdateOverdue => "feed.victim-update-overdue.v1",
            DisclosureRecorded => "audit.disclosure.v1",
            RecordConsulted => "audit.consultation.v1",
            RetractionIssued | SharingEnded => "feed",
            _ => "bl.case.v1",
        }
    }
}

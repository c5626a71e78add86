//! Fully populated example records, every optional field set: for round-trip tests, fuzz seeds
//! and benchmarks. The facts are invented.

use std::collections::HashMap;

use super::*;

const T0: Timestamp = Timestamp(1_795_000_000_000);

fn envelope(event_type: EventType, system: &str) -> Envelope {
    Envelope {
        correlation_id: Some(Id::random()),
        causation_id: Some(Id::random()),
        supersedes: Some(EventRef {
            event_id: Id::random(),
            reason: "address corrected".into(),
        }),
        retracts: None,
        marking: SecurityMarking {
            classification: Classification::OfficialSensitive,
            caveats: vec!["PERSONAL".into()],
        },
        disclosure: Some(DisclosureRef {
            disclosure_id: Id::random(),
            agreement_id: "isa-police-fire-rtc".into(),
            clause_id: "rtc-hazards".into(),
            recipient: "avon-fire".into(),
        }),
        ..Envelope::new(event_type, system, "avon-police", T0)
    }
}

fn location() -> Location {
    Location {
        uprn: Some("100120012345".into()),
        address: Some("1 Temple Way, Bristol".into()),
        postcode: Some("BS1 6HG".into()),
        easting: Some(359_870),
        northing: Some(172_770),
        latitude: Some(51.4545),
        longitude: Some(-2.5879),
        description: Some("junction with Victoria Street".into()),
    }
}

fn person(role: PersonRole, category: SubjectCategory) -> PersonLink {
    PersonLink {
        person_ref: format!("avon-police:person:{}", Id::random()),
        role,
        subject_category: category,
        vulnerabilities: vec![Vulnerability::MentalHealth, Vulnerability::Elderly],
        identity: Some(PersonIdentity {
            forenames: Some("Alex".into()),
            surname: Some("Example".into()),
            date_of_birth: Some(Date(3_650)),
            age_band: None,
            gender: Some(Code::new("ihub-gender", "GNDR_0001")),
            phone: Some("07700 900123".into()),
            address: Some(location()),
        }),
    }
}

fn casualties() -> CasualtyCounts {
    CasualtyCounts {
        fatalities: Some(0),
        serious: Some(1),
        minor: Some(2),
        uninjured: Some(3),
    }
}

/// An incident event of `event_type` with every field set.
pub fn incident(event_type: EventType) -> IncidentEvent {
    IncidentEvent {
        local_references: vec![LocalReference {
            org: "avon-fire".into(),
            reference: "F-2026-0001".into(),
        }],
        priority: Some(Priority::Immediate),
        location: Some(location()),
        methane: Some(Methane {
            major_incident_declared: true,
            exact_location: Some("Temple Way underpass".into()),
            incident_type: Some("flooding".into()),
            hazards: Some("fast-flowing water".into()),
            access: Some("from the north only".into()),
            casualties: Some(casualties()),
            services_present: vec![AgencyKind::Police],
            services_required: vec![AgencyKind::FireRescue, AgencyKind::Ambulance],
            reported_at: Some(T0),
        }),
        hazards: vec![Code::labelled("bl-hazard", "FUEL_SPILL", "Fuel spill")],
        casualties: Some(casualties()),
        agencies_requested: vec![AgencyKind::FireRescue, AgencyKind::Ambulance],
        resources: vec![Resource {
            org: "avon-fire".into(),
            agency: AgencyKind::FireRescue,
            callsign: "BRAVO21".into(),
            status: ResourceStatus::EnRoute,
            status_at: Some(T0),
        }],
        people: vec![
            person(PersonRole::Caller, SubjectCategory::Other),
            person(PersonRole::Victim, SubjectCategory::Victim),
        ],
        summary: Some("two-vehicle collision, one trapped".into()),
        closure: Some(Code::new("bl-closure", "RESOLVED")),
        context: None,
        ..IncidentEvent::new(
            envelope(event_type, "cad"),
            "INC-20261122-0001",
            Code::labelled("bl-incident-type", "RTC", "Road traffic collision"),
            IncidentStatus::Open,
        )
    }
}

/// A case event of `event_type` with every field set.
pub fn case(event_type: EventType) -> CaseEvent {
    CaseEvent {
        incident_id: Some("INC-20261122-0001".into()),
        offences: vec![Offence {
            ho_code: "008/01".into(),
            title: Some("Assault occasioning actual bodily harm".into()),
        }],
        officer_in_charge: Some(Officer {
            org: "avon-police".into(),
            reference: "PC1234".into(),
        }),
        victims: vec![CaseVictim {
            victim_ref: "crm:victim:42".into(),
            enhanced_rights: true,
            enhanced_reasons: vec![EnhancedRightsReason::DomesticAbuse],
            contact: Some(contact()),
            identity: person(PersonRole::Victim, SubjectCategory::Victim).identity,
        }],
        suspects: vec![person(PersonRole::Suspect, SubjectCategory::Suspect)],
        bail: Some(Bail {
            return_at: Some(T0),
            conditions: vec![Code::new("bl-bail-condition", "NO_CONTACT_VICTIM")],
        }),
        hearing: Some(Hearing {
            court: "Bristol Magistrates' Court".into(),
            court_code: Some("B01LY00".into()),
            starts_at: T0,
            hearing_type: Code::new("bl-hearing-type", "FIRST_APPEARANCE"),
            outcome: Some(Code::new("bl-hearing-outcome", "ADJOURNED")),
        }),
        outcome: Some(Code::new("bl-case-outcome", "CHARGED")),
        ..CaseEvent::new(envelope(event_type, "rms"), "CRIME-2026-000123")
    }
}

fn contact() -> ContactPreferences {
    ContactPreferences {
        channel: ContactChannel::Sms,
        frequency: UpdateFrequency::EveryMilestone,
        opted_out: false,
    }
}

/// A victim event of `event_type` with every field set.
pub fn victim(event_type: EventType) -> VictimEvent {
    VictimEvent {
        case_ids: vec!["CRIME-2026-000123".into()],
        enhanced_rights: true,
        enhanced_reasons: vec![
            EnhancedRightsReason::DomesticAbuse,
            EnhancedRightsReason::Intimidated,
        ],
        identity: person(PersonRole::Victim, SubjectCategory::Victim).identity,
        ..VictimEvent::new(
            envelope(event_type, "victim-crm"),
            "crm:victim:42",
            contact(),
        )
    }
}

pub fn victim_update() -> VictimUpdate {
    VictimUpdate {
        envelope: envelope(EventType::VictimUpdateDue, "victim-updates"),
        victim_ref: "crm:victim:42".into(),
        case_id: "CRIME-2026-000123".into(),
        right: "6".into(),
        trigger_event_id: Id::random(),
        trigger_event_type: EventType::SuspectCharged,
        triggered_at: T0,
        due_by: Timestamp(T0.0 + 86_400_000),
        template_id: "right6-charged".into(),
        parameters: HashMap::from([("offence".to_owned(), "assault".to_owned())]),
        channel: ContactChannel::Sms,
    }
}

pub fn victim_ack() -> VictimNotificationAck {
    VictimNotificationAck {
        envelope: envelope(EventType::VictimNotified, "notify"),
        update_id: Id::random(),
        case_id: "CRIME-2026-000123".into(),
        right: "6".into(),
        delivered_at: Timestamp(T0.0 + 3_600_000),
        channel: ContactChannel::Sms,
        notifier: "bluelight-notify".into(),
    }
}

pub fn victim_alert(event_type: EventType) -> VictimUpdateAlert {
    VictimUpdateAlert {
        envelope: envelope(event_type, "victim-updates"),
        update_id: Id::random(),
        victim_ref: "crm:victim:42".into(),
        case_id: "CRIME-2026-000123".into(),
        right: "6".into(),
        due_by: Timestamp(T0.0 + 86_400_000),
        template_id: "right6-charged".into(),
    }
}

pub fn consultation() -> Consultation {
    Consultation {
        envelope: envelope(EventType::RecordConsulted, "gateway"),
        action: ConsultationAction::IncidentRead,
        user: "avon-fire-control-1".into(),
        organisation: "avon-fire".into(),
        role: "control-room".into(),
        feed: "feed.avon-fire.incident.v1".into(),
        subject_id: Some("INC-20261122-0001".into()),
        position: None,
        found: true,
    }
}

pub fn disclosure() -> Disclosure {
    Disclosure {
        envelope: envelope(EventType::DisclosureRecorded, "project"),
        kind: DisclosureKind::Disclosure,
        source_event_id: Id::random(),
        source_event_type: EventType::IncidentOpened,
        source_topic: "bl.incident.v1".into(),
        subject_id: "INC-20261122-0001".into(),
        recipient: "avon-fire".into(),
        feed: "feed.avon-fire.incident.v1".into(),
        agreement_id: "isa-police-fire-rtc".into(),
        agreement_version: "3".into(),
        clause_id: "rtc-hazards".into(),
        purposes: vec!["emergency response".into()],
        lawful_basis: "DPA 2018 s35(2)(b)".into(),
        policy_version: "sha256:0123".into(),
        disclosed_by: "bluelight-project".into(),
        fields_disclosed: vec!["location.postcode".into()],
        fields_transformed: vec![FieldTransform {
            field: "people.person_ref".into(),
            transform: "pseudonymise".into(),
        }],
        fields_withheld: vec!["summary".into()],
        context_clause_id: None,
        context_evidence: Vec::new(),
    }
}

pub fn retraction() -> Retraction {
    Retraction {
        envelope: envelope(EventType::RetractionIssued, "project"),
        retracted_event_id: Id::random(),
        subject_id: "INC-20261122-0001".into(),
        reason: "created in error".into(),
        replaced_by: Some(Id::random()),
    }
}

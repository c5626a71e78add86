//! The agreement file format and its validated form.
//!
//! ```toml
//! id = "isa-avon-police-fire-rtc"
//! title = "Avon and Somerset Police to Avon Fire and Rescue: road traffic collisions and fires"
//! version = "3"
//! controllers = ["avon-police"]          # whose records it covers
//! purposes = ["emergency response"]
//! lawful_basis = "DPA 2018 s35(2)(b); Fire and Rescue Services Act 2004 s7"
//! valid_from = "2026-01-01"
//! valid_to = "2027-12-31"                # optional
//! review_date = "2026-12-31"
//! classification_ceiling = "OFFICIAL"    # or "OFFICIAL-SENSITIVE"
//!
//! [recipient]
//! org = "avon-fire"
//! feeds = ["incident"]
//!
//! [[clause]]
//! id = "rtc-hazards"
//! entity = "incident"
//! event_types = ["INCIDENT_OPENED", "INCIDENT_UPDATED"]
//! condition = 'incident_type.code in ["RTC", "FIRE"]'   # CEL over the canonical record
//! [clause.fields]                                       # everything else is withheld
//! "location.postcode" = "keep"
//! "people.person_ref" = "pseudonymise"
//! "location.latitude" = "generalise:grid-1km"
//!
//! [[context]]                                           # optional: see `ContextClause`
//! id = "repeat-demand"
//! about = ["person"]
//! share = ["flags"]
//! ```

use bluelight_avro::records::{Classification, EventType, PersonRole};

use super::fields::Entity;

/// A validated agreement.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub id: String,
    pub title: String,
    pub version: String,
    pub controllers: Vec<String>,
    pub recipient: Recipient,
    pub purposes: Vec<String>,
    pub lawful_basis: String,
    pub valid_from: jiff::civil::Date,
    pub valid_to: Option<jiff::civil::Date>,
    pub review_date: jiff::civil::Date,
    pub ceiling: Classification,
    pub clauses: Vec<Clause>,
    /// Whether, and how, its incident records carry a context block.
    pub context: Option<ContextClause>,
    /// The file it came from, for messages and `explain`.
    pub file: String,
}

impl Agreement {
    /// Whether the agreement is in force on `day`.
    pub fn in_force(&self, day: jiff::civil::Date) -> bool {
        self.valid_from <= day && self.valid_to.is_none_or(|to| day <= to)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Organisation code; feeds are `feed.<org>.<entity>.v1`.
    pub org: String,
    pub feeds: Vec<Entity>,
}

/// One clause: which events, on what condition, and which fields, how.
pub struct Clause {
    pub id: String,
    pub entity: Entity,
    pub event_types: Vec<EventType>,
    /// CEL source and its compiled program; `None` means every event of the listed types.
    pub condition: Option<(String, cel::Program)>,
    pub fields: Vec<FieldRule>,
}

impl std::fmt::Debug for Clause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clause")
            .field("id", &self.id)
            .field("entity", &self.entity)
            .field("event_types", &self.event_types)
            .field("condition", &self.condition.as_ref().map(|(s, _)| s))
            .field("fields", &self.fields)
            .finish()
    }
}

impl Clone for Clause {
    fn clone(&self) -> Self {
        Clause {
            id: self.id.clone(),
            entity: self.entity,
            event_types: self.event_types.clone(),
            condition: self
                .condition
                .as_ref()
                .and_then(|(s, _)| cel::Program::compile(s).ok().map(|p| (s.clone(), p))),
            fields: self.fields.clone(),
        }
    }
}

/// A field a clause shares, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    pub path: String,
    pub transform: Transform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Sent as it is.
    Keep,
    /// Sent as present-but-withheld (the recipient knows there is a value, not what it is).
    Redact,
    /// Replaced by a keyed HMAC per agreement: linkable within the agreement, not reversible.
    Pseudonymise,
    Generalise(Generalisation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generalisation {
    /// Postcode to its sector ("BS1 6HG" → "BS1 6").
    PostcodeSector,
    /// Coordinates or grid references to a 1 km square.
    Grid1Km,
    /// Date of birth to a ten-year age band.
    AgeBand,
    /// A time to the start of its hour.
    Hour,
}

impl Transform {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "keep" => Transform::Keep,
            "redact" => Transform::Redact,
            "pseudonymise" => Transform::Pseudonymise,
            "generalise:postcode-sector" => Transform::Generalise(Generalisation::PostcodeSector),
            "generalise:grid-1km" => Transform::Generalise(Generalisation::Grid1Km),
            "generalise:age-band" => Transform::Generalise(Generalisation::AgeBand),
            "generalise:hour" => Transform::Generalise(Generalisation::Hour),
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Transform::Keep => "keep",
            Transform::Redact => "redact",
            Transform::Pseudonymise => "pseudonymise",
            Transform::Generalise(Generalisation::PostcodeSector) => "generalise:postcode-sector",
            Transform::Generalise(Generalisation::Grid1Km) => "generalise:grid-1km",
            Transform::Generalise(Generalisation::AgeBand) => "generalise:age-band",
            Transform::Generalise(Generalisation::Hour) => "generalise:hour",
        }
    }
}

pub(crate) const TRANSFORMS: &str = "keep, redact, pseudonymise, generalise:postcode-sector, generalise:grid-1km, generalise:age-band, generalise:hour";

/// A context clause: the recipient's incident records carry a `context` block, showing the
/// people and the place in the light of earlier contacts across agencies. Without one, no
/// record ever carries a block (default deny).
///
/// ```toml
/// [[context]]
/// id = "repeat-demand"
/// about = ["person", "location"]          # the incident's people, its place (by UPRN)
/// roles = ["VICTIM", "PERSON_OF_CONCERN"] # optional: people in these roles only
/// share = ["flags", "counts"]             # and "open_cases", "markers", "last_contact"
/// identity = "pseudonymise"               # the default; "keep" sends references as held
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextClause {
    pub id: String,
    pub people: bool,
    /// People in these roles only; empty means every role.
    pub roles: Vec<PersonRole>,
    pub location: bool,
    /// What of each subject's context is sent, in [`ContextPart`] order; the rest is withheld.
    pub share: Vec<ContextPart>,
    /// How person references and UPRNs are sent: [`Transform::Pseudonymise`] (the same
    /// pseudonym as the agreement's `people.person_ref`) or [`Transform::Keep`].
    pub identity: Transform,
}

impl ContextClause {
    pub fn shares(&self, part: ContextPart) -> bool {
        self.share.contains(&part)
    }

    /// Whether a person in any of `roles` is a subject of this clause.
    pub fn covers(&self, roles: &[PersonRole]) -> bool {
        self.people && (self.roles.is_empty() || roles.iter().any(|r| self.roles.contains(r)))
    }
}

/// A part of a subject's context a clause may share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContextPart {
    /// Rules that hold, with their counts and evidence event ids.
    Flags,
    /// Contacts in the last 7, 30 and 90 days, by agency and incident type.
    Counts,
    OpenCases,
    /// Vulnerability markers recorded in the window.
    Markers,
    LastContact,
}

impl ContextPart {
    pub const ALL: [ContextPart; 5] = [
        ContextPart::Flags,
        ContextPart::Counts,
        ContextPart::OpenCases,
        ContextPart::Markers,
        ContextPart::LastContact,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ContextPart::Flags => "flags",
            ContextPart::Counts => "counts",
            ContextPart::OpenCases => "open_cases",
            ContextPart::Markers => "markers",
            ContextPart::LastContact => "last_contact",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ContextPart::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The field of `context.subjects` it fills, as audit records name it.
    pub fn field(self) -> &'static str {
        match self {
            ContextPart::Flags => "context.subjects.flags",
            ContextPart::Counts => "context.subjects.windows",
            ContextPart::OpenCases => "context.subjects.open_cases",
            ContextPart::Markers => "context.subjects.markers",
            ContextPart::LastContact => "context.subjects.last_contact",
        }
    }
}

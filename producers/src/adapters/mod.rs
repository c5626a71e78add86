//! Source adapters: one translator per source format into the canonical standard.
//!
//! An adapter takes one request body or file (a batch of source records), and returns every record
//! it could translate and every record it could not, each located in the input so a person can
//! find it: a CSV line, an XML path or a JSON pointer. One bad record never stops the others.

pub mod cad;
mod common;
pub mod crm;
mod json;
pub mod mait;
mod mapping;
pub mod rms;
#[cfg(test)]
mod testkit;
mod xml;

use std::{fmt, ops::Range};

use bluelight_avro::records::{CaseEvent, IncidentEvent, VictimEvent};

pub use mapping::{CodeMap, Mappings};

/// A canonical record an adapter produced, for whichever topic it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Canonical {
    // Boxed: records are kilobytes and move through queues; the enum stays a pointer wide.
    Incident(Box<IncidentEvent>),
    Case(Box<CaseEvent>),
    Victim(Box<VictimEvent>),
}

impl Canonical {
    pub fn topic(&self) -> &'static str {
        match self {
            Canonical::Incident(_) => "bl.incident.v1",
            Canonical::Case(_) => "bl.case.v1",
            Canonical::Victim(_) => "bl.victim.v1",
        }
    }

    /// The record key: the shared incident or case id, or the victim reference.
    pub fn key(&self) -> &str {
        match self {
            Canonical::Incident(r) => &r.incident_id,
            Canonical::Case(r) => &r.case_id,
            Canonical::Victim(r) => &r.victim_ref,
        }
    }

    /// The record as JSON, for goldens, tools and messages.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Canonical::Incident(r) => serde_json::to_value(r),
            Canonical::Case(r) => serde_json::to_value(r),
            Canonical::Victim(r) => serde_json::to_value(r),
        }
        .unwrap_or_default()
    }

    pub fn envelope(&self) -> &bluelight_avro::records::Envelope {
        match self {
            Canonical::Incident(r) => &r.envelope,
            Canonical::Case(r) => &r.envelope,
            Canonical::Victim(r) => &r.envelope,
        }
    }
}

/// Where a record sits in its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// 1-based line of a CSV file (the header is line 1).
    Line(usize),
    /// RFC 6901 JSON pointer, e.g. `/events/3`.
    JsonPointer(String),
    /// XPath-like element path, e.g. `/MAITMessage/Incident[2]`.
    XmlPath(String),
    /// The input as a whole (it did not parse at all).
    Document,
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locator::Line(n) => write!(f, "line {n}"),
            Locator::JsonPointer(p) if p.is_empty() => f.write_str("JSON document"),
            Locator::JsonPointer(p) => write!(f, "JSON {p}"),
            Locator::XmlPath(p) => write!(f, "XML {p}"),
            Locator::Document => f.write_str("document"),
        }
    }
}

/// One thing wrong with one field of one source record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field as the source names it, e.g. `location.postcode` or `OffenceCode`.
    pub field: String,
    /// What is wrong with the value, in words a source-system engineer acts on.
    pub problem: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A source record that could not be translated, with everything wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The adapter (source format) that read it.
    pub adapter: &'static str,
    pub locator: Locator,
    pub problems: Vec<Problem>,
    /// Byte range of the record in the input, so the dead-letter record keeps its original bytes.
    pub span: Range<usize>,
    /// What the record needs to be read on its own, when its bytes alone are not enough: the CSV
    /// header line of an RMS row, the message header of a MAIT incident.
    pub context: Option<String>,
}

impl fmt::Display for Rejected {
    /// One line per problem: `cad JSON /events/3: field location.postcode: "BS1" is not a UK postcode`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{} {}: field {}: {}",
                self.adapter, self.locator, p.field, p.problem
            )?;
        }
        Ok(())
    }
}

/// A translated record, located like a rejected one.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub record: Canonical,
    pub locator: Locator,
    pub span: Range<usize>,
}

/// What an adapter made of one input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translation {
    pub accepted: Vec<Translated>,
    pub rejected: Vec<Rejected>,
}

/// Who sent the input: the organisation the records are attributed to and its system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContext {
    /// Organisation code of the controller, e.g. "avon-police"; becomes `envelope.source_org`.
    pub org: String,
    /// The system, e.g. "cad"; becomes `envelope.source_system`.
    pub system: String,
    /// When bluelight received the input; `recorded_at` when the source gives none.
    pub received_at: bluelight_avro::records::Timestamp,
}

/// A translator from one source format into the canonical standard.
pub trait Adapter: Send + Sync {
    /// Short name, used in URLs and messages: `cad`, `mait`, `rms`, `victim-crm`.
    fn name(&self) -> &'static str;

    /// Content types accepted by the ingest API.
    fn content_types(&self) -> &'static [&'static str];

    /// Translates a whole input; never fails as a whole: an unreadable input is one rejection.
    fn translate(&self, input: &[u8], source: &SourceContext) -> Translation;
}

/// The adapter for a source format, with its shipped mapping tables.
pub fn by_name(name: &str) -> crate::Result<std::sync::Arc<dyn Adapter>> {
    Ok(match name {
        "cad" => std::sync::Arc::new(cad::Cad::new()?),
        "victim-crm" => std::sync::Arc::new(crm::VictimCrm::new()?),
        "mait" => std::sync::Arc::new(mait::Mait::new()?),
        "rms" => std::sync::Arc::new(rms::Rms::new()?),
        other => return Err(crate::Error::UnknownAdapter(other.to_owned())),
    })
}

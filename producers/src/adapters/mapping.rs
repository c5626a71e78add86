//! Mapping tables: source codes to canonical codes, as data files that governance and integration
//! staff can read and change without touching code.
//!
//! Each file (`producers/mappings/<adapter>.toml`) has one table per coded field:
//!
//! ```toml
//! [incident_type]          # the canonical code list is named by `scheme`
//! scheme = "bl-incident-type"
//! [incident_type.codes]
//! RTC = { code = "RTC", label = "Road traffic collision" }
//! ```

use std::collections::HashMap;

use bluelight_avro::records::Code;
use serde::Deserialize;

use crate::{Error, Result};

/// One coded field's table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeMap {
    /// Canonical code list the targets belong to.
    pub scheme: String,
    /// Source code (as the source writes it, matched case-insensitively) to canonical code.
    pub codes: HashMap<String, Target>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub code: String,
    pub label: Option<String>,
}

impl CodeMap {
    /// The canonical code for a source code, or a problem text listing what is known.
    pub fn map(&self, source: &str) -> Result<Code, String> {
        let key = source.trim();
        self.codes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, t)| Code {
                scheme: self.scheme.clone(),
                code: t.code.clone(),
                label: t.label.clone(),
            })
            .ok_or_else(|| {
                let mut known: Vec<&str> = self.codes.keys().map(String::as_str).collect();
                known.sort_unstable();
                format!(
                    "{source:?} is not a known code (known: {})",
                    known.join(", ")
                )
            })
    }

    /// Whether a source code is in the table.
    pub fn knows(&self, source: &str) -> bool {
        self.codes
            .keys()
            .any(|k| k.eq_ignore_ascii_case(source.trim()))
    }
}

/// Every table of one adapter, by field name.
#[derive(Debug, Clone)]
pub struct Mappings {
    pub file: String,
    tables: HashMap<String, CodeMap>,
}

impl Mappings {
    /// Parses a mapping file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let tables: HashMap<String, CodeMap> =
            toml::from_str(text).map_err(|e| Error::Mapping {
                file: file.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Mappings {
            file: file.to_owned(),
            tables,
        })
    }

    /// The table for `field`; a missing table is a configuration error caught at start-up by
    /// [`Mappings::require`].
    pub fn table(&self, field: &str) -> &CodeMap {
        static EMPTY: std::sync::OnceLock<CodeMap> = std::sync::OnceLock::new();
        self.tables.get(field).unwrap_or_else(|| {
            EMPTY.get_or_init(|| CodeMap {
                scheme: "missing".into(),
                codes: HashMap::new(),
            })
        })
    }

    /// Fails unless every named table is present, so an adapter never starts half-configured.
    pub fn require(self, fields: &[&str]) -> Result<Self> {
        for field in fields {
            if !self.tables.contains_key(*field) {
                return Err(Error::Mapping {
                    file: self.file.clone(),
                    reason: format!("no [{field}] table"),
                });
            }
        }
        Ok(self)
    }
}

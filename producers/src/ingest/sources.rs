//! Which source systems may publish, and how they prove it: one bearer token per source, stored
//! as its SHA-256 hash and compared in constant time.
//!
//! ```toml
//! [[source]]
//! name = "avon-police-cad"   # the {source} in /v1/sources/{source}/events
//! org = "avon-police"        # organisation the records are attributed to
//! system = "cad"             # envelope.source_system
//! adapter = "cad"            # cad, mait, rms or victim-crm
//! token_sha256 = "…64 hex digits…"   # printf %s "$TOKEN" | sha256sum
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// One source system allowed to publish.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub org: String,
    pub system: String,
    pub adapter: String,
    /// Hex SHA-256 of the bearer token; the token itself is never stored.
    token_sha256: String,
    /// For the local demo stack only: the token in clear, checked against the hash at start-up so
    /// the demo file cannot drift. Never set it in a real deployment.
    #[serde(default)]
    demo_token: Option<String>,
}

impl std::fmt::Debug for Source {
    /// Leaves out the token hash and any demo token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("system", &self.system)
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

impl Source {
    pub fn demo_token(&self) -> Option<&str> {
        self.demo_token.as_deref()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: Vec<Source>,
}

/// The configured sources.
#[derive(Debug, Clone)]
pub struct Sources {
    sources: Credentials<Source>,
}

pub use bluelight_topics::tokens::token_hash;
use bluelight_topics::tokens::{Credential, Credentials};

impl Credential for Source {
    fn name(&self) -> &str {
        &self.name
    }
    fn token_sha256(&self) -> &str {
        &self.token_sha256
    }
    fn demo_token(&self) -> Option<&str> {
        self.demo_token.as_deref()
    }
}

impl Sources {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read sources file {}: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let parsed: File =
            toml::from_str(text).map_err(|e| Error::Config(format!("{file}: {e}")))?;
        let sources =
            Credentials::check(parsed.source, file, "source", "publish").map_err(Error::Config)?;
        Ok(Sources { sources })
    }

    /// The source a bearer token belongs to. Every configured hash is compared, in constant time,
    /// so timing says nothing about which (or whether any) source matched.
    pub fn authenticate(&self, token: &str) -> Option<&Source> {
        self.sources.authenticate(token)
    }

    /// The source a token belongs to, and its position (for per-source rate limits).
    pub fn authenticate_indexed(&self, token: &str) -> Option<(usize, &Source)> {
        self.sources.authenticate_indexed(token)
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Source> {
        self.sources.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(token: &str) -> String {
        format!(
            "[[source]]\nname = \"avon-police-cad\"\norg = \"avon-police\"\nsystem = \"cad\"\nadapter = \"cad\"\ntoken_sha256 = \"{}\"\n",
            token_hash(token)
        )
    }

    #[test]
    fn tokens_are_matched_by_hash_only() {
        let sources = Sources::parse(&file("s3cret-token"), "t.toml").expect("parse");
        assert_eq!(
            sources
                .authenticate("s3cret-token")
                .map(|s| s.name.as_str()),
            Some("avon-police-cad")
        );
        assert!(sources.authenticate("s3cret-tokeN").is_none());
        assert!(sources.authenticate("").is_none());
        assert!(!format!("{sources:?}").contains("s3cret-token"));
        let demo = Sources::parse(
            &format!("{}demo_token = \"s3cret-token\"\n", file("s3cret-token")),
            "t.toml",
        )
        .expect("demo");
        assert!(
            !format!("{demo:?}").contains("s3cret-token"),
            "no token in Debug output"
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let bad_hash = file("x").replace(&token_hash("x"), "abc");
        assert!(
            Sources::parse(&bad_hash, "t.toml")
                .unwrap_err()
                .to_string()
                .contains("64 hex digits")
        );
        let drift = format!("{}demo_token = \"y\"\n", file("x"));
        assert!(
            Sources::parse(&drift, "t.toml")
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        let twice = format!("{}{}", file("a"), file("b"));
        assert!(
            Sources::parse(&twice, "t.toml")
                .unwrap_err()
                .to_string()
                .contains("listed twice")
        );
        assert!(
            Sources::parse("source = []", "t.toml")
                .unwrap_err()
                .to_string()
                .contains("nobody could publish")
        );
    }
}

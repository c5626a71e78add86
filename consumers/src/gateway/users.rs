//! Who may use the gateway: one bearer token per person or console, each tied to one recipient
//! organisation and one role, stored as its SHA-256 hash.
//!
//! ```toml
//! [[user]]
//! name = "avon-fire-control"      # quoted in every consultation record
//! org = "avon-fire"               # the recipient organisation whose feeds it may read
//! role = "control-room"           # control-room (feeds, incidents, board) or ops (ops page only)
//! token_sha256 = "…64 hex digits…" # printf %s "$TOKEN" | sha256sum
//! ```

use std::path::Path;

use bluelight_topics::tokens::{Credential, Credentials};
use serde::Deserialize;

use crate::{Error, Result};

/// What a credential may do. Default deny: `Ops` sees health figures, never feed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads its organisation's feeds and incidents, and the board.
    ControlRoom,
    /// Reads the ops page's figures only.
    Ops,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ControlRoom => "control-room",
            Role::Ops => "ops",
        }
    }
}

/// One credential.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub org: String,
    pub role: Role,
    token_sha256: String,
    /// For the local demo stack only, so `deploy/local/up` can print it; checked against the hash.
    #[serde(default)]
    demo_token: Option<String>,
}

impl std::fmt::Debug for User {
    /// Leaves out the token hash and any demo token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    user: Vec<User>,
}

/// The configured credentials.
#[derive(Debug, Clone)]
pub struct Users {
    users: Credentials<User>,
}

impl Credential for User {
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

impl Users {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read gateway users file {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let parsed: File =
            toml::from_str(text).map_err(|e| Error::Config(format!("{file}: {e}")))?;
        let users =
            Credentials::check(parsed.user, file, "user", "sign in").map_err(Error::Config)?;
        Ok(Users { users })
    }

    /// The user a bearer token belongs to, compared in constant time against every hash.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        self.users.authenticate(token)
    }

    /// The user a token belongs to, and its position (for per-user rate limits).
    pub fn authenticate_indexed(&self, token: &str) -> Option<(usize, &User)> {
        self.users.authenticate_indexed(token)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.iter()
    }
}

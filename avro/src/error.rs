use std::fmt;

/// Who has to act for an error to go away, so callers can decide to retry, alert or dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// The input is wrong; the same input fails the same way (dead-letter it, answer 4xx).
    User,
    /// Something outside bluelight failed (broker, network, another registry); a retry may succeed.
    External,
    /// A bug in bluelight.
    Internal,
}

impl fmt::Display for ErrorDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorDomain::User => "user",
            ErrorDomain::External => "external",
            ErrorDomain::Internal => "internal",
        })
    }
}

/// Everything that can go wrong in `bluelight-avro`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schema text that does not parse as Avro.
    #[error("invalid Avro schema: {0}")]
    InvalidSchema(String),

    /// Reading or writing a local file (schema export).
    #[error("{0}")]
    Io(String),

    /// A Kafka value that is not in Confluent wire format at all.
    #[error("not Confluent wire format: {0}")]
    WireFormat(String),

    /// The payload names a schema id the registry does not have.
    #[error("schema id {id} is not in the schema registry")]
    UnknownSchemaId { id: u32 },

    /// The payload's schema is a different record than the one expected on this topic.
    #[error("schema id {id} is {found}, but this topic carries {expected}")]
    WrongSchema {
        id: u32,
        found: String,
        expected: &'static str,
    },

    /// The Avro body does not decode with the schema its header names (truncated, corrupt, or
    /// values the record type rejects).
    #[error("Avro body does not match schema id {id}: {reason}")]
    Malformed { id: u32, reason: String },

    /// A record the typed model cannot write with its schema (a bug: types and schemas disagree).
    #[error("cannot encode {record}: {reason}")]
    Encode {
        record: &'static str,
        reason: String,
    },

    /// Encoding before the record's schema was registered or looked up.
    #[error("no schema registered for {subject}; call Codec::register first")]
    NotRegistered { subject: String },

    /// The schema registry refused a schema (incompatible, invalid).
    #[error("the schema registry refused {subject}: {reason}")]
    Refused { subject: String, reason: String },

    /// The schema registry could not be reached or answered with a server error.
    #[error("schema registry at {url} unavailable: {reason}")]
    RegistryUnavailable { url: String, reason: String },

    // The embedded registry (`registry`). Its HTTP layer maps each to Confluent's status and
    // error code (`registry/api.rs`), so these carry exactly Confluent's distinctions.
    /// A valid schema the registry does not serve (another schema type, schema references).
    #[error("unsupported schema: {0}")]
    UnsupportedSchema(String),

    /// A request whose body or parameters are not what the endpoint expects.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// A version that is neither a number from 1 to 2^31-1 nor `latest`/`-1`.
    #[error(
        "the specified version '{0}' is not a valid version id; allowed values are between \
         [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),

    #[error(
        "invalid compatibility level {0}; valid values are NONE, BACKWARD, BACKWARD_TRANSITIVE, \
         FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE"
    )]
    InvalidCompatibilityLevel(String),

    #[error("subject '{0}' not found")]
    SubjectNotFound(String),

    #[error("version {version} not found under subject '{subject}'")]
    VersionNotFound { subject: String, version: String },

    #[error("schema {0} not found")]
    SchemaIdNotFound(u32),

    #[error("schema not found under subject '{0}'")]
    SchemaNotInSubject(String),

    #[error("subject '{0}' was soft deleted; set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),

    #[error("subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),

    #[error(
        "subject '{subject}' version {version} was soft deleted; set permanent=true to delete \
         permanently"
    )]
    VersionSoftDeleted { subject: String, version: u32 },

    #[error(
        "subject '{subject}' version {version} was not deleted first before being permanently \
         deleted"
    )]
    VersionNotSoftDeleted { subject: String, version: u32 },

    #[error("subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),

    /// The schema breaks the subject's compatibility level; `details` says against what and why.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" \
         (compatibility {level}): {}",
        details.join("; ")
    )]
    IncompatibleSchema {
        subject: String,
        level: String,
        details: Vec<String>,
    },

    /// The registry topic is missing or unusable (wrong partition count): an operator must act.
    #[error("registry topic {topic} {reason}")]
    RegistryTopic { topic: String, reason: String },

    /// The registry could not talk to Kafka (connect, produce, watermarks).
    #[error("registry store: {0}")]
    RegistryKafka(String),

    /// A registry write or catch-up took longer than its bound (Confluent's 50002).
    #[error("registry operation timed out: {0}")]
    RegistryTimeout(String),

    /// Other registry instances kept winning the version or id this one proposed.
    #[error("registry write conflict: {0}")]
    RegistryConflict(String),

    /// A bug or a dead registry thread.
    #[error("registry internal error: {0}")]
    RegistryInternal(String),
}

impl Error {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            Error::InvalidSchema(_) => ErrorDomain::User,
            Error::Io(_) => ErrorDomain::External,
            Error::WireFormat(_)
            | Error::UnknownSchemaId { .. }
            | Error::WrongSchema { .. }
            | Error::Malformed { .. }
            | Error::Refused { .. } => ErrorDomain::User,
            Error::Encode { .. } | Error::NotRegistered { .. } => ErrorDomain::Internal,
            Error::RegistryUnavailable { .. } => ErrorDomain::External,
            Error::UnsupportedSchema(_)
            | Error::InvalidRequest(_)
            | Error::InvalidVersion(_)
            | Error::InvalidCompatibilityLevel(_)
            | Error::SubjectNotFound(_)
            | Error::VersionNotFound { .. }
            | Error::SchemaIdNotFound(_)
            | Error::SchemaNotInSubject(_)
            | Error::SubjectSoftDeleted(_)
            | Error::SubjectNotSoftDeleted(_)
            | Error::VersionSoftDeleted { .. }
            | Error::VersionNotSoftDeleted { .. }
            | Error::SubjectCompatibilityNotConfigured(_)
            | Error::IncompatibleSchema { .. } => ErrorDomain::User,
            Error::RegistryTopic { .. }
            | Error::RegistryKafka(_)
            | Error::RegistryTimeout(_)
            | Error::RegistryConflict(_) => ErrorDomain::External,
            Error::RegistryInternal(_) => ErrorDomain::Internal,
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

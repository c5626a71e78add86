use std::fmt;

/// Who has to act for an error to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// The input or configuration is wrong; the same input fails the same way.
    User,
    /// Something outside bluelight failed; a retry may succeed.
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

/// Everything that can go wrong in `bluelight-producers` outside a single record's validation
/// (which is data, [`crate::adapters::Rejected`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mapping table that does not load.
    #[error("mapping table {file}: {reason}")]
    Mapping { file: String, reason: String },

    /// Too many records in flight to admit this submission; nothing of it was sent.
    #[error(
        "the publisher is saturated: {needed} record(s) asked for, {available} of {limit} slots free; retry shortly"
    )]
    Saturated {
        needed: usize,
        available: usize,
        limit: usize,
    },

    /// More records in one submission than the publisher can ever hold at once; split it.
    #[error(
        "{records} records in one submission; at most {limit} are accepted at once, so split it"
    )]
    TooManyRecords { records: usize, limit: usize },

    /// A record larger than the broker accepts; retrying will not help.
    #[error("a record is larger than the broker accepts: {0}")]
    RecordTooLarge(String),

    /// The broker refused or did not acknowledge in time.
    #[error("Kafka {operation} failed: {reason}")]
    Kafka {
        operation: &'static str,
        reason: String,
    },

    /// Encoding or the schema registry failed.
    #[error(transparent)]
    Avro(#[from] bluelight_avro::Error),

    /// A configuration file or setting that is wrong.
    #[error("{0}")]
    Config(String),

    /// No adapter of that name.
    #[error("unknown source format {0:?}; known formats: cad, mait, rms, victim-crm")]
    UnknownAdapter(String),
}

impl Error {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            Error::Mapping { .. }
            | Error::UnknownAdapter(_)
            | Error::Config(_)
            | Error::TooManyRecords { .. }
            | Error::RecordTooLarge(_) => ErrorDomain::User,
            Error::Saturated { .. } | Error::Kafka { .. } => ErrorDomain::External,
            Error::Avro(e) => match e.domain() {
                bluelight_avro::ErrorDomain::User => ErrorDomain::User,
                bluelight_avro::ErrorDomain::External => ErrorDomain::External,
                bluelight_avro::ErrorDomain::Internal => ErrorDomain::Internal,
            },
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

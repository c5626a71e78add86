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
}

impl Error {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            Error::InvalidSchema(_) => ErrorDomain::User,
            Error::Io(_) => ErrorDomain::External,
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

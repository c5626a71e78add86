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

/// One problem in an agreement file, located for the person who signs it off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based line (0 when the problem concerns the whole file or several files).
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Agreements that do not load; every problem is listed.
    #[error("the agreements do not load:{}", list(.0))]
    Agreements(Vec<Problem>),

    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },

    /// A configuration file (calendar, Victims' Code rules) that does not load.
    #[error("{what} does not load:{}", list(.problems))]
    Invalid {
        what: &'static str,
        problems: Vec<Problem>,
    },

    /// The projector could not build a record it decided to send: a bug, never the input's fault.
    #[error("projecting event {event_id}: {reason}")]
    Projection { event_id: String, reason: String },

    #[error("Kafka: {0}")]
    Kafka(String),

    #[error("schema registry: {0}")]
    Avro(#[from] bluelight_avro::Error),

    #[error("{0}")]
    Config(String),
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

impl Error {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            Error::Agreements(_) | Error::Invalid { .. } => ErrorDomain::User,
            Error::Read { .. } | Error::Kafka(_) => ErrorDomain::External,
            Error::Projection { .. } => ErrorDomain::Internal,
            Error::Avro(e) => match e.domain() {
                bluelight_avro::ErrorDomain::User => ErrorDomain::User,
                bluelight_avro::ErrorDomain::External => ErrorDomain::External,
                bluelight_avro::ErrorDomain::Internal => ErrorDomain::Internal,
            },
            Error::Config(_) => ErrorDomain::User,
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

use std::{fmt, path::PathBuf};

/// Who has to act for an error to go away, so callers can decide to retry, alert or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// The input or configuration is wrong; retrying the same thing fails the same way.
    User,
    /// Something outside bluelight (the broker, the network) failed; a retry may succeed.
    External,
    /// A bug in bluelight.
    Internal,
}

/// One thing wrong with a file, located so an editor can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending value (or of the topic entry it belongs to).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },

    #[error("{} is not a valid topic catalogue:{}", file.display(), ProblemList(problems))]
    Catalogue {
        file: PathBuf,
        problems: Vec<Problem>,
    },

    #[error("Kafka client settings: {0}")]
    ClientConfig(String),

    #[error("Kafka {operation} failed: {source}")]
    Kafka {
        operation: &'static str,
        source: rdkafka::error::KafkaError,
    },

    #[error("topic {topic}: {reason}")]
    Provision { topic: String, reason: String },

    #[error("{0}")]
    Cluster(String),
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl Error {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            Error::Read { .. } | Error::Catalogue { .. } | Error::ClientConfig(_) => {
                ErrorDomain::User
            }
            Error::Kafka { .. } | Error::Cluster(_) => ErrorDomain::External,
            Error::Provision { .. } => ErrorDomain::User,
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }

    pub(crate) fn kafka(
        operation: &'static str,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Error {
        move |source| Error::Kafka { operation, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's errors. Transient trouble (an unreachable server, a
//! publish that times out) is retried with backoff inside
//! [`Forwarder::run`](crate::Forwarder::run) and only counted and logged;
//! these are the errors that stop it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use comet::MessageId;

/// An invalid [`ForwardConfig`](crate::ForwardConfig) value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No server URL was given.
    NoServer,
    /// A server URL does not parse (shown with its user-info redacted).
    InvalidUrl {
        /// The URL, redacted.
        url: String,
    },
    /// Server URLs carry different credentials, or credentials as well as
    /// [`ForwardConfig::auth`](crate::ForwardConfig::auth).
    ConflictingCredentials,
    /// The subject prefix is not a valid literal NATS subject.
    InvalidSubjectPrefix {
        /// The prefix.
        prefix: String,
        /// Byte position of the first problem.
        at: usize,
    },
    /// The stream pattern does not parse.
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: &'static str,
    },
    /// The JetStream stream name is not letters, digits, `-` and `_`.
    InvalidStreamName {
        /// The name.
        name: String,
    },
    /// A number out of its accepted range.
    OutOfRange {
        /// The field (durations in milliseconds).
        field: &'static str,
        /// The value given.
        value: u64,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoServer => f.write_str("no NATS server URL given"),
            ConfigError::InvalidUrl { url } => write!(f, "invalid NATS server URL {url:?}"),
            ConfigError::ConflictingCredentials => {
                f.write_str("server URLs carry different credentials, or credentials besides the auth option")
            }
            ConfigError::InvalidSubjectPrefix { prefix, at } => {
                write!(
                    f,
                    "invalid subject prefix {prefix:?} at byte {at} (dot-separated tokens, no spaces or wildcards)"
                )
            }
            ConfigError::InvalidPattern { pattern, reason } => {
                write!(f, "invalid stream pattern {pattern:?}: {reason}")
            }
            ConfigError::InvalidStreamName { name } => {
                write!(f, "invalid JetStream stream name {name:?} (letters, digits, '-', '_')")
            }
            ConfigError::OutOfRange { field, value, min, max } => {
                write!(f, "{field} = {value} is out of range {min}..={max}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a forwarder could not start or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardError {
    /// An invalid configuration value.
    Config(ConfigError),
    /// comet refused an operation (an invalid group name, a failed ack).
    Comet(comet::Error),
    /// A credentials file could not be read.
    Credentials {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An entry does not fit in one NATS message; raise the server's
    /// `max_payload` (the forwarder cannot skip it without losing it).
    EntryTooLarge {
        /// The entry.
        id: MessageId,
        /// Its payload plus headers, in bytes.
        bytes: u64,
        /// The server's limit.
        max_payload: u64,
    },
    /// The async runtime could not be built.
    Runtime(io::Error),
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Config(e) => write!(f, "configuration: {e}"),
            ForwardError::Comet(e) => write!(f, "comet: {e}"),
            ForwardError::Credentials { path, source } => {
                write!(f, "cannot read credentials file {}: {source}", path.display())
            }
            ForwardError::EntryTooLarge { id, bytes, max_payload } => write!(
                f,
                "entry {id} needs {bytes} bytes, above the server's max_payload of {max_payload}; raise max_payload"
            ),
            ForwardError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
        }
    }
}

impl std::error::Error for ForwardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForwardError::Config(e) => Some(e),
            ForwardError::Comet(e) => Some(e),
            ForwardError::Credentials { source, .. } | ForwardError::Runtime(source) => Some(source),
            ForwardError::EntryTooLarge { .. } => None,
        }
    }
}

impl From<ConfigError> for ForwardError {
    fn from(e: ConfigError) -> ForwardError {
        ForwardError::Config(e)
    }
}

impl From<comet::Error> for ForwardError {
    fn from(e: comet::Error) -> ForwardError {
        ForwardError::Comet(e)
    }
}

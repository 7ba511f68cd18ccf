//! The crate's errors. Transient trouble (an unreachable server, a
//! publish that times out) is retried with backoff inside
//! [`Forwarder::run`](crate::Forwarder::run) and only counted and logged;
//! these are the errors that stop it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use comet::{MessageId, ShardId};

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
    /// The nkey seed does not decode (a user seed starts with `SU`).
    InvalidNKeySeed,
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
            ConfigError::InvalidNKeySeed => {
                f.write_str("invalid nkey seed (a user seed is 58 characters starting with SU)")
            }
            ConfigError::OutOfRange { field, value, min, max } => {
                write!(f, "{field} = {value} is out of range {min}..={max}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Which limit an entry exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeLimit {
    /// The server's `max_payload` (payload plus headers).
    MaxPayload,
    /// The stream's `max_msg_size` (payload plus headers).
    MaxMsgSize,
}

impl fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizeLimit::MaxPayload => "the server's max_payload",
            SizeLimit::MaxMsgSize => "the stream's max_msg_size",
        })
    }
}

/// Why a forwarder could not start, stopped, or stopped forwarding a
/// shard. Transient trouble never shows up here: it is retried.
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardError {
    /// An invalid configuration value.
    Config(ConfigError),
    /// comet refused an operation (an invalid group name, a failed ack).
    Comet(comet::Error),
    /// The data directory's identity (`comet.id`) is unreadable or damaged.
    Identity(comet::IdentityError),
    /// A credentials file could not be read.
    Credentials {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The server refused the credentials (authorization violation, or a
    /// failed nonce signature), or a publish permission.
    Unauthorized {
        /// The server URLs, redacted.
        servers: String,
        /// The client's description.
        reason: String,
    },
    /// TLS is required, but no server offers it.
    TlsUnavailable {
        /// The server URLs, redacted.
        servers: String,
    },
    /// The server has no JetStream, or not for this account.
    NoJetStream {
        /// The server URLs, redacted.
        servers: String,
        /// What the server said.
        reason: String,
    },
    /// The server refused to create the stream for a reason that retrying
    /// cannot fix (replicas above the cluster size, subjects overlapping
    /// another stream, an invalid configuration).
    StreamRefused {
        /// The stream.
        stream: String,
        /// JetStream's error code (`err_code`).
        code: u64,
        /// JetStream's description.
        description: String,
    },
    /// An existing stream of the configured name does not capture
    /// `<prefix>.<shard>`.
    StreamMismatch {
        /// The stream.
        stream: String,
        /// Its subjects.
        subjects: Vec<String>,
        /// The subject prefix.
        prefix: String,
    },
    /// An entry does not fit in one message (stops its shard: the
    /// forwarder cannot skip it without losing it).
    EntryTooLarge {
        /// The entry.
        id: MessageId,
        /// Its payload plus headers, in bytes.
        bytes: u64,
        /// The limit.
        limit: u64,
        /// Which limit.
        kind: SizeLimit,
    },
    /// An entry fails its checks when read (stops its shard: it is
    /// neither forwarded nor acked, nor anything after it).
    Damaged {
        /// The shard.
        shard: ShardId,
        /// comet's error.
        source: comet::Error,
    },
    /// Every selected shard stopped forwarding; each with its reason.
    ShardsStopped(Vec<(ShardId, ForwardError)>),
    /// The async runtime could not be built.
    Runtime(io::Error),
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Config(e) => write!(f, "configuration: {e}"),
            // comet's own messages name what failed; the CLI adds `comet: `.
            ForwardError::Comet(e) => e.fmt(f),
            ForwardError::Identity(e) => write!(f, "data directory identity: {e}"),
            ForwardError::Credentials { path, source } => {
                write!(f, "cannot read credentials file {}: {source}", path.display())
            }
            ForwardError::Unauthorized { servers, reason } => {
                write!(f, "{servers} refused the credentials or a permission ({reason}); fix them and restart")
            }
            ForwardError::TlsUnavailable { servers } => {
                write!(f, "TLS is required but {servers} does not offer it")
            }
            ForwardError::NoJetStream { servers, reason } => {
                write!(
                    f,
                    "no JetStream at {servers} ({reason}); start the server with -js or enable it for the account"
                )
            }
            ForwardError::StreamRefused { stream, code, description } => {
                write!(f, "the server refused to create stream {stream}: {description} (err_code {code})")
            }
            ForwardError::StreamMismatch { stream, subjects, prefix } => write!(
                f,
                "stream {stream} exists with subjects {subjects:?}, which do not capture {prefix}.<shard>; \
                 add {prefix}.> to it or use another stream name"
            ),
            ForwardError::EntryTooLarge { id, bytes, limit, kind } => {
                write!(f, "entry {id} needs {bytes} bytes with its headers, above {kind} of {limit}; raise it")
            }
            ForwardError::Damaged { shard, source } => {
                write!(f, "shard {shard}: {source}; forwarding of the shard stopped before it")
            }
            ForwardError::ShardsStopped(stopped) => {
                write!(f, "every selected shard stopped:")?;
                for (i, (shard, e)) in stopped.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}shard {}: {}", shard.get(), comet::ErrorChain(e))?;
                }
                Ok(())
            }
            ForwardError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
        }
    }
}

impl std::error::Error for ForwardError {
    /// Every message above already includes its cause's text, so the
    /// source is the cause's own source (an error chain prints each text
    /// once).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForwardError::Comet(e) | ForwardError::Damaged { source: e, .. } => e.source(),
            ForwardError::Identity(e) => e.source(),
            _ => None,
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

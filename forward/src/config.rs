//! What a [`Forwarder`](crate::Forwarder) forwards, where to, and how it
//! behaves while the server is away.
//!
//! Secrets (passwords, tokens, nkey seeds, credentials) live in [`Secret`],
//! whose `Debug` prints `***` and which has no `Display`; server URLs are
//! shown with their user-info replaced by `***` (see [`redact_urls`]). So
//! neither `{:?}` of a config nor any log line of this crate carries them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use comet::{ShardId, ShardPattern};

use crate::error::ConfigError;

/// Longest accepted subject prefix, in bytes.
pub const MAX_SUBJECT_PREFIX: usize = 200;
/// Largest accepted batch size.
pub const MAX_BATCH_SIZE: usize = 100_000;

/// A string that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself (hand it to the NATS client, never to a log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// How the forwarder authenticates, as `async-nats` offers it. User and
/// password (or a token) may also come in the URLs
/// (`nats://user:pass@host`, `nats://token@host`); the forwarder moves
/// them here, since the client itself ignores URL credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials (or only those in the URL).
    #[default]
    None,
    /// A token.
    Token(Secret),
    /// User and password.
    UserPassword {
        /// The user name (shown in logs).
        user: String,
        /// The password (never shown).
        password: Secret,
    },
    /// An nkey seed (`SU...`).
    NKey(Secret),
    /// A `.creds` file (JWT and nkey seed), read when connecting.
    CredentialsFile(PathBuf),
    /// The contents of a `.creds` file.
    Credentials(Secret),
}

/// TLS options, as `async-nats` offers them. A `tls://` URL turns TLS on
/// as well.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Refuse to talk to a server without TLS.
    pub required: bool,
    /// PEM files of CA certificates to trust (in addition to the system's).
    pub root_certificates: Vec<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// Start TLS before the server's INFO (servers with `handshake_first`).
    pub handshake_first: bool,
}

/// Which comet shards a forwarder reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ShardSelect {
    /// Every shard directory, including ones created while running.
    #[default]
    All,
    /// These shards (each read once it exists on disk).
    Only(BTreeSet<ShardId>),
}

impl ShardSelect {
    /// True if `shard` is selected.
    pub fn matches(&self, shard: ShardId) -> bool {
        match self {
            ShardSelect::All => true,
            ShardSelect::Only(set) => set.contains(&shard),
        }
    }
}

impl FromStr for ShardSelect {
    type Err = ConfigError;

    /// Parses a stream pattern with [`comet::ShardPattern`], the grammar
    /// `comet consume --stream` takes too: comma-separated items, each one
    /// of
    ///
    /// * `*`, or a stream name whose shard part is `*`
    ///   (`events:v1:shard:*`): every shard, including ones created later;
    /// * a stream name (`events:v1:shard:0007`): that shard;
    /// * a stream name whose shard part has `*`/`?` wildcards
    ///   (`events:v1:shard:00*`), matched against the 4-digit id and the
    ///   plain number: those shards;
    /// * a shard id (`7`) or an inclusive range of ids (`0-15`).
    ///
    /// Stream prefixes are not stored on disk, so `events:v1:shard:*`
    /// selects every shard whatever its prefix.
    fn from_str(pattern: &str) -> Result<ShardSelect, ConfigError> {
        let parsed = ShardPattern::parse(pattern)
            .map_err(|e| ConfigError::InvalidPattern { pattern: pattern.to_string(), reason: e.reason() })?;
        Ok(ShardSelect::from(&parsed))
    }
}

impl From<&ShardPattern> for ShardSelect {
    /// [`ShardSelect::All`] if the pattern selects every shard id, else
    /// the ids it selects.
    fn from(pattern: &ShardPattern) -> ShardSelect {
        if pattern.is_all() { ShardSelect::All } else { ShardSelect::Only(pattern.shards().collect()) }
    }
}

/// Capped exponential backoff: `initial`, then doubling per failed
/// attempt, never above `max`, with up to 25 % random jitter added (so
/// many devices do not retry in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay (default 100 ms).
    pub initial: Duration,
    /// The cap (default 30 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `attempt` (0-based), with jitter; never
    /// above `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        let jitter = base.mul_f64(jitter_fraction() * 0.25);
        (base + jitter).min(self.max)
    }
}

/// A pseudo-random fraction in `[0, 1)`, from the clock (jitter only).
fn jitter_fraction() -> f64 {
    rand::random::<f64>()
}

/// Storage of a JetStream stream the forwarder creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamStorage {
    /// On disk (default).
    #[default]
    File,
    /// In memory.
    Memory,
}

/// A JetStream stream to create when it does not exist yet, capturing
/// `<subject_prefix>.>`. An existing stream of that name is used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSetup {
    /// The stream name (letters, digits, `-`, `_`).
    pub name: String,
    /// How long the server remembers message ids for deduplication
    /// (default 2 min, JetStream's own default). Redelivery after an
    /// outage longer than this can store an entry twice.
    pub duplicate_window: Duration,
    /// File or memory storage.
    pub storage: StreamStorage,
    /// Replicas in a cluster (1..=5).
    pub replicas: usize,
}

impl StreamSetup {
    /// A file-backed, single-replica stream named `name`.
    pub fn new(name: impl Into<String>) -> StreamSetup {
        StreamSetup {
            name: name.into(),
            duplicate_window: Duration::from_secs(120),
            storage: StreamStorage::File,
            replicas: 1,
        }
    }
}

/// Everything a [`Forwarder`](crate::Forwarder) needs.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The comet consumer group whose offsets record what JetStream has
    /// acknowledged (1..=47 bytes).
    pub group: String,
    /// One or more server URLs, comma-separated (`nats://host:4222`,
    /// `tls://host:4222`, `host:4222`).
    pub nats_url: String,
    /// Entries of shard `N` go to subject `<subject_prefix>.N`. Use one
    /// prefix per device: message ids (`<shard>-<entry>`) only identify an
    /// entry within one data directory.
    pub subject_prefix: String,
    /// Which shards to forward (default all).
    pub shards: ShardSelect,
    /// Credentials.
    pub auth: Auth,
    /// TLS.
    pub tls: TlsOptions,
    /// A stream to create if missing (default none: an operator made it).
    pub stream: Option<StreamSetup>,
    /// Most entries read and published before waiting for their
    /// acknowledgements (default 512, at most 100,000).
    pub batch_size: usize,
    /// How long to sleep when every shard is caught up (default 50 ms).
    pub poll_interval: Duration,
    /// How long to wait for a PubAck (default 5 s).
    pub publish_timeout: Duration,
    /// Timeout of one connection attempt (default 5 s).
    pub connect_timeout: Duration,
    /// Delays between failed publishes, connection attempts and
    /// reconnects.
    pub backoff: Backoff,
    /// The connection name the server shows (default `comet-forward`).
    pub client_name: String,
}

impl ForwardConfig {
    /// A config with defaults for everything but the group, the server
    /// URL(s) and the subject prefix.
    pub fn new(group: impl Into<String>, nats_url: impl Into<String>, subject_prefix: impl Into<String>) -> Self {
        ForwardConfig {
            group: group.into(),
            nats_url: nats_url.into(),
            subject_prefix: subject_prefix.into(),
            shards: ShardSelect::All,
            auth: Auth::None,
            tls: TlsOptions::default(),
            stream: None,
            batch_size: 512,
            poll_interval: Duration::from_millis(50),
            publish_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            client_name: "comet-forward".to_string(),
        }
    }

    /// Checks every value (the group name is checked by comet when the
    /// forwarder is created).
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_subject_prefix(&self.subject_prefix)?;
        if self.nats_url.split(',').all(|u| u.trim().is_empty()) {
            return Err(ConfigError::NoServer);
        }
        range("batch_size", self.batch_size as u64, 1, MAX_BATCH_SIZE as u64)?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        range("poll_interval_ms", ms(self.poll_interval), 1, 60_000)?;
        range("publish_timeout_ms", ms(self.publish_timeout), 1, 600_000)?;
        range("connect_timeout_ms", ms(self.connect_timeout), 1, 600_000)?;
        range("backoff.initial_ms", ms(self.backoff.initial), 1, 3_600_000)?;
        range("backoff.max_ms", ms(self.backoff.max), ms(self.backoff.initial), 3_600_000)?;
        if let Some(s) = &self.stream {
            if s.name.is_empty()
                || s.name.len() > 255
                || !s.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::InvalidStreamName { name: s.name.clone() });
            }
            range("stream.replicas", s.replicas as u64, 1, 5)?;
            range("stream.duplicate_window_ms", ms(s.duplicate_window), 1, 7 * 24 * 3_600_000)?;
        }
        Ok(())
    }

    /// The subject of `shard`'s entries: `<subject_prefix>.<shard>`.
    pub fn subject(&self, shard: ShardId) -> String {
        format!("{}.{}", self.subject_prefix, shard.get())
    }
}

impl fmt::Debug for ForwardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardConfig")
            .field("group", &self.group)
            .field("nats_url", &redact_urls(&self.nats_url))
            .field("subject_prefix", &self.subject_prefix)
            .field("shards", &self.shards)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("stream", &self.stream)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("publish_timeout", &self.publish_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("backoff", &self.backoff)
            .field("client_name", &self.client_name)
            .finish()
    }
}

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange { field, value, min, max });
    }
    Ok(())
}

/// Checks a subject prefix: 1..=200 bytes of dot-separated non-empty
/// tokens, printable ASCII without spaces or the wildcards `*` and `>`.
pub fn validate_subject_prefix(prefix: &str) -> Result<(), ConfigError> {
    let bad = |at: usize| ConfigError::InvalidSubjectPrefix { prefix: prefix.to_string(), at };
    if prefix.is_empty() {
        return Err(bad(0));
    }
    if prefix.len() > MAX_SUBJECT_PREFIX {
        return Err(bad(MAX_SUBJECT_PREFIX));
    }
    let bytes = prefix.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let token_edge = b == b'.' && (i == 0 || i + 1 == bytes.len() || bytes[i - 1] == b'.');
        if !b.is_ascii_graphic() || b == b'*' || b == b'>' || token_edge {
            return Err(bad(i));
        }
    }
    Ok(())
}

/// `urls` (comma-separated) with any user-info (`user:pass@`, `token@`)
/// replaced by `***@`, for logs and errors.
///
/// Hand-written rather than through the `url` crate on purpose: it must
/// also redact what does not parse as a URL (the error for an invalid
/// server address shows it), and a parser would fail on exactly that.
pub fn redact_urls(urls: &str) -> String {
    urls.split(',').map(redact_url).collect::<Vec<_>>().join(",")
}

fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u32]) -> ShardSelect {
        ShardSelect::Only(v.iter().filter_map(|&n| ShardId::new(n)).collect())
    }

    #[test]
    fn stream_patterns_select_shards() {
        assert_eq!("*".parse::<ShardSelect>().ok(), Some(ShardSelect::All));
        assert_eq!("events:v1:shard:*".parse::<ShardSelect>().ok(), Some(ShardSelect::All));
        assert_eq!("events:v1:shard:0007".parse::<ShardSelect>().ok(), Some(ids(&[7])));
        assert_eq!("3, 0-2,events:shard:0009".parse::<ShardSelect>().ok(), Some(ids(&[0, 1, 2, 3, 9])));
        assert_eq!("9999".parse::<ShardSelect>().ok(), Some(ids(&[9999])));
        assert_eq!("events:v1:shard:000?".parse::<ShardSelect>().ok(), Some(ids(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])));
        assert_eq!("e:shard:1?,4".parse::<ShardSelect>().ok(), Some(ids(&[4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19])));
        assert_eq!("e:shard:**".parse::<ShardSelect>().ok(), Some(ShardSelect::All));
        assert!(ShardSelect::All.matches(ShardId::MAX));
        assert!(!ids(&[1]).matches(ShardId::MIN));
    }

    #[test]
    fn the_selection_is_the_shared_patterns() {
        for p in ["*", "e:shard:*", "e:shard:00*3", "e:shard:1?", "0-3,7", "9999", "logs:v2:0007", "e:shard:*0*"] {
            let select: ShardSelect = p.parse().unwrap();
            let pattern = ShardPattern::parse(p).unwrap();
            for s in (0..=ShardId::MAX.get()).filter_map(ShardId::new) {
                assert_eq!(select.matches(s), pattern.matches(s), "{p} {s}");
            }
        }
        let e = "e:shard:0a*".parse::<ShardSelect>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid stream pattern \"e:shard:0a*\": the shard part of a pattern is digits, '*' and '?'"
        );
    }

    #[test]
    fn bad_stream_patterns_are_errors() {
        for p in [
            "",
            " ",
            ",",
            "1,",
            "10000",
            "5-3",
            "1-",
            "-1",
            "1-2-3",
            "x",
            "a/b:*",
            "e:1x*",
            "events:v1:shard:12345",
            "*,x",
        ] {
            assert!(
                matches!(p.parse::<ShardSelect>(), Err(ConfigError::InvalidPattern { .. })),
                "{p:?} should be rejected"
            );
        }
    }

    #[test]
    fn subject_prefixes_are_checked() {
        for ok in ["site1", "site1.dev7", "a-b_c.D"] {
            assert!(validate_subject_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a.*", "a.>", "a\tb", "é"] {
            assert!(validate_subject_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(validate_subject_prefix(&"a".repeat(MAX_SUBJECT_PREFIX + 1)).is_err());
    }

    #[test]
    fn config_values_are_checked() {
        let ok = ForwardConfig::new("g", "nats://127.0.0.1:4222", "site");
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.batch_size = 0;
        assert!(matches!(c.validate(), Err(ConfigError::OutOfRange { field: "batch_size", .. })));
        let mut c = ok.clone();
        c.backoff = Backoff { initial: Duration::from_secs(2), max: Duration::from_secs(1) };
        assert!(matches!(c.validate(), Err(ConfigError::OutOfRange { field: "backoff.max_ms", .. })));
        let mut c = ok.clone();
        c.nats_url = " , ".into();
        assert!(matches!(c.validate(), Err(ConfigError::NoServer)));
        let mut c = ok.clone();
        c.stream = Some(StreamSetup::new("bad.name"));
        assert!(matches!(c.validate(), Err(ConfigError::InvalidStreamName { .. })));
        let mut c = ok;
        c.publish_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1) };
        assert_eq!(b.base_delay(0), Duration::from_millis(100));
        assert_eq!(b.base_delay(1), Duration::from_millis(200));
        assert_eq!(b.base_delay(3), Duration::from_millis(800));
        assert_eq!(b.base_delay(4), Duration::from_secs(1));
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(1));
        for attempt in 0..40 {
            let d = b.delay(attempt);
            assert!(d >= b.base_delay(attempt) && d <= b.max, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut c = ForwardConfig::new("g", "nats://alice:hunter2@a:4222,tls://tok3n@b:4222/x,c:4222", "site");
        c.auth = Auth::UserPassword { user: "alice".into(), password: "pa55word".into() };
        let shown = format!("{c:?}");
        for secret in ["hunter2", "tok3n", "pa55word"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("nats://***@a:4222,tls://***@b:4222/x,c:4222"), "{shown}");
        for auth in [Auth::Token("s3cret".into()), Auth::NKey("SUAB".into()), Auth::Credentials("-----JWT".into())] {
            let shown = format!("{auth:?}");
            assert!(!shown.contains("s3cret") && !shown.contains("SUAB") && !shown.contains("JWT"), "{shown}");
        }
    }
}

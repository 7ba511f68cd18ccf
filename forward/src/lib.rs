//! # comet-forward
//!
//! Ships durable [comet] entries to a NATS JetStream cluster: when
//! a site outgrows one device, the device keeps buffering in comet and a
//! forwarder drains the log into JetStream.
//!
//! A [`Forwarder`] is a comet consumer group member. It reads durable
//! entries from the group's offsets, publishes each to the subject
//! `<prefix>.<shard>` with headers
//!
//! | header | value |
//! |---|---|
//! | `Nats-Msg-Id` | `<dir>-<shard>-<entry>` ([`message_id`]: the data directory's identity, then comet's [`MessageId`](comet::MessageId) display) |
//! | `Comet-Dir` | the data directory's identity ([`comet::dir_identity`], `comet.id`) |
//! | `Comet-Shard` | the shard id, decimal |
//! | `Comet-Entry` | the entry number, decimal |
//! | `Comet-Timestamp` | the append time, ns since the Unix epoch |
//!
//! and acks in comet only after JetStream acknowledged the publish. So:
//!
//! * **nothing acked in comet is missing in JetStream**;
//! * delivery is at-least-once, and a redelivered entry (after a crash of
//!   the forwarder, a lost PubAck, a server restart) carries the same
//!   `Nats-Msg-Id`, so the stream's duplicate window drops it: entries
//!   arrive once as long as a redelivery comes within that window
//!   (JetStream's default is 2 minutes);
//! * message ids never collide between data directories: each has a
//!   random identity (`comet.id`, created by [`Forwarder::new`] if
//!   missing, never replaced when damaged);
//! * while the server is unreachable, the forwarder retries with capped
//!   exponential backoff, comet keeps buffering (bounded by its retention),
//!   and forwarding resumes exactly at the group's offset;
//! * what retrying cannot fix stops it with a typed [`ForwardError`]
//!   (refused credentials, no JetStream, a stream the server refuses or
//!   that does not capture the prefix); an entry that cannot be forwarded
//!   (above `max_payload` or the stream's `max_msg_size`, or damaged)
//!   stops only its shard, before that entry
//!   ([`Forwarder::stopped_shards`]).
//!
//! Within a subject, messages are normally in entry order; after a failed
//! round an entry may land after a later one that was stored before the
//! failure. Consumers that need order sort by `Comet-Entry`.
//!
//! ```no_run
//! use comet::{Client, Config};
//! use comet_forward::{ForwardConfig, Forwarder, StreamSetup};
//!
//! let client = Client::open_read_only("/var/lib/agent/comet", Config::default())?;
//! let mut config = ForwardConfig::new("jetstream", "nats://127.0.0.1:4222", "site1.dev7");
//! config.stream = Some(StreamSetup::new("COMET")); // create it if missing
//! let mut forwarder = Forwarder::new(&client, config)?;
//! let metrics = forwarder.metrics(); // read it from any thread
//! forwarder.run_blocking(comet_forward::shutdown_signal())?;
//! println!("{}", metrics.snapshot());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Logs go through `tracing`; this crate never logs a password, token,
//! nkey seed or credentials (URLs are shown with user-info redacted). The
//! NATS client does at `debug` and `trace` (server URLs, its CONNECT
//! line), so a subscriber must hold the `async_nats` target at `info`, as
//! [`log_to_stderr`] does.
//!
//! This crate stays out of `comet-core` and `comet`: only deployments that
//! forward pay for Tokio and the NATS client. MSRV: Rust 1.88.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod forwarder;
mod metrics;
mod publish;
mod servers;
mod stream;

pub use config::{
    Auth, Backoff, ForwardConfig, MAX_BATCH_SIZE, MAX_SUBJECT_PREFIX, Secret, ShardSelect, StreamSetup, StreamStorage,
    TlsOptions, redact_urls, validate_subject_prefix,
};
pub use error::{ConfigError, ForwardError, SizeLimit};
pub use forwarder::{Forwarder, shutdown_signal};
pub use metrics::{LatencySnapshot, Metrics, MetricsSnapshot};
pub use publish::{HEADER_DIR, HEADER_ENTRY, HEADER_SHARD, HEADER_TIMESTAMP, message_id, wire_size};

/// Sends `tracing` events to stderr, for command-line tools: `info` and
/// above (`debug` with `COMET_DEBUG=1`), or what `RUST_LOG` says. The NATS
/// client is held at `info` whatever the filter, because its debug events
/// print server URLs with their credentials. Does nothing if a subscriber
/// is installed already.
pub fn log_to_stderr() {
    use tracing_subscriber::EnvFilter;
    let debug =
        std::env::var("COMET_DEBUG").is_ok_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false"));
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(if debug { "debug" } else { "info" }));
    let filter = match "async_nats=info".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    };
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

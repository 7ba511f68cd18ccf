//! # comet
//!
//! An embedded, sharded, append-only segmented log for edge observability:
//! a process links the library, appends entries (log lines, metrics,
//! spans) to shards at microsecond cost, consumer groups read them back
//! with acknowledged progress, and retention keeps the disk bounded.
//!
//! This crate is the Linux/std platform over [`comet_core`], which holds
//! the format and the shard engine. It adds:
//!
//! * [`Client`] — a data directory of `shard-NNNN` directories, opened for
//!   writing lazily (one `writer.lock` per shard), a background flusher
//!   that syncs every `storage.flush_interval`;
//! * [`Reader`] — lock-free, zero-copy reads through memory maps, in any
//!   process;
//! * zstd compression, `comet.state` metrics, `tracing` logs (see
//!   [Logging](#logging)).
//!
//! ```
//! use comet::{Client, Config};
//!
//! let dir = tempfile::tempdir()?;
//! let client = Client::open(dir.path(), Config::default())?;
//! let ids = client.append("events:v1:shard:0001", &[b"hello".as_slice(), b"world"])?;
//! assert_eq!(ids.entries, 0..2);
//! client.sync()?; // durable and visible
//! let mut reader = client.reader(ids.shard)?;
//! assert_eq!(reader.read(1)?.data(), b"world");
//! client.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Entries become visible to readers only once durable. Delivery to
//! consumer groups is at-least-once.
//!
//! # Logging
//!
//! `comet` reports through the [`tracing`](https://docs.rs/tracing) facade
//! and never installs a subscriber itself (neither `COMET_DEBUG` nor
//! `config.log.level` makes the library print anything): the application
//! decides where events go. Its events carry targets under `comet` (the
//! module path: `comet::client`, `comet::shard`, `comet::consumer`,
//! `comet::retention`, `comet::import`, `comet::process`) with fields such
//! as `shard`, `group` and `error`:
//!
//! * `error` and `warn`: what failed where no caller sees a `Result` — a
//!   periodic sync or retention pass in a background thread, a close on
//!   drop, a consumer read stopped at an unreadable entry, a damaged file
//!   set aside or a shard recovered on open;
//! * `info`: a Go shard imported;
//! * `debug`: clients and shards opened, process slots taken, retention
//!   decisions, handler retries.
//!
//! To see them, install any subscriber in the application, filtering on
//! the `comet` target; with `tracing-subscriber` (features `fmt` and
//! `env-filter`):
//!
//! ```ignore
//! tracing_subscriber::fmt()
//!     .with_env_filter(tracing_subscriber::EnvFilter::new("info,comet=debug"))
//!     .with_writer(std::io::stderr)
//!     .init();
//! ```
//!
//! The `comet` command-line tool does this when `COMET_DEBUG=1` is set.
//!
//! MSRV: Rust 1.88.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg(all(unix, target_endian = "little", target_has_atomic = "64"))]

mod append;
mod client;
mod compress;
pub mod config;
mod consumer;
mod import;
mod reader;
mod retention;
mod shard;
mod verify;

pub use client::{Appended, Client};
pub use comet_core::{
    ChunkDamage, ConfigError, Corruption, Counter, Counters, DirId, DurableHead, FileKind, GroupStats, IDENTITY_FILE,
    IdentityDamage, ImportProblem, ImportReport, ImportedSegment, IoOp, Latency, NameError, OffsetsError, PatternError,
    PatternErrorKind, Quarantine, QuarantineReason, RecoveryReport, RepairReport, ScanEnd, ShardCount, ShardId,
    ShardPattern, ShardPlan, ShardStats, Stats, TornTail, WireError, all_shard_streams, fnv1a32, parse_stream,
    pick_shard, shard_stream_name, system_time, unix_ns,
};
pub use comet_core::{Problem, Severity};
pub use comet_linux::OffsetsSettled;
pub use comet_linux::ProcessSlot;
pub use comet_linux::WRITER_LOCK;
pub use comet_linux::{Error, ErrorChain, Result};
pub use comet_linux::{Finding, ShardCheck, ShardRepair, VerifyReport, verify};
pub use comet_linux::{IdentityError, PROCESS_DIR, dir_identity};
pub use config::Config;
pub use consumer::{
    BatchCallback, BatchInfo, Consumer, Flow, HandlerError, PoisonAction, PoisonBatch, PoisonCallback, ProcessOptions,
    ProcessSummary, ProcessedMarks, ReadBatch, ReadBatchError, ReadErrorCallback, SeekTo, Shards,
};
pub use import::{ShardImport, import_go};
pub use reader::{Entries, LentBatch, LentEntry, Message, MessageId, Reader, max_stored};
pub use retention::{RetentionReport, ShardRetention, ShardRetentionStats};
pub use verify::repair;

/// `<prefix>:shard:NNNN` for the shard `key` maps to.
pub fn pick_shard_stream(prefix: &str, key: &[u8], count: ShardCount) -> Result<String> {
    shard_stream_name(prefix, pick_shard(key, count)).map_err(Error::InvalidStream)
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

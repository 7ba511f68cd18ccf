//! # comet-core
//!
//! The platform-independent heart of comet, an embedded segmented log for
//! edge observability. Everything here is `#![no_std]` (with an `alloc`
//! feature for the heap-backed parts) and free of `unsafe`; platform crates
//! (`comet` for Linux with std, `comet-embedded` for constrained ARM Linux)
//! supply I/O through the [`platform::storage::Storage`] trait, a clock
//! through plain arguments, and compression through
//! [`platform::wire::Compressor`].
//!
//! # Public surface
//!
//! The modules are private. The crate root holds what a *user* of comet
//! names — [`ShardId`], [`Error`] and its details, the engine's and
//! retention's settings ([`EngineSettings`], [`RetentionConfig`]), the
//! metrics snapshots ([`Stats`]), stream naming, [`EntryHeader`], the
//! recovery, repair, import, check and retention reports — and the
//! platforms re-export it. [`platform`] holds what only a platform needs to
//! run the engine, one submodule per concern; `sim` (feature `sim`) is test
//! support.
//!
//! Layers, bottom up (each module documents its own invariants):
//!
//! | module | role |
//! |---|---|
//! | `wire` | entry framing, zstd frame rules, shard picking (the FNV-1a key hash, the Go package's too); with `alloc`, a zstd frame encoder that allocates only when built |
//! | `naming` | shard ids; segment, chunk-table, shard-directory and stream names; shard patterns |
//! | `storage` | the `Storage`/`StorageFile` traits and error kinds |
//! | `index` (feature `alloc`) | the manifest (`index.bin`): sealed segments and checkpoint chunks |
//! | `state` | byte layouts of `comet.state`, `offsets.state` and `comet.id`; `state::shm` (64-bit atomics): seqlock head and CAS offset slots over a platform's shared mapping |
//! | `segment` (feature `alloc`) | scanning a segment: recovery and verification |
//! | `read` (feature `alloc`) | the read path: locating, checking and walking chunks |
//! | `retention` | the pure retention policy and the pass that applies it |
//! | `config` | the engine's and retention's settings (`EngineSettings`, `RetentionConfig`), their defaults and checks |
//! | `metrics` (feature `alloc`) | snapshot types, their totals and OpenMetrics rendering; the latency histogram (64-bit atomics) |
//! | `shard` (feature `alloc`) | the shard engine: numbering, buffer, sync, rotation, recovery |
//! | `check` (feature `alloc`) | the read-only whole-shard check |
//! | `slots` (feature `std`) | `ShardSlots`: a threaded platform's per-shard objects, found without a lock |
//! | `consume` (feature `alloc`) | what consumers name on every platform (`MessageId`, `ReadBatch`, `ProcessedMarks`, `Entries`) and the `process` loop over a platform's `GroupSource` |
//! | `go` | compatibility with the Go package: its segment names, `index.bin`, `offsets.bin`, the import |
//! | `sim` (feature `sim`, public) | in-memory storage and fault-injecting wrappers for tests |
//!
//! The core never reads a clock and never learns a process id by itself:
//! both come in as arguments, as in smoltcp's `Interface::poll(timestamp)`.
//!
//! Targets: the parts behind feature `alloc` (the shard engine, `check`,
//! `read`, `index`, `segment`, the Go import) need a global allocator and
//! `alloc::sync::Arc`, so compare-and-swap atomics. `thumbv7m-none-eabi`
//! (Cortex-M3) and `thumbv7em-none-eabihf` (Cortex-M4F/M7) build all of it
//! except `state::shm`, which needs 64-bit atomics; `thumbv6m-none-eabi`
//! (Cortex-M0/M0+) has no CAS and builds only without `alloc` (codecs,
//! layouts, configuration, retention policy, storage traits).
//! `examples/bare-metal` runs a shard on `thumbv7em-none-eabihf` over its
//! own RAM storage, with the memory it needs.
//!
//! MSRV: Rust 1.88 (see `docs/msrv.md`).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::cast_possible_truncation, clippy::type_complexity))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(feature = "alloc")]
mod check;
mod config;
#[cfg(feature = "alloc")]
mod consume;
#[cfg(feature = "alloc")]
mod dict;
mod error;
mod go;
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
mod group;
#[cfg(feature = "alloc")]
mod index;
#[cfg(feature = "alloc")]
mod metrics;
mod naming;
mod num;
#[cfg(feature = "alloc")]
mod read;
mod retention;
#[cfg(feature = "alloc")]
mod segment;
#[cfg(feature = "alloc")]
mod shard;
#[cfg(feature = "std")]
mod slots;
mod state;
mod storage;
mod wire;

pub mod platform;

#[cfg(feature = "sim")]
pub mod sim;

// What a user of comet names: ids, errors and their details, configuration,
// metrics, stream naming, reports. The platform crates re-export these.
pub use config::{EngineSettings, RetentionConfig};
pub use error::{ChunkDamage, ConfigError, Corruption, Error, FileKind, IoOp, NameError};
pub use naming::{MAX_STREAM_LEN, ShardId, parse_stream, validate_stream_prefix};
#[cfg(feature = "alloc")]
pub use naming::{PatternError, PatternErrorKind, ShardPattern, all_shard_streams, shard_stream_name};
pub use retention::ShardPlan;
#[cfg(feature = "alloc")]
pub use retention::{Lifted, RetentionReport, ShardRetention, ShardRetentionStats};
pub use state::{Counter, DirId, DurableHead, IDENTITY_FILE, IdentityDamage};
pub use wire::{EntryHeader, ShardCount, WireError, fnv1a32, pick_member_shard, pick_shard, shard_member};

#[cfg(feature = "alloc")]
pub use check::{Finding, Problem, Severity, ShardCheck};
#[cfg(feature = "alloc")]
pub use consume::{
    Appended, BatchCallback, BatchInfo, Entries, Flow, HandlerError, LentBatch, LentEntry, Message, MessageId,
    PoisonAction, PoisonBatch, PoisonCallback, ProcessOptions, ProcessSummary, ProcessedMarks, ReadBatch,
    ReadBatchError, ReadErrorCallback, Shards,
};
#[cfg(feature = "alloc")]
pub use go::{ImportProblem, ImportReport, ImportedSegment};
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub use group::SeekTo;
#[cfg(target_has_atomic = "64")]
#[cfg(feature = "alloc")]
pub use metrics::Histogram;
#[cfg(feature = "alloc")]
pub use metrics::{Counters, GroupStats, Latency, ShardStats, Stats};
#[cfg(feature = "std")]
pub use metrics::{system_time, unix_ns};
#[cfg(feature = "alloc")]
pub use segment::ScanEnd;
#[cfg(feature = "alloc")]
pub use shard::{Quarantine, QuarantineReason, RecoveryReport, RepairReport, TornTail};
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub use state::shm::OffsetsError;

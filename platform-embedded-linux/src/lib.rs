#![doc = include_str!("../README.md")]
//!
//! # Layers
//!
//! | module | role |
//! |---|---|
//! | `comet-linux` | the Linux layer the std crate shares: the core's `Storage` over a directory (`openat`, `pread`, `pwrite(v)`, `fdatasync`), `writer.lock`, the state files' rules |
//! | `compress` | zstd: the core's `FrameEncoder` (heap accounted, shared by the shards), `ruzstd`'s decoder |
//! | `config` | [`EmbeddedConfig`], validation, the heap budget |
//! | [`Log`] | shards, append, sync, `tick`, close |
//! | [`Consumer`] | reads into caller buffers, consumer groups |
//! | `retention` | the core's policy, run from `tick` ([`RetentionReport`]) |
//! | `helper` | the optional tick thread ([`spawn_helper`]) |
//! | [`verify`], [`repair`] | `comet-linux`'s check and repair of a data directory (re-exported), the std crate's too |
//!
//! The shard engine itself — numbering, buffering, sync and the durable
//! head, rotation, manifest, recovery — is `comet_core::platform::shard`, the same
//! code the std crate runs.
//!
//! # Allocation
//!
//! [`Log::open`] allocates every buffer (write buffers, checkpoint tables,
//! read scratch, decoder, compressor). After that these make **no heap
//! allocation** (proved by `tests/no_alloc.rs` with a counting global
//! allocator): [`Log::append`] that does not rotate, of raw and of
//! compressed entries (buffer flushes included; the compressor's buffers
//! are sized at open), [`Log::sync`], [`Log::tick`] when it syncs and runs
//! a retention pass that deletes nothing, [`Log::read_into`] (raw and
//! compressed entries, active and sealed segments), and the [`Consumer`]
//! operations `next`, `ack` and `lag`. What does allocate,
//! briefly: an append that rotates (a copy of the active segment's chunk
//! table; the manifest is updated in place, its records reserved at open
//! for `max_segments` segments, and written through a fixed buffer),
//! retention deletions, and opening shards. All of it stays inside
//! [`EmbeddedConfig::heap_budget`] (`tests/budget.rs` measures the
//! high-water mark, also for a 3 GB shard); what would not fit is a typed
//! error, never an abort (see the README).
//!
//! MSRV: Rust 1.88.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod compress;
mod config;
mod helper;
mod log;
mod read;
mod retention;
mod shard;

pub use comet_core::{
    Counter, EngineSettings, IoOp, NameError, RecoveryReport, RepairReport, RetentionConfig, RetentionReport, SeekTo,
    ShardId,
};
pub use comet_core::{Problem, Severity};
pub use comet_linux::{Error, ErrorChain};
pub use comet_linux::{Finding, ShardCheck, ShardRepair, VerifyReport};
pub use comet_linux::{MappedHead, OffsetsSettled};
pub use comet_linux::{repair, verify};
pub use config::{EmbeddedConfig, HeapBudget, MAX_SHARDS};
pub use helper::{Helper, spawn_helper};
pub use log::{Log, TickReport};
pub use read::{Consumer, Entry};
pub use shard::OFFSETS_QUARANTINE;

pub use comet_linux::{now_ns, pread_calls};

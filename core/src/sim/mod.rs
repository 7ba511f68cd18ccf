//! In-memory storage and fault-injecting wrappers (feature `sim`).
//!
//! * [`MemDir`] — a directory in memory that keeps, for every file, a *live*
//!   image (what reads see) and a *durable* image (what survives power
//!   loss: only what `sync` and `sync_dir` made durable). It can freeze at
//!   the N-th sync, as if power failed there, and produce crash images:
//!   durable only, durable plus torn unsynced tails, or the live image (a
//!   process crash: the page cache survives).
//! * [`FailingStorage`] — fails the N-th mutation with a chosen error kind
//!   (ENOSPC, EIO), optionally after a partial write, until healed.
//! * [`ShortIo`] — reads and writes at most a few bytes per call, breaking
//!   any caller that assumes full transfers.
//! * [`BitFlips`] — seeded bit flips in read results.
//! * [`noise`] and [`json_lines`] — test payloads that do not and that do
//!   compress.
//! * [`model`] — a reference model of the shard engine driven by one
//!   [`model::Op`] enum, shared by the seeded model test and the `op_model`
//!   fuzz target.
//!
//! All of them implement [`Storage`](crate::storage::Storage), so the
//! production shard engine runs on top of them unchanged.

mod data;
mod fault;
mod mem;
pub mod model;
mod rng;

pub use data::{fill_noise, json_lines, noise};
pub use fault::{BitFlips, FailingStorage, Faults, ShortIo};
pub use mem::{CrashMode, MemDir, MemError, MemFile};
pub use rng::Rng;

/// An engine configuration under which everything happens within a few
/// entries: 4 entries per chunk, 1 KiB segments, a 256-byte write buffer,
/// entries up to 64 KiB, compression tried from 64 bytes, no capacity caps.
/// Tests change what they need with struct update syntax.
pub fn small_engine() -> crate::shard::EngineConfig {
    crate::shard::EngineConfig {
        interval: 4,
        max_entry: 1 << 16,
        max_file_size: 1024,
        buffer_size: 256,
        min_compress: 64,
        max_chunks: u32::MAX,
        max_sealed: u32::MAX,
    }
}

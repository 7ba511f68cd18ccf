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
//! * [`model`] — a reference model of the shard engine driven by one
//!   [`model::Op`] enum, shared by the seeded model test and the `op_model`
//!   fuzz target.
//!
//! All of them implement [`Storage`](crate::storage::Storage), so the
//! production shard engine runs on top of them unchanged.

mod fault;
mod mem;
pub mod model;
mod rng;

pub use fault::{BitFlips, FailingStorage, Faults, ShortIo};
pub use mem::{CrashMode, MemDir, MemError, MemFile};
pub use rng::Rng;

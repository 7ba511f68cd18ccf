//! # comet-core
//!
//! The platform-independent heart of comet, an embedded segmented log for
//! edge observability. Everything here is `#![no_std]` (with an `alloc`
//! feature for the heap-backed parts) and free of `unsafe`; platform crates
//! (`comet` for Linux with std, `comet-embedded` for constrained ARM Linux)
//! supply I/O through the [`storage::Storage`] trait, a clock through plain
//! arguments, and compression through [`wire::Compressor`].
//!
//! Layers, bottom up (each module documents its own invariants):
//!
//! | module | role |
//! |---|---|
//! | [`wire`] | entry framing, zstd frame rules, shard picking (the Go key hash) |
//! | [`naming`] | shard ids; segment, chunk-table, shard-directory and stream names; shard patterns |
//! | [`storage`] | the `Storage`/`StorageFile` traits and error kinds |
//! | [`index`] | the manifest (`index.bin`): sealed segments and checkpoint chunks |
//! | [`state`] | byte layouts of `comet.state`, `offsets.state` and `comet.id` |
//! | [`segment`] | scanning a segment: recovery and verification |
//! | [`retention`] | the pure retention policy |
//! | [`config`] | the typed configuration tree and its validation |
//! | `metrics` (feature `alloc`) | snapshot types, their totals and OpenMetrics rendering; the latency histogram (64-bit atomics) |
//! | `shard` (feature `alloc`) | the shard engine: numbering, buffer, sync, rotation, recovery |
//! | `sim` (feature `sim`) | in-memory storage and fault-injecting wrappers for tests |
//! | `shm` (64-bit atomics) | seqlock head and CAS offset slots over a platform's shared mapping |
//!
//! The core never reads a clock and never learns a process id by itself:
//! both come in as arguments, as in smoltcp's `Interface::poll(timestamp)`.
//!
//! Targets: the parts behind feature `alloc` (the shard engine, `check`,
//! `read`, `index`, `segment`, `import`) need a global allocator and
//! `alloc::sync::Arc`, so compare-and-swap atomics. `thumbv7m-none-eabi`
//! (Cortex-M3) and `thumbv7em-none-eabihf` (Cortex-M4F/M7) build all of it
//! except `shm`, which needs 64-bit atomics; `thumbv6m-none-eabi`
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
pub mod check;
pub mod config;
pub mod error;
#[cfg(feature = "alloc")]
pub mod import;
#[cfg(feature = "alloc")]
pub mod index;
#[cfg(feature = "alloc")]
pub mod metrics;
pub mod naming;
pub mod num;
#[cfg(feature = "alloc")]
pub mod read;
pub mod retention;
#[cfg(feature = "alloc")]
pub mod segment;
pub mod state;
pub mod storage;
pub mod wire;

#[cfg(feature = "alloc")]
pub mod shard;

#[cfg(feature = "sim")]
pub mod sim;

#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub mod shm;

#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub mod group;

pub use error::{ChunkDamage, Corruption, Error, NameError};
pub use naming::ShardId;
pub use wire::EntryHeader;

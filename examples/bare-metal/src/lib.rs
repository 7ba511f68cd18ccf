//! # comet-bare-metal
//!
//! A comet shard on a microcontroller without an operating system: the
//! `#![no_std]` library half of the example (the firmware in `src/main.rs`
//! calls [`run`] once at boot, the host tests call the same code).
//!
//! * [`RamStorage`]: a shard directory in one fixed memory region, with
//!   a capacity limit that is a typed error ([`RamError::Full`], the
//!   engine's `StorageFull`) and an explicit power-loss model
//!   ([`RamStorage::power_loss`]).
//! * [`StateHead`]: the engine's durable head in the storage's fixed 1 KiB
//!   `comet.state` region.
//! * [`run`]: open, append, sync, crash without `close`, recover, read every
//!   entry back, and the core's verify ([`comet_core::platform::check`]).
//!
//! The core needs `alloc` and `alloc::sync::Arc`, so the target must have
//! a global allocator and compare-and-swap atomics: `thumbv7em-none-eabihf`
//! (Cortex-M4F/M7) and `thumbv7m-none-eabi` (Cortex-M3) do,
//! `thumbv6m-none-eabi` (Cortex-M0/M0+) does not (see `README.md`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod head;
mod run;
mod storage;

pub use head::StateHead;
pub use run::{Phase, RamShard, RunError, RunReport, Scenario, open, payload, run};
pub use storage::{BLOCK_SIZE, MAX_FILES, NAME_MAX, PowerLoss, RamError, RamFile, RamStorage};

/// The firmware's memory budget, shared with the host tests that check
/// it (`tests/heap.rs` measures [`run`]'s heap high-water mark against
/// [`HEAP_BYTES`](firmware::HEAP_BYTES)).
pub mod firmware {
    /// Bytes of the storage region (a `static` buffer): 16 KiB, of which
    /// 63 blocks of 256 bytes hold file data.
    pub const ARENA_BYTES: usize = 16 * 1024;
    /// Bytes of the heap the global allocator manages.
    pub const HEAP_BYTES: usize = 276 * 1024;
}

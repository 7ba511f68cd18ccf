//! # comet-linux
//!
//! The Linux layer both comet platforms share (the std crate `comet` and
//! `comet-embedded`), so that the rules for files on disk are written once.
//! Its modules are private; their items are re-exported at the crate root:
//!
//! | module | role |
//! |---|---|
//! | `storage` | the core's `Storage` over a directory: `openat`, `pread`, `pwrite(v)`, `fdatasync`, directory `fsync`; non-blocking opens that refuse anything but regular files |
//! | `map` | the only `unsafe`: shared maps of the state files as `&[AtomicU64]`, read-only segment views, each made only after `fstat` checked the length |
//! | `lock` | `writer.lock` with `flock`, holder pid inside |
//! | `files` | state files created fully written and validated before mapping, damaged ones set aside, atomic shard creation, listing shard directories |
//! | `head` | the engine's head store over the shared `comet.state` mapping |
//! | `identity` | the data directory's `comet.id`: created once (temporary file, fsync, hard link), read with the regular-file and size checks |
//! | `process` | process slots of a multi-process deployment (`processes/<role>-NNNN.lock`, `flock`) |
//! | `import` | importing a Go-written data directory, shard by shard under `writer.lock` |
//! | `writer` | opening a shard for writing: directory, `writer.lock`, `comet.state`, `offsets.state`, the engine's recovery, one sequence for every writer |
//! | `verify` | a data directory's shards verified and repaired, with the reports |
//! | `error` | the one error type both platforms re-export |
//! | `ticker` | a background thread that runs a task after each wait until stopped (`comet`'s flusher and retention, `comet-embedded`'s helper) |
//!
//! Policy (what a damaged file means, which rule applies) lives in
//! `comet-core`; this crate only makes the system calls.
//!
//! MSRV: Rust 1.88.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg(target_os = "linux")]

mod error;
mod files;
mod head;
mod identity;
mod import;
mod lock;
mod map;
mod process;
mod storage;
mod ticker;
mod verify;
mod writer;

pub use error::{Error, ErrorChain, Result};
pub use files::{
    OFFSETS_QUARANTINE, OffsetsSettled, STATE_QUARANTINE, check_root, create_root, create_shard_dir, list_shards,
    map_offsets_read, map_offsets_write, map_state_read, map_state_write, settle_offsets, shard_dirs, shard_path,
    sync_offsets,
};
pub use head::MappedHead;
pub use identity::{IdentityError, dir_identity};
pub use import::{ShardImport, import_go};
pub use lock::{LockError, WRITER_LOCK, WriterLock};
pub use map::{SegmentMap, SharedWords, WrongSize};
pub use process::{PROCESS_DIR, ProcessSlot};
pub use storage::{DirStorage, FsFile, file_len, pread_calls};
pub use ticker::Ticker;
pub use verify::{
    Finding, RepairOpened, ShardCheck, ShardRepair, VerifyReport, repair, repair_open, repair_with, verify,
};
pub use writer::{OpenedWriter, open_writer};

/// Nanoseconds since the Unix epoch from the system clock, at least 1 (a
/// clock before 1970 reads as 1: timestamps are never 0). The `now` both
/// platforms hand the core.
///
/// `clock_gettime(CLOCK_REALTIME)` through rustix's direct vDSO call (the
/// precise clock D-22 keeps for every append) with 64-bit arithmetic,
/// rather than `SystemTime::now()` and its checked `duration_since`. rustix
/// finds the vDSO through libc's auxiliary vector (`use-libc-auxv`): its
/// own lookup crashes programs run under valgrind (rustix issue #1559).
#[inline]
pub fn now_ns() -> u64 {
    clock_ns(rustix::time::ClockId::Realtime)
}

/// [`now_ns`] from the coarse wall clock (`CLOCK_REALTIME_COARSE`: a few
/// ns to read, the kernel tick's resolution, 1 to 4 ms), for times that
/// need no more, such as a group's last-ack time.
#[inline]
pub fn coarse_now_ns() -> u64 {
    clock_ns(rustix::time::ClockId::RealtimeCoarse)
}

#[inline]
fn clock_ns(clock: rustix::time::ClockId) -> u64 {
    let t = rustix::time::clock_gettime(clock);
    match (u64::try_from(t.tv_sec), u64::try_from(t.tv_nsec)) {
        (Ok(s), Ok(ns)) => s.saturating_mul(1_000_000_000).saturating_add(ns).max(1),
        // Before 1970.
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    /// `now_ns` reads the system clock `SystemTime` reads.
    #[test]
    fn now_ns_reads_the_system_clock() {
        let ns = |t: std::time::SystemTime| {
            u64::try_from(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()).unwrap()
        };
        let before = ns(std::time::SystemTime::now());
        let t = super::now_ns();
        let after = ns(std::time::SystemTime::now());
        assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
    }
}

//! Read-only verification of a data directory and its repair: the shared
//! Linux layer's (`comet_linux::verify`), with this crate's error type and
//! logs.
//!
//! [`verify`] never opens a writer, never takes a lock, never maps a file
//! and never creates one, so it is safe beside a live writer. [`repair`]
//! takes every shard's writer lock, runs recovery, records every damaged
//! chunk as lost (the intact chunks of the same segment stay readable),
//! rewrites chunk tables, sets aside strays and bytes past a sealed
//! segment's end, and salvages `offsets.state`.

use std::path::Path;

use comet_linux::Result;

pub use comet_core::{Problem, Severity};
pub use comet_linux::{Finding, ShardCheck, ShardRepair, VerifyReport};

/// Verifies the data directory `dir` without changing anything (see the
/// module documentation and `comet_core::platform::check`). Fails only if `dir`
/// cannot be listed; problems with files are findings.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    comet_linux::verify(dir)
}

/// Repairs every shard of the data directory `dir` (see the module
/// documentation). A shard another process writes fails with
/// [`Error::Locked`](crate::Error::Locked); the others are repaired first. Retention does not
/// run.
pub fn repair(dir: impl AsRef<Path>) -> Result<Vec<ShardRepair>> {
    comet_linux::repair_with(dir, crate::shard::log_opened)
}

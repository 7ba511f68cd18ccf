//! Verification and repair of a data directory: the shared Linux layer's
//! (`comet_linux::verify`, the code the std crate runs too), with this
//! crate's error type.
//!
//! [`verify`] never opens a writer, takes a lock, maps or creates a file,
//! so it is safe beside a live writer. [`repair`] takes every shard's
//! writer lock, runs recovery, records every damaged chunk as lost (the
//! intact chunks of the same segment stay readable), rewrites chunk
//! tables, sets aside strays and bytes past a sealed segment's end, and
//! salvages `offsets.state`.

use std::path::Path;

use comet_linux::{ShardRepair, VerifyReport};

use comet_linux::Error;

/// Verifies the data directory `dir` without changing anything. Fails
/// only if `dir` cannot be listed; problems with files are findings.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, Error> {
    comet_linux::verify(dir)
}

/// Repairs every shard of the data directory `dir` (no [`Log`](crate::Log)
/// may have it open). A shard another process writes fails with
/// [`Error::Locked`]; the others are repaired first. Retention does not
/// run.
pub fn repair(dir: impl AsRef<Path>) -> Result<Vec<ShardRepair>, Error> {
    comet_linux::repair(dir)
}

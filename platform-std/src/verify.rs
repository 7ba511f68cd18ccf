//! Verification and repair of a data directory: the shared Linux layer's
//! (`comet_linux::verify`, which `comet-embedded` re-exports too), repair
//! with this crate's logs.

use std::path::Path;

use comet_linux::{Result, ShardRepair};

/// Repairs every shard of the data directory `dir`, as
/// [`comet_linux::repair`] does, logging what opening each shard found
/// (state files set aside, damage recovered). A shard another process
/// writes fails with [`Error::Locked`](crate::Error::Locked); the others are
/// repaired first. Retention does not run.
pub fn repair(dir: impl AsRef<Path>) -> Result<Vec<ShardRepair>> {
    comet_linux::repair_with(dir, crate::shard::log_opened)
}

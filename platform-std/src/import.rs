//! Importing data directories written by the Go package (explicit; the
//! directory walk is `comet_linux::import_go`, the crash-safe procedure
//! per shard `comet_core::platform::go`).

use std::path::Path;

use crate::config::Config;
use comet_linux::Result;

pub use comet_linux::ShardImport;

/// Imports every Go-written shard under `dir` in place: segments renamed
/// to our naming (bytes unchanged), our manifest and state written,
/// consumer offsets carried over (`offsets.state` upgraded in place, a
/// legacy `offsets.bin` and the Go index's legacy map merged, never moving
/// an offset backwards). Shards already in our format are reported with
/// `already_native`. Crash-safe and resumable: run it again after any
/// interruption. Takes each shard's `writer.lock` while it works. The
/// shards it writes follow `config`'s engine settings (`config` is
/// validated first).
pub fn import_go(dir: impl AsRef<Path>, config: &Config) -> Result<Vec<ShardImport>> {
    config.validate()?;
    let imported = |s: &ShardImport| {
        let r = &s.report;
        tracing::info!(shard = %s.shard, segments = r.segments.len(), end = r.end, problems = r.problems.len(), "imported Go shard");
    };
    comet_linux::import_go(dir.as_ref(), &config.engine(), imported)
}

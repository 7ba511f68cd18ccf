//! Importing data directories written by the Go package (explicit, see
//! `comet_core::import` for the crash-safe procedure).

use std::path::Path;

use comet_core::ShardId;
use comet_core::error::IoOp;
use comet_core::import::{ImportReport, import_go_shard, is_go_shard};
use comet_core::shard::EngineConfig;
use comet_core::shm::OffsetsTable;

use crate::client::{discover, now_ns};
use crate::config::Config;
use crate::consumer::map_offsets;
use crate::error::{Error, Result};
use crate::lock::{Acquire, FileLock, WRITER_LOCK};
use crate::reader::shard_dir;
use crate::storage::DirStorage;

/// What importing one shard did.
#[derive(Debug, Clone)]
pub struct ShardImport {
    /// The shard.
    pub shard: ShardId,
    /// The core's report (segments, problems, where numbering continues).
    pub report: ImportReport,
    /// Consumer groups whose offsets are now in our `offsets.state`.
    pub groups: Vec<(String, u64)>,
}

/// Imports every Go-written shard under `dir` in place: segments renamed
/// to our naming (bytes unchanged), our manifest and state written,
/// consumer offsets carried over (`offsets.state` upgraded in place, a
/// legacy `offsets.bin` and the Go index's legacy map merged, never moving
/// an offset backwards). Shards already in our format are reported with
/// `already_native`. Crash-safe and resumable: run it again after any
/// interruption. Takes each shard's `writer.lock` while it works.
pub fn import_go(dir: impl AsRef<Path>, config: &Config) -> Result<Vec<ShardImport>> {
    let root = dir.as_ref();
    let cfg = EngineConfig::from_config(config)?;
    let mut out = Vec::new();
    for shard in discover(root)? {
        let sd = shard_dir(root, shard);
        let storage = DirStorage::new(&sd);
        if !is_go_shard(&storage).map_err(|e| Error::from_core(shard, &sd, e))? {
            out.push(ShardImport {
                shard,
                report: ImportReport { already_native: true, ..Default::default() },
                groups: Vec::new(),
            });
            continue;
        }
        let lock_path = sd.join(WRITER_LOCK);
        let _lock = match FileLock::try_acquire(&lock_path).map_err(|e| Error::io(IoOp::Open, &lock_path, e))? {
            Acquire::Held(l) => l,
            Acquire::Busy(pid) => return Err(Error::Locked { shard, pid }),
        };
        let report = import_go_shard(&storage, &cfg).map_err(|e| Error::from_core(shard, &sd, e))?;
        let mut groups = Vec::new();
        let exists = sd.join(comet_core::state::offsets::OFFSETS_FILE).exists()
            || sd.join(comet_core::state::offsets::LEGACY_OFFSETS_FILE).exists()
            || !report.legacy_offsets.is_empty();
        if exists && let Some(words) = map_offsets(&sd, true)? {
            let table = OffsetsTable::open(words.writable().ok_or(Error::ReadOnly)?, std::thread::yield_now)
                .map_err(|source| Error::Offsets { shard, source })?;
            for (g, off) in &report.legacy_offsets {
                if comet_core::state::offsets::validate_group(g).is_ok() {
                    table.advance(g, *off, now_ns()).map_err(|source| Error::Offsets { shard, source })?;
                }
            }
            table.for_each(|g, o| groups.push((g.to_string(), o.offset)));
            words.flush().map_err(|e| Error::io(IoOp::Sync, &sd, e))?;
        }
        groups.sort();
        tracing::info!(shard = %shard, segments = report.segments.len(), end = report.end, problems = report.problems.len(), "imported Go shard");
        out.push(ShardImport { shard, report, groups });
    }
    Ok(out)
}

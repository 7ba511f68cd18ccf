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
use crate::reader::shard_dir;
use comet_linux::{DirStorage, LockError, WriterLock};

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
        let storage = DirStorage::open_path(&sd).map_err(|e| Error::io(IoOp::Open, &sd, e))?;
        if !is_go_shard(&storage).map_err(|e| Error::from_core(shard, &sd, e))? {
            out.push(ShardImport {
                shard,
                report: ImportReport { already_native: true, ..Default::default() },
                groups: Vec::new(),
            });
            continue;
        }
        let _lock = match WriterLock::acquire(&storage) {
            Ok(l) => l,
            Err(LockError::Held { pid }) => return Err(Error::Locked { shard, pid }),
            Err(LockError::Io(e)) => return Err(Error::io(IoOp::Open, sd.join(comet_linux::WRITER_LOCK), e)),
        };
        let report = import_go_shard(&storage, &cfg).map_err(|e| Error::from_core(shard, &sd, e))?;
        let mut groups = Vec::new();
        let exists = sd.join(comet_core::state::offsets::OFFSETS_FILE).exists()
            || sd.join(comet_core::state::offsets::LEGACY_OFFSETS_FILE).exists()
            || !report.legacy_offsets.is_empty();
        if exists {
            // A legacy offsets.bin is merged (and removed) here.
            comet_linux::settle_offsets(&storage, false, now_ns())
                .map_err(|e| Error::io(IoOp::Open, sd.join("offsets.state"), e))?;
        }
        if exists && let Some(words) = map_offsets(&sd, shard, true)? {
            let table = OffsetsTable::open(words.writable().ok_or(Error::ReadOnly)?, std::thread::yield_now)
                .map_err(|source| Error::Offsets { shard, source })?;
            for (g, off) in &report.legacy_offsets {
                if comet_core::state::offsets::validate_group(g).is_ok() {
                    table.advance(g, *off, now_ns()).map_err(|source| Error::Offsets { shard, source })?;
                }
            }
            table.for_each(|g, o| groups.push((g.to_string(), o.offset)));
            let f = comet_core::storage::Storage::open(
                &storage,
                comet_core::state::offsets::OFFSETS_FILE,
                comet_core::storage::OpenMode::ReadWrite,
            )
            .map_err(|e| Error::io(IoOp::Open, &sd, e))?;
            comet_core::storage::StorageFile::sync(&f).map_err(|e| Error::io(IoOp::Sync, &sd, e))?;
        }
        groups.sort();
        tracing::info!(shard = %shard, segments = report.segments.len(), end = report.end, problems = report.problems.len(), "imported Go shard");
        out.push(ShardImport { shard, report, groups });
    }
    Ok(out)
}

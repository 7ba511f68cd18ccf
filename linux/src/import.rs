//! Importing a data directory written by the Go package, in place: every
//! shard directory in turn, under its `writer.lock`, with the core's
//! crash-safe, resumable procedure ([`comet_core::platform::go`]), then the
//! consumer offsets carried into our `offsets.state`.

use std::io;
use std::path::{Path, PathBuf};

use comet_core::platform::go::{LEGACY_OFFSETS_FILE, import_go_shard, is_go_shard};
use comet_core::platform::naming::shard_dir_name;
use comet_core::platform::shard::EngineConfig;
use comet_core::platform::shm::OffsetsTable;
use comet_core::platform::state::offsets::{OFFSETS_FILE, validate_group};
use comet_core::platform::storage::{OpenMode, Storage, StorageFile};
use comet_core::{EngineSettings, FileKind, ImportReport, IoOp, ShardId};

use crate::error::Error;
use crate::files::{map_offsets_write, settle_offsets, shard_dirs};
use crate::lock::{LockError, WRITER_LOCK, WriterLock};
use crate::now_ns;
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

/// Imports every Go-written shard under `root` in place: segments renamed
/// to our naming (bytes unchanged), our manifest and state written,
/// consumer offsets carried over (`offsets.state` upgraded in place, a
/// legacy `offsets.bin` and the Go index's legacy map merged, never moving
/// an offset backwards). Shards already in our format are reported with
/// `already_native`. Crash-safe and resumable: run it again after any
/// interruption. Takes each shard's `writer.lock` while it works, and
/// calls `imported` after each Go shard it imported. The shards it writes
/// follow `settings` (checked first: [`Error::Config`]).
pub fn import_go(
    root: &Path,
    settings: &EngineSettings,
    mut imported: impl FnMut(&ShardImport),
) -> Result<Vec<ShardImport>, Error> {
    let cfg = EngineConfig::from_settings(settings).map_err(Error::Config)?;
    let mut out = Vec::new();
    let shards = shard_dirs(root).map_err(|source| Error::io(IoOp::List, root, source))?;
    for shard in shards {
        let sd = root.join(shard_dir_name(shard).as_str());
        let io = |op: IoOp, path: PathBuf| move |source| Error::io(op, path, source);
        let engine_err = |e| Error::from_core(shard, &sd, e);
        let storage = DirStorage::open_path(&sd).map_err(io(IoOp::Open, sd.clone()))?;
        if !is_go_shard(&storage).map_err(engine_err)? {
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
            Err(LockError::Io(e)) => return Err(io(IoOp::Open, sd.join(WRITER_LOCK))(e)),
        };
        let report = import_go_shard(&storage, &cfg).map_err(engine_err)?;
        let mut groups = Vec::new();
        let exists = sd.join(OFFSETS_FILE).exists()
            || sd.join(LEGACY_OFFSETS_FILE).exists()
            || !report.legacy_offsets.is_empty();
        if exists {
            // A legacy offsets.bin is merged (and removed) here.
            settle_offsets(&storage, false, now_ns()).map_err(io(IoOp::Open, sd.join(OFFSETS_FILE)))?;
            let words = map_offsets_write(&storage).map_err(|e| Error::state_file(shard, &sd, FileKind::Offsets, e))?;
            let offsets = |source| Error::Offsets { shard, source };
            let w = words.writable().ok_or_else(|| {
                io(IoOp::Open, sd.join(OFFSETS_FILE))(io::Error::other("offsets.state is mapped read-only"))
            })?;
            let table = OffsetsTable::open(w, std::thread::yield_now).map_err(offsets)?;
            for (g, off) in &report.legacy_offsets {
                if validate_group(g).is_ok() {
                    table.advance(g, *off, now_ns()).map_err(offsets)?;
                }
            }
            table.for_each(|g, o| groups.push((g.to_string(), o.offset)));
            let f = storage.open(OFFSETS_FILE, OpenMode::ReadWrite).map_err(io(IoOp::Open, sd.clone()))?;
            f.sync().map_err(io(IoOp::Sync, sd.clone()))?;
        }
        groups.sort();
        let done = ShardImport { shard, report, groups };
        imported(&done);
        out.push(done);
    }
    Ok(out)
}

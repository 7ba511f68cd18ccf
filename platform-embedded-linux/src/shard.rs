//! One open shard: its directory, writer lock, shared state mappings and
//! the core's shard engine. The files' rules (creation, validation, what
//! is set aside) are `comet-linux`'s, the same the std crate follows.

use std::sync::Arc;

use comet_core::IoOp;
use comet_core::platform::shard::{EngineConfig, Shard};
use comet_core::platform::shm::OffsetsTable;
use comet_core::platform::state::offsets::OFFSETS_FILE;
use comet_core::{Counter, FileKind, RecoveryReport, ShardId};
use comet_linux::{DirStorage, Error, MappedHead, OffsetsSettled, OpenedWriter, SharedWords, WriterLock};

use crate::compress::SharedCompressor;

pub use comet_linux::OFFSETS_QUARANTINE;

/// The shard engine's error over this crate's storage.
pub(crate) type EngineError = comet_core::Error<std::io::Error>;

/// The engine type of one shard.
pub(crate) type Engine = Shard<DirStorage, MappedHead, SharedCompressor>;

/// A shard open for writing.
pub(crate) struct OpenShard {
    pub(crate) id: ShardId,
    pub(crate) engine: Engine,
    pub(crate) state: Arc<SharedWords>,
    pub(crate) dir: DirStorage,
    /// `offsets.state`, created fully written at open.
    pub(crate) offsets: SharedWords,
    pub(crate) report: RecoveryReport,
    /// What opening did to `offsets.state`.
    pub(crate) offsets_settled: OffsetsSettled,
    /// When the shard was last made durable by `tick`/`sync` (ns).
    pub(crate) last_flush: u64,
    _lock: WriterLock,
}

impl core::fmt::Debug for OpenShard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenShard").field("id", &self.id).field("engine", &self.engine).finish_non_exhaustive()
    }
}

impl OpenShard {
    /// Opens shard `id` under `root`: directory (created atomically if
    /// new), lock, state files, engine (which recovers whatever a crash
    /// left).
    pub(crate) fn open(
        root: &DirStorage,
        id: ShardId,
        engine: EngineConfig,
        compressor: SharedCompressor,
        now: u64,
    ) -> Result<OpenShard, Error> {
        let w = comet_linux::open_writer(root, id, engine, compressor, now)?;
        // Unlike the std client, the embedded log keeps `offsets.state`
        // mapped (created fully written) for as long as the shard is open.
        let offsets = comet_linux::map_offsets_write(&w.dir)
            .map_err(|e| Error::state_file(id, w.dir.path(), FileKind::Offsets, e))?;
        let OpenedWriter { engine, lock, dir, state, report, offsets: offsets_settled, .. } = w;
        Ok(OpenShard { id, engine, state, dir, offsets, report, offsets_settled, last_flush: now, _lock: lock })
    }

    /// The consumer-offset table.
    pub(crate) fn offsets(&self) -> Result<OffsetsTable<'_>, Error> {
        let words = self.offsets.writable().ok_or(Error::ShardNotOpen(self.id))?;
        OffsetsTable::open(words, std::thread::yield_now).map_err(|source| Error::Offsets { shard: self.id, source })
    }

    /// Moves the engine's counters into the shared `comet.state`.
    pub(crate) fn drain_counters(&mut self) {
        self.engine.drain_counters(|c, v| self.state.add_counter(c, v));
    }

    /// Adds to a counter of the shared `comet.state`.
    pub(crate) fn bump(&self, c: Counter, v: u64) {
        self.state.add_counter(c, v);
    }

    /// The error of an engine call on this shard.
    pub(crate) fn engine_err(&self) -> impl FnOnce(EngineError) -> Error + '_ {
        |e| Error::from_core(self.id, self.dir.path(), e)
    }

    /// Syncs the engine (flush + fdatasync + head) and drains counters.
    pub(crate) fn sync(&mut self, now: u64) -> Result<(), Error> {
        let r = self.engine.sync();
        self.last_flush = now;
        self.drain_counters();
        r.map_err(self.engine_err())
    }

    /// Closes the engine cleanly and makes the offsets durable.
    pub(crate) fn close(self) -> Result<(), Error> {
        let (id, state, dir) = (self.id, self.state, self.dir);
        let r = self.engine.close_with(|c, v| state.add_counter(c, v)).map_err(|e| Error::from_core(id, dir.path(), e));
        r.and(comet_linux::sync_offsets(&dir).map_err(offsets_err(IoOp::Sync, &dir)))
    }
}

/// An I/O error on the shard's `offsets.state`.
fn offsets_err(op: IoOp, dir: &DirStorage) -> impl FnOnce(std::io::Error) -> Error {
    let path = dir.path().join(OFFSETS_FILE);
    move |e| Error::io(op, path, e)
}

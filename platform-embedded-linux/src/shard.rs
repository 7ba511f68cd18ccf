//! One open shard: its directory, writer lock, shared state mappings and
//! the core's shard engine. The files' rules (creation, validation, what
//! is set aside) are `comet-linux`'s, the same the std crate follows.

use std::io;
use std::sync::Arc;

use comet_core::ShardId;
use comet_core::naming::shard_dir_name;
use comet_core::shard::{EngineConfig, RecoveryReport, Shard};
use comet_core::shm::{self, OffsetsTable};
use comet_core::state::Counter;
use comet_linux::{DirStorage, LockError, MappedHead, OffsetsSettled, SharedWords, WriterLock};

use crate::compress::SharedCompressor;
use crate::error::{Error, Op};

pub use comet_linux::OFFSETS_QUARANTINE;

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

fn io_err(op: Op, shard: ShardId) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { op, shard: Some(shard), source }
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
        let name = shard_dir_name(id);
        let created =
            comet_linux::create_shard_dir(root, &name, engine.interval).map_err(io_err(Op::OpenShardDir, id))?;
        let (dir, _) = root.open_subdir(&name, false).map_err(io_err(Op::OpenShardDir, id))?;
        let lock = WriterLock::acquire(&dir).map_err(|e| match e {
            LockError::Held { pid } => Error::Locked { shard: id, pid },
            LockError::Io(source) => Error::Io { op: Op::Lock, shard: Some(id), source },
        })?;
        let (state, state_fd, _) = comet_linux::map_state_write(&dir).map_err(io_err(Op::MapState, id))?;
        let offsets_settled = comet_linux::settle_offsets(&dir, false, now).map_err(io_err(Op::MapOffsets, id))?;
        let offsets = comet_linux::map_offsets_write(&dir).map_err(io_err(Op::MapOffsets, id))?;
        let state = Arc::new(state);
        let head = MappedHead::new(Arc::clone(&state), Arc::new(state_fd));
        let (engine, mut report) =
            Shard::open(dir.clone(), head, compressor, engine).map_err(|source| Error::Engine { shard: id, source })?;
        report.created |= created;
        if report.state_reset
            && let Some(words) = state.writable()
        {
            shm::clear_counters(words);
        }
        let mut s =
            OpenShard { id, engine, state, dir, offsets, report, offsets_settled, last_flush: now, _lock: lock };
        s.drain_counters();
        Ok(s)
    }

    /// The consumer-offset table.
    pub(crate) fn offsets(&self) -> Result<OffsetsTable<'_>, Error> {
        let words = self.offsets.writable().ok_or(Error::ShardNotOpen(self.id))?;
        OffsetsTable::open(words, std::thread::yield_now).map_err(|source| Error::Offsets { shard: self.id, source })
    }

    /// Moves the engine's counters into the shared `comet.state`.
    pub(crate) fn drain_counters(&mut self) {
        if let Some(words) = self.state.writable() {
            self.engine.drain_counters(|c, v| shm::add_counter(words, c, v));
        }
    }

    /// Adds to a counter of the shared `comet.state`.
    pub(crate) fn bump(&self, c: Counter, v: u64) {
        if let Some(words) = self.state.writable() {
            shm::add_counter(words, c, v);
        }
    }

    /// Syncs the engine (flush + fdatasync + head) and drains counters.
    pub(crate) fn sync(&mut self, now: u64) -> Result<(), Error> {
        let r = self.engine.sync();
        self.last_flush = now;
        self.drain_counters();
        r.map_err(|source| Error::Engine { shard: self.id, source })
    }

    /// Closes the engine cleanly and makes the offsets durable.
    pub(crate) fn close(self) -> Result<(), Error> {
        let id = self.id;
        let state = self.state.clone();
        let r = self
            .engine
            .close_with(|c, v| {
                if let Some(words) = state.writable() {
                    shm::add_counter(words, c, v);
                }
            })
            .map_err(|source| Error::Engine { shard: id, source });
        let o = match comet_core::storage::Storage::open(
            &self.dir,
            comet_core::state::offsets::OFFSETS_FILE,
            comet_core::storage::OpenMode::ReadWrite,
        ) {
            Ok(f) => comet_core::storage::StorageFile::sync(&f).map_err(io_err(Op::MapOffsets, id)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(Op::MapOffsets, id)(e)),
        };
        r.and(o)
    }
}

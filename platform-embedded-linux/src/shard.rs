//! One open shard: its directory, writer lock, shared state mappings and
//! the core's shard engine.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use comet_core::ShardId;
use comet_core::shard::{EngineConfig, RecoveryReport, Shard};
use comet_core::shm::{self, OFFSETS_WORDS, OffsetsTable, STATE_WORDS};
use comet_core::state::offsets::{FILE_SIZE as OFFSETS_SIZE, OFFSETS_FILE};
use comet_core::state::{Counter, DurableHead, HeadStore, STATE_FILE, STATE_LINE, STATE_SIZE};
use comet_core::wire::shard_dir_name;

use crate::compress::SharedCompressor;
use crate::error::{Error, Op};
use crate::lock::{LockError, WriterLock};
use crate::mmap::SharedWords;
use crate::storage::{DirStorage, FsFile};

/// Name `offsets.state` is moved to when its size or header is invalid.
pub const OFFSETS_QUARANTINE: &str = "offsets.state.corrupt";

/// Seqlock retries when loading the head (a writer holds it for a few
/// stores, so this is ample).
const HEAD_SPINS: u32 = 1000;

/// The durable head published into the shared `comet.state` mapping with
/// the core's seqlock, so readers in other processes (either crate) see a
/// consistent head.
#[derive(Debug)]
pub struct MappedHead {
    words: Arc<SharedWords>,
    fd: OwnedFd,
}

impl HeadStore for MappedHead {
    type Error = io::Error;

    fn load(&self) -> io::Result<[u8; STATE_LINE]> {
        Ok(shm::load_head_line(self.words.words(), HEAD_SPINS))
    }

    fn store(&mut self, head: &DurableHead) -> io::Result<()> {
        shm::store_head(self.words.words(), head);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        // fdatasync also writes back pages dirtied through the mapping.
        Ok(rustix::fs::fdatasync(&self.fd)?)
    }
}

/// The engine type of one shard.
pub(crate) type Engine = Shard<DirStorage, MappedHead, SharedCompressor>;

/// A shard open for writing.
pub(crate) struct OpenShard {
    pub(crate) id: ShardId,
    pub(crate) engine: Engine,
    pub(crate) state: Arc<SharedWords>,
    pub(crate) offsets: SharedWords,
    pub(crate) offsets_fd: OwnedFd,
    pub(crate) report: RecoveryReport,
    /// `offsets.state` was invalid at open and was replaced.
    pub(crate) offsets_reset: bool,
    /// When the shard was last made durable by `tick`/`sync` (ns).
    pub(crate) last_flush: u64,
    /// The sealed segment last read, kept open between reads.
    pub(crate) reader: Option<(u64, FsFile)>,
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

fn file_len(fd: impl AsFd) -> io::Result<u64> {
    let st = rustix::fs::fstat(fd)?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// Opens `comet.state`, sized to 1 KiB, and maps it.
fn map_state(dir: &DirStorage) -> io::Result<(SharedWords, OwnedFd)> {
    let fd = dir.open_raw(STATE_FILE)?;
    if file_len(&fd)? != STATE_SIZE as u64 {
        // A short file is zero-extended (a zero head means "scan"); a longer
        // one is cut back to its layout (no comet process maps past 1 KiB).
        rustix::fs::ftruncate(&fd, STATE_SIZE as u64)?;
    }
    let words = SharedWords::map(&fd, STATE_WORDS)?;
    Ok((words, fd))
}

/// Opens and maps `offsets.state`, creating it zero-filled (the core
/// writes the header). A file of the wrong size or with a bad header is
/// renamed to [`OFFSETS_QUARANTINE`] and replaced: consumers then restart
/// from the first retained entry (redelivery, never loss).
fn map_offsets(dir: &DirStorage) -> io::Result<(SharedWords, OwnedFd, bool)> {
    let mut reset = false;
    for _ in 0..2 {
        let fd = dir.open_raw(OFFSETS_FILE)?;
        let len = file_len(&fd)?;
        if len == 0 {
            rustix::fs::ftruncate(&fd, OFFSETS_SIZE as u64)?;
        }
        if len == 0 || len == OFFSETS_SIZE as u64 {
            let words = SharedWords::map(&fd, OFFSETS_WORDS)?;
            if OffsetsTable::open(words.words(), std::thread::yield_now).is_ok() {
                return Ok((words, fd, reset));
            }
        }
        use comet_core::storage::Storage;
        dir.rename(OFFSETS_FILE, OFFSETS_QUARANTINE)?;
        dir.sync_dir()?;
        reset = true;
    }
    Err(io::Error::from(io::ErrorKind::InvalidData))
}

impl OpenShard {
    /// Opens shard `id` under `root`: directory, lock, state files, engine
    /// (which recovers whatever a crash left).
    pub(crate) fn open(
        root: &DirStorage,
        id: ShardId,
        engine: EngineConfig,
        compressor: SharedCompressor,
        now: u64,
    ) -> Result<OpenShard, Error> {
        let (dir, created) = root.open_subdir(&shard_dir_name(id), true).map_err(io_err(Op::OpenShardDir, id))?;
        if created {
            rustix::fs::fsync(root).map_err(io::Error::from).map_err(io_err(Op::SyncDir, id))?;
        }
        let lock = WriterLock::acquire(&dir).map_err(|e| match e {
            LockError::Held { pid } => Error::Locked { shard: id, pid },
            LockError::Io(source) => Error::Io { op: Op::Lock, shard: Some(id), source },
        })?;
        let (state, state_fd) = map_state(&dir).map_err(io_err(Op::MapState, id))?;
        let (offsets, offsets_fd, offsets_reset) = map_offsets(&dir).map_err(io_err(Op::MapOffsets, id))?;
        if created {
            use comet_core::storage::Storage;
            dir.sync_dir().map_err(io_err(Op::SyncDir, id))?;
        }
        let state = Arc::new(state);
        let head = MappedHead { words: Arc::clone(&state), fd: state_fd };
        let (engine, report) =
            Shard::open(dir, head, compressor, engine).map_err(|source| Error::Engine { shard: id, source })?;
        let mut s = OpenShard {
            id,
            engine,
            state,
            offsets,
            offsets_fd,
            report,
            offsets_reset,
            last_flush: now,
            reader: None,
            _lock: lock,
        };
        s.drain_counters();
        Ok(s)
    }

    /// The consumer-offset table.
    pub(crate) fn offsets(&self) -> Result<OffsetsTable<'_>, Error> {
        OffsetsTable::open(self.offsets.words(), std::thread::yield_now)
            .map_err(|source| Error::Offsets { shard: self.id, source })
    }

    /// Moves the engine's counters into the shared `comet.state`.
    pub(crate) fn drain_counters(&mut self) {
        let words = self.state.words();
        self.engine.drain_counters(|c, v| shm::add_counter(words, c, v));
    }

    /// Adds to a counter of the shared `comet.state`.
    pub(crate) fn bump(&self, c: Counter, v: u64) {
        shm::add_counter(self.state.words(), c, v);
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
        let words = self.state.words();
        let r = self
            .engine
            .close_with(|c, v| shm::add_counter(words, c, v))
            .map_err(|source| Error::Engine { shard: id, source });
        let o = rustix::fs::fdatasync(&self.offsets_fd).map_err(io::Error::from).map_err(io_err(Op::MapOffsets, id));
        r.and(o)
    }
}

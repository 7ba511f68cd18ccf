//! One shard inside a client: the lazily opened writer (engine + lock), the
//! shared state mapping, sync without holding the append lock, and the
//! wake-up of blocked readers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use comet_core::platform::dict::{Samples, install_dict, newest_dict};
use comet_core::platform::shard::{EngineConfig, Shard};
use comet_core::platform::shm;
use comet_core::platform::storage::StorageFile;
use comet_core::platform::wire::DICT_HEADER_LEN;
use comet_core::{Counter, DurableHead, FileKind, IoOp, RecoveryReport, ShardId};
use comet_linux::{DirStorage, MappedHead, RepairOpened, SharedWords, WriterLock};

use crate::compress::Zstd;
use crate::config::CompressionConfig;
use comet_core::Histogram;
use comet_linux::{Error, Result};

pub(crate) type Engine = Shard<DirStorage, MappedHead, Zstd>;

/// Opens a shard directory that exists (`None` if it does not).
pub(crate) fn open_dir(dir: &Path) -> Result<Option<DirStorage>> {
    DirStorage::open_existing(dir).map_err(|e| Error::io(IoOp::Open, dir, e))
}

/// Refuses a shard directory written by the Go package (D-11): without a
/// head of ours it would otherwise read as an empty shard. A directory that
/// does not exist is not foreign.
pub(crate) fn check_native(dir: &Path, shard: ShardId) -> Result<()> {
    let Some(storage) = open_dir(dir)? else {
        return Ok(());
    };
    match comet_core::platform::go::is_go_shard(&storage) {
        Ok(false) => Ok(()),
        Ok(true) => Err(Error::ForeignFormat { shard }),
        Err(e) => Err(Error::from_core(shard, dir, e)),
    }
}

/// Maps `comet.state` of a shard read-only, for readers: opens it
/// read-only and never creates, extends or initialises it. `None` if the
/// shard or the file does not exist; a file of the wrong size is
/// [`Error::Corrupt`] (the shard's writer sets it aside and recovers).
pub(crate) fn map_state_read(dir: &Path, shard: ShardId) -> Result<Option<SharedWords>> {
    let Some(storage) = open_dir(dir)? else {
        return Ok(None);
    };
    comet_linux::map_state_read(&storage).map_err(|e| Error::state_file(shard, dir, FileKind::State, e))
}

/// Logs what opening a shard for writing did (a writer's open or a
/// repair's): state files set aside, damage recovered.
pub(crate) fn log_opened(o: RepairOpened<'_>) {
    if o.state_replaced {
        tracing::warn!(shard = %o.shard, "comet.state had the wrong size; kept as comet.state.corrupt");
    }
    if let Some((kept, dropped)) = o.offsets.replaced {
        tracing::warn!(shard = %o.shard, kept, dropped, "offsets.state was damaged; kept as offsets.state.corrupt, salvaged what checked out");
    }
    if o.recovery.found_damage() {
        tracing::warn!(shard = %o.shard, report = ?o.recovery, "recovered shard on open");
    } else {
        tracing::debug!(shard = %o.shard, clean = o.recovery.clean, "opened shard");
    }
}

/// Threads blocked in `tail`/`wait_for` on this shard. Syncs wake them only
/// when someone waits, so appends and syncs pay nothing otherwise.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    count: AtomicUsize,
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Waiters {
    /// Wakes all waiters, if any.
    pub(crate) fn notify(&self) {
        if self.count.load(Ordering::Acquire) > 0 {
            let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
            *g += 1;
            self.cv.notify_all();
        }
    }

    /// Blocks until `ready()` is true or `timeout` passes; returns `ready()`.
    pub(crate) fn wait_until(&self, timeout: Duration, poll: Duration, mut ready: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        self.count.fetch_add(1, Ordering::AcqRel);
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let result = loop {
            if ready() {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            // A bounded wait also catches writers in other processes.
            let step = (deadline - now).min(poll);
            g = self.cv.wait_timeout(g, step).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        };
        drop(g);
        self.count.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

/// A shard's writer: the engine and the lock that makes it the only one.
pub(crate) struct Writer {
    pub(crate) engine: Engine,
    _lock: WriterLock,
    pub(crate) report: RecoveryReport,
}

/// Latency and throughput figures kept in memory for one shard.
#[derive(Debug, Default)]
pub(crate) struct LocalMetrics {
    pub(crate) append: Histogram,
    pub(crate) sync: Histogram,
}

/// One shard of a client.
pub(crate) struct ShardSlot {
    pub(crate) id: ShardId,
    pub(crate) dir: PathBuf,
    writer: Mutex<Option<Writer>>,
    /// Held while a dictionary is trained and stored (by a sync or by
    /// `Client::train_dictionary`), and by a sync while it looks for due
    /// samples: a sync that starts after another thread took the samples
    /// returns once that dictionary is in use, and trainings never overlap.
    /// Taken before the writer lock, never while holding it.
    training: Mutex<()>,
    /// `comet.state` mapped read-only, for reads (when this client does not
    /// write the shard).
    state: OnceLock<Arc<SharedWords>>,
    /// `comet.state` mapped read-write, once this client opened the writer.
    state_rw: OnceLock<Arc<SharedWords>>,
    pub(crate) waiters: Waiters,
    /// The client-wide waiters (consumers waiting on any shard).
    any: Arc<Waiters>,
    pub(crate) sync_wanted: AtomicBool,
    pub(crate) metrics: LocalMetrics,
}

impl std::fmt::Debug for ShardSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSlot").field("id", &self.id).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl ShardSlot {
    pub(crate) fn new(id: ShardId, dir: PathBuf, any: Arc<Waiters>) -> ShardSlot {
        ShardSlot {
            id,
            dir,
            writer: Mutex::new(None),
            training: Mutex::new(()),
            state: OnceLock::new(),
            state_rw: OnceLock::new(),
            waiters: Waiters::default(),
            any,
            sync_wanted: AtomicBool::new(false),
            metrics: LocalMetrics::default(),
        }
    }

    /// The writer lock (never poisoned in practice: recover the guard).
    #[inline]
    pub(crate) fn writer(&self) -> MutexGuard<'_, Option<Writer>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The training lock (see the field; recovered like the writer's).
    pub(crate) fn training(&self) -> MutexGuard<'_, ()> {
        self.training.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state map if the shard exists on disk (never creates);
    /// [`Error::ForeignFormat`] for a Go-written shard.
    /// The map is read-only unless this client writes the shard: reads
    /// never write a file.
    pub(crate) fn state(&self) -> Result<Option<Arc<SharedWords>>> {
        if let Some(s) = self.state_rw.get().or_else(|| self.state.get()) {
            return Ok(Some(s.clone()));
        }
        check_native(&self.dir, self.id)?;
        Ok(map_state_read(&self.dir, self.id)?.map(|m| self.state.get_or_init(|| Arc::new(m)).clone()))
    }

    /// The writable state map, if this client opened the shard's writer
    /// (the only process that writes `comet.state`'s counters besides
    /// repairs).
    pub(crate) fn writer_state(&self) -> Option<Arc<SharedWords>> {
        self.state_rw.get().cloned()
    }

    /// The durable head as published in `comet.state` (any process).
    pub(crate) fn head(&self) -> Result<Option<DurableHead>> {
        Ok(self.state()?.and_then(|s| shm::load_head(s.words())).map(|(h, _)| h))
    }

    /// Opens the writer if this client has none for the shard yet: creates
    /// the directory, takes `writer.lock`, maps the state and runs the
    /// engine's recovery.
    #[inline]
    pub(crate) fn ensure_writer<'a>(
        &'a self,
        guard: &mut MutexGuard<'a, Option<Writer>>,
        cfg: &EngineConfig,
        compression: &CompressionConfig,
    ) -> Result<()> {
        if guard.is_some() {
            return Ok(());
        }
        self.open_writer(guard, cfg, compression)
    }

    /// [`ensure_writer`](ShardSlot::ensure_writer) when there is no writer
    /// yet (once per shard and client: kept out of the append path).
    #[cold]
    #[inline(never)]
    fn open_writer<'a>(
        &'a self,
        guard: &mut MutexGuard<'a, Option<Writer>>,
        cfg: &EngineConfig,
        compression: &CompressionConfig,
    ) -> Result<()> {
        let root_path = self.dir.parent().unwrap_or(Path::new("."));
        let root = DirStorage::open_path(root_path).map_err(|e| Error::io(IoOp::Open, root_path, e))?;
        let opened = comet_linux::open_writer(&root, self.id, *cfg, Zstd::new(compression), comet_linux::now_ns());
        let w = opened?;
        log_opened(RepairOpened {
            shard: self.id,
            state_replaced: w.state_replaced,
            offsets: &w.offsets,
            recovery: &w.report,
        });
        // Readers of this client use the writer's mapping from now on.
        self.state_rw.get_or_init(|| w.state);
        let mut engine = w.engine;
        if compression.dictionary {
            self.resume_dict(&mut engine)?;
        }
        **guard = Some(Writer { engine, _lock: w.lock, report: w.report });
        Ok(())
    }

    /// Goes on compressing with the shard's newest dictionary
    /// (`newest_dict`: never an older one). A newest one that does not load
    /// is logged and left for verify to report; a new one is trained.
    fn resume_dict(&self, engine: &mut Engine) -> Result<()> {
        let mut buf = Vec::new();
        match newest_dict(engine.storage(), &mut buf) {
            Ok(None) => Ok(()),
            Ok(Some(id)) => engine
                .compressor_mut()
                .use_dict(id, buf.get(DICT_HEADER_LEN..).unwrap_or_default())
                .map_err(|source| Error::DictionaryTraining { shard: self.id, source }),
            Err(e) => {
                tracing::warn!(shard = %self.id, error = %e, "newest dictionary does not load; training a new one");
                Ok(())
            }
        }
    }

    /// Trains a dictionary on `samples` (outside the append lock), then,
    /// under it, stores it durably under the shard's next id
    /// (`install_dict`) and switches the compressor to it. Returns its id.
    /// The caller holds [`training`](ShardSlot::training).
    pub(crate) fn train_dict(&self, samples: &Samples, max_size: usize) -> Result<u32> {
        let mut dict = crate::compress::train(samples, max_size)
            .map_err(|source| Error::DictionaryTraining { shard: self.id, source })?;
        let mut g = self.writer();
        let w = g.as_mut().ok_or(Error::Closed)?;
        let first = w.engine.next_entry();
        let id =
            install_dict(w.engine.storage(), first, &mut dict).map_err(|e| Error::from_core(self.id, &self.dir, e))?;
        w.engine
            .compressor_mut()
            .use_dict(id, &dict)
            .map_err(|source| Error::DictionaryTraining { shard: self.id, source })?;
        tracing::info!(shard = %self.id, id, first, bytes = dict.len(), "zstd dictionary in use");
        Ok(id)
    }

    /// Trains a dictionary on samples the writer handed over (see
    /// [`ShardSlot::sync`], so from the flusher thread). A failed training
    /// is logged; sampling starts again.
    fn train_due(&self, due: Option<(Samples, usize)>) {
        if let Some((samples, max)) = due
            && let Err(e) = self.train_dict(&samples, max)
        {
            tracing::warn!(shard = %self.id, error = %e, "dictionary training failed; collecting samples again");
        }
    }

    /// Publishes the engine's counter deltas into the shared state.
    pub(crate) fn publish_counters(&self, engine: &mut Engine) {
        if let Some(state) = self.state_rw.get() {
            engine.drain_counters(|c, v| state.add_counter(c, v));
        }
    }

    /// Syncs the shard's writer, if any: flush under the lock, fsync outside
    /// it (appends continue meanwhile), publish under the lock.
    /// A dictionary whose samples are complete is trained first, outside
    /// the writer lock (the samples are taken under the lock the flush
    /// takes anyway); a training another thread started is waited for.
    pub(crate) fn sync(&self) -> Result<()> {
        self.sync_wanted.store(false, Ordering::Relaxed);
        let (ticket, file) = {
            let training = self.training();
            let mut g = self.writer();
            let Some(w) = g.as_mut() else { return Ok(()) };
            let due = w.engine.compressor_mut().take_samples_if_ready();
            if due.is_some() {
                drop(g);
                self.train_due(due);
                drop(training);
                // Taking the samples left none ready: this runs once.
                return self.sync();
            }
            drop(training);
            if !w.engine.has_unsynced() {
                return Ok(());
            }
            let ticket = w.engine.prepare_sync().map_err(|e| Error::from_core(self.id, &self.dir, e))?;
            (ticket, w.engine.active_file().clone())
        };
        let start = Instant::now();
        let synced = file.sync();
        self.metrics.sync.record(start.elapsed());
        let mut g = self.writer();
        let Some(w) = g.as_mut() else { return Ok(()) };
        let r = w.engine.complete_sync(ticket, synced).map_err(|e| Error::from_core(self.id, &self.dir, e));
        if let Some(state) = self.state_rw.get() {
            state.add_counter(Counter::SyncNanos, u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        self.publish_counters(&mut w.engine);
        drop(g);
        self.waiters.notify();
        self.any.notify();
        r
    }

    /// Syncs, snapshots the active segment into the manifest and drops the
    /// writer (releasing the lock).
    pub(crate) fn close(&self) -> Result<()> {
        let mut g = self.writer();
        let Some(w) = g.take() else { return Ok(()) };
        let state = self.state_rw.get();
        let r = w
            .engine
            .close_with(|c, v| state.map_or((), |s| s.add_counter(c, v)))
            .map_err(|e| Error::from_core(self.id, &self.dir, e));
        drop(g);
        self.waiters.notify();
        self.any.notify();
        r
    }
}

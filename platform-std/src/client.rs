//! The [`Client`]: a data directory of shards, appends, sync, reads, stats.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use comet_core::platform::dict::Samples;
use comet_core::platform::index::Manifest;
use comet_core::platform::shard::{EngineConfig, load_manifest};
use comet_core::platform::shm;
use comet_core::platform::slots::ShardSlots;
use comet_core::{Counters, RecoveryReport, ShardCount, ShardId, ShardStats, Stats, parse_stream};

use crate::config::Config;
use crate::reader::{Message, Reader};
use crate::shard::{ShardSlot, Writer};
use comet_linux::{Error, Result, Ticker};

pub(crate) use comet_linux::now_ns;

pub use comet_core::Appended;

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) config: Config,
    pub(crate) engine: EngineConfig,
    read_only: bool,
    /// The process slot this client took (multi-process deployments).
    slot: Mutex<Option<comet_linux::ProcessSlot>>,
    shards: ShardSlots<ShardSlot>,
    closed: AtomicBool,
    /// The flusher and retention threads (none when read-only).
    flusher: Mutex<Option<Ticker>>,
    retention: Mutex<Option<Ticker>>,
    /// Woken by every sync of any shard (for consumers of many shards).
    pub(crate) any: Arc<crate::shard::Waiters>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("root", &self.root).field("read_only", &self.read_only).finish_non_exhaustive()
    }
}

/// A comet data directory: shards of append-only logs.
///
/// `Client` is `Send + Sync` and cheap to clone (clones share everything).
/// Shards are opened for writing lazily, on their first append; reads,
/// lengths and stats never create shards or files. Dropping the last clone
/// closes the client (syncing everything); call [`Client::close`] to see
/// errors.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Opens (creating if needed) the data directory `dir` for reading and
    /// writing.
    ///
    /// A path that exists but is not a directory is [`Error::Io`] whose
    /// source has [`ErrorKind::NotADirectory`](std::io::ErrorKind::NotADirectory)
    /// and reads `not a directory`.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Client> {
        let root = dir.as_ref().to_path_buf();
        comet_linux::create_root(&root)?;
        Client::start(root, config, false)
    }

    /// Opens an existing data directory for reading only: appends fail with
    /// [`Error::ReadOnly`], nothing on disk is created or changed, and no
    /// background thread runs.
    pub fn open_read_only(dir: impl AsRef<Path>, config: Config) -> Result<Client> {
        let root = dir.as_ref().to_path_buf();
        comet_linux::check_root(&root)?;
        Client::start(root, config, true)
    }

    /// Opens `dir` as one process of a multi-process deployment of
    /// `config.concurrency.process_count` processes: takes a free process
    /// slot (reclaiming a dead process's), uses its index as the process id,
    /// and holds it until the client closes. Process `i` writes the shards
    /// with `shard % process_count == i`.
    pub fn open_process(dir: impl AsRef<Path>, mut config: Config) -> Result<Client> {
        let root = dir.as_ref().to_path_buf();
        comet_linux::create_root(&root)?;
        let count = config.concurrency.process_count;
        let slot = comet_linux::ProcessSlot::acquire(&root, "writers", count)?;
        tracing::debug!(role = "writers", index = slot.index(), count, "acquired process slot");
        config.concurrency.process_id = slot.index();
        Client::start_with(root, config, false, Some(slot))
    }

    /// This process's index in a multi-process deployment (0 otherwise).
    pub fn process_id(&self) -> u32 {
        self.inner.config.concurrency.process_id
    }

    /// True if this process may write `shard`.
    pub fn owns(&self, shard: ShardId) -> bool {
        self.inner.config.concurrency.owns(shard)
    }

    fn start(root: PathBuf, config: Config, read_only: bool) -> Result<Client> {
        Client::start_with(root, config, read_only, None)
    }

    fn start_with(
        root: PathBuf,
        config: Config,
        read_only: bool,
        slot: Option<comet_linux::ProcessSlot>,
    ) -> Result<Client> {
        config.validate()?;
        let engine = EngineConfig::from_settings(&config.engine())?;
        let inner = Arc::new(Inner {
            root,
            config,
            engine,
            read_only,
            slot: Mutex::new(slot),
            shards: ShardSlots::default(),
            closed: AtomicBool::new(false),
            flusher: Mutex::new(None),
            retention: Mutex::new(None),
            any: Arc::default(),
        });
        if !read_only {
            let every = config.storage.flush_interval;
            *lock(&inner.flusher) = Some(flusher(Arc::downgrade(&inner), every)?);
            if let Some(every) = config.retention.cleanup_interval {
                *lock(&inner.retention) = Some(crate::retention::retention_thread(Arc::downgrade(&inner), every)?);
            }
        }
        tracing::debug!(root = %inner.root.display(), read_only, "client opened");
        Ok(Client { inner })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.root
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Appends `entries` to the shard named by `stream` (e.g.
    /// `events:v1:shard:0007`). Returns their entry numbers at once; they
    /// become visible to readers when durable (next sync, periodic flush,
    /// full buffer, close), or before this returns with
    /// `storage.durable_appends`. All or nothing: on error no entry is
    /// numbered or stored.
    pub fn append<P: AsRef<[u8]>>(&self, stream: &str, entries: &[P]) -> Result<Appended> {
        let shard = crate::append::stream_shard(stream).map_err(Error::InvalidStream)?;
        self.append_shard(shard, entries)
    }

    /// Appends to a shard by id.
    pub fn append_shard<P: AsRef<[u8]>>(&self, shard: ShardId, entries: &[P]) -> Result<Appended> {
        self.append_stamped(shard, now_ns, entries)
    }

    /// [`append`](Client::append) stamped with the caller's `timestamp_ns`
    /// (ns since the Unix epoch) instead of a read of the system clock: for
    /// a caller that already holds the time (one clock read for many
    /// appends, an event's own time). The entries' timestamps are what
    /// [`Message::timestamp`] returns, what time seeks search and what
    /// consumers order by (DECISIONS D-22, D-55).
    ///
    /// A shard's timestamps never decrease and are never 0: an older
    /// `timestamp_ns` than the shard's last is raised to it (as for a
    /// clock stepped back), so a timestamp ahead of the clock holds every
    /// later entry of the shard, by either method, at that time until the
    /// clock passes it.
    pub fn append_at<P: AsRef<[u8]>>(&self, stream: &str, timestamp_ns: u64, entries: &[P]) -> Result<Appended> {
        let shard = crate::append::stream_shard(stream).map_err(Error::InvalidStream)?;
        self.append_shard_at(shard, timestamp_ns, entries)
    }

    /// [`append_at`](Client::append_at) by shard id.
    pub fn append_shard_at<P: AsRef<[u8]>>(
        &self,
        shard: ShardId,
        timestamp_ns: u64,
        entries: &[P],
    ) -> Result<Appended> {
        self.append_stamped(shard, || timestamp_ns, entries)
    }

    /// The append itself, stamped by `now()` (read just before the lock).
    #[inline]
    fn append_stamped<P: AsRef<[u8]>>(
        &self,
        shard: ShardId,
        now: impl FnOnce() -> u64,
        entries: &[P],
    ) -> Result<Appended> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        inner.check_owner(shard)?;
        let slot = inner.slot(shard);
        let now = now();
        let mut g = slot.writer();
        slot.ensure_writer(&mut g, &inner.engine, &inner.config.compression)?;
        let Some(w) = g.as_mut() else {
            return Err(Error::Closed);
        };
        // The latency histogram samples one append in 64 (two monotonic
        // clock reads each; one in 16 cost about 3 ns per append, D-55).
        let sample = w.engine.next_entry() % 64 == 0;
        let t0 = sample.then(Instant::now);
        let r = w.engine.append(now, entries).map_err(|e| Error::from_core(shard, &slot.dir, e));
        if let Some(t0) = t0 {
            slot.metrics.append.record(t0.elapsed());
        }
        let entries = r?;
        let full = w.engine.unsynced_written() >= inner.engine.buffer_size as u64;
        drop(g);
        if inner.config.storage.durable_appends {
            slot.sync()?;
        } else if full
            // Test before the locked swap: while the flusher syncs a full
            // buffer, every append finds it full and the request made.
            && !slot.sync_wanted.load(Ordering::Relaxed)
            && !slot.sync_wanted.swap(true, Ordering::AcqRel)
            && let Some(t) = lock(&inner.flusher).as_ref()
        {
            t.wake();
        }
        Ok(Appended { shard, entries })
    }

    /// Makes every entry appended so far durable and visible, in every
    /// shard this client writes. All shards are attempted; the first error
    /// is returned.
    pub fn sync(&self) -> Result<()> {
        let mut first = None;
        for slot in self.inner.slots() {
            if let Err(e) = slot.sync() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Syncs one shard.
    pub fn sync_shard(&self, shard: ShardId) -> Result<()> {
        match self.inner.existing_slot(shard) {
            Some(slot) => slot.sync(),
            None => Ok(()),
        }
    }

    /// Entries in the stream's shard: appended ones (durable or not) if this
    /// client writes the shard, else the durable ones. Never creates it.
    pub fn len(&self, stream: &str) -> Result<u64> {
        let shard = parse_stream(stream).map_err(Error::InvalidStream)?;
        self.shard_len(shard)
    }

    /// [`len`](Client::len) by shard id.
    pub fn shard_len(&self, shard: ShardId) -> Result<u64> {
        let slot = self.inner.slot(shard);
        if let Some(w) = slot.writer().as_ref() {
            return Ok(w.engine.next_entry());
        }
        Ok(slot.head()?.map_or(0, |h| h.end()))
    }

    /// One past the last durable entry of a shard (0 if it does not exist).
    pub fn durable_len(&self, shard: ShardId) -> Result<u64> {
        Ok(self.inner.slot(shard).head()?.map_or(0, |h| h.end()))
    }

    /// A reader of one shard (creates nothing).
    pub fn reader(&self, shard: ShardId) -> Result<Reader> {
        let slot = self.inner.slot(shard);
        Ok(Reader::open(&slot.dir, shard, self.inner.config.storage.max_entry_size).with_state(slot.state()?))
    }

    /// Reads one durable entry of a stream (opens a reader per call; keep a
    /// [`Reader`] for repeated reads).
    pub fn read(&self, stream: &str, entry: u64) -> Result<Message> {
        let shard = parse_stream(stream).map_err(Error::InvalidStream)?;
        self.reader(shard)?.read(entry)
    }

    /// Blocks until entry `entry` of `shard` is durable or `timeout`
    /// passes; returns whether it is. Wakes as soon as a sync in this
    /// process publishes it, and polls every `storage.flush_interval` (at
    /// most 100 ms) for writers in other processes.
    pub fn wait_for(&self, shard: ShardId, entry: u64, timeout: Duration) -> Result<bool> {
        let slot = self.inner.slot(shard);
        let poll = self.inner.config.storage.flush_interval.min(Duration::from_millis(100));
        let mut err = None;
        let ok = slot.waiters.wait_until(timeout, poll, || match slot.head() {
            Ok(h) => h.is_some_and(|h| h.end() > entry),
            Err(e) => {
                err = Some(e);
                true
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(ok),
        }
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Client {
        Client { inner }
    }

    pub(crate) fn inner_ref(&self) -> &Inner {
        &self.inner
    }

    /// True for clients opened with [`Client::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The directory of a shard (which may not exist).
    pub(crate) fn shard_dir(&self, shard: ShardId) -> PathBuf {
        comet_linux::shard_path(&self.inner.root, shard)
    }

    /// The shard's mapped `comet.state`, if the shard exists.
    pub(crate) fn shard_state(&self, shard: ShardId) -> Result<Option<Arc<comet_linux::SharedWords>>> {
        self.inner.slot(shard).state()
    }

    /// The shard's writable `comet.state` if this client writes the shard
    /// (counters are written only there: reads never write a file).
    pub(crate) fn shard_writer_state(&self, shard: ShardId) -> Option<Arc<comet_linux::SharedWords>> {
        self.inner.existing_slot(shard)?.writer_state()
    }

    /// Waiters woken by every sync of any shard in this client.
    pub(crate) fn inner_any(&self) -> &crate::shard::Waiters {
        &self.inner.any
    }

    /// The shard for `key` (FNV-1a modulo `concurrency.shard_count`); in a
    /// multi-process deployment, only among this process's shards.
    pub fn pick_shard(&self, key: &[u8]) -> ShardId {
        let c = &self.inner.config.concurrency;
        let count = ShardCount::new(c.shard_count).unwrap_or(ShardCount::DEFAULT);
        comet_core::pick_member_shard(key, count, c.process_id, c.process_count)
    }

    /// `<prefix>:shard:NNNN` for [`pick_shard`](Client::pick_shard).
    pub fn pick_shard_stream(&self, prefix: &str, key: &[u8]) -> Result<String> {
        comet_core::shard_stream_name(prefix, self.pick_shard(key)).map_err(Error::InvalidStream)
    }

    /// Shard directories present on disk, sorted.
    pub fn shards(&self) -> Result<Vec<ShardId>> {
        comet_linux::list_shards(&self.inner.root)
    }

    /// Opens the shard for writing now (taking its `writer.lock` and running
    /// recovery: torn tails truncated, a lost or corrupt manifest rebuilt,
    /// damaged segments quarantined) and returns what recovery did. A shard
    /// this client already writes returns the report of its open.
    pub fn recover_shard(&self, shard: ShardId) -> Result<RecoveryReport> {
        let (_, g) = self.inner.open_writer(shard)?;
        g.as_ref().map(|w| w.report.clone()).ok_or(Error::Closed)
    }

    /// Repairs one shard (see [`crate::repair`]): opens it for writing
    /// (recovery), records every damaged chunk as lost, rewrites damaged
    /// chunk tables, sets aside bytes past a sealed segment's end, and
    /// salvages `offsets.state` and heals its offset checks.
    pub fn repair_shard(&self, shard: ShardId) -> Result<crate::ShardRepair> {
        let (slot, mut g) = self.inner.open_writer(shard)?;
        let w = g.as_mut().ok_or(Error::Closed)?;
        let state = slot.writer_state();
        let counters = |c, v| state.as_ref().map_or((), |s| s.add_counter(c, v));
        comet_linux::repair_open(shard, &mut w.engine, w.report.clone(), counters)
    }

    /// Trains a zstd dictionary for the shard now, on up to
    /// `compression.dict_sample_bytes` of its newest durable entries (of
    /// `compression.dict_min_size` to 16 KiB), stores it durably
    /// (`dict-<id>.zdict`) and compresses later appends of at least
    /// `dict_min_size` bytes with it. Returns its id. Needs
    /// `compression.dictionary` on ([`Error::Config`] otherwise);
    /// [`Error::DictionaryTraining`] when zstd cannot train on what the
    /// shard holds (too few or too uniform entries). A training the
    /// flusher has in progress for the shard finishes first, so this always
    /// adds one dictionary ([`ShardStats::dictionaries`] lists them).
    pub fn train_dictionary(&self, shard: ShardId) -> Result<u32> {
        let inner = &*self.inner;
        let c = &inner.config.compression;
        if !c.dictionary {
            return Err(Error::Config(crate::ConfigError {
                field: "compression.dictionary",
                value: 0,
                min: 1,
                max: 1,
            }));
        }
        let (slot, g) = inner.open_writer(shard)?;
        drop(g);
        let _training = slot.training();
        let (min, target) = (c.dict_min_size as usize, c.dict_sample_bytes as usize);
        let samples = Samples::from_newest(&mut self.reader(shard)?, min, target)?;
        slot.train_dict(&samples, c.dict_max_size as usize)
    }

    /// What recovery did when this client opened the shard for writing.
    pub fn recovery_report(&self, shard: ShardId) -> Option<RecoveryReport> {
        let slot = self.inner.existing_slot(shard)?;
        slot.writer().as_ref().map(|w| w.report.clone())
    }

    /// A metrics snapshot of one shard (from disk and this process).
    pub fn shard_stats(&self, shard: ShardId) -> Result<ShardStats> {
        self.inner.shard_stats(shard)
    }

    /// A metrics snapshot of every shard on disk, with totals.
    pub fn stats(&self) -> Result<Stats> {
        let mut shards = Vec::new();
        for id in self.shards()? {
            shards.push(self.inner.shard_stats(id)?);
        }
        Ok(Stats::new(shards))
    }

    /// Syncs everything, records clean shutdown and releases the shards'
    /// writer locks. Other clones become closed too.
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

impl Inner {
    /// The shard's slot, created on first use (no lock once it exists).
    #[inline]
    pub(crate) fn slot(&self, shard: ShardId) -> &Arc<ShardSlot> {
        self.shards.get_or_insert(shard, || {
            ShardSlot::new(shard, comet_linux::shard_path(&self.root, shard), self.any.clone())
        })
    }

    fn existing_slot(&self, shard: ShardId) -> Option<&Arc<ShardSlot>> {
        self.shards.get(shard)
    }

    pub(crate) fn slots(&self) -> Vec<Arc<ShardSlot>> {
        self.shards.all()
    }

    /// The shard's slot and its locked writer, opened (recovering the
    /// shard) if this client had none: for the calls that write outside
    /// appends. Read-only clients and shards of other processes are errors.
    fn open_writer(&self, shard: ShardId) -> Result<(&Arc<ShardSlot>, MutexGuard<'_, Option<Writer>>)> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.check_owner(shard)?;
        let slot = self.slot(shard);
        let mut g = slot.writer();
        slot.ensure_writer(&mut g, &self.engine, &self.config.compression)?;
        Ok((slot, g))
    }

    fn check_owner(&self, shard: ShardId) -> Result<()> {
        let c = &self.config.concurrency;
        if !c.owns(shard) {
            return Err(Error::NotOwned { shard, owner: c.owner(shard), process: c.process_id });
        }
        Ok(())
    }

    fn shard_stats(&self, shard: ShardId) -> Result<ShardStats> {
        self.shard_files(shard).map(|(stats, _)| stats)
    }

    /// The shard's stats and the manifest they were computed from (one
    /// snapshot: retention's view uses both). A manifest that does not load
    /// is the shard's error, not a shard without sealed segments.
    pub(crate) fn shard_files(&self, shard: ShardId) -> Result<(ShardStats, Option<Manifest>)> {
        let slot = self.slot(shard);
        let state = slot.state()?;
        let head = state.as_ref().and_then(|s| comet_core::platform::shm::load_head(s.words())).map(|(h, _)| h);
        let dir = crate::shard::open_dir(&slot.dir)?;
        let manifest = match &dir {
            Some(d) => load_manifest(d).map_err(|e| Error::from_core(shard, &slot.dir, e))?,
            None => None,
        };
        let counters =
            state.as_ref().map_or_else(Counters::default, |s| Counters::collect(|c| shm::load_counter(s.words(), c)));
        let mut stats = ShardStats::from_files(shard, dir.as_ref(), manifest.as_ref(), head, counters);
        if let Some(w) = slot.writer().as_ref() {
            stats.next_entry = w.engine.next_entry();
        }
        stats.append_latency = slot.metrics.append.summary();
        stats.sync_latency = slot.metrics.sync.summary();
        // Damage to this shard's offsets stays in this shard.
        match crate::consumer::group_stats(&slot.dir, shard, stats.durable_end) {
            Ok(g) => stats.groups = g,
            Err(e) => stats.groups_error = Some(e.chain().to_string()),
        }
        Ok((stats, manifest))
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        for t in [lock(&self.flusher).take(), lock(&self.retention).take()].into_iter().flatten() {
            t.stop();
        }
        let mut first = None;
        for slot in self.slots() {
            if let Err(e) = slot.close() {
                tracing::error!(shard = %slot.id, error = %e.chain(), "close failed");
                first.get_or_insert(e);
            }
        }
        // Release the process slot last, after every writer lock.
        drop(lock(&self.slot).take());
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e.chain(), "closing comet client on drop");
        }
    }
}

/// A lock that a panic elsewhere never poisons for good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The periodic flush: syncs every shard with unsynced data each
/// `flush_interval`, and at once when an append filled a buffer (it wakes
/// the thread).
fn flusher(inner: Weak<Inner>, every: Duration) -> Result<Ticker> {
    let mut next = Instant::now() + every;
    Ticker::spawn("comet-flush", None, every, move || {
        let inner = inner.upgrade()?;
        let due = Instant::now() >= next;
        if due {
            next = Instant::now() + every;
        }
        for slot in inner.slots() {
            if (due || slot.sync_wanted.load(Ordering::Acquire))
                && let Err(e) = slot.sync()
            {
                tracing::warn!(shard = %slot.id, error = %e.chain(), "periodic sync failed");
            }
        }
        Some(next.saturating_duration_since(Instant::now()))
    })
}

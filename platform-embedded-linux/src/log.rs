//! [`Log`]: the shards of one data directory, their memory fixed at open.

use core::ops::Range;
use std::path::Path;

use comet_core::platform::shard::EngineConfig;
use comet_core::{Counter, RecoveryReport, ShardCount, ShardId, pick_shard};

use crate::compress::{SharedCompressor, ZstdDecompressor};
use crate::config::{EmbeddedConfig, MAX_SHARDS};
use crate::shard::OpenShard;
use comet_core::platform::shard::ReadBuf;
use comet_linux::Error;
use comet_linux::{DirStorage, FsFile};

/// What one [`Log::tick`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickReport {
    /// Shards synced because their flush interval had elapsed.
    pub synced: u32,
    /// The retention pass, if one was due.
    pub retention: Option<comet_core::RetentionReport>,
    /// When `tick` next has work (ns): the earliest flush or retention
    /// deadline. A caller may sleep until then.
    pub next_due: u64,
}

/// An embedded log over one data directory: `<root>/shard-NNNN/...`, the
/// same layout and formats as the std crate `comet`.
///
/// Single-threaded by design (`&mut self`); no threads run unless
/// [`crate::spawn_helper`] is used. Every buffer is allocated by
/// [`Log::open`] (and [`Log::open_shard`] for shards beyond
/// `shard_count`); see the crate docs for what allocates afterwards.
pub struct Log {
    pub(crate) root: DirStorage,
    pub(crate) cfg: EmbeddedConfig,
    pub(crate) engine: EngineConfig,
    pub(crate) shards: heapless::Vec<Box<OpenShard>, MAX_SHARDS>,
    pub(crate) compressor: SharedCompressor,
    pub(crate) decoder: ZstdDecompressor,
    /// The last chunk read (checked), its segment's file and chunk table.
    pub(crate) reads: ReadBuf<FsFile>,
    /// The shard `reads` holds data of.
    pub(crate) read_of: Option<ShardId>,
    pub(crate) last_retention: u64,
    pub(crate) scratch: comet_core::platform::retention::Scratch,
}

impl core::fmt::Debug for Log {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Log").field("cfg", &self.cfg).field("shards", &self.shards).finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (creating if needed) the log in `root` and opens shards
    /// `0..shard_count` for writing, recovering each from whatever a crash
    /// left. `now` is the current time in ns since the Unix epoch (see
    /// [`crate::now_ns`]). Fails with [`Error::Locked`] if another writer
    /// holds one of the shards.
    pub fn open(root: impl AsRef<Path>, cfg: EmbeddedConfig, now: u64) -> Result<Log, Error> {
        let engine = cfg.engine()?;
        let root = root.as_ref();
        comet_linux::create_root(root)?;
        let dir = DirStorage::open_path(root).map_err(|e| Error::io(comet_core::IoOp::Open, root, e))?;
        let mut decoder = ZstdDecompressor::new(cfg.decoder_window() as u64);
        decoder.warm_up();
        let mut log = Log {
            root: dir,
            cfg,
            engine,
            shards: heapless::Vec::new(),
            compressor: SharedCompressor::new(cfg.min_compress_size.is_some().then_some(cfg.max_entry_size as usize)),
            decoder,
            reads: ReadBuf::fixed(cfg.read_buffer_bytes as usize, cfg.checkpoint_capacity as usize),
            read_of: None,
            last_retention: now,
            scratch: comet_core::platform::retention::Scratch::default(),
        };
        for id in 0..u32::from(cfg.shard_count) {
            let id = ShardId::new(id).ok_or(Error::TooManyShards { max: cfg.max_shards })?;
            log.open_shard(id, now)?;
        }
        Ok(log)
    }

    /// Opens shard `id` for writing (a no-op if it is open). Allocates the
    /// shard's buffers; fails with [`Error::TooManyShards`] beyond
    /// `max_shards`.
    pub fn open_shard(&mut self, id: ShardId, now: u64) -> Result<&RecoveryReport, Error> {
        if let Some(i) = self.index(id) {
            return Ok(&self.shards[i].report);
        }
        if self.shards.len() >= usize::from(self.cfg.max_shards) {
            return Err(Error::TooManyShards { max: self.cfg.max_shards });
        }
        let s = OpenShard::open(&self.root, id, self.engine, self.compressor.clone(), now)?;
        self.scratch.reserve_shard(self.cfg.max_segments);
        self.shards.push(Box::new(s)).map_err(|_| Error::TooManyShards { max: self.cfg.max_shards })?;
        let last = self.shards.len() - 1;
        Ok(&self.shards[last].report)
    }

    /// The settings in force.
    pub fn config(&self) -> &EmbeddedConfig {
        &self.cfg
    }

    /// Ids of the open shards, in the order they were opened.
    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.shards.iter().map(|s| s.id)
    }

    /// The shard `key` maps to among `0..shard_count` (FNV-1a, as the std
    /// crate's `pick_shard`).
    pub fn pick_shard(&self, key: &[u8]) -> ShardId {
        let n = ShardCount::new(u32::from(self.cfg.shard_count)).unwrap_or(ShardCount::DEFAULT);
        pick_shard(key, n)
    }

    pub(crate) fn index(&self, id: ShardId) -> Option<usize> {
        self.shards.iter().position(|s| s.id == id)
    }

    pub(crate) fn shard(&self, id: ShardId) -> Result<&OpenShard, Error> {
        self.shards.iter().find(|s| s.id == id).map(|b| &**b).ok_or(Error::ShardNotOpen(id))
    }

    pub(crate) fn shard_mut(&mut self, id: ShardId) -> Result<&mut OpenShard, Error> {
        self.shards.iter_mut().find(|s| s.id == id).map(|b| &mut **b).ok_or(Error::ShardNotOpen(id))
    }

    /// What recovery found when shard `id` was opened.
    pub fn recovery(&self, id: ShardId) -> Result<&RecoveryReport, Error> {
        Ok(&self.shard(id)?.report)
    }

    /// True if `offsets.state` of shard `id` was damaged at open and was
    /// replaced by the slots that still checked out (the damaged file is
    /// kept as `offsets.state.corrupt`).
    pub fn offsets_were_reset(&self, id: ShardId) -> Result<bool, Error> {
        Ok(self.shard(id)?.offsets_settled.replaced.is_some())
    }

    /// Appends `entries` to shard `id` as one batch stamped `now` (ns since
    /// the epoch) and returns their entry numbers. All or nothing. The
    /// entries become durable and visible at the next [`Log::sync`], the
    /// next due [`Log::tick`], a full buffer, or [`Log::close`] — or before
    /// this returns with `durable_appends`.
    pub fn append<P: AsRef<[u8]>>(&mut self, id: ShardId, now: u64, entries: &[P]) -> Result<Range<u64>, Error> {
        let durable = self.cfg.durable_appends;
        let s = self.shard_mut(id)?;
        let r = s.engine.append(now, entries).map_err(|e| Error::from_core(id, s.dir.path(), e))?;
        if durable {
            s.sync(now)?;
        }
        Ok(r)
    }

    /// Makes every entry appended to shard `id` so far durable and visible.
    pub fn sync(&mut self, id: ShardId, now: u64) -> Result<(), Error> {
        self.shard_mut(id)?.sync(now)
    }

    /// [`Log::sync`] for every open shard; the first error is returned
    /// after all shards were tried.
    pub fn sync_all(&mut self, now: u64) -> Result<(), Error> {
        let mut first = Ok(());
        for s in &mut self.shards {
            let r = s.sync(now);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Does the periodic work: syncs every shard whose flush interval has
    /// elapsed and that has unsynced entries, and runs retention when its
    /// interval has elapsed. Call it from the application's main loop (or
    /// the optional helper thread); nothing else runs in the background.
    /// The first error is returned after all shards were tried.
    pub fn tick(&mut self, now: u64) -> Result<TickReport, Error> {
        let flush = u64::try_from(self.cfg.flush_interval.as_nanos()).unwrap_or(u64::MAX);
        let mut report = TickReport { next_due: u64::MAX, ..TickReport::default() };
        let mut first = Ok(());
        for s in &mut self.shards {
            if s.engine.has_unsynced() && now.saturating_sub(s.last_flush) >= flush {
                let r = s.sync(now);
                report.synced += u32::from(r.is_ok());
                if first.is_ok() {
                    first = r;
                }
            } else if !s.engine.has_unsynced() {
                s.last_flush = now;
            }
            report.next_due = report.next_due.min(s.last_flush.saturating_add(flush));
        }
        if let Some(every) = self.cfg.retention.cleanup_interval {
            let every = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
            if now.saturating_sub(self.last_retention) >= every {
                self.last_retention = now;
                match self.run_retention(now) {
                    Ok(r) => report.retention = Some(r),
                    Err(e) => {
                        if first.is_ok() {
                            first = Err(e);
                        }
                    }
                }
            }
            report.next_due = report.next_due.min(self.last_retention.saturating_add(every));
        }
        first.map(|()| report)
    }

    /// Next entry number shard `id` will assign.
    pub fn next_entry(&self, id: ShardId) -> Result<u64, Error> {
        Ok(self.shard(id)?.engine.next_entry())
    }

    /// One past the last durable (readable) entry of shard `id`.
    pub fn durable_end(&self, id: ShardId) -> Result<u64, Error> {
        Ok(self.shard(id)?.engine.durable_end())
    }

    /// The first retained entry of shard `id`.
    pub fn first_entry(&self, id: ShardId) -> Result<u64, Error> {
        Ok(self.shard(id)?.engine.first_entry())
    }

    /// A metric counter of shard `id`, as shared in its `comet.state`
    /// (counters of other processes and earlier runs included).
    pub fn counter(&self, id: ShardId, c: Counter) -> Result<u64, Error> {
        let s = self.shard(id)?;
        Ok(comet_core::platform::shm::load_counter(s.state.words(), c))
    }

    /// Closes every shard cleanly: flush, sync, record the active segment in
    /// the manifest and mark the head clean (the next open scans nothing),
    /// make consumer offsets durable, release the locks. The first error is
    /// returned after all shards were tried.
    pub fn close(mut self) -> Result<(), Error> {
        let mut first = Ok(());
        while let Some(s) = self.shards.pop() {
            let r = s.close();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for Log {
    /// A log dropped without [`Log::close`] still makes what it buffered
    /// durable (errors are ignored; call `close` to see them).
    fn drop(&mut self) {
        for s in &mut self.shards {
            let _ = s.engine.sync();
            s.drain_counters();
        }
    }
}

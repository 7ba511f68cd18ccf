//! Retention: keeps disk use bounded without eating unread data by
//! surprise.
//!
//! A pass is the core's (`comet_core::platform::retention::run_pass`): it plans with
//! the pure policy and deletes whole sealed segments, oldest first, through
//! the shard engine (manifest first, unlink second); this module supplies
//! the shards, their groups' offsets and the report. It runs only on
//! shards this client can write (it takes their `writer.lock`; a shard
//! locked by another process is that process's to clean). By default a
//! segment holding entries some consumer group has not acked is kept;
//! `retention.hard_cap` lets `max_total_size` override that, and then the
//! loss is counted per group, logged, and the group's offset is moved to
//! the first surviving entry.

use std::time::Duration;

use comet_core::platform::retention::{RetentionShards, Scratch, run_pass};
use comet_core::platform::shm::OffsetsTable;
use comet_core::{Lifted, ShardId};
use comet_linux::{DirStorage, Ticker};

use crate::client::{Client, now_ns};
use crate::compress::Zstd;
use crate::consumer::map_offsets;
use crate::shard::Engine;
use comet_linux::{Error, Result};

pub use comet_core::{ShardRetention, ShardRetentionStats};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Per shard, by id.
    pub shards: Vec<ShardRetention>,
}

impl RetentionReport {
    /// Segments deleted in total.
    pub fn segments_deleted(&self) -> u64 {
        self.shards.iter().map(|s| s.segments_deleted).sum()
    }

    /// Bytes reclaimed in total.
    pub fn bytes_reclaimed(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes_reclaimed).sum()
    }
}

/// The shards this client writes, as the core's pass sees them.
struct Shards<'a> {
    client: &'a Client,
    ids: Vec<ShardId>,
    /// Per shard, its report as the pass fills it in: the groups the hard
    /// cap moved (and what each lost), or why its offsets did not read.
    notes: Vec<ShardRetention>,
}

impl RetentionShards for Shards<'_> {
    type Storage = DirStorage;
    type Head = comet_linux::MappedHead;
    type Compressor = Zstd;
    type Error = Error;

    fn shard_count(&self) -> usize {
        self.ids.len()
    }

    fn with_engine<R>(&mut self, i: usize, f: impl FnOnce(&mut Engine) -> R) -> Result<Option<R>> {
        let slot = self.client.inner_ref().slot(self.ids[i]);
        let mut g = slot.writer();
        let Some(w) = g.as_mut() else { return Ok(None) };
        let r = f(&mut w.engine);
        slot.publish_counters(&mut w.engine);
        Ok(Some(r))
    }

    fn low_water(&mut self, i: usize) -> Result<Option<u64>> {
        let shard = self.ids[i];
        crate::consumer::low_water(&self.client.shard_dir(shard), shard)
    }

    fn lift_groups(&mut self, i: usize, first: u64, now: u64) -> Result<Lifted> {
        let shard = self.ids[i];
        let Some(words) = map_offsets(&self.client.shard_dir(shard), shard, true)? else {
            return Ok(Lifted::default());
        };
        let table = OffsetsTable::open(words.writable().ok_or(Error::ReadOnly)?, std::thread::yield_now)
            .map_err(|source| Error::Offsets { shard, source })?;
        let mut lifted = Lifted::default();
        table.lift_below(first, now, |group, lost| {
            tracing::warn!(%shard, group, lost, "retention hard cap deleted unread entries");
            self.notes[i].group_losses.push((group.to_string(), lost));
            lifted.groups += 1;
            lifted.entries += lost;
        });
        Ok(lifted)
    }

    fn offsets_unreadable(&mut self, i: usize, e: Error) {
        let why = e.chain().to_string();
        tracing::warn!(shard = %self.ids[i], error = %why, "retention kept every segment: the consumer offsets do not read (repair fixes them)");
        self.notes[i].skipped = Some(format!("consumer offsets do not read, nothing deleted: {why}"));
    }

    fn engine_error(&self, i: usize, e: comet_core::Error<std::io::Error>) -> Error {
        let slot = self.client.inner_ref().slot(self.ids[i]);
        Error::from_core(slot.id, &slot.dir, e)
    }
}

impl Client {
    /// Opens the writer of `shard` if this client may write it (`false`:
    /// another process does).
    fn can_write(&self, shard: ShardId) -> Result<bool> {
        let slot = self.inner_ref().slot(shard);
        let mut g = slot.writer();
        match slot.ensure_writer(&mut g, &self.inner_ref().engine, &self.config().compression) {
            Ok(()) => Ok(true),
            Err(Error::Locked { .. } | Error::NotOwned { .. } | Error::ForeignFormat { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn owned_shards(&self) -> Result<Vec<ShardId>> {
        let c = &self.config().concurrency;
        Ok(self.shards()?.into_iter().filter(|s| c.owns(*s)).collect())
    }

    /// Runs one retention pass now over the shards this client may write.
    pub fn run_retention_now(&self) -> Result<RetentionReport> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let mut report = RetentionReport::default();
        let mut shards = Shards { client: self, ids: Vec::new(), notes: Vec::new() };
        for shard in self.owned_shards()? {
            if self.can_write(shard)? {
                shards.ids.push(shard);
            } else {
                report.shards.push(ShardRetention::skipped(shard, "written by another process"));
            }
        }
        shards.notes = shards.ids.iter().map(|&s| ShardRetention { shard: Some(s), ..Default::default() }).collect();
        let mut scratch = Scratch::default();
        run_pass(&mut shards, &self.config().retention, now_ns(), &mut scratch)?;
        for ((&shard, o), notes) in shards.ids.iter().zip(scratch.outcomes()).zip(shards.notes) {
            if o.deleted.unlink_errors > 0 {
                tracing::warn!(%shard, errors = o.deleted.unlink_errors, "retention could not unlink some segments; the next open removes them");
            }
            if o.protected > 0 {
                tracing::debug!(%shard, protected = o.protected, "retention kept segments with unread entries");
            }
            report.shards.push(notes.with_outcome(o));
        }
        report.shards.sort_by_key(|s| s.shard);
        Ok(report)
    }

    /// Size, age span and the next retention decision of every shard on
    /// disk (computed from files; nothing is locked or changed).
    pub fn retention_stats(&self) -> Result<Vec<ShardRetentionStats>> {
        let now = now_ns();
        let mut out = Vec::new();
        for shard in self.shards()? {
            let (stats, manifest) = self.inner_ref().shard_files(shard)?;
            let low_water = || crate::consumer::low_water(&self.shard_dir(shard), shard);
            out.push(ShardRetentionStats::plan(&stats, manifest.as_ref(), &self.config().retention, now, low_water));
        }
        Ok(out)
    }
}

/// The background retention thread: one pass every `interval` until the
/// client closes. The first pass comes early (as the Go package's did),
/// then on schedule.
pub(crate) fn retention_thread(inner: std::sync::Weak<crate::client::Inner>, interval: Duration) -> Result<Ticker> {
    Ticker::spawn("comet-retention", None, interval.min(Duration::from_secs(10)), move || {
        let client = Client::from_inner(inner.upgrade()?);
        match client.run_retention_now() {
            Ok(r) if r.segments_deleted() > 0 => {
                tracing::info!(segments = r.segments_deleted(), bytes = r.bytes_reclaimed(), "retention pass");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.chain(), "retention pass failed"),
        }
        Some(interval)
    })
}

//! Retention: keeps disk use bounded without eating unread data by
//! surprise.
//!
//! A pass plans with the core's pure policy (`comet_core::retention`) and
//! deletes whole sealed segments, oldest first, through the shard engine
//! (manifest first, unlink second). It runs only on shards this client can
//! write (it takes their `writer.lock`; a shard locked by another process is
//! that process's to clean). By default a segment holding entries some
//! consumer group has not acked is kept; `retention.hard_cap` lets
//! `max_total_size` override that, and then the loss is counted per group,
//! logged, and the group's offset is moved to the first surviving entry.

use std::time::Duration;

use comet_core::ShardId;
use comet_core::retention::{
    SegmentInfo, ShardLimits, ShardPlan, TotalCandidate, TotalPlan, acked_prefix, plan_shard, plan_total,
};
use comet_core::shm::{self, OffsetsTable};
use comet_core::state::Counter;

use crate::client::{Client, now_ns};
use crate::consumer::map_offsets;
use crate::error::{Error, Result};

/// What one pass did to one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardRetention {
    /// The shard.
    pub shard: Option<ShardId>,
    /// Segments deleted.
    pub segments_deleted: u64,
    /// Bytes reclaimed.
    pub bytes_reclaimed: u64,
    /// Entries deleted.
    pub entries_deleted: u64,
    /// Segments the limits wanted gone but consumer protection kept.
    pub protected: u64,
    /// Segments deleted despite unacked entries (hard cap).
    pub forced: u64,
    /// Groups that lost unread entries to the hard cap: (group, entries lost).
    pub group_losses: Vec<(String, u64)>,
    /// Set when the shard was skipped (e.g. another process writes it).
    pub skipped: Option<String>,
}

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

/// Size, age span and the next retention decision for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRetentionStats {
    /// The shard.
    pub shard: ShardId,
    /// Bytes in segments (sealed + active).
    pub bytes: u64,
    /// Sealed segments.
    pub sealed_segments: u64,
    /// Oldest retained entry timestamp (ns, 0 if none; see
    /// [`oldest`](ShardRetentionStats::oldest)).
    pub oldest_ns: u64,
    /// Newest durable entry timestamp (ns, 0 if none; see
    /// [`newest`](ShardRetentionStats::newest)).
    pub newest_ns: u64,
    /// What a pass would do now, by this shard's own limits.
    pub next: ShardPlan,
}

impl ShardRetentionStats {
    /// Timestamp of the oldest retained entry (`None` if there is none).
    pub fn oldest(&self) -> Option<std::time::SystemTime> {
        crate::some_time(self.oldest_ns)
    }

    /// Timestamp of the newest durable entry (`None` if there is none).
    pub fn newest(&self) -> Option<std::time::SystemTime> {
        crate::some_time(self.newest_ns)
    }
}

fn limits(client: &Client) -> ShardLimits {
    let r = &client.config().retention;
    ShardLimits {
        max_age_ns: r.max_age.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        max_shard_bytes: r.max_shard_size,
        min_files_to_keep: r.min_files_to_keep,
    }
}

struct ShardView {
    shard: ShardId,
    sealed: Vec<SegmentInfo>,
    first_ts: Vec<u64>,
    active_bytes: u64,
    active_first_ts: u64,
    low_water: Option<u64>,
}

impl Client {
    /// The low-water mark of a shard's groups, if protection applies.
    fn low_water(&self, shard: ShardId) -> Result<Option<u64>> {
        if !self.config().retention.protect_unconsumed {
            return Ok(None);
        }
        crate::consumer::low_water(&self.shard_dir(shard), shard)
    }

    /// Snapshot of what retention sees in a shard this client writes.
    fn view(&self, shard: ShardId) -> Result<Option<ShardView>> {
        let slot = self.inner_ref().slot(shard);
        let mut g = slot.writer();
        match slot.ensure_writer(&mut g, &self.inner_ref().engine, self.config().compression.level) {
            Ok(()) => {}
            Err(Error::Locked { .. } | Error::NotOwned { .. } | Error::ForeignFormat { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let Some(w) = g.as_ref() else { return Ok(None) };
        let m = w.engine.manifest();
        let sealed = m
            .sealed
            .iter()
            .map(|s| SegmentInfo { base: s.base, end: s.end(), bytes: s.bytes, last_ts: s.last_ts })
            .collect();
        let first_ts = m.sealed.iter().map(|s| s.first_ts).collect();
        let active_bytes = w.engine.active_bytes();
        let active_first_ts = w.engine.active_first_ts();
        drop(g);
        Ok(Some(ShardView {
            shard,
            sealed,
            first_ts,
            active_bytes,
            active_first_ts,
            low_water: self.low_water(shard)?,
        }))
    }

    fn owned_shards(&self) -> Result<Vec<ShardId>> {
        let c = &self.config().concurrency;
        Ok(self
            .shards()?
            .into_iter()
            .filter(|s| c.process_count <= 1 || s.get() % c.process_count == c.process_id)
            .collect())
    }

    /// Runs one retention pass now over the shards this client may write.
    pub fn run_retention_now(&self) -> Result<RetentionReport> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let now = now_ns();
        let limits = limits(self);
        let rc = &self.config().retention;
        let mut views = Vec::new();
        let mut report = RetentionReport::default();
        for shard in self.owned_shards()? {
            match self.view(shard)? {
                Some(v) => views.push(v),
                None => report.shards.push(ShardRetention {
                    shard: Some(shard),
                    skipped: Some("written by another process".into()),
                    ..Default::default()
                }),
            }
        }
        let plans: Vec<ShardPlan> =
            views.iter().map(|v| plan_shard(&v.sealed, v.active_bytes, &limits, v.low_water, now)).collect();
        let mut total = vec![TotalPlan::default(); views.len()];
        if let Some(max_total) = rc.max_total_size {
            let cands: Vec<TotalCandidate<'_>> = views
                .iter()
                .zip(&plans)
                .map(|(v, p)| {
                    let rest = &v.sealed[p.delete..];
                    TotalCandidate {
                        sealed: rest,
                        active_bytes: v.active_bytes,
                        allowed: acked_prefix(rest, v.low_water),
                        keep: rc.min_files_to_keep as usize,
                    }
                })
                .collect();
            plan_total(&cands, max_total, rc.hard_cap, &mut total);
        }
        for ((v, p), t) in views.iter().zip(&plans).zip(&total) {
            report.shards.push(self.execute(v, p, t, now)?);
        }
        report.shards.sort_by_key(|s| s.shard);
        Ok(report)
    }

    fn execute(&self, v: &ShardView, p: &ShardPlan, t: &TotalPlan, now: u64) -> Result<ShardRetention> {
        let count = p.delete + t.delete;
        let slot = self.inner_ref().slot(v.shard);
        let mut out = ShardRetention {
            shard: Some(v.shard),
            protected: (p.protected + t.protected) as u64,
            forced: t.forced as u64,
            ..Default::default()
        };
        let new_first = v.sealed.get(count).map_or_else(|| v.sealed.last().map_or(0, |s| s.end), |s| s.base);
        {
            let mut g = slot.writer();
            let Some(w) = g.as_mut() else { return Ok(out) };
            if count > 0 {
                let d = w.engine.delete_oldest(count).map_err(|e| Error::from_core(v.shard, &slot.dir, e))?;
                out.segments_deleted = d.segments;
                out.bytes_reclaimed = d.bytes;
                out.entries_deleted = d.entries;
                if d.unlink_errors > 0 {
                    tracing::warn!(shard = %v.shard, errors = d.unlink_errors, "retention could not unlink some segments; the next open removes them");
                }
            }
            slot.publish_counters(&mut w.engine);
        }
        if let Some(state) = slot.writer_state()
            && let Some(words) = state.writable()
        {
            shm::add_counter(words, Counter::RetentionRuns, 1);
            shm::add_counter(words, Counter::ProtectedSkips, out.protected);
            shm::add_counter(words, Counter::ForcedDeletions, out.forced);
            let oldest = v.first_ts.get(count).copied().unwrap_or(v.active_first_ts);
            shm::add_counter(words, Counter::OldestEntryNs, oldest);
        }
        if out.forced > 0 {
            out.group_losses = self.move_groups_past(v.shard, new_first, now)?;
            for (group, lost) in &out.group_losses {
                tracing::warn!(shard = %v.shard, group, lost, "retention hard cap deleted unread entries");
            }
        }
        if out.protected > 0 {
            tracing::debug!(shard = %v.shard, protected = out.protected, "retention kept segments with unread entries");
        }
        Ok(out)
    }

    /// Moves every group whose offset is below `first` up to it; returns
    /// what each lost.
    fn move_groups_past(&self, shard: ShardId, first: u64, now: u64) -> Result<Vec<(String, u64)>> {
        let Some(words) = map_offsets(&self.shard_dir(shard), shard, true)? else { return Ok(Vec::new()) };
        let table = OffsetsTable::open(words.writable().ok_or(Error::ReadOnly)?, std::thread::yield_now)
            .map_err(|source| Error::Offsets { shard, source })?;
        let mut behind = Vec::new();
        table.for_each(|g, o| {
            if o.offset < first {
                behind.push((g.to_string(), first - o.offset));
            }
        });
        for (g, _) in &behind {
            table.advance(g, first, now).map_err(|source| Error::Offsets { shard, source })?;
        }
        Ok(behind)
    }

    /// Size, age span and the next retention decision of every shard on
    /// disk (computed from files; nothing is locked or changed).
    pub fn retention_stats(&self) -> Result<Vec<ShardRetentionStats>> {
        let now = now_ns();
        let limits = limits(self);
        let mut out = Vec::new();
        for shard in self.shards()? {
            let st = self.shard_stats(shard)?;
            let dir = self.shard_dir(shard);
            let m = crate::shard::open_dir(&dir)?.and_then(|d| comet_core::shard::load_manifest(&d).ok().flatten());
            let sealed: Vec<SegmentInfo> = m
                .as_ref()
                .map(|m| {
                    m.sealed
                        .iter()
                        .map(|s| SegmentInfo { base: s.base, end: s.end(), bytes: s.bytes, last_ts: s.last_ts })
                        .collect()
                })
                .unwrap_or_default();
            let active = st.bytes - sealed.iter().map(|s| s.bytes).sum::<u64>();
            let next = plan_shard(&sealed, active, &limits, self.low_water(shard)?, now);
            out.push(ShardRetentionStats {
                shard,
                bytes: st.bytes,
                sealed_segments: sealed.len() as u64,
                oldest_ns: st.oldest_ns,
                newest_ns: st.newest_ns,
                next,
            });
        }
        Ok(out)
    }
}

/// The background retention loop: one pass every `interval` until the
/// client closes.
pub(crate) fn retention_loop(
    inner: std::sync::Weak<crate::client::Inner>,
    signal: std::sync::Arc<crate::client::Signal>,
    interval: Duration,
) {
    // The first pass comes early (as the Go package's did), then on schedule.
    let mut wait = interval.min(Duration::from_secs(10));
    loop {
        if !signal.wait(wait) {
            return;
        }
        wait = interval;
        let Some(inner) = inner.upgrade() else { return };
        let client = Client::from_inner(inner);
        match client.run_retention_now() {
            Ok(r) if r.segments_deleted() > 0 => {
                tracing::info!(segments = r.segments_deleted(), bytes = r.bytes_reclaimed(), "retention pass");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.chain(), "retention pass failed"),
        }
    }
}

//! Executing a retention pass, written once for every platform.
//!
//! A pass gathers each shard's sealed segments from its engine's manifest,
//! plans with the pure policy ([`plan_shard`](super::plan_shard) per shard, then
//! [`plan_total`](super::plan_total) across shards on what remains),
//! deletes through [`Shard::delete_oldest`] (manifest first, unlink
//! second; one deletion per shard), counts (`retention_runs`,
//! `protected_skips`, `forced_deletions`, `oldest_entry_ns`, beside the
//! engine's own deletion counters), and after a forced (hard-cap) deletion
//! has the platform move the groups that lagged behind the deleted range
//! to the first surviving entry.
//!
//! The platform supplies, through [`RetentionShards`], what only it knows:
//! how a shard's engine is reached (behind a lock, or not at all when
//! another process writes it), where the groups' offsets live, and its
//! error type. Everything a pass needs is kept in a [`Scratch`], so a
//! platform that reserves it up front ([`Scratch::reserve_shard`]) runs
//! passes that delete nothing without allocating.

use alloc::vec::Vec;

use super::{LowWater, SegmentInfo, ShardPlan, TotalCandidate, TotalPlan, acked_prefix, plan_by_config};
use crate::config::RetentionConfig;
use crate::index::SegmentMeta;
use crate::shard::{Deleted, Shard};
use crate::state::{Counter, HeadStore};
use crate::storage::Storage;
use crate::wire::Compressor;

impl From<&SegmentMeta> for SegmentInfo {
    fn from(s: &SegmentMeta) -> SegmentInfo {
        SegmentInfo { base: s.base, end: s.end(), bytes: s.bytes, last_ts: s.last_ts }
    }
}

/// The engine type of a [`RetentionShards`].
type EngineOf<P> =
    Shard<<P as RetentionShards>::Storage, <P as RetentionShards>::Head, <P as RetentionShards>::Compressor>;

/// The engine error of a [`RetentionShards`].
type EngineErrorOf<P> = crate::Error<<<P as RetentionShards>::Storage as Storage>::Error>;

/// What a platform supplies to [`run_pass`]: its shards, numbered
/// `0..shard_count()`, and the consumer groups' offsets of each.
pub trait RetentionShards {
    /// The shards' storage.
    type Storage: Storage;
    /// Where the shards publish their durable head.
    type Head: HeadStore<Error = <Self::Storage as Storage>::Error>;
    /// The shards' compressor.
    type Compressor: Compressor;
    /// The platform's error.
    type Error;

    /// How many shards the pass covers.
    fn shard_count(&self) -> usize;

    /// Runs `f` on shard `i`'s engine (under whatever lock guards it) and
    /// then publishes the counters `f` changed; `Ok(None)` if the shard
    /// cannot be reached now (e.g. another process writes it), which skips
    /// it. Called twice per shard and pass: to gather, then to delete.
    fn with_engine<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Shard<Self::Storage, Self::Head, Self::Compressor>) -> R,
    ) -> Result<Option<R>, Self::Error>;

    /// The lowest offset of shard `i`'s consumer groups (`None`: no group
    /// has one). Asked only when `protect_unconsumed` is on. An error does
    /// not end the pass: the shard keeps every segment (see
    /// [`offsets_unreadable`](RetentionShards::offsets_unreadable)).
    fn low_water(&mut self, i: usize) -> Result<LowWater, Self::Error>;

    /// Hands over the error of shard `i`'s [`low_water`](RetentionShards::low_water)
    /// (to log or report it). The pass deletes nothing of that shard, not
    /// even under the hard cap (its groups could not be moved), counts its
    /// bytes toward `max_total_size`, and goes on with the other shards:
    /// damage to one shard's offsets stays in that shard.
    fn offsets_unreadable(&mut self, i: usize, error: Self::Error);

    /// Moves every group of shard `i` whose offset is below `first` (the
    /// first retained entry) up to it, after a hard-cap deletion, and says
    /// how many groups moved and how many entries they had not read
    /// (`OffsetsTable::lift_below` reports both).
    fn lift_groups(&mut self, i: usize, first: u64, now_ns: u64) -> Result<Lifted, Self::Error>;

    /// Turns an engine error of shard `i` into the platform's.
    fn engine_error(&self, i: usize, e: crate::Error<<Self::Storage as Storage>::Error>) -> Self::Error;
}

/// The groups a hard-cap deletion moved past entries they had not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifted {
    /// Groups moved to the first retained entry.
    pub groups: u64,
    /// Entries they had not read, summed over them.
    pub entries: u64,
}

/// What one pass did to one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardOutcome {
    /// The platform could not reach the shard's engine; nothing was done.
    pub skipped: bool,
    /// What the deletion removed.
    pub deleted: Deleted,
    /// Segments the limits wanted gone but consumer protection kept.
    pub protected: u64,
    /// Segments deleted although a group had not acked them (hard cap).
    pub forced: u64,
    /// The first retained entry after the pass.
    pub first_entry: u64,
    /// The groups the forced deletions moved, and what they lost.
    pub lifted: Lifted,
    /// Its consumer offsets could not be read: nothing of it was deleted.
    pub offsets_unreadable: bool,
}

/// What one retention pass did, over all shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their entries.
    pub entries: u64,
    /// Segments the limits wanted gone but a consumer group still needs.
    pub protected: u64,
    /// Segments deleted although a group had not acked them (hard cap).
    pub forced: u64,
    /// Groups the hard cap moved past entries they had not read, and those
    /// entries (summed over groups): data loss, reported, never silent.
    pub lifted: Lifted,
    /// Shards whose consumer offsets could not be read (so nothing of them
    /// was deleted).
    pub offsets_unreadable: u64,
}

/// One shard's part of a pass.
#[derive(Debug, Clone, Copy, Default)]
struct ShardPass {
    /// Its segments in [`Scratch::infos`].
    start: usize,
    end: usize,
    active_bytes: u64,
    /// Leading segments consumer protection allows deleting, after `plan`.
    allowed: usize,
    plan: ShardPlan,
    outcome: ShardOutcome,
}

/// Storage a pass works in, kept across passes: the sealed segments of
/// every shard and a record per shard. Grows to the largest pass unless
/// reserved with [`reserve_shard`](Scratch::reserve_shard).
#[derive(Debug, Default)]
pub struct Scratch {
    infos: Vec<SegmentInfo>,
    shards: Vec<ShardPass>,
    totals: Vec<TotalPlan>,
}

impl Scratch {
    /// Room for one more shard of at most `max_segments` sealed segments,
    /// reserved exactly once (passes over that many shards then never
    /// allocate).
    pub fn reserve_shard(&mut self, max_segments: u32) {
        let room = max_segments as usize + 8;
        self.infos.reserve_exact(self.infos.capacity() - self.infos.len() + room);
        self.shards.reserve_exact(self.shards.capacity() - self.shards.len() + 1);
        self.totals.reserve_exact(self.totals.capacity() - self.totals.len() + 1);
    }

    /// Heap bytes [`reserve_shard`](Scratch::reserve_shard) adds per shard
    /// (for a memory budget; a reallocation briefly holds the old block
    /// too).
    pub const fn bytes_per_shard(max_segments: u32) -> usize {
        (max_segments as usize + 8) * core::mem::size_of::<SegmentInfo>()
            + core::mem::size_of::<ShardPass>()
            + core::mem::size_of::<TotalPlan>()
    }

    /// What the last pass did to each shard, by shard number.
    pub fn outcomes(&self) -> impl ExactSizeIterator<Item = &ShardOutcome> + '_ {
        self.shards.iter().map(|s| &s.outcome)
    }
}

/// Runs one retention pass over `shards` with the limits of `cfg` at
/// `now_ns`: plans every shard, then the total-size limit over what
/// remains, then deletes and counts shard by shard. Per-shard results are
/// in [`Scratch::outcomes`] afterwards. The first error ends the pass (the
/// shards before it are done).
pub fn run_pass<P: RetentionShards>(
    shards: &mut P,
    cfg: &RetentionConfig,
    now_ns: u64,
    scratch: &mut Scratch,
) -> Result<RetentionReport, P::Error> {
    gather(shards, cfg, now_ns, scratch)?;
    let Scratch { infos, shards: passes, totals } = scratch;
    totals.clear();
    totals.resize(passes.len(), TotalPlan::default());
    if let Some(max_total) = cfg.max_total_size {
        let keep = cfg.min_files_to_keep as usize;
        let candidate = |i: usize| {
            let p: &ShardPass = &passes[i];
            TotalCandidate {
                sealed: &infos[p.start + p.plan.delete..p.end],
                active_bytes: p.active_bytes,
                allowed: p.allowed,
                keep,
            }
        };
        super::plan_total_by(passes.len(), candidate, max_total, cfg.hard_cap, totals);
    }
    let mut report = RetentionReport::default();
    for (i, (p, t)) in passes.iter_mut().zip(totals.iter()).enumerate() {
        if p.outcome.skipped {
            continue;
        }
        let o = execute(shards, i, p, t, now_ns)?;
        report.offsets_unreadable += u64::from(o.offsets_unreadable);
        report.segments += o.deleted.segments;
        report.bytes += o.deleted.bytes;
        report.entries += o.deleted.entries;
        report.protected += o.protected;
        report.forced += o.forced;
        report.lifted.groups += o.lifted.groups;
        report.lifted.entries += o.lifted.entries;
        p.outcome = o;
    }
    Ok(report)
}

/// Copies every shard's sealed segments into the scratch and plans each
/// shard by its own limits.
fn gather<P: RetentionShards>(
    shards: &mut P,
    cfg: &RetentionConfig,
    now_ns: u64,
    scratch: &mut Scratch,
) -> Result<(), P::Error> {
    scratch.infos.clear();
    scratch.shards.clear();
    for i in 0..shards.shard_count() {
        let infos = &mut scratch.infos;
        let start = infos.len();
        let active = shards.with_engine(i, |e: &mut EngineOf<P>| {
            infos.extend(e.manifest().sealed.iter().map(SegmentInfo::from));
            e.active_bytes()
        })?;
        let mut p = ShardPass { start, end: infos.len(), ..ShardPass::default() };
        match active {
            None => p.outcome.skipped = true,
            Some(active) => {
                let sealed = &scratch.infos[p.start..p.end];
                let (plan, low_water, unreadable) = plan_by_config(sealed, active, cfg, now_ns, || shards.low_water(i));
                p.active_bytes = active;
                p.plan = plan;
                p.allowed = acked_prefix(&sealed[p.plan.delete..], low_water);
                if let Some(e) = unreadable {
                    shards.offsets_unreadable(i, e);
                    p.outcome.offsets_unreadable = true;
                    // Nothing of it is a candidate for the total, forced
                    // or not; its bytes still count toward it.
                    p.active_bytes += sealed.iter().map(|s| s.bytes).sum::<u64>();
                    p.start = p.end;
                }
            }
        }
        scratch.shards.push(p);
    }
    Ok(())
}

/// Deletes what the plans chose from shard `i`, counts, and lifts the
/// groups a forced deletion left behind.
fn execute<P: RetentionShards>(
    shards: &mut P,
    i: usize,
    pass: &ShardPass,
    total: &TotalPlan,
    now_ns: u64,
) -> Result<ShardOutcome, P::Error> {
    let plan = pass.plan;
    let count = plan.delete + total.delete;
    let protected = (plan.protected + total.protected) as u64;
    let forced = total.forced as u64;
    let done = shards.with_engine(i, |e: &mut EngineOf<P>| -> Result<_, EngineErrorOf<P>> {
        let deleted = if count > 0 { e.delete_oldest(count)? } else { Deleted::default() };
        e.bump(Counter::RetentionRuns, 1);
        e.bump(Counter::ProtectedSkips, protected);
        e.bump(Counter::ForcedDeletions, forced);
        let oldest = e.manifest().sealed.first().map_or_else(|| e.active_first_ts(), |s| s.first_ts);
        e.bump(Counter::OldestEntryNs, oldest);
        Ok((deleted, e.first_entry()))
    })?;
    let (deleted, first_entry) = match done {
        None => return Ok(ShardOutcome { skipped: true, ..ShardOutcome::default() }),
        Some(r) => r.map_err(|e| shards.engine_error(i, e))?,
    };
    let lifted = if forced > 0 { shards.lift_groups(i, first_entry, now_ns)? } else { Lifted::default() };
    Ok(ShardOutcome {
        skipped: false,
        deleted,
        protected,
        forced,
        first_entry,
        lifted,
        offsets_unreadable: pass.outcome.offsets_unreadable,
    })
}

#[cfg(test)]
mod tests;

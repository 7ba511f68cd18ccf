//! The retention policy as pure functions.
//!
//! Retention deletes whole sealed segments, oldest first (always a prefix
//! of the sealed list, so numbering stays dense above the first retained
//! entry), never the active segment. Inputs are plain numbers — segment
//! summaries, limits, the consumer low-water mark, `now` — and the output
//! says how many leading segments to delete and why. [`run_pass`] (feature
//! `alloc`) executes the plan over the shard engine (manifest first, unlink
//! second) and counts the results, the same for every platform.

#[cfg(feature = "alloc")]
mod report;
#[cfg(feature = "alloc")]
mod run;

#[cfg(feature = "alloc")]
pub use report::{ShardRetention, ShardRetentionStats};
#[cfg(feature = "alloc")]
pub use run::{Lifted, RetentionReport, RetentionShards, Scratch, ShardOutcome, run_pass};

use crate::config::RetentionConfig;

/// What the policy needs to know about one sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// First entry.
    pub base: u64,
    /// One past the last entry.
    pub end: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Newest entry timestamp (ns).
    pub last_ts: u64,
}

/// Limits for one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardLimits {
    /// Maximum age in ns of a segment's newest entry.
    pub max_age_ns: Option<u64>,
    /// Maximum bytes of the shard (sealed + active).
    pub max_shard_bytes: Option<u64>,
    /// Sealed segments that are never deleted.
    pub min_files_to_keep: u32,
}

impl ShardLimits {
    /// The per-shard limits of a retention configuration (an age beyond
    /// `u64::MAX` ns is no limit in practice and saturates).
    pub fn from_config(cfg: &RetentionConfig) -> ShardLimits {
        ShardLimits {
            max_age_ns: cfg.max_age.map(|a| u64::try_from(a.as_nanos()).unwrap_or(u64::MAX)),
            max_shard_bytes: cfg.max_shard_size,
            min_files_to_keep: cfg.min_files_to_keep,
        }
    }
}

/// The lowest offset any known consumer group still needs, if protection
/// is on and groups exist.
pub type LowWater = Option<u64>;

/// The decision for one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardPlan {
    /// Delete this many leading sealed segments.
    pub delete: usize,
    /// Segments the limits wanted gone but consumer protection kept.
    pub protected: usize,
    /// Of `delete`, how many were chosen for age.
    pub by_age: usize,
    /// Of `delete`, how many were chosen for size.
    pub by_size: usize,
}

/// Number of leading segments every consumer group has fully acked.
pub fn acked_prefix(sealed: &[SegmentInfo], low_water: LowWater) -> usize {
    match low_water {
        None => sealed.len(),
        Some(lw) => sealed.iter().take_while(|s| s.end <= lw).count(),
    }
}

/// Plans retention for one shard: age first, then size, both bounded by
/// `min_files_to_keep` and by consumer protection.
pub fn plan_shard(
    sealed: &[SegmentInfo],
    active_bytes: u64,
    limits: &ShardLimits,
    low_water: LowWater,
    now_ns: u64,
) -> ShardPlan {
    let keep = usize::try_from(limits.min_files_to_keep).unwrap_or(usize::MAX);
    let deletable = sealed.len().saturating_sub(keep);
    let mut want = 0;
    if let Some(max_age) = limits.max_age_ns {
        want = sealed[..deletable].iter().take_while(|s| now_ns.saturating_sub(s.last_ts) > max_age).count();
    }
    let by_age = want;
    if let Some(max) = limits.max_shard_bytes {
        let mut total: u64 = sealed.iter().map(|s| s.bytes).sum::<u64>() + active_bytes;
        total -= sealed[..want].iter().map(|s| s.bytes).sum::<u64>();
        while total > max && want < deletable {
            total -= sealed[want].bytes;
            want += 1;
        }
    }
    let allowed = acked_prefix(sealed, low_water);
    let delete = want.min(allowed);
    ShardPlan { delete, protected: want - delete, by_age: by_age.min(delete), by_size: delete - by_age.min(delete) }
}

/// Plans one shard by a retention configuration's per-shard limits (the
/// total-size limit aside): [`plan_shard`], with the consumer low-water
/// mark asked of `low_water` only when `protect_unconsumed` is on. What a
/// pass does first ([`run_pass`]) and what a platform reports as a
/// shard's next decision. Returns the plan, the low-water mark it used,
/// and `low_water`'s error if it failed: offsets that do not read protect
/// every entry (the mark is then entry 0, as if a group had read nothing),
/// never none.
pub fn plan_by_config<E>(
    sealed: &[SegmentInfo],
    active_bytes: u64,
    cfg: &RetentionConfig,
    now_ns: u64,
    low_water: impl FnOnce() -> Result<LowWater, E>,
) -> (ShardPlan, LowWater, Option<E>) {
    let (low_water, error) = match cfg.protect_unconsumed.then(low_water) {
        None => (None, None),
        Some(Ok(lw)) => (lw, None),
        Some(Err(e)) => (Some(0), Some(e)),
    };
    let plan = plan_shard(sealed, active_bytes, &ShardLimits::from_config(cfg), low_water, now_ns);
    (plan, low_water, error)
}

/// One shard's view for the total-size limit, after its own plan ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalCandidate<'a> {
    /// The shard's sealed segments that remain after its own plan.
    pub sealed: &'a [SegmentInfo],
    /// Its active segment's bytes.
    pub active_bytes: u64,
    /// Leading segments consumer protection allows deleting.
    pub allowed: usize,
    /// `min_files_to_keep`.
    pub keep: usize,
}

/// The decision of the total-size limit: per shard, how many more leading
/// segments to delete, and how many of those override protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotalPlan {
    /// More leading segments to delete.
    pub delete: usize,
    /// Of those, deleted although a group had not acked them (hard cap).
    pub forced: usize,
    /// Segments protection kept although the total was over the limit.
    pub protected: usize,
}

/// Plans the total-size limit across shards: repeatedly deletes the oldest
/// (by newest-entry timestamp) deletable segment of any shard until the
/// total fits. Without `hard_cap`, protection and `min_files_to_keep` hold;
/// with it, only the active segments are off limits. `out[i]` receives the
/// plan for `shards[i]`; `out` must be at least as long as `shards`.
pub fn plan_total(shards: &[TotalCandidate<'_>], max_total: u64, hard_cap: bool, out: &mut [TotalPlan]) {
    plan_total_by(shards.len(), |i| shards[i], max_total, hard_cap, out);
}

/// [`plan_total`] over `n` candidates handed out by `shard(i)` (which is
/// called often: it should not compute).
fn plan_total_by<'a>(
    n: usize,
    shard: impl Fn(usize) -> TotalCandidate<'a>,
    max_total: u64,
    hard_cap: bool,
    out: &mut [TotalPlan],
) {
    let mut total: u64 = (0..n)
        .map(|i| {
            let s = shard(i);
            s.active_bytes + s.sealed.iter().map(|g| g.bytes).sum::<u64>()
        })
        .sum();
    for p in out.iter_mut() {
        *p = TotalPlan::default();
    }
    while total > max_total {
        let mut best: Option<(usize, u64)> = None;
        for i in 0..n {
            let s = shard(i);
            let next = out.get(i).map_or(usize::MAX, |p| p.delete);
            let limit = if hard_cap { s.sealed.len() } else { s.allowed.min(s.sealed.len().saturating_sub(s.keep)) };
            if next < limit {
                let ts = s.sealed[next].last_ts;
                if best.is_none_or(|(_, b)| ts < b) {
                    best = Some((i, ts));
                }
            }
        }
        let Some((i, _)) = best else { break };
        let s = shard(i);
        let p = &mut out[i];
        if p.delete >= s.allowed {
            p.forced += 1;
        }
        total -= s.sealed[p.delete].bytes;
        p.delete += 1;
    }
    if total > max_total && !hard_cap {
        // Every deletable segment went; what is left over the limit is
        // protected (or kept by `min_files_to_keep`, which is not counted).
        for (i, p) in out.iter_mut().enumerate().take(n) {
            let s = shard(i);
            p.protected = s.sealed.len().saturating_sub(s.keep).saturating_sub(p.delete);
        }
    }
}

#[cfg(test)]
mod tests;

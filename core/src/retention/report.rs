//! The per-shard retention reports a platform hands its users: what a pass
//! did to each shard (with the groups it cost, by name) and what the next
//! pass would do.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::run::ShardOutcome;
use super::{SegmentInfo, ShardPlan, plan_by_config};
use crate::config::RetentionConfig;
use crate::index::Manifest;
use crate::metrics::ShardStats;
use crate::naming::ShardId;

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
    /// Why nothing of the shard was deleted, when it was skipped (another
    /// process writes it) or its consumer offsets did not read.
    pub skipped: Option<String>,
}

impl ShardRetention {
    /// The report of a shard a pass left alone, and why.
    pub fn skipped(shard: ShardId, why: &str) -> ShardRetention {
        ShardRetention { shard: Some(shard), skipped: Some(why.to_string()), ..ShardRetention::default() }
    }

    /// This report (what the platform noted while the pass ran: the
    /// groups the hard cap moved, why the offsets did not read) completed
    /// with the core's outcome for the shard. A shard the pass could not
    /// reach is reported skipped, `closed during the pass`.
    pub fn with_outcome(self, o: &ShardOutcome) -> ShardRetention {
        if o.skipped {
            let skipped = Some("closed during the pass".to_string());
            return ShardRetention { shard: self.shard, skipped, ..ShardRetention::default() };
        }
        ShardRetention {
            segments_deleted: o.deleted.segments,
            bytes_reclaimed: o.deleted.bytes,
            entries_deleted: o.deleted.entries,
            protected: o.protected,
            forced: o.forced,
            ..self
        }
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
    /// `oldest`, feature `std`).
    pub oldest_ns: u64,
    /// Newest durable entry timestamp (ns, 0 if none; see
    /// `newest`, feature `std`).
    pub newest_ns: u64,
    /// What a pass would do now, by this shard's own limits.
    pub next: ShardPlan,
}

impl ShardRetentionStats {
    /// The shard of `stats`, planned by `cfg`'s own limits at `now_ns`
    /// over `manifest`'s sealed segments (`stats` and `manifest` from one
    /// snapshot). Offsets that do not read (`low_water`'s error) show as
    /// protecting everything, as a pass treats them.
    pub fn plan<E>(
        stats: &ShardStats,
        manifest: Option<&Manifest>,
        cfg: &RetentionConfig,
        now_ns: u64,
        low_water: impl FnOnce() -> Result<Option<u64>, E>,
    ) -> ShardRetentionStats {
        let sealed: Vec<SegmentInfo> =
            manifest.map(|m| m.sealed.iter().map(SegmentInfo::from).collect()).unwrap_or_default();
        let active = stats.bytes.saturating_sub(sealed.iter().map(|s| s.bytes).sum::<u64>());
        let (next, _, _) = plan_by_config(&sealed, active, cfg, now_ns, low_water);
        ShardRetentionStats {
            shard: stats.shard,
            bytes: stats.bytes,
            sealed_segments: sealed.len() as u64,
            oldest_ns: stats.oldest_ns,
            newest_ns: stats.newest_ns,
            next,
        }
    }

    /// Timestamp of the oldest retained entry (`None` if there is none).
    #[cfg(feature = "std")]
    pub fn oldest(&self) -> Option<std::time::SystemTime> {
        crate::metrics::some_time(self.oldest_ns)
    }

    /// Timestamp of the newest durable entry (`None` if there is none).
    #[cfg(feature = "std")]
    pub fn newest(&self) -> Option<std::time::SystemTime> {
        crate::metrics::some_time(self.newest_ns)
    }
}

//! Metrics: latency histograms and the snapshot types of DESIGN.md §7.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use comet_core::ShardId;
use comet_core::state::Counter;

/// A lock-free latency histogram with power-of-two nanosecond buckets.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; 64],
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), max: AtomicU64::new(0) }
    }
}

impl Histogram {
    /// Records one duration.
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let b = 63 - ns.leading_zeros() as usize;
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    /// Summary with percentiles at bucket resolution (upper bounds).
    pub(crate) fn summary(&self) -> Latency {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let pct = |p: u64| -> u64 {
            if total == 0 {
                return 0;
            }
            let rank = (total * p).div_ceil(100);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return (2u64 << i).saturating_sub(1);
                }
            }
            u64::MAX
        };
        let max = self.max.load(Ordering::Relaxed);
        Latency { count: total, p50_ns: pct(50).min(max), p99_ns: pct(99).min(max), max_ns: max }
    }
}

/// A latency summary. Percentiles are upper bounds of power-of-two buckets
/// (capped at the maximum seen), so they are within 2x of the true value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
}

/// The counters of one shard as stored in its `comet.state` (summed over
/// every process and restart that wrote it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters(pub(crate) Vec<(Counter, u64)>);

impl Counters {
    /// The value of one counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.0.iter().find(|(k, _)| *k == c).map_or(0, |(_, v)| *v)
    }

    /// All counters with their names.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(c, v)| (c.name(), *v))
    }

    pub(crate) fn add(&mut self, other: &Counters) {
        for (c, v) in &other.0 {
            match self.0.iter_mut().find(|(k, _)| k == c) {
                Some((_, mine)) if c.is_gauge() => *mine = (*mine).max(*v),
                Some((_, mine)) => *mine += v,
                None => self.0.push((*c, *v)),
            }
        }
    }
}

/// One consumer group's position in a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// Group name.
    pub group: String,
    /// Next entry the group will read.
    pub offset: u64,
    /// Durable entries not yet acked.
    pub lag: u64,
    /// Unix ns of the last ack.
    pub last_ack_ns: u64,
}

/// A snapshot of one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardStats {
    /// The shard.
    pub shard: ShardId,
    /// First retained entry.
    pub first_entry: u64,
    /// One past the last durable entry.
    pub durable_end: u64,
    /// Next entry number to be assigned (this process's writer; otherwise
    /// the durable end).
    pub next_entry: u64,
    /// Segment files (sealed + active).
    pub segments: u64,
    /// Bytes on disk in segments.
    pub bytes: u64,
    /// Timestamp of the oldest retained entry (ns, 0 if none).
    pub oldest_ns: u64,
    /// Timestamp of the newest durable entry (ns, 0 if none).
    pub newest_ns: u64,
    /// Raw payload bytes / stored payload bytes (1.0 when nothing written).
    pub compression_ratio: f64,
    /// Persistent counters.
    pub counters: Counters,
    /// Append latency in this process (sampled).
    pub append_latency: Latency,
    /// Sync latency in this process.
    pub sync_latency: Latency,
    /// Consumer groups.
    pub groups: Vec<GroupStats>,
}

/// A snapshot of every shard plus totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Per shard, by id.
    pub shards: Vec<ShardStats>,
    /// Sum of durable entries still retained.
    pub entries: u64,
    /// Sum of segment bytes.
    pub bytes: u64,
    /// Counters summed over shards.
    pub counters: Counters,
    /// Raw / stored payload bytes over all shards.
    pub compression_ratio: f64,
}

/// raw/stored, 1.0 when nothing was stored.
pub(crate) fn ratio(c: &Counters) -> f64 {
    let stored = c.get(Counter::StoredBytes);
    if stored == 0 { 1.0 } else { c.get(Counter::RawBytes) as f64 / stored as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles() {
        let h = Histogram::default();
        for _ in 0..99 {
            h.record(Duration::from_nanos(100));
        }
        h.record(Duration::from_micros(50));
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!(s.p50_ns >= 100 && s.p50_ns < 256, "{s:?}");
        assert!(s.p99_ns < 256, "{s:?}");
        assert_eq!(s.max_ns, 50_000);
    }
}

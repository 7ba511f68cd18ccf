//! Forwarder metrics: lock-free counters, readable at any time from any
//! thread through [`Metrics::snapshot`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Histogram buckets: 4 per power of two of nanoseconds, up to 2^63 ns.
const SUB: u32 = 4;
const BUCKETS: usize = 64 * SUB as usize;

/// A log-linear latency histogram (relative error below 19 %).
struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < u64::from(SUB) {
        return usize::try_from(ns).unwrap_or(0);
    }
    // The top bit picks the power of two, the next two bits the quarter.
    let log = 63 - ns.leading_zeros();
    let quarter = (ns >> (log - 2)) & 3;
    usize::try_from(u64::from(log * SUB) + quarter).unwrap_or(BUCKETS - 1)
}

/// The largest value that falls in bucket `b`.
fn bucket_top(b: usize) -> u64 {
    let b = u32::try_from(b).unwrap_or(u32::MAX);
    if b < 2 * SUB {
        // Buckets 0..=3 hold one value each; 4..=7 are never used.
        return u64::from(b.min(SUB - 1));
    }
    let (log, quarter) = (b / SUB, b % SUB);
    let top = (1u128 << log) + u128::from(quarter + 1) * (1u128 << (log - 2)) - 1;
    u64::try_from(top).unwrap_or(u64::MAX)
}

impl Histogram {
    fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LatencySnapshot {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        // `per_mille`: 500 for the median, 990 for p99.
        let quantile = |per_mille: u64| {
            if total == 0 {
                return Duration::ZERO;
            }
            // The rank of the quantile, 1-based, rounded up.
            let rank = (u128::from(total) * u128::from(per_mille)).div_ceil(1000).max(1);
            let mut seen = 0u128;
            for (b, c) in counts.iter().enumerate() {
                seen += u128::from(*c);
                if seen >= rank {
                    return Duration::from_nanos(bucket_top(b).min(max_ns));
                }
            }
            Duration::from_nanos(max_ns)
        };
        LatencySnapshot {
            count: self.count.load(Ordering::Relaxed),
            p50: quantile(500),
            p99: quantile(990),
            max: Duration::from_nanos(max_ns),
        }
    }
}

/// Publish-to-PubAck latency percentiles (bucketed: within 19 % of the
/// true value, never above the maximum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

#[derive(Default)]
struct Inner {
    entries: AtomicU64,
    bytes: AtomicU64,
    duplicates: AtomicU64,
    republished: AtomicU64,
    batches: AtomicU64,
    publish_errors: AtomicU64,
    stream_errors: AtomicU64,
    shards_stopped: AtomicU64,
    read_errors: AtomicU64,
    connect_failures: AtomicU64,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    connected: AtomicBool,
    ever_connected: AtomicBool,
    lag: AtomicU64,
    latency: Histogram,
}

/// The counters of one forwarder. Cheap to clone (clones share them).
#[derive(Clone, Default)]
pub struct Metrics(Arc<Inner>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}

/// One reading of a forwarder's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Entries JetStream stored (acknowledged, not as duplicates) and
    /// comet then acked.
    pub entries_forwarded: u64,
    /// Payload bytes of those entries.
    pub bytes_forwarded: u64,
    /// Entries JetStream acknowledged as duplicates (already stored: a
    /// redelivery after a crash or a lost PubAck); acked in comet too.
    pub duplicates: u64,
    /// Publishes of entries this forwarder knows were published before
    /// (re-sent after a failed round, or found as their subject's last
    /// message after a restart). Within the stream's duplicate window they
    /// come back as `duplicates`; after it, JetStream stores them again.
    pub republished: u64,
    /// Batches published and acked.
    pub batches: u64,
    /// Publish rounds that failed (publish error or PubAck timeout) and
    /// were retried after a backoff.
    pub publish_errors: u64,
    /// Failed JetStream checks or stream creations, retried after a
    /// backoff.
    pub stream_errors: u64,
    /// Shards whose forwarding stopped at an entry that cannot be
    /// forwarded (see `Forwarder::stopped_shards`).
    pub shards_stopped: u64,
    /// Shard reads that stopped at an unreadable entry.
    pub read_errors: u64,
    /// Failed connection attempts before the first connection.
    pub connect_failures: u64,
    /// Connections re-established after a disconnect.
    pub reconnects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Whether the client is connected now.
    pub connected: bool,
    /// Durable entries of the forwarded shards not yet acknowledged by
    /// JetStream (lag behind the log), as of the last batch or idle poll.
    pub lag: u64,
    /// Time from handing an entry to the client to its PubAck.
    pub publish_latency: LatencySnapshot,
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.publish_latency;
        write!(
            f,
            "forwarded {} entries ({} bytes), {} duplicates, {} re-published, lag {}, {} publish errors, \
             {} stream errors, {} read errors, {} shards stopped, {} reconnects, connected {}, \
             publish latency p50 {:.1?} p99 {:.1?} max {:.1?}",
            self.entries_forwarded,
            self.bytes_forwarded,
            self.duplicates,
            self.republished,
            self.lag,
            self.publish_errors,
            self.stream_errors,
            self.read_errors,
            self.shards_stopped,
            self.reconnects,
            self.connected,
            l.p50,
            l.p99,
            l.max
        )
    }
}

impl Metrics {
    /// A consistent-enough reading of every counter (each is read
    /// atomically; the set is not one transaction).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let i = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            entries_forwarded: get(&i.entries),
            bytes_forwarded: get(&i.bytes),
            duplicates: get(&i.duplicates),
            republished: get(&i.republished),
            batches: get(&i.batches),
            publish_errors: get(&i.publish_errors),
            stream_errors: get(&i.stream_errors),
            shards_stopped: get(&i.shards_stopped),
            read_errors: get(&i.read_errors),
            connect_failures: get(&i.connect_failures),
            reconnects: get(&i.reconnects),
            disconnects: get(&i.disconnects),
            connected: i.connected.load(Ordering::Relaxed),
            lag: get(&i.lag),
            publish_latency: i.latency.snapshot(),
        }
    }

    pub(crate) fn forwarded(&self, bytes: u64) {
        self.0.entries.fetch_add(1, Ordering::Relaxed);
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.0.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn republished(&self) {
        self.0.republished.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_error(&self) {
        self.0.stream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn shard_stopped(&self) {
        self.0.shards_stopped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batch(&self) {
        self.0.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn publish_error(&self) {
        self.0.publish_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read_error(&self) {
        self.0.read_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connect_failure(&self) {
        self.0.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn latency(&self, d: Duration) {
        self.0.latency.record(d);
    }

    pub(crate) fn set_lag(&self, lag: u64) {
        self.0.lag.store(lag, Ordering::Relaxed);
    }

    /// Records a connection event; returns true for a reconnect.
    pub(crate) fn connected(&self) -> bool {
        self.0.connected.store(true, Ordering::Relaxed);
        let again = self.0.ever_connected.swap(true, Ordering::Relaxed);
        if again {
            self.0.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        again
    }

    pub(crate) fn disconnected(&self) {
        self.0.connected.store(false, Ordering::Relaxed);
        self.0.disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut last = 0;
        for ns in (0..10_000u64).chain([1 << 20, (1 << 20) + 1, 123_456_789, u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(ns);
            assert!(b >= last, "{ns}");
            assert!(bucket_top(b) >= ns, "{ns} above its bucket top {}", bucket_top(b));
            if b > 0 {
                assert!(bucket_top(b - 1) < ns, "{ns} belongs in an earlier bucket");
            }
            last = b;
        }
    }

    #[test]
    fn percentiles_come_from_the_samples() {
        let m = Metrics::default();
        for us in 1..=100 {
            m.latency(Duration::from_micros(us));
        }
        let l = m.snapshot().publish_latency;
        assert_eq!(l.count, 100);
        assert_eq!(l.max, Duration::from_micros(100));
        assert!(l.p50 >= Duration::from_micros(50) && l.p50 <= Duration::from_micros(60), "{l:?}");
        assert!(l.p99 >= Duration::from_micros(99) && l.p99 <= Duration::from_micros(100), "{l:?}");
    }

    #[test]
    fn the_first_connect_is_not_a_reconnect() {
        let m = Metrics::default();
        assert!(!m.connected());
        m.disconnected();
        assert!(m.connected());
        let s = m.snapshot();
        assert_eq!((s.reconnects, s.disconnects, s.connected), (1, 1, true));
    }
}

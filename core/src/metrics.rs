//! Metrics: the latency histogram, the snapshot types of docs/DESIGN.md §7
//! and their OpenMetrics text rendering.
//!
//! The platforms gather the figures (counters from `comet.state`, sizes
//! from the manifest and the head, latencies sampled in the process) and
//! fill these types; what the figures mean, how they add up over shards
//! and how they are rendered is written once, here. Rendering goes through
//! [`core::fmt::Write`], so it needs no `std`.
//!
//! `Histogram` needs 64-bit atomics and is compiled only where they exist
//! (as `shm` is); the snapshot types need only `alloc`. With feature
//! `std`, the timestamps can also be read as `std::time::SystemTime`s.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
#[cfg(target_has_atomic = "64")]
use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(target_has_atomic = "64")]
use core::time::Duration;

use crate::ShardId;
use crate::index::{Manifest, SegmentMeta};
use crate::naming::segment_file_name;
use crate::state::{Counter, DurableHead};
use crate::storage::{OpenMode, Storage, read_exact_at};
use crate::wire::{EntryHeader, HEADER_LEN};

/// A lock-free latency histogram with power-of-two nanosecond buckets
/// (only where 64-bit atomics exist).
#[cfg(target_has_atomic = "64")]
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; 64],
    max: AtomicU64,
}

#[cfg(target_has_atomic = "64")]
impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: core::array::from_fn(|_| AtomicU64::new(0)), max: AtomicU64::new(0) }
    }
}

#[cfg(target_has_atomic = "64")]
impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let b = 63 - ns.leading_zeros() as usize;
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    /// Summary with percentiles at bucket resolution (upper bounds).
    pub fn summary(&self) -> Latency {
        let counts: [u64; 64] = core::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
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
pub struct Counters(Vec<(Counter, u64)>);

impl Counters {
    /// Every counter of [`Counter::ALL`], in that order, with the value
    /// `value` gives it (e.g. loaded from a shard's `comet.state`).
    pub fn collect(mut value: impl FnMut(Counter) -> u64) -> Counters {
        Counters(Counter::ALL.iter().map(|&c| (c, value(c))).collect())
    }

    /// The value of one counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.0.iter().find(|(k, _)| *k == c).map_or(0, |(_, v)| *v)
    }

    /// Raw payload bytes / stored payload bytes, 1.0 when nothing was
    /// stored.
    pub fn compression_ratio(&self) -> f64 {
        let stored = self.get(Counter::StoredBytes);
        if stored == 0 { 1.0 } else { self.get(Counter::RawBytes) as f64 / stored as f64 }
    }

    /// All counters with their names.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(c, v)| (c.name(), *v))
    }

    /// Adds `other` into these counters, as totals over shards are
    /// formed: counts are summed, gauges (the timestamps) keep the larger
    /// value.
    pub fn add(&mut self, other: &Counters) {
        for (c, v) in &other.0 {
            match self.0.iter_mut().find(|(k, _)| k == c) {
                Some((_, mine)) if c.is_gauge() => *mine = (*mine).max(*v),
                Some((_, mine)) => *mine += v,
                None => self.0.push((*c, *v)),
            }
        }
    }
}

/// One consumer group's slot in a shard's `offsets.state`, as stored.
///
/// Only groups that acked (or seeked) in the shard have a slot. For what a
/// group has still to read — counted from the first retained entry when
/// retention deleted entries past its offset, and for shards it never
/// acked — use [`ShardStats::group_offset`] and [`ShardStats::group_lag`]
/// (or [`Stats::group_lag`] over every shard, or
/// `comet::Consumer::lag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// Group name.
    pub group: String,
    /// The stored offset: the group acked every entry below it. The next
    /// entry it reads is this or the first retained entry, whichever is
    /// higher.
    pub offset: u64,
    /// The durable end minus the stored offset (entries retention deleted
    /// unread included; [`ShardStats::group_lag`] leaves them out).
    pub lag: u64,
    /// Unix ns of the last ack (see `last_ack`, feature `std`).
    pub last_ack_ns: u64,
}

impl GroupStats {
    /// Every group of an `offsets.state` table with its offset and its lag
    /// against `durable_end`, sorted by group name.
    #[cfg(all(target_has_atomic = "64", target_endian = "little"))]
    pub fn collect(table: &crate::state::shm::OffsetsTable<'_>, durable_end: u64) -> Vec<GroupStats> {
        let mut out = Vec::new();
        table.for_each(|group, o| {
            out.push(GroupStats {
                group: String::from(group),
                offset: o.offset,
                lag: durable_end.saturating_sub(o.offset),
                last_ack_ns: o.last_update,
            });
        });
        out.sort_by(|a, b| a.group.cmp(&b.group));
        out
    }

    /// When the group last acked in the shard (`None` if `last_ack_ns` is 0).
    #[cfg(feature = "std")]
    pub fn last_ack(&self) -> Option<std::time::SystemTime> {
        some_time(self.last_ack_ns)
    }
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
    /// Timestamp of the oldest retained entry (ns, 0 if none; see
    /// `oldest`, feature `std`).
    pub oldest_ns: u64,
    /// Timestamp of the newest durable entry (ns, 0 if none; see
    /// `newest`, feature `std`).
    pub newest_ns: u64,
    /// Raw payload bytes / stored payload bytes (1.0 when nothing written).
    pub compression_ratio: f64,
    /// Ids of the shard's zstd dictionaries (`dict-<id>.zdict`), ascending:
    /// the last is the one new frames use. Empty without dictionaries.
    pub dictionaries: Vec<u32>,
    /// Persistent counters.
    pub counters: Counters,
    /// Append latency in this process (sampled).
    pub append_latency: Latency,
    /// Sync latency in this process.
    pub sync_latency: Latency,
    /// Consumer groups.
    pub groups: Vec<GroupStats>,
    /// Why the groups could not be read (a damaged `offsets.state`: this
    /// shard's consumers fail until `repair`; other shards are not
    /// affected).
    pub groups_error: Option<String>,
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

impl ShardStats {
    /// The figures of a shard as its files give them, for any process:
    /// first retained entry (the manifest's, else the head's base), durable
    /// end and active bytes (the head's), segment files and bytes, and the
    /// oldest and newest timestamps, the dictionary ids; `counters` as
    /// loaded from its `comet.state`. `storage` (the shard directory, if it
    /// exists) is listed for the dictionaries and read for the first
    /// entry's timestamp when no segment is sealed yet.
    /// `next_entry` is the durable end; latencies, groups and
    /// `groups_error` are left empty for the platform to fill.
    pub fn from_files<S: Storage>(
        shard: ShardId,
        storage: Option<&S>,
        manifest: Option<&Manifest>,
        head: Option<DurableHead>,
        counters: Counters,
    ) -> ShardStats {
        let durable_end = head.map_or(0, |h| h.end());
        let sealed = manifest.map_or(&[][..], |m| &m.sealed[..]);
        let first_entry = manifest.map_or(head.map_or(0, |h| h.base), |m| m.first_entry);
        let active_bytes = head.map_or(0, |h| h.bytes);
        ShardStats {
            shard,
            first_entry,
            durable_end,
            next_entry: durable_end,
            segments: sealed.len() as u64 + u64::from(head.is_some()),
            bytes: sealed.iter().map(|s| s.bytes).sum::<u64>() + active_bytes,
            oldest_ns: oldest_ns(storage, sealed, head),
            newest_ns: newest_ns(sealed, head),
            compression_ratio: counters.compression_ratio(),
            dictionaries: storage.and_then(|s| crate::dict::list_dicts(s).ok()).unwrap_or_default(),
            counters,
            append_latency: Latency::default(),
            sync_latency: Latency::default(),
            groups: Vec::new(),
            groups_error: None,
        }
    }

    /// Timestamp of the oldest retained entry (`None` if there is none).
    #[cfg(feature = "std")]
    pub fn oldest(&self) -> Option<std::time::SystemTime> {
        some_time(self.oldest_ns)
    }

    /// Timestamp of the newest durable entry (`None` if there is none).
    #[cfg(feature = "std")]
    pub fn newest(&self) -> Option<std::time::SystemTime> {
        some_time(self.newest_ns)
    }

    /// The next entry `group` reads in this shard: its stored offset, or the
    /// first retained entry if it never acked here (or its offset fell
    /// behind retention), as `comet::Consumer::offset` returns it.
    pub fn group_offset(&self, group: &str) -> u64 {
        let stored = self.groups.iter().find(|g| g.group == group).map_or(0, |g| g.offset);
        stored.max(self.first_entry)
    }

    /// Durable entries `group` has still to read in this shard, counted from
    /// [`group_offset`](ShardStats::group_offset): a shard the group never
    /// acked counts from its first retained entry, not as 0.
    pub fn group_lag(&self, group: &str) -> u64 {
        self.durable_end.saturating_sub(self.group_offset(group))
    }
}

impl Stats {
    /// The snapshot of `shards` (by id) with their totals: retained
    /// entries and bytes summed, counters added (see [`Counters::add`]),
    /// and the compression ratio of the summed counters.
    pub fn new(shards: Vec<ShardStats>) -> Stats {
        let mut counters = Counters::default();
        for s in &shards {
            counters.add(&s.counters);
        }
        Stats {
            entries: shards.iter().map(|s| s.durable_end - s.first_entry).sum(),
            bytes: shards.iter().map(|s| s.bytes).sum(),
            compression_ratio: counters.compression_ratio(),
            counters,
            shards,
        }
    }

    /// Every consumer group that acked in any shard, sorted, once each.
    pub fn group_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.shards.iter().flat_map(|s| s.groups.iter().map(|g| g.group.as_str())).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// `group`'s lag summed over every shard, including shards it never
    /// acked (see [`ShardStats::group_lag`]).
    pub fn group_lag(&self, group: &str) -> u64 {
        self.shards.iter().map(|s| s.group_lag(group)).sum()
    }

    /// The snapshot in the OpenMetrics text exposition format (what a
    /// Prometheus scrape of `application/openmetrics-text` expects), ending
    /// with `# EOF`. See [`write_openmetrics`](Stats::write_openmetrics).
    pub fn to_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_openmetrics(&mut out);
        out
    }

    /// Writes the snapshot as OpenMetrics text: per shard (label
    /// `shard="NNNN"`) the retained entries, first entry, durable end,
    /// segment files and bytes; per group and shard (labels `group`,
    /// `shard`) the offset and lag (as [`ShardStats::group_lag`] counts it);
    /// and every persistent counter of `comet.state` per shard, as a
    /// `comet_<name>_total` counter (errors included:
    /// `comet_append_errors_total`, `comet_sync_errors_total`, …) or, for
    /// the two timestamps, a `comet_<name>_timestamp_seconds` gauge. Ends
    /// with `# EOF`.
    ///
    /// `entries_read` and `acks` count only what consumers in a shard's
    /// writer process did (reads never write `comet.state`); the group
    /// offsets and lags are shared by every process.
    pub fn write_openmetrics(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let shard_gauges: [ShardGauge; 5] = [
            ("comet_shard_entries", "Durable entries retained in the shard.", |s| {
                s.durable_end.saturating_sub(s.first_entry)
            }),
            ("comet_shard_first_entry", "Number of the first retained entry.", |s| s.first_entry),
            ("comet_shard_durable_end", "One past the last durable entry.", |s| s.durable_end),
            ("comet_shard_segments", "Segment files (sealed and active).", |s| s.segments),
            ("comet_shard_bytes", "Bytes of segment files on disk.", |s| s.bytes),
        ];
        for (name, help, value) in shard_gauges {
            family(out, name, "gauge", help)?;
            for s in &self.shards {
                writeln!(out, "{name}{{shard=\"{}\"}} {}", s.shard, value(s))?;
            }
        }
        let groups = self.group_names();
        let group_gauges: [GroupGauge; 2] = [
            ("comet_group_offset", "Next entry the consumer group reads in the shard.", ShardStats::group_offset),
            (
                "comet_group_lag",
                "Durable entries the consumer group has still to read in the shard.",
                ShardStats::group_lag,
            ),
        ];
        for (name, help, value) in group_gauges {
            family(out, name, "gauge", help)?;
            for g in &groups {
                for s in &self.shards {
                    out.write_str(name)?;
                    out.write_str("{group=\"")?;
                    label_value(out, g)?;
                    writeln!(out, "\",shard=\"{}\"}} {}", s.shard, value(s, g))?;
                }
            }
        }
        for c in Counter::ALL {
            let per_process = matches!(c, Counter::EntriesRead | Counter::Acks);
            let help = if per_process {
                "comet.state counter (counts only the shard's writer process)."
            } else {
                "comet.state counter."
            };
            let name = c.name();
            if c.is_gauge() {
                let base = name.strip_suffix("_ns").unwrap_or(name);
                let metric = format!("comet_{base}_timestamp_seconds");
                family(out, &metric, "gauge", "comet.state timestamp, seconds since the Unix epoch.")?;
                for s in &self.shards {
                    let ns = s.counters.get(c);
                    writeln!(
                        out,
                        "{metric}{{shard=\"{}\"}} {}.{:09}",
                        s.shard,
                        ns / 1_000_000_000,
                        ns % 1_000_000_000
                    )?;
                }
            } else {
                let metric = format!("comet_{name}");
                family(out, &metric, "counter", help)?;
                for s in &self.shards {
                    writeln!(out, "{metric}_total{{shard=\"{}\"}} {}", s.shard, s.counters.get(c))?;
                }
            }
        }
        out.write_str("# EOF\n")
    }
}

/// A per-shard gauge: name, help text, value.
type ShardGauge = (&'static str, &'static str, fn(&ShardStats) -> u64);

/// A per-group-and-shard gauge: name, help text, value.
type GroupGauge = (&'static str, &'static str, fn(&ShardStats, &str) -> u64);

/// The `# TYPE` and `# HELP` lines of a metric family.
fn family(out: &mut impl fmt::Write, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# TYPE {name} {kind}")?;
    writeln!(out, "# HELP {name} {help}")
}

/// A label value with `\`, `"` and newlines escaped as OpenMetrics requires.
fn label_value(out: &mut impl fmt::Write, v: &str) -> fmt::Result {
    for c in v.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Timestamp of the newest durable entry: the head's, or when the active
/// segment holds no durable entry yet (right after a rotation or a
/// recovery that started a fresh segment) the last sealed segment's.
fn newest_ns(sealed: &[SegmentMeta], head: Option<DurableHead>) -> u64 {
    match head {
        Some(h) if h.entries > 0 && h.last_ts > 0 => h.last_ts,
        _ => sealed.last().map_or(0, |s| s.last_ts),
    }
}

/// Timestamp of the oldest retained entry: the first sealed segment's, or
/// with none the active segment's first durable entry (read from its
/// header through `storage`, so a FIFO or device in place of the segment
/// is refused, never blocked on). 0 if there is none or it cannot be read.
fn oldest_ns<S: Storage>(storage: Option<&S>, sealed: &[SegmentMeta], head: Option<DurableHead>) -> u64 {
    if let Some(s) = sealed.first() {
        return s.first_ts;
    }
    let Some(h) = head.filter(|h| h.entries > 0) else { return 0 };
    let Some(storage) = storage else { return 0 };
    let mut header = [0u8; HEADER_LEN];
    let read = storage.open(&segment_file_name(h.base), OpenMode::Read).and_then(|f| read_exact_at(&f, 0, &mut header));
    match (read, EntryHeader::parse(&header)) {
        (Ok(n), Ok(e)) if n == HEADER_LEN => e.timestamp,
        _ => 0,
    }
}

/// A timestamp in ns since the Unix epoch (as comet stores them) as a
/// [`SystemTime`](std::time::SystemTime).
#[cfg(feature = "std")]
pub fn system_time(ns: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + core::time::Duration::from_nanos(ns)
}

/// A [`SystemTime`](std::time::SystemTime) as ns since the Unix epoch (as
/// comet stores timestamps): 0 for times before the epoch, `u64::MAX` for
/// times after 2554.
#[cfg(feature = "std")]
pub fn unix_ns(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `Some(time)` for a stored timestamp (ns since the Unix epoch), `None`
/// for 0 (which the snapshots use for "none").
#[cfg(feature = "std")]
pub(crate) fn some_time(ns: u64) -> Option<std::time::SystemTime> {
    (ns != 0).then(|| system_time(ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    #[cfg(target_has_atomic = "64")]
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

    fn shard(id: u32, first: u64, end: u64, groups: &[(&str, u64)]) -> ShardStats {
        ShardStats {
            groups_error: None,
            shard: ShardId::new(id).unwrap(),
            first_entry: first,
            durable_end: end,
            next_entry: end,
            segments: 2,
            bytes: 4096,
            oldest_ns: 0,
            newest_ns: 0,
            compression_ratio: 1.0,
            dictionaries: Vec::new(),
            counters: Counters(Counter::ALL.iter().enumerate().map(|(i, &c)| (c, i as u64 * 1_000_000_007)).collect()),
            append_latency: Latency::default(),
            sync_latency: Latency::default(),
            groups: groups
                .iter()
                .map(|&(g, offset)| GroupStats {
                    group: g.into(),
                    offset,
                    lag: end.saturating_sub(offset),
                    last_ack_ns: 5,
                })
                .collect(),
        }
    }

    fn stats() -> Stats {
        Stats {
            shards: vec![
                shard(1, 0, 100, &[("demo", 60), ("we\"ird\\name", 100)]),
                shard(7, 40, 90, &[("demo", 10)]),
                shard(9, 5, 50, &[]),
            ],
            entries: 195,
            bytes: 3 * 4096,
            counters: Counters::default(),
            compression_ratio: 1.0,
        }
    }

    #[test]
    fn group_lag_counts_shards_a_group_never_acked() {
        let st = stats();
        assert_eq!(st.group_names(), ["demo", "we\"ird\\name"]);
        // Shard 7: the stored offset 10 fell behind retention (first 40).
        assert_eq!(st.shards[1].group_offset("demo"), 40);
        assert_eq!(st.shards[1].group_lag("demo"), 50);
        // Shard 9: never acked, so everything retained is still to read.
        assert_eq!(st.shards[2].group_offset("demo"), 5);
        assert_eq!(st.shards[2].group_lag("demo"), 45);
        assert_eq!(st.group_lag("demo"), 40 + 50 + 45);
        assert_eq!(st.group_lag("we\"ird\\name"), 50 + 45);
    }

    /// A parsed sample: name, labels, value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// Checks `text` against the OpenMetrics text grammar: metric families
    /// announced by `# TYPE` (once each, before their samples, so the
    /// samples of a family are contiguous), `# HELP` for the current family, sample names of
    /// the family (`_total` for counters), well-formed labels and escapes,
    /// numeric values, `# EOF` last. Returns the samples.
    fn check_openmetrics(text: &str) -> Vec<Sample> {
        fn name_ok(n: &str, first_colon: bool) -> bool {
            let mut b = n.bytes();
            b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || (first_colon && c == b':'))
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || (first_colon && c == b':'))
        }
        assert!(text.ends_with("# EOF\n"), "must end with # EOF and a newline");
        let lines: Vec<&str> = text.strip_suffix('\n').unwrap().split('\n').collect();
        assert_eq!(lines.iter().filter(|l| **l == "# EOF").count(), 1);
        let mut families: Vec<String> = Vec::new();
        let mut current: Option<(String, String)> = None;
        let mut samples = Vec::new();
        for line in &lines[..lines.len() - 1] {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name type");
                assert!(name_ok(name, true), "{line}");
                assert!(["counter", "gauge", "unknown"].contains(&kind), "{line}");
                assert!(!families.contains(&name.to_string()), "family {name} announced twice");
                families.push(name.into());
                current = Some((name.into(), kind.into()));
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _help) = rest.split_once(' ').expect("HELP name text");
                assert_eq!(Some(name), current.as_ref().map(|c| c.0.as_str()), "{line}");
            } else {
                assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
                let (family, kind) = current.as_ref().expect("sample before any # TYPE");
                let (name, rest) = line.split_at(line.find(['{', ' ']).expect("sample value"));
                let want = if kind == "counter" { format!("{family}_total") } else { family.clone() };
                assert_eq!(name, want, "{line}");
                let mut labels = Vec::new();
                let value = if let Some(mut r) = rest.strip_prefix('{') {
                    loop {
                        let (lname, after) = r.split_once("=\"").expect("label=\"value\"");
                        assert!(name_ok(lname, false), "{line}");
                        let mut value = String::new();
                        let mut chars = after.char_indices();
                        let end = loop {
                            match chars.next().expect("unterminated label value") {
                                (i, '"') => break i,
                                (_, '\\') => match chars.next().expect("escape").1 {
                                    'n' => value.push('\n'),
                                    c @ ('\\' | '"') => value.push(c),
                                    c => panic!("bad escape \\{c} in {line}"),
                                },
                                (_, '\n') => panic!("raw newline in {line}"),
                                (_, c) => value.push(c),
                            }
                        };
                        labels.push((lname.to_string(), value));
                        r = &after[end + 1..];
                        if let Some(more) = r.strip_prefix(',') {
                            r = more;
                        } else {
                            break r.strip_prefix("} ").expect("} value");
                        }
                    }
                } else {
                    rest.strip_prefix(' ').expect("space before value")
                };
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("value {value:?} in {line}"));
                samples.push((name.to_string(), labels, v));
            }
        }
        samples
    }

    #[test]
    fn openmetrics_parses_and_carries_every_figure() {
        let st = stats();
        let text = st.to_openmetrics();
        let samples = check_openmetrics(&text);
        let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
            let want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let hits: Vec<f64> = samples.iter().filter(|s| s.0 == name && s.1 == want).map(|s| s.2).collect();
            assert_eq!(hits.len(), 1, "{name} {labels:?} in\n{text}");
            hits[0]
        };
        assert_eq!(get("comet_shard_entries", &[("shard", "0001")]), 100.0);
        assert_eq!(get("comet_shard_entries", &[("shard", "0007")]), 50.0);
        assert_eq!(get("comet_shard_first_entry", &[("shard", "0009")]), 5.0);
        assert_eq!(get("comet_shard_durable_end", &[("shard", "0009")]), 50.0);
        assert_eq!(get("comet_shard_segments", &[("shard", "0007")]), 2.0);
        assert_eq!(get("comet_shard_bytes", &[("shard", "0007")]), 4096.0);
        assert_eq!(get("comet_group_lag", &[("group", "demo"), ("shard", "0001")]), 40.0);
        assert_eq!(get("comet_group_lag", &[("group", "demo"), ("shard", "0009")]), 45.0);
        assert_eq!(get("comet_group_offset", &[("group", "we\"ird\\name"), ("shard", "0001")]), 100.0);
        assert_eq!(get("comet_group_lag", &[("group", "we\"ird\\name"), ("shard", "0007")]), 50.0);
        // Every counter, per shard; the two timestamps in seconds.
        for (i, c) in Counter::ALL.iter().enumerate() {
            let v = i as u64 * 1_000_000_007;
            if c.is_gauge() {
                let base = c.name().strip_suffix("_ns").unwrap();
                let got = get(&format!("comet_{base}_timestamp_seconds"), &[("shard", "0007")]);
                assert!((got - v as f64 / 1e9).abs() < 1e-6, "{c:?}");
            } else {
                assert_eq!(get(&format!("comet_{}_total", c.name()), &[("shard", "0007")]), v as f64, "{c:?}");
            }
        }
        assert!(text.contains("comet_append_errors_total{shard=\"0001\"}"));
        assert!(text.contains("comet_read_errors_total{shard=\"0001\"}"));
    }

    #[test]
    fn openmetrics_of_an_empty_directory_is_just_the_families() {
        let st = Stats { shards: vec![], entries: 0, bytes: 0, counters: Counters::default(), compression_ratio: 1.0 };
        assert!(check_openmetrics(&st.to_openmetrics()).is_empty());
    }

    #[test]
    #[should_panic(expected = "bad escape")]
    fn the_openmetrics_checker_rejects_a_bad_escape() {
        check_openmetrics("# TYPE a gauge\na{g=\"x\\y\"} 1\n# EOF\n");
    }
}

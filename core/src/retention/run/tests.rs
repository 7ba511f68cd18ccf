//! The shared execution over sim shards: a platform whose groups are a
//! plain list per shard and whose counters are a plain array.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::*;
use crate::sim::{MemDir, MemError, MemFile};
use crate::state::{FileHeadStore, STATE_FILE};
use crate::storage::OpenMode;
use crate::wire::NoCompression;

type SimShard = Shard<MemDir, FileHeadStore<MemFile>, NoCompression>;

/// A platform over sim shards (`None`: a shard another process writes).
struct Sim {
    shards: Vec<Option<SimShard>>,
    groups: Vec<Vec<(&'static str, u64)>>,
    counters: Vec<[u64; Counter::ALL.len()]>,
    lifts: Vec<(usize, u64)>,
    /// Shards whose offsets do not read, and the errors handed over.
    broken: Vec<usize>,
    unreadable: Vec<usize>,
}

impl Sim {
    fn new(shards: Vec<Option<SimShard>>) -> Sim {
        let n = shards.len();
        Sim {
            shards,
            groups: vec![Vec::new(); n],
            counters: vec![[0; Counter::ALL.len()]; n],
            lifts: Vec::new(),
            broken: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    fn engine(&self, i: usize) -> &SimShard {
        self.shards[i].as_ref().unwrap()
    }

    fn counter(&self, i: usize, c: Counter) -> u64 {
        self.counters[i][c as usize]
    }

    /// Sealed plus active bytes of every reachable shard.
    fn total_bytes(&self) -> u64 {
        self.shards
            .iter()
            .flatten()
            .map(|s| s.active_bytes() + s.manifest().sealed.iter().map(|g| g.bytes).sum::<u64>())
            .sum()
    }
}

impl RetentionShards for Sim {
    type Storage = MemDir;
    type Head = FileHeadStore<MemFile>;
    type Compressor = NoCompression;
    type Error = crate::Error<MemError>;

    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn with_engine<R>(&mut self, i: usize, f: impl FnOnce(&mut SimShard) -> R) -> Result<Option<R>, Self::Error> {
        let Some(e) = self.shards[i].as_mut() else { return Ok(None) };
        let r = f(e);
        let c = &mut self.counters[i];
        e.drain_counters(|k, v| c[k as usize] = if k.is_gauge() { v } else { c[k as usize] + v });
        Ok(Some(r))
    }

    fn low_water(&mut self, i: usize) -> Result<LowWater, Self::Error> {
        if self.broken.contains(&i) {
            return Err(crate::Error::Poisoned);
        }
        Ok(self.groups[i].iter().map(|g| g.1).min())
    }

    fn offsets_unreadable(&mut self, i: usize, error: Self::Error) {
        assert!(matches!(error, crate::Error::Poisoned));
        self.unreadable.push(i);
    }

    fn lift_groups(&mut self, i: usize, first: u64, _now_ns: u64) -> Result<Lifted, Self::Error> {
        self.lifts.push((i, first));
        let mut lifted = Lifted::default();
        for g in &mut self.groups[i] {
            if g.1 < first {
                lifted.groups += 1;
                lifted.entries += first - g.1;
            }
            g.1 = g.1.max(first);
        }
        Ok(lifted)
    }

    fn engine_error(&self, _i: usize, e: crate::Error<MemError>) -> Self::Error {
        e
    }
}

/// A shard of `n` 100-byte entries stamped `ts0 + i` (about ten per
/// 1 KiB segment), synced.
fn shard(n: u64, ts0: u64) -> SimShard {
    let dir = MemDir::new();
    let head = FileHeadStore::new(dir.open(STATE_FILE, OpenMode::Create).unwrap()).unwrap();
    let cfg = crate::sim::small_engine();
    let (mut s, _) = Shard::open(dir, head, NoCompression, cfg).unwrap();
    for i in 0..n {
        s.append(ts0 + i, &[[i as u8; 76]]).unwrap();
    }
    s.sync().unwrap();
    s
}

/// No limits, protection on.
fn limits() -> RetentionConfig {
    RetentionConfig {
        max_age: None,
        max_shard_size: None,
        max_total_size: None,
        hard_cap: false,
        min_files_to_keep: 0,
        protect_unconsumed: true,
        cleanup_interval: None,
    }
}

fn sealed(s: &SimShard) -> Vec<SegmentMeta> {
    s.manifest().sealed.clone()
}

fn outcomes(scratch: &Scratch) -> Vec<ShardOutcome> {
    scratch.outcomes().copied().collect()
}

#[test]
fn age_and_size_delete_the_oldest_sealed_segments() {
    let mut sim = Sim::new(vec![Some(shard(200, 1000)), Some(shard(200, 1000)), Some(shard(5, 1000))]);
    let before: Vec<Vec<SegmentMeta>> = (0..3).map(|i| sealed(sim.engine(i))).collect();
    assert!(before[0].len() > 10 && before[2].is_empty(), "{before:?}");
    let mut scratch = Scratch::default();

    // Age: segments whose newest entry is more than 100 ns older than now.
    let mut cfg = limits();
    cfg.max_age = Some(Duration::from_nanos(100));
    let now = 1250;
    let old = before[0].iter().take_while(|s| now - s.last_ts > 100).count();
    assert!(old > 0 && old < before[0].len());
    let r = run_pass(&mut sim, &cfg, now, &mut scratch).unwrap();
    let o = outcomes(&scratch);
    for i in 0..2 {
        assert_eq!(o[i].deleted.segments, old as u64, "shard {i}");
        assert_eq!(o[i].deleted.entries, before[i][old].base);
        assert_eq!(o[i].first_entry, before[i][old].base);
        assert_eq!(sim.engine(i).first_entry(), before[i][old].base);
        assert_eq!(sim.counter(i, Counter::RetentionRuns), 1);
        assert_eq!(sim.counter(i, Counter::SegmentsDeleted), old as u64);
        assert_eq!(sim.counter(i, Counter::OldestEntryNs), before[i][old].first_ts);
    }
    assert_eq!(o[2], ShardOutcome::default(), "no sealed segment, nothing to do");
    assert_eq!(sim.counter(2, Counter::RetentionRuns), 1);
    assert_eq!(r.segments, 2 * old as u64);
    assert_eq!(r.entries, 2 * before[0][old].base);
    assert_eq!(r.bytes, 2 * before[0][..old].iter().map(|s| s.bytes).sum::<u64>());
    assert_eq!(r.protected + r.forced, 0);
    assert!(run_pass(&mut sim, &cfg, now, &mut scratch).unwrap().segments == 0, "nothing newer went");

    // Size: each shard down to 3 000 bytes, oldest first.
    cfg.max_age = None;
    cfg.max_shard_size = Some(3000);
    let rest = sealed(sim.engine(0));
    let r = run_pass(&mut sim, &cfg, now, &mut scratch).unwrap();
    let gone = outcomes(&scratch)[0].deleted.segments as usize;
    assert!(gone > 0 && r.segments == 2 * gone as u64);
    for i in 0..2 {
        let s = sim.engine(i);
        let bytes = s.active_bytes() + s.manifest().sealed.iter().map(|g| g.bytes).sum::<u64>();
        assert!(bytes <= 3000, "shard {i}: {bytes}");
        assert!(bytes + rest[gone - 1].bytes > 3000, "shard {i}: one segment too many went");
        assert_eq!(s.first_entry(), rest[gone].base);
    }
    assert_eq!(sim.engine(2).first_entry(), 0);
}

#[test]
fn a_low_water_mark_protects_unacked_segments() {
    let mut sim = Sim::new(vec![Some(shard(200, 1000))]);
    let before = sealed(sim.engine(0));
    // The group still needs an entry of the fourth segment.
    sim.groups[0].push(("slow", before[3].base + 1));
    let mut cfg = limits();
    cfg.max_shard_size = Some(1);
    let mut scratch = Scratch::default();
    let r = run_pass(&mut sim, &cfg, 2000, &mut scratch).unwrap();
    let o = outcomes(&scratch)[0];
    assert_eq!(o.deleted.segments, 3);
    assert_eq!(o.protected, (before.len() - 3) as u64);
    assert_eq!((r.segments, r.protected, r.forced), (3, o.protected, 0));
    assert_eq!(o.first_entry, before[3].base);
    assert_eq!(sim.counter(0, Counter::ProtectedSkips), o.protected);
    assert!(sim.lifts.is_empty());
    assert_eq!(sim.groups[0][0].1, before[3].base + 1, "offsets untouched");

    // Protection off: everything sealed goes.
    cfg.protect_unconsumed = false;
    run_pass(&mut sim, &cfg, 2000, &mut scratch).unwrap();
    assert!(sim.engine(0).manifest().sealed.is_empty());
    assert_eq!(sim.engine(0).first_entry(), sim.engine(0).active_base());
    assert_eq!(sim.counter(0, Counter::OldestEntryNs), sim.engine(0).active_first_ts());
    assert_eq!(sim.counter(0, Counter::RetentionRuns), 2);
}

#[test]
fn a_hard_total_cap_forces_deletion_and_lifts_the_groups() {
    let setup = || {
        let mut sim = Sim::new(vec![Some(shard(200, 1000)), Some(shard(200, 5000)), None]);
        sim.groups[0].push(("laggard", 5));
        sim.groups[0].push(("current", 200));
        sim
    };
    let mut cfg = limits();
    cfg.max_total_size = Some(6000);
    let mut scratch = Scratch::default();

    // Without the hard cap, the laggard's segments stay and shard 1 (newer
    // entries, no groups) pays instead.
    let mut sim = setup();
    let r = run_pass(&mut sim, &cfg, 9000, &mut scratch).unwrap();
    let o = outcomes(&scratch);
    assert_eq!((o[0].deleted.segments, r.forced), (0, 0));
    assert!(o[0].protected > 0 && o[1].deleted.segments > 0, "{o:?}");
    assert!(o[2].skipped);
    assert!(sim.lifts.is_empty());

    // With it, the oldest segments go whoever needs them.
    cfg.hard_cap = true;
    let mut sim = setup();
    let r = run_pass(&mut sim, &cfg, 9000, &mut scratch).unwrap();
    let o = outcomes(&scratch);
    assert!(sim.total_bytes() <= 6000, "{}", sim.total_bytes());
    assert!(o[0].forced > 0 && o[0].forced == o[0].deleted.segments, "{o:?}");
    assert_eq!(r.forced, o[0].forced + o[1].forced);
    let first = sim.engine(0).first_entry();
    assert_eq!(o[0].first_entry, first);
    assert!(sim.lifts.contains(&(0, first)), "{:?}", sim.lifts);
    assert_eq!(sim.groups[0], [("laggard", first), ("current", 200)]);
    // the laggard (at 5) lost every entry from 5 to the new first one
    assert_eq!(o[0].lifted, Lifted { groups: 1, entries: first - 5 });
    assert_eq!(r.lifted.groups, o[0].lifted.groups + o[1].lifted.groups);
    assert_eq!(r.lifted.entries, o[0].lifted.entries + o[1].lifted.entries);
    assert_eq!(sim.counter(0, Counter::ForcedDeletions), o[0].forced);
    assert!(o[2].skipped && o[2].deleted.segments == 0);
}

/// One shard's offsets do not read: that shard keeps everything, even under
/// a hard total cap (its groups could not be moved), its bytes still count
/// toward the total, and the other shards are cleaned as if it were not
/// there, so damage to one shard's offsets stays in that shard.
#[test]
fn unreadable_offsets_keep_their_shard_and_only_their_shard() {
    for hard_cap in [false, true] {
        let mut sim = Sim::new(vec![Some(shard(200, 1000)), Some(shard(200, 1000))]);
        let before: Vec<Vec<SegmentMeta>> = (0..2).map(|i| sealed(sim.engine(i))).collect();
        sim.broken.push(0);
        let mut cfg = limits();
        cfg.max_shard_size = Some(3000);
        cfg.max_total_size = Some(12_000);
        cfg.hard_cap = hard_cap;
        let mut scratch = Scratch::default();
        let r = run_pass(&mut sim, &cfg, 2000, &mut scratch).unwrap();
        let o = outcomes(&scratch);
        assert_eq!(sim.unreadable, [0], "the error was handed over");
        assert!(o[0].offsets_unreadable && !o[1].offsets_unreadable);
        assert_eq!(r.offsets_unreadable, 1);
        assert_eq!(sealed(sim.engine(0)), before[0], "hard cap {hard_cap}: nothing of shard 0 went");
        assert_eq!((o[0].deleted.segments, o[0].forced), (0, 0));
        assert!(o[0].protected > 0, "{o:?}");
        assert!(sim.lifts.is_empty());
        // shard 1 is cleaned to its own limit; the total counts shard 0 too
        let s1 = sim.engine(1);
        let bytes1 = s1.active_bytes() + s1.manifest().sealed.iter().map(|g| g.bytes).sum::<u64>();
        assert!(o[1].deleted.segments > 0 && bytes1 <= 3000, "{o:?}");
        assert_eq!(r.segments, o[1].deleted.segments);
    }
}

#[test]
fn a_reserved_scratch_never_grows() {
    let mut sim = Sim::new(vec![Some(shard(200, 1000)), Some(shard(30, 1000))]);
    let mut scratch = Scratch::default();
    for _ in 0..2 {
        scratch.reserve_shard(64);
    }
    let caps = |s: &Scratch| (s.infos.capacity(), s.shards.capacity(), s.totals.capacity());
    let reserved = caps(&scratch);
    let mut cfg = limits();
    cfg.max_total_size = Some(1 << 30);
    cfg.max_shard_size = Some(1 << 30);
    for _ in 0..3 {
        assert_eq!(run_pass(&mut sim, &cfg, 2000, &mut scratch).unwrap(), RetentionReport::default());
    }
    assert_eq!(caps(&scratch), reserved);
    assert!(Scratch::bytes_per_shard(64) >= 72 * core::mem::size_of::<SegmentInfo>());
}

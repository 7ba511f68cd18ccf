//! The corruption sweep: a closed shard (sealed segments, an active one,
//! chunk tables, the journal, the manifest, the state block, a consumer
//! group's offsets), then one mutation per case at a random position of a
//! random file — a flipped bit, an overwritten byte, a zero-filled run, a
//! truncation — and after each:
//!
//! * no read and no consume ever returns bytes different from what was
//!   appended under that number;
//! * `verify` reports damage whenever bytes a checksum or structure covers
//!   changed (unchecked bytes: metric counters, the head's sequence word,
//!   offsets' timestamps and counts, the lock file);
//! * after `repair`, `verify` passes, every entry whose chunk the mutation
//!   did not touch reads back exactly, and appends continue;
//! * a consumer group's offset never moves past where it was.
//!
//! `COMET_SWEEP_CASES=N` runs more cases (default 320) and
//! `COMET_SWEEP_SEED=S` another sequence.
#![allow(clippy::cast_possible_truncation)]

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use comet::{Client, Config, Consumer, Error, MessageId, ShardId};
use comet_tests::{copy_dir, payload};

const ENTRIES: u64 = 300;
const ACKED: u64 = 137;
const GROUP: &str = "sweep";

fn one() -> ShardId {
    ShardId::new(1).unwrap()
}

fn config() -> Config {
    let mut c = Config::default();
    c.storage.max_file_size = 16 * 1024;
    c.storage.write_buffer_size = 4096;
    c.indexing.boundary_interval = 8;
    c.compression.min_compress_size = 512;
    c.retention.cleanup_interval = None;
    c
}

/// The template shards cases start from: closed cleanly, or synced and
/// then left as a killed writer leaves it (no clean-close mark).
fn template(root: &Path, closed: bool) {
    let work = root.with_extension("work");
    let c = Client::open(&work, config()).unwrap();
    for i in 0..ENTRIES {
        c.append_shard(one(), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
    let mut g = Consumer::new(&c, GROUP).unwrap();
    g.ack(&[MessageId { shard: one(), entry: ACKED - 1 }]).unwrap();
    if closed {
        c.close().unwrap();
        fs::rename(&work, root).unwrap();
    } else {
        comet_tests::crash_copy(&work, root);
        drop(c);
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    Flip { at: u64, bit: u8 },
    Overwrite { at: u64, value: u8 },
    Zero { at: u64, len: u64 },
    Truncate { to: u64 },
}

/// The chunk layout of the template: for every segment file, the byte and
/// entry range of each chunk (from its chunk table).
struct Layout {
    chunks: Vec<(u64, Range<u64>, Range<u64>)>, // (segment base, bytes, entries)
    /// Closed chunks of the active segment (journal records the head covers).
    active: (u64, u64),
}

fn layout(shard: &Path) -> Layout {
    let mut chunks = Vec::new();
    let mut active = (0, 0);
    let mut bases: Vec<u64> = fs::read_dir(shard)
        .unwrap()
        .filter_map(|e| comet_core::platform::naming::parse_segment_file_name(e.unwrap().file_name().to_str()?))
        .collect();
    bases.sort_unstable();
    let last = *bases.last().unwrap();
    for (i, &base) in bases.iter().enumerate() {
        let t = fs::read(shard.join(comet_core::platform::naming::chunk_table_file_name(base).as_str())).unwrap();
        let end = bases.get(i + 1).copied().unwrap_or(ENTRIES);
        let mut start = 0u64;
        let mut first = base;
        for rec in t[24..].chunks_exact(8) {
            let e = u64::from(u32::from_le_bytes(rec[..4].try_into().unwrap()));
            chunks.push((base, start..e, first..(first + 8).min(end)));
            start = e;
            first += 8;
        }
        if base == last {
            active = (base, (t.len() as u64 - 24) / 8);
            let len =
                fs::metadata(shard.join(comet_core::platform::naming::segment_file_name(base).as_str())).unwrap().len();
            if start < len {
                chunks.push((base, start..len, first..end));
            }
        }
    }
    Layout { chunks, active }
}

/// Entries whose bytes the mutation of segment `base` touched.
fn touched(l: &Layout, base: u64, bytes: Range<u64>) -> Vec<Range<u64>> {
    l.chunks
        .iter()
        .filter(|(b, r, _)| *b == base && r.start < bytes.end && bytes.start < r.end)
        .map(|(_, _, e)| e.clone())
        .collect()
}

/// Whether the mutation changed bytes some check covers, and which
/// entries' chunks it touched.
fn classify(l: &Layout, name: &str, before: &[u8], after: &[u8], m: Mutation) -> (bool, Vec<Range<u64>>) {
    let changed: Vec<usize> = (0..before.len().max(after.len())).filter(|&i| before.get(i) != after.get(i)).collect();
    let span = match m {
        Mutation::Truncate { to } => to..before.len() as u64,
        _ => {
            let (a, b) = (*changed.first().unwrap_or(&0) as u64, *changed.last().unwrap_or(&0) as u64 + 1);
            a..b
        }
    };
    if let Some(base) = comet_core::platform::naming::parse_segment_file_name(name) {
        return (true, touched(l, base, span));
    }
    if let Some(base) = comet_core::platform::naming::parse_chunk_table_file_name(name) {
        if base == l.active.0 {
            // The active segment's journal: a short one is what a power
            // loss leaves (it is not synced per write), a note that the
            // next open rebuilds; changed records the head covers are damage.
            let covered = 24 + 8 * l.active.1;
            return (!matches!(m, Mutation::Truncate { .. }) && span.start < covered, Vec::new());
        }
        return (true, Vec::new());
    }
    let checked = match name {
        "index.bin" => true,
        // the head line but its sequence word; counters are metrics
        "comet.state" => {
            matches!(m, Mutation::Truncate { .. }) || changed.iter().any(|&i| i < 64 && !(8..16).contains(&i))
        }
        "offsets.state" => {
            matches!(m, Mutation::Truncate { .. })
                || changed.iter().any(|&i| {
                    if i < 64 {
                        return i < 8;
                    }
                    let (slot, at) = ((i - 64) / 128, (i - 64) % 128);
                    let used = before
                        .get(64 + slot * 128 + 56..64 + slot * 128 + 64)
                        .is_some_and(|b| b.iter().any(|&x| x != 0));
                    used && (at < 56 || (72..76).contains(&at) || (80..88).contains(&at))
                })
        }
        _ => false,
    };
    (checked, Vec::new())
}

fn reads_are_exact(dir: &Path, what: &str) {
    let c = Client::open_read_only(dir, config()).unwrap();
    // A damaged state block refuses readers with a typed error.
    let Ok(mut r) = c.reader(one()) else { return };
    for i in 0..ENTRIES {
        if let Ok(m) = r.read(i) {
            assert_eq!(m.data(), &payload(i)[..], "{what}: entry {i} read back different bytes");
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < ENTRIES {
        out.clear();
        match r.read_batch(at, 64, &mut out) {
            Ok(0) => break,
            Ok(n) => at += n as u64,
            Err(_) => at += out.len() as u64 + 1,
        }
        for m in &out {
            assert_eq!(m.data(), &payload(m.id.entry)[..], "{what}: batch entry {}", m.id.entry);
        }
    }
    let mut g = Consumer::new(&c, "fresh").unwrap();
    let (messages, _errors) = g.read(&[one()], 500).into_parts();
    for m in &messages {
        assert_eq!(m.data(), &payload(m.id.entry)[..], "{what}: consumed entry {}", m.id.entry);
    }
    let acked = Consumer::new(&c, GROUP).unwrap().offset(one());
    if let Ok(o) = acked {
        assert!(o <= ACKED, "{what}: group offset moved past its ack: {o}");
    }
}

#[test]
fn every_file_kind_survives_random_damage() {
    let cases: u64 = std::env::var("COMET_SWEEP_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(320);
    let seed: u64 = std::env::var("COMET_SWEEP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_C0E7);
    let tmp = tempfile::tempdir().unwrap();
    let templates = [tmp.path().join("closed"), tmp.path().join("crashed")];
    template(&templates[0], true);
    template(&templates[1], false);
    let l = layout(&templates[0].join("shard-0001"));
    assert_eq!(l.chunks.len(), layout(&templates[1].join("shard-0001")).chunks.len());
    let tpl = &templates[0];
    let mut names: Vec<String> =
        fs::read_dir(tpl.join("shard-0001")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert!(names.iter().filter(|n| n.ends_with(".comet")).count() >= 3, "{names:?}");
    let mut rng = Rng(seed | 1);
    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
    for case in 0..cases {
        let dir: PathBuf = tmp.path().join(format!("case-{case}"));
        copy_dir(&templates[(case % 2) as usize], &dir);
        let name = names[rng.below(names.len() as u64) as usize].clone();
        let path = dir.join("shard-0001").join(&name);
        let Ok(before) = fs::read(&path) else {
            continue; // writer.lock: not in a crash copy
        };
        let len = before.len() as u64;
        let m = match rng.below(4) {
            0 => Mutation::Flip { at: rng.below(len), bit: rng.below(8) as u8 },
            1 => Mutation::Overwrite { at: rng.below(len), value: rng.next() as u8 },
            2 => {
                let at = rng.below(len);
                Mutation::Zero { at, len: 1 + rng.below(64) }
            }
            _ => Mutation::Truncate { to: rng.below(len) },
        };
        let mut after = before.clone();
        match m {
            Mutation::Flip { at, bit } if len > 0 => after[at as usize] ^= 1 << bit,
            Mutation::Overwrite { at, value } if len > 0 => after[at as usize] = value,
            Mutation::Zero { at, len: n } if len > 0 => {
                let end = (at + n).min(len) as usize;
                after[at as usize..end].fill(0);
            }
            Mutation::Truncate { to } => after.truncate(to as usize),
            _ => {}
        }
        if after == before {
            continue;
        }
        fs::write(&path, &after).unwrap();
        let kind = if name.ends_with(".comet") {
            "segment"
        } else if name.ends_with(".chunks") {
            "chunk table"
        } else {
            name.as_str()
        };
        *by_kind.entry(kind.to_string()).or_default() += 1;
        let what = format!("case {case} ({}): {m:?} of {name}", if case % 2 == 0 { "closed" } else { "crashed" });
        let (checked, damaged) = classify(&l, &name, &before, &after, m);

        reads_are_exact(&dir, &what);
        let report = comet::verify(&dir).unwrap();
        if checked {
            assert!(!report.is_ok(), "{what}: verify missed the damage");
        }
        comet::repair(&dir).unwrap_or_else(|e| panic!("{what}: repair failed: {e}"));
        let report = comet::verify(&dir).unwrap();
        assert!(report.is_ok(), "{what}: not ok after repair: {:?}", report.findings);
        reads_are_exact(&dir, &format!("{what}, after repair"));
        // At most the touched chunks' entries are lost.
        let c = Client::open(&dir, config()).unwrap();
        let mut r = c.reader(one()).unwrap();
        for i in 0..ENTRIES {
            if let Err(e) = r.read(i) {
                assert!(
                    damaged.iter().any(|d| d.contains(&i)),
                    "{what}: entry {i} lost after repair but its chunk was not touched: {e}"
                );
                assert!(matches!(e, Error::Lost { .. }), "{what}: entry {i}: {e}");
            }
        }
        let next = c.append_shard(one(), &[b"after repair"]).unwrap().entries.start;
        assert!(next >= ENTRIES, "{what}: numbers reused ({next})");
        c.sync().unwrap();
        assert_eq!(r.read(next).unwrap().data(), b"after repair", "{what}");
        c.close().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("{cases} cases by file kind: {by_kind:?}");
    assert!(by_kind.len() >= 6, "every file kind was hit: {by_kind:?}");
}

//! Reopening after clean closes, crashes and damage, through the public
//! API and the files on disk. A "crash" here is a copy of the directory
//! taken while the client is still running (what `kill -9` would leave);
//! real SIGKILL tests live in `crash_kill.rs`.

#![allow(clippy::cast_possible_truncation)]

use std::fs;
use std::path::Path;

use comet::{Client, Counter, Error, ShardId};
use comet_tests::{crash_copy, files, payload, segments, small_config};

const S1: &str = "events:v1:shard:0001";

fn one() -> ShardId {
    ShardId::new(1).unwrap()
}

fn shard_dir(root: &Path) -> std::path::PathBuf {
    root.join("shard-0001")
}

fn check(c: &Client, range: std::ops::Range<u64>) {
    let mut r = c.reader(one()).unwrap();
    for i in range {
        assert_eq!(r.read(i).unwrap().data(), &payload(i)[..], "entry {i}");
    }
}

fn write(c: &Client, range: std::ops::Range<u64>) {
    for i in range {
        assert_eq!(c.append(S1, &[payload(i)]).unwrap().entries.start, i);
    }
}

#[test]
fn reopen_after_clean_close_needs_no_scan_and_continues_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 0..500);
    assert!(c.recovery_report(one()).unwrap().created, "a new shard says so");
    c.close().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    assert_eq!(c.len(S1).unwrap(), 500);
    write(&c, 500..510);
    let report = c.recovery_report(one()).unwrap();
    assert!(report.clean && !report.created, "{report:?}");
    // Only the open chunk (which new entries join) was read: at most 8
    // entries of at most 1 KiB here.
    assert!(report.scanned_bytes <= 8 * 1024, "{report:?}");
    c.sync().unwrap();
    check(&c, 0..510);
    let st = c.shard_stats(one()).unwrap();
    assert_eq!(st.counters.get(Counter::CleanOpens), 1);
    assert_eq!(st.counters.get(Counter::Opens), 2);
}

#[test]
fn a_crash_loses_at_most_what_was_never_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.flush_interval = std::time::Duration::from_secs(3600);
    let c = Client::open(dir.path(), cfg).unwrap();
    write(&c, 0..300);
    c.sync().unwrap();
    write(&c, 300..320); // buffered, maybe partly written
    let copy = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), copy.path());
    drop(c);
    let c = Client::open(copy.path(), small_config()).unwrap();
    let n = c.len(S1).unwrap();
    assert!((300..=320).contains(&n), "{n}");
    check(&c, 0..n);
    write(&c, n..n + 5);
    c.sync().unwrap();
    check(&c, 0..n + 5);
}

#[test]
fn empty_payloads_survive_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    c.append(S1, &[&b""[..], b"x", b""]).unwrap();
    c.sync().unwrap();
    let copy = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), copy.path());
    fs::remove_file(shard_dir(copy.path()).join("index.bin")).unwrap();
    let c = Client::open(copy.path(), small_config()).unwrap();
    assert_eq!(c.len(S1).unwrap(), 3);
    let mut r = c.reader(one()).unwrap();
    assert_eq!(r.read(0).unwrap().data(), b"");
    assert_eq!(r.read(1).unwrap().data(), b"x");
    assert_eq!(r.read(2).unwrap().data(), b"");
}

#[test]
fn torn_tail_is_truncated_and_appends_continue_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.flush_interval = std::time::Duration::from_secs(3600);
    cfg.storage.max_file_size = 1 << 20;
    let c = Client::open(dir.path(), cfg).unwrap();
    write(&c, 0..2);
    c.sync().unwrap();
    let copy = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), copy.path());
    // a third entry was being written when the process died: header and
    // part of its payload reached the file
    let seg = shard_dir(copy.path()).join("log-00000000000000000000.comet");
    let mut bytes = fs::read(&seg).unwrap();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(&(100u32).to_le_bytes());
    bytes.extend_from_slice(&7u64.to_le_bytes());
    bytes.extend_from_slice(b"partial payload");
    fs::write(&seg, &bytes).unwrap();
    let c = Client::open(copy.path(), cfg).unwrap();
    assert_eq!(c.len(S1).unwrap(), 2, "the torn entry is not durable");
    assert_eq!(c.append(S1, &[payload(2)]).unwrap().entries, 2..3);
    let report = c.recovery_report(one()).unwrap();
    assert_eq!(report.torn.len(), 1);
    assert_eq!(report.torn[0].offset, len, "cut back to the last whole entry");
    c.sync().unwrap();
    check(&c, 0..3);
    assert_eq!(c.shard_stats(one()).unwrap().counters.get(Counter::TornTails), 1);
}

#[test]
fn damaged_synced_data_costs_its_chunk_and_numbers_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.max_file_size = 1 << 20;
    let c = Client::open(dir.path(), cfg).unwrap();
    write(&c, 0..3);
    c.close().unwrap();
    let seg = shard_dir(dir.path()).join("log-00000000000000000000.comet");
    let bytes = fs::read(&seg).unwrap();
    fs::write(&seg, &bytes[..bytes.len() - 5]).unwrap();
    let c = Client::open(dir.path(), cfg).unwrap();
    assert_eq!(c.append(S1, &[b"next"]).unwrap().entries, 3..4);
    let report = c.recovery_report(one()).unwrap();
    // The chopped bytes were in the open chunk (entries 0..3): that chunk
    // is recorded as lost, nothing is renamed.
    assert_eq!(report.lost_chunks, [(0, 0)], "{report:?}");
    c.sync().unwrap();
    let mut r = c.reader(one()).unwrap();
    assert!(matches!(r.read(0), Err(Error::Lost { start: 0, end: 3, .. })));
    assert_eq!(r.read(3).unwrap().data(), b"next");
    assert!(!files(&shard_dir(dir.path())).iter().any(|f| f.ends_with(".quarantined")));
}

#[test]
fn flipped_bit_in_synced_data_is_detected_by_reads_and_costs_only_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.max_file_size = 1 << 20;
    let c = Client::open(dir.path(), cfg).unwrap();
    write(&c, 0..50);
    c.sync().unwrap();
    let copy = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), copy.path());
    let seg = shard_dir(copy.path()).join("log-00000000000000000000.comet");
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    fs::write(&seg, &bytes).unwrap();
    let c = Client::open(copy.path(), cfg).unwrap();
    let report = c.recovery_report(one());
    assert!(report.is_none(), "opened lazily");
    c.append(S1, &[b"after"]).unwrap();
    assert_eq!(c.len(S1).unwrap(), 51);
    c.sync().unwrap();
    // Reads check every chunk they serve: the damaged one (8 entries) is
    // refused whole, every other entry reads back exactly.
    let mut r = c.reader(one()).unwrap();
    let mut damaged = Vec::new();
    for i in 0..50 {
        match r.read(i) {
            Ok(m) => assert_eq!(m.data(), &payload(i)[..], "entry {i}"),
            Err(Error::Damaged { damage, .. }) => damaged.push((i, damage.first, damage.end)),
            Err(e) => panic!("entry {i}: {e}"),
        }
    }
    assert_eq!(damaged.len(), 8, "{damaged:?}");
    assert!(damaged.iter().all(|&(i, a, b)| a <= i && i < b && b - a == 8), "{damaged:?}");
    assert_eq!(r.read(50).unwrap().data(), b"after");
}

#[test]
fn lost_manifest_after_retention_keeps_entry_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 0..2000);
    c.close().unwrap();
    // drop the two oldest segments the way retention would, then lose index.bin
    let sd = shard_dir(dir.path());
    let segs = segments(&sd);
    for (_, path) in &segs[..2] {
        fs::remove_file(path).unwrap();
    }
    fs::remove_file(sd.join("index.bin")).unwrap();
    let first = segs[2].0;
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 2000..2001);
    let report = c.recovery_report(one()).unwrap();
    assert!(report.rebuilt_manifest);
    c.sync().unwrap();
    let mut r = c.reader(one()).unwrap();
    assert_eq!(r.bounds().unwrap(), (first, 2001));
    check(&c, first..2001);
}

#[test]
fn corrupt_manifest_is_rebuilt_and_data_intact() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 0..800);
    c.close().unwrap();
    let idx = shard_dir(dir.path()).join("index.bin");
    let mut b = fs::read(&idx).unwrap();
    b[0] = b'X';
    fs::write(&idx, &b).unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 800..801);
    assert!(c.recovery_report(one()).unwrap().rebuilt_manifest);
    c.sync().unwrap();
    check(&c, 0..801);
    assert!(shard_dir(dir.path()).join("index.bin.corrupt").exists());
}

#[test]
fn missing_last_segment_keeps_older_segments() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 0..800);
    c.close().unwrap();
    let sd = shard_dir(dir.path());
    let segs = segments(&sd);
    let (last_base, last) = segs.last().unwrap();
    let last_base = *last_base;
    fs::remove_file(last).unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    assert_eq!(c.append(S1, &[b"new"]).unwrap().entries, 800..801, "numbers are not reused");
    c.sync().unwrap();
    check(&c, 0..last_base);
    let report = c.recovery_report(one()).unwrap();
    assert_eq!(report.missing, vec![last_base..800]);
}

#[test]
fn garbage_state_block_never_reuses_a_segment_name() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 0..600);
    c.close().unwrap();
    let sd = shard_dir(dir.path());
    let before = files(&sd);
    fs::write(sd.join("comet.state"), vec![0xEE; 1024]).unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 600..1200);
    assert!(c.recovery_report(one()).unwrap().state_reset);
    c.sync().unwrap();
    check(&c, 0..1200);
    // every old segment is still there with its old contents' numbering
    for f in before.iter().filter(|f| f.ends_with(".comet")) {
        assert!(sd.join(f).exists());
    }
}

#[test]
fn wrong_size_state_file_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 0..10);
    c.close().unwrap();
    let sd = shard_dir(dir.path());
    fs::write(sd.join("comet.state"), b"short").unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 10..11);
    c.sync().unwrap();
    check(&c, 0..11);
    assert!(sd.join("comet.state.corrupt").exists());
}

#[test]
fn rebuilt_manifest_keeps_file_relative_offsets_and_rotation_size() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config();
    let c = Client::open(dir.path(), cfg).unwrap();
    write(&c, 0..1000);
    c.close().unwrap();
    fs::remove_file(shard_dir(dir.path()).join("index.bin")).unwrap();
    let c = Client::open(dir.path(), cfg).unwrap();
    write(&c, 1000..3000);
    c.close().unwrap();
    let sd = shard_dir(dir.path());
    for f in files(&sd).iter().filter(|f| f.ends_with(".comet")) {
        let len = fs::metadata(sd.join(f)).unwrap().len();
        assert!(len <= cfg.storage.max_file_size, "{f}: {len}");
    }
    let c = Client::open(dir.path(), cfg).unwrap();
    check(&c, 0..3000);
}

#[test]
fn lost_manifest_rebuilds_with_the_shards_own_interval_whatever_the_config_says() {
    // D-5: the chunk interval is fixed per shard. A shard written with 8
    // whose index.bin is lost must reopen intact under a config saying 5.
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let c = Client::open(dir.path(), small_config()).unwrap();
        write(&c, 0..400);
        c.sync().unwrap();
        let copy = tempfile::tempdir().unwrap();
        if clean {
            c.close().unwrap();
            crash_copy(dir.path(), copy.path());
        } else {
            crash_copy(dir.path(), copy.path());
            drop(c);
        }
        let sd = shard_dir(copy.path());
        assert!(segments(&sd).len() > 2, "several segments");
        fs::remove_file(sd.join("index.bin")).unwrap();
        let mut other = small_config();
        other.indexing.boundary_interval = 5;
        let c = Client::open(copy.path(), other).unwrap();
        let report = c.recover_shard(one()).unwrap();
        assert!(report.rebuilt_manifest, "clean {clean}: {report:?}");
        assert!(report.quarantined.is_empty() && report.missing.is_empty(), "clean {clean}: {report:?}");
        assert!(!files(&sd).iter().any(|f| f.contains("quarantined")), "clean {clean}");
        assert_eq!(c.shard_len(one()).unwrap(), 400);
        check(&c, 0..400);
        write(&c, 400..410);
        c.close().unwrap();
        let c = Client::open(copy.path(), other).unwrap();
        let report = c.recover_shard(one()).unwrap();
        assert!(report.clean && !report.found_damage(), "clean {clean}: {report:?}");
        check(&c, 0..410);
        c.close().unwrap();
    }
}

#[test]
fn seek_by_time_steps_over_a_lost_segment() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 0..800);
    c.close().unwrap();
    let sd = shard_dir(dir.path());
    let segs = segments(&sd);
    assert!(segs.len() >= 4, "{segs:?}");
    let (gap_start, middle) = &segs[segs.len() / 2];
    let (gap_start, gap_end) = (*gap_start, segs[segs.len() / 2 + 1].0);
    fs::remove_file(middle).unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    write(&c, 800..801); // opens the shard for writing: recovery runs
    c.sync().unwrap();
    assert_eq!(c.recovery_report(one()).unwrap().missing, vec![gap_start..gap_end]);

    let mut r = c.reader(one()).unwrap();
    assert!(r.read(gap_start).is_err(), "the lost range is unreadable");
    let readable: Vec<(u64, u64)> =
        (0..801).filter(|e| !(gap_start..gap_end).contains(e)).map(|e| (e, r.read(e).unwrap().timestamp)).collect();
    // The first readable entry stamped at or after `t`, by a linear scan.
    let expected = |t: u64| readable.iter().find(|&&(_, ts)| ts >= t).map_or(801, |&(e, _)| e);
    let mut targets = vec![0, 1, u64::MAX];
    for &(_, ts) in readable.iter().step_by(7) {
        targets.extend([ts.saturating_sub(1), ts, ts + 1]);
    }
    let (before, after) = (readable[gap_start as usize - 1].1, readable[gap_start as usize].1);
    targets.extend([before + 1, before + (after - before) / 2, after]);
    for t in targets {
        assert_eq!(r.seek_time(t).unwrap(), expected(t), "time {t}");
    }
    assert_eq!(r.seek_time(before + 1).unwrap(), gap_end, "a time inside the lost range finds the entry after it");

    let mut g = comet::Consumer::new(&c, "late").unwrap();
    assert_eq!(g.seek(one(), comet::SeekTo::Entry(gap_start + 3)).unwrap(), gap_end, "an entry in the range: after it");
    assert_eq!(g.seek(one(), comet::SeekTo::Entry(gap_start - 1)).unwrap(), gap_start - 1);
    assert_eq!(g.seek(one(), comet::SeekTo::Time(before + 1)).unwrap(), gap_end);
    let mut out = Vec::new();
    g.read_shard(one(), 5, &mut out).unwrap();
    assert_eq!(out.first().map(|m| m.id.entry), Some(gap_end));
}

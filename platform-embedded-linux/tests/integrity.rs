//! The data path's integrity through `comet-embedded`'s public API, on real
//! files: each finding of the integrity review that `cli/tests/integrity.rs`
//! covers for the std platform, as a test here. Damaged bytes (a payload, a
//! zstd frame) are never returned and never acked past; swapped sealed
//! segments are never read under the wrong numbers; a truncated or extended
//! active segment raises no signal, open or closed; FIFOs and devices in
//! place of files and huge sparse metadata files neither hang nor eat
//! memory; a stray segment copy is set aside, never adopted; a flipped bit
//! in a group's offset never makes it skip; and a writer killed while
//! creating shards leaves no half-made `shard-NNNN`.
#![allow(clippy::field_reassign_with_default, clippy::cast_possible_truncation)]

mod common;

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use comet_core::QuarantineReason;
use comet_embedded::{Consumer, EmbeddedConfig, Error, Log, MAX_SHARDS, ShardId};
use comet_test_child::ChildTest;
use common::{S0, flip, payload, segments, small};

/// Appends entries `0..n` (`payload(i)`, stamped `1 + i`) to shard 0 of a
/// new log in `root` and closes it cleanly.
fn fill(root: &Path, n: u64) {
    fill_with(root, small(), n);
}

fn fill_with(root: &Path, cfg: EmbeddedConfig, n: u64) {
    let mut log = Log::open(root, cfg, 1).unwrap();
    for i in 0..n {
        log.append(S0, 1 + i, &[payload(i)]).unwrap();
    }
    log.close().unwrap();
}

/// The byte offset of entry `k` (counting from 0) of segment `seg`.
fn entry_offset(seg: &Path, k: u64) -> u64 {
    let b = std::fs::read(seg).unwrap();
    let mut off = 0usize;
    for _ in 0..k {
        off += 12 + u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
    }
    off as u64
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// A typed error that reports damage: a chunk failing its checksum, a lost
/// or unavailable range, corruption, an undecodable frame.
fn damage(e: &Error) -> bool {
    matches!(
        e,
        Error::Damaged { .. }
            | Error::Lost { .. }
            | Error::Corrupt { .. }
            | Error::Unavailable { .. }
            | Error::Decompress { .. }
    )
}

fn any_error(_: &Error) -> bool {
    true
}

/// Reads entries `range` of shard 0: each must be exactly `want(i)` or an
/// error `accept` allows. Returns the numbers that failed.
fn read_all(log: &mut Log, range: Range<u64>, want: fn(u64) -> Vec<u8>, accept: fn(&Error) -> bool) -> Vec<u64> {
    let mut buf = vec![0u8; 4096];
    let mut failed = Vec::new();
    for i in range {
        match log.read_into(S0, i, &mut buf) {
            Ok(e) => {
                assert_eq!(e.entry, i);
                assert!(buf[..e.len] == want(i)[..], "entry {i}: other bytes than were appended");
            }
            Err(e) => {
                assert!(accept(&e), "entry {i}: {e:?}");
                failed.push(i);
            }
        }
    }
    failed
}

#[test]
fn a_flipped_payload_byte_is_never_returned_or_acked() {
    let t = tempfile::tempdir().unwrap();
    fill(t.path(), 300);
    let segs = segments(t.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let (base, seg) = &segs[0];
    assert_eq!(*base, 0);
    assert!(payload(10).len() > 4);
    flip(seg, entry_offset(seg, 10) + 12 + 3, 0x01);

    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let failed = read_all(&mut log, 0..300, payload, damage);
    assert_eq!(failed, (8..12).collect::<Vec<_>>(), "exactly the damaged chunk (interval 4) is refused");

    let mut c = Consumer::new("g").unwrap();
    let mut buf = vec![0u8; 4096];
    let mut next = 0;
    let err = loop {
        match c.next(&mut log, S0, &mut buf) {
            Ok(Some(e)) => {
                assert_eq!(e.entry, next);
                assert_eq!(&buf[..e.len], &payload(next)[..]);
                next += 1;
            }
            Ok(None) => panic!("the consumer read past the damaged chunk (at {next})"),
            Err(e) => break e,
        }
    };
    assert!(damage(&err), "{err:?}");
    assert_eq!(next, 8, "stops at the damaged chunk");
    assert!(c.next(&mut log, S0, &mut buf).is_err(), "and stays there: never skipped");
    assert_eq!(c.ack(&log, S0).unwrap(), 8);
    assert_eq!(log.group_offset(S0, "g").unwrap(), Some(8), "acked up to the damage, not into it");
    log.close().unwrap();
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let mut again = Consumer::new("g").unwrap();
    assert!(again.next(&mut log, S0, &mut buf).is_err(), "a new consumer meets it again");
    assert_eq!(log.resume_point(S0, "g").unwrap(), 8);
}

fn big(_: u64) -> Vec<u8> {
    (0..1000u32).map(|i| b"observability "[(i % 14) as usize]).collect()
}

#[test]
fn a_flipped_bit_inside_a_zstd_frame_is_never_decoded() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = small();
    cfg.min_compress_size = Some(64);
    let mut log = Log::open(t.path(), cfg, 1).unwrap();
    for i in 0..12 {
        log.append(S0, 1 + i, &[big(i)]).unwrap();
    }
    log.close().unwrap();
    let seg = t.path().join("shard-0000/log-00000000000000000000.comet");
    let at = entry_offset(&seg, 1);
    let b = std::fs::read(&seg).unwrap();
    let stored = u64::from(u32::from_le_bytes(b[at as usize..at as usize + 4].try_into().unwrap()));
    assert_eq!(&b[at as usize + 12..][..4], &[0x28, 0xB5, 0x2F, 0xFD], "stored as a frame");
    assert!(stored > 8 && stored < 1000, "compressed: {stored} bytes");
    flip(&seg, at + 12 + stored / 2, 0x10);

    let mut log = Log::open(t.path(), cfg, 1).unwrap();
    let failed = read_all(&mut log, 0..12, big, damage);
    assert_eq!(failed, vec![0, 1, 2, 3], "the damaged chunk is refused whole, the others read");
}

#[test]
fn swapped_sealed_segments_are_refused() {
    let t = tempfile::tempdir().unwrap();
    fill(t.path(), 300);
    let segs = segments(t.path());
    assert!(segs.len() >= 4, "{segs:?}");
    let ((a, pa), (_, pb), (c, _)) = (&segs[1], &segs[2], &segs[3]);
    let tmp = pa.with_extension("tmp");
    std::fs::rename(pa, &tmp).unwrap();
    std::fs::rename(pb, pa).unwrap();
    std::fs::rename(&tmp, pb).unwrap();

    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let failed = read_all(&mut log, 0..300, payload, damage);
    assert_eq!(failed, (*a..*c).collect::<Vec<_>>(), "both swapped segments refused, nothing else");
    let mut cons = Consumer::new("g").unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..*a {
        assert_eq!(cons.next(&mut log, S0, &mut buf).unwrap().unwrap().entry, i);
    }
    assert!(cons.next(&mut log, S0, &mut buf).is_err());
}

/// [`small`] with 32 KiB segments (256 entries at most, the checkpoint
/// table's capacity): an active segment longer than 12 KiB.
fn wide() -> EmbeddedConfig {
    let mut c = small();
    c.max_file_size = 32 << 10;
    c
}

#[test]
fn a_truncated_active_segment_raises_no_signal() {
    const N: u64 = 420;
    for cut in [Some(0u64), Some(4095), Some(12288), None, Some(1 << 20)] {
        let t = tempfile::tempdir().unwrap();
        fill_with(t.path(), wide(), N);
        let (base, active) = segments(t.path()).pop().unwrap();
        let len = std::fs::metadata(&active).unwrap().len();
        assert!(base > 0 && len > 12288 + 1024, "an active segment after sealed ones: {base} {len}");
        set_len(&active, cut.unwrap_or(len - 1));
        let mut log = Log::open(t.path(), wide(), 1).unwrap_or_else(|e| panic!("cut {cut:?}: {e:?}"));
        let failed = read_all(&mut log, 0..N, payload, any_error);
        assert!(failed.iter().all(|&i| i >= base), "cut {cut:?}: sealed entries lost: {failed:?}");
        let next = log.next_entry(S0).unwrap();
        assert!(next >= N, "cut {cut:?}: numbers reused from {next}");
        assert_eq!(log.append(S0, 999, &[b"after"]).unwrap(), next..next + 1);
        log.sync(S0, 999).unwrap();
        let mut buf = [0u8; 16];
        let e = log.read_into(S0, next, &mut buf).unwrap();
        assert_eq!(&buf[..e.len], b"after");
    }
    // truncated underneath an open log, which then appends on
    for cut in [0u64, 4095, 12288] {
        let t = tempfile::tempdir().unwrap();
        let mut log = Log::open(t.path(), wide(), 1).unwrap();
        for i in 0..N {
            log.append(S0, 1 + i, &[payload(i)]).unwrap();
        }
        log.sync(S0, 1000).unwrap();
        let (base, active) = segments(t.path()).pop().unwrap();
        assert!(base > 0 && std::fs::metadata(&active).unwrap().len() > cut);
        set_len(&active, cut);
        let failed = read_all(&mut log, 0..N, payload, any_error);
        assert!(failed.iter().all(|&i| i >= base), "open, cut {cut}: sealed entries lost: {failed:?}");
        for i in N..N + 20 {
            if log.append(S0, 1000 + i, &[payload(i)]).is_err() {
                break;
            }
        }
        let _ = log.sync(S0, 2000);
        let end = log.durable_end(S0).unwrap();
        read_all(&mut log, 0..end, payload, any_error);
        drop(log);
        let mut log = Log::open(t.path(), wide(), 1).unwrap_or_else(|e| panic!("reopen after cut {cut}: {e:?}"));
        let end = log.durable_end(S0).unwrap();
        let failed = read_all(&mut log, 0..end, payload, any_error);
        assert!(failed.iter().all(|&i| i >= base), "reopened, cut {cut}: {failed:?}");
    }
}

/// Runs `f` in a thread and fails the test if it does not finish within
/// 20 s (a hang must not hang the suite) or if it panics.
fn bounded<T: Send + std::fmt::Debug + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung for 20 s"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked (see above)"),
    }
}

/// Opens the log in `root`, opens shard 0, reads entries `0..n` (exact or
/// an error), looks up group "g" and closes: what every case below must
/// get through. Returns the open error or the entries that failed.
fn open_and_read(root: PathBuf, n: u64) -> Result<Vec<u64>, Error> {
    let mut log = Log::open(&root, small(), 1)?;
    log.open_shard(S0, 1)?;
    let failed = read_all(&mut log, 0..n, payload, any_error);
    let _ = log.group_offset(S0, "g");
    let _ = log.resume_point(S0, "g");
    log.close()?;
    Ok(failed)
}

#[test]
fn fifos_and_devices_in_place_of_files_are_refused_without_hanging() {
    let cases = [
        ("first", "fifo"),
        ("active", "fifo"),
        ("comet.state", "fifo"),
        ("index.bin", "fifo"),
        ("offsets.state", "fifo"),
        ("log-00000000000000000000.chunks", "fifo"),
        ("index.bin", "dev-zero"),
        ("comet.state", "dev-zero"),
        ("offsets.state", "dev-zero"),
    ];
    for (name, kind) in cases {
        let t = tempfile::tempdir().unwrap();
        fill(t.path(), 300);
        let log = Log::open(t.path(), small(), 1).unwrap();
        log.ack(S0, "g", 5).unwrap();
        log.close().unwrap();
        let segs = segments(t.path());
        let path = match name {
            "first" => segs[0].1.clone(),
            "active" => segs.last().unwrap().1.clone(),
            _ => t.path().join("shard-0000").join(name),
        };
        std::fs::remove_file(&path).unwrap();
        if kind == "fifo" {
            rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
        } else {
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        }
        let root = t.path().to_path_buf();
        let r = bounded(&format!("{name} as a {kind}"), move || open_and_read(root, 300));
        eprintln!("{name} as a {kind}: {r:?}");
    }
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn huge_sparse_metadata_files_are_refused_by_size() {
    for file in ["index.bin", "comet.state", "offsets.state"] {
        let t = tempfile::tempdir().unwrap();
        fill(t.path(), 300);
        let log = Log::open(t.path(), small(), 1).unwrap();
        log.ack(S0, "g", 5).unwrap();
        log.close().unwrap();
        set_len(&t.path().join("shard-0000").join(file), 1 << 30);
        let before = peak_rss_kib();
        let root = t.path().to_path_buf();
        let r = bounded(&format!("1 GiB {file}"), move || open_and_read(root, 300));
        let grew = peak_rss_kib().saturating_sub(before);
        eprintln!("1 GiB {file}: {r:?}, peak RSS +{grew} KiB");
        assert!(grew < 200 * 1024, "{file}: opening a 1 GiB sparse file took {grew} KiB");
        if let Ok(failed) = r {
            assert!(failed.is_empty(), "{file}: metadata damage costs no entry: {failed:?}");
        }
    }
}

#[test]
fn a_stray_segment_copy_is_never_adopted() {
    let t = tempfile::tempdir().unwrap();
    fill(t.path(), 300);
    let sd = t.path().join("shard-0000");
    let first = sd.join("log-00000000000000000000.comet");
    let stray = sd.join("log-00000000000000100981.comet");
    std::fs::copy(&first, &stray).unwrap();

    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let rep = log.recovery(S0).unwrap();
    assert!(rep.quarantined.iter().any(|q| q.base == 100_981 && q.reason == QuarantineReason::Stray), "{rep:?}");
    assert_eq!(log.next_entry(S0).unwrap(), 300, "numbering goes on where it was");
    for i in 300..400 {
        assert_eq!(log.append(S0, 1 + i, &[payload(i)]).unwrap(), i..i + 1);
    }
    log.sync(S0, 500).unwrap();
    assert!(read_all(&mut log, 0..400, payload, any_error).is_empty());
    log.close().unwrap();
    assert!(!stray.exists(), "not under its segment name");
    let aside = sd.join("log-00000000000000100981.comet.stray");
    assert_eq!(std::fs::read(&aside).unwrap(), std::fs::read(&first).unwrap(), "set aside whole, never deleted");

    let mut log = Log::open(t.path(), small(), 1).unwrap();
    assert_eq!(log.next_entry(S0).unwrap(), 400);
    assert!(read_all(&mut log, 0..400, payload, any_error).is_empty());
    let mut buf = [0u8; 64];
    assert!(log.read_into(S0, 100_981, &mut buf).is_err());
    assert!(aside.exists() && !stray.exists());
}

/// The byte offset of `group`'s slot in `offsets.state` (the slot whose
/// name field holds it): 512 slots of 128 bytes after a 64-byte header.
fn slot_of(offsets: &[u8], group: &str) -> usize {
    (0..512)
        .map(|i| 64 + 128 * i)
        .find(|&at| offsets[at..at + group.len()] == *group.as_bytes() && offsets[at + group.len()] == 0)
        .unwrap_or_else(|| panic!("no slot holds {group}"))
}

#[test]
fn a_flipped_offset_bit_never_makes_a_group_skip() {
    let t = tempfile::tempdir().unwrap();
    fill(t.path(), 300);
    let log = Log::open(t.path(), small(), 1).unwrap();
    assert_eq!(log.ack(S0, "g", 150).unwrap(), 150);
    log.close().unwrap();
    let path = t.path().join("shard-0000/offsets.state");
    let original = std::fs::read(&path).unwrap();
    let slot = slot_of(&original, "g");
    assert_eq!(u64::from_le_bytes(original[slot + 48..slot + 56].try_into().unwrap()), 150);
    let mut buf = vec![0u8; 4096];
    for bit in 0..64 {
        let mut b = original.clone();
        b[slot + 48 + bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&path, &b).unwrap();
        let mut log = Log::open(t.path(), small(), 1).unwrap();
        let stored = log.group_offset(S0, "g").unwrap();
        assert!(stored.is_none_or(|o| o <= 150), "bit {bit}: the group moved to {stored:?}");
        assert!(log.resume_point(S0, "g").unwrap() <= 150, "bit {bit}");
        let mut c = Consumer::new("g").unwrap();
        let first = c.next(&mut log, S0, &mut buf).unwrap().expect("entries left to read").entry;
        assert!(first <= 150, "bit {bit}: the group skipped to {first}");
        let mut last = first;
        while let Some(e) = c.next(&mut log, S0, &mut buf).unwrap() {
            assert_eq!(e.entry, last + 1, "bit {bit}");
            assert_eq!(&buf[..e.len], &payload(e.entry)[..]);
            last = e.entry;
        }
        assert_eq!(last, 299, "bit {bit}");
        log.close().unwrap();
    }
}

const CHILD_ENV: &str = "COMET_EMBEDDED_SHARD_CHILD";

fn many_shards() -> EmbeddedConfig {
    let mut c = small();
    c.max_shards = MAX_SHARDS as u16;
    c
}

fn shard_dir(root: &Path, id: u32) -> PathBuf {
    root.join(format!("shard-{id:04}"))
}

/// The child half of `a_writer_killed_while_creating_a_shard_leaves_no_half_shard`:
/// creates shard after shard (the lowest number without a directory), each
/// with one synced entry, printing each synced id. Not a test of its own:
/// the parent runs it (with `--ignored`) in a child process and kills it.
#[test]
#[ignore = "the child half of a_writer_killed_while_creating_a_shard_leaves_no_half_shard, which runs it in a child process"]
fn shard_child() {
    let dir = std::env::var(CHILD_ENV).unwrap_or_else(|_| {
        panic!("only a_writer_killed_while_creating_a_shard_leaves_no_half_shard runs this (it sets {CHILD_ENV})")
    });
    let dir = Path::new(&dir);
    let mut id = 1;
    loop {
        let mut log = Log::open(dir, many_shards(), 1).unwrap();
        println!("open");
        while log.shards().count() < MAX_SHARDS {
            while shard_dir(dir, id).exists() {
                id += 1;
            }
            let s = ShardId::new(id).unwrap();
            log.open_shard(s, 1).unwrap();
            log.append(s, 1, &[payload(u64::from(id))]).unwrap();
            log.sync(s, 1).unwrap();
            println!("synced {id}");
        }
        log.close().unwrap();
    }
}

/// Checks every `shard-NNNN` under `root`: whole (an empty shard's files
/// are all there before it gets its name), opens, and its entries (one at
/// most, `payload(id)`) read back; every id in `synced` has its entry.
fn check_shards(root: &Path, synced: &BTreeSet<u32>) -> usize {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        match name.strip_prefix("shard-") {
            Some(n) if n.len() == 4 => ids.push(n.parse::<u32>().unwrap()),
            _ => assert!(name.starts_with(".shard-") && name.contains(".tmp."), "unexpected {name}"),
        }
    }
    for &id in &ids {
        let d = shard_dir(root, id);
        for f in ["log-00000000000000000000.comet", "log-00000000000000000000.chunks", "index.bin"] {
            assert!(d.join(f).is_file(), "shard {id} is half-made: no {f}");
        }
        assert_eq!(std::fs::metadata(d.join("comet.state")).unwrap().len(), 1024, "shard {id}");
    }
    let others: Vec<u32> = ids.iter().copied().filter(|&id| id != 0).collect();
    let mut batches: Vec<&[u32]> = others.chunks(MAX_SHARDS - 1).collect();
    if batches.is_empty() {
        batches.push(&[]); // shard 0 alone: Log::open opens it
    }
    for batch in batches {
        let mut log = Log::open(root, many_shards(), 1).unwrap();
        let mut buf = vec![0u8; 4096];
        for &id in batch {
            let s = ShardId::new(id).unwrap();
            log.open_shard(s, 1).unwrap_or_else(|e| panic!("shard {id}: {e:?}"));
            let end = log.durable_end(s).unwrap();
            assert!(end <= 1 && (end == 1 || !synced.contains(&id)), "shard {id}: durable end {end}");
            if end == 1 {
                let e = log.read_into(s, 0, &mut buf).unwrap_or_else(|e| panic!("shard {id}: {e:?}"));
                assert_eq!(&buf[..e.len], &payload(u64::from(id))[..], "shard {id}");
            }
        }
        log.close().unwrap();
    }
    assert!(synced.iter().all(|id| ids.contains(id)), "a synced shard vanished");
    ids.len()
}

#[test]
fn a_writer_killed_while_creating_a_shard_leaves_no_half_shard() {
    let t = tempfile::tempdir().unwrap();
    let seed = comet_embedded::now_ns();
    let mut rng = seed | 1;
    let mut synced = BTreeSet::new();
    let start = Instant::now();
    for round in 0..30 {
        let child = ChildTest::new("shard_child").env(CHILD_ENV, t.path()).spawn();
        let mut lines = std::iter::from_fn(|| child.line());
        // (the harness prints "test shard_child ... " before it, on the same line)
        let mut ready = lines.any(|l| l.ends_with("open"));
        if round % 2 == 1 {
            // every other round, the kill lands after a shard was synced
            let line = lines.next().unwrap_or_default();
            ready &= line.starts_with("synced ");
            if let Some(id) = line.strip_prefix("synced ") {
                synced.insert(id.parse::<u32>().unwrap());
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 30_000));
        let out = child.kill(); // SIGKILL, mid-creation
        for l in &out.rest {
            if let Some(id) = l.strip_prefix("synced ") {
                synced.insert(id.parse::<u32>().unwrap());
            }
        }
        assert!(
            ready && out.by_sigkill(),
            "round {round} (seed {seed}): the child did not run until killed ({}); stderr: {}",
            out.status,
            out.stderr
        );
        let n = check_shards(t.path(), &synced);
        assert!(n >= 1, "round {round}: not even shard 0 was made");
    }
    let cut_short = std::fs::read_dir(t.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
        .count();
    eprintln!("{} shards synced, {cut_short} creations cut short, {:?}", synced.len(), start.elapsed());
    assert!(!synced.is_empty(), "no child ever synced a new shard (seed {seed})");
}

use super::*;
use crate::sim::{CrashMode, FailingStorage, MemDir, MemFile, ShortIo};
use crate::state::FileHeadStore;
use crate::storage::ErrorKind;
use crate::wire::{Decompressor, NoCompression, RawFrameDecoder, WireError, ZSTD_MAGIC};
use alloc::format;

fn cfg() -> EngineConfig {
    crate::sim::small_engine()
}

type SimShard<S> = Shard<S, FileHeadStore<<S as Storage>::File>, NoCompression>;

fn open_on<S: Storage + Clone>(dir: &S, cfg: EngineConfig) -> Result<(SimShard<S>, RecoveryReport), Error<S::Error>> {
    let state =
        dir.open(crate::state::STATE_FILE, OpenMode::Create).map_err(|e| Error::storage(IoOp::Open, "state", e))?;
    let head = FileHeadStore::new(state).map_err(|e| Error::storage(IoOp::Open, "state", e))?;
    Shard::open(dir.clone(), head, NoCompression, cfg)
}

fn open(dir: &MemDir) -> (SimShard<MemDir>, RecoveryReport) {
    open_on(dir, cfg()).unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 90) as usize;
    (0..len).map(|k| (i as u8).wrapping_add(k as u8)).collect()
}

/// Reads entry `n` and decodes raw frames.
fn get<S: Storage>(s: &SimShard<S>, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    s.read(n, &mut out).unwrap_or_else(|e| panic!("read {n}: {e:?}"));
    if crate::wire::is_frame(&out) {
        let mut dec = vec![0u8; 1 << 17];
        let k = RawFrameDecoder.decompress(&out, &mut dec).unwrap();
        dec.truncate(k);
        return dec;
    }
    out
}

fn append_n<S: Storage>(s: &mut SimShard<S>, from: u64, n: u64) {
    for i in from..from + n {
        let r = s.append(1_000 + i, &[payload(i)]).unwrap();
        assert_eq!(r, i..i + 1);
    }
}

fn check_all<S: Storage>(s: &SimShard<S>, range: Range<u64>) {
    for i in range {
        assert_eq!(get(s, i), payload(i), "entry {i}");
    }
}

#[test]
fn append_is_visible_only_after_sync() {
    let dir = MemDir::new();
    let (mut s, report) = open(&dir);
    assert!(report.created);
    assert_eq!(s.append(5, &[b"a".as_slice(), b"", b"ccc"]).unwrap(), 0..3);
    assert_eq!(s.next_entry(), 3);
    assert_eq!(s.durable_end(), 0);
    assert!(matches!(s.read(0, &mut Vec::new()), Err(Error::EntryUnavailable { entry: 0, first: 0, end: 0 })));
    s.sync().unwrap();
    assert_eq!(s.durable_end(), 3);
    assert_eq!(get(&s, 0), b"a");
    assert_eq!(get(&s, 1), b"");
    assert_eq!(get(&s, 2), b"ccc");
    assert!(s.read(3, &mut Vec::new()).is_err());
}

#[test]
fn timestamps_never_decrease_and_are_never_zero() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    s.append(0, &[b"x"]).unwrap();
    s.append(50, &[b"y"]).unwrap();
    s.append(10, &[b"z"]).unwrap();
    s.sync().unwrap();
    let ts: Vec<u64> = (0..3).map(|i| s.read(i, &mut Vec::new()).unwrap().header.timestamp).collect();
    assert_eq!(ts, [1, 50, 50]);
}

#[test]
fn payloads_starting_with_the_zstd_magic_read_back_unchanged() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    let mut p = ZSTD_MAGIC.to_vec();
    p.extend_from_slice(b" raw user bytes");
    s.append(1, &[&p]).unwrap();
    s.sync().unwrap();
    let mut stored = Vec::new();
    s.read(0, &mut stored).unwrap();
    assert_ne!(stored, p, "stored wrapped in a frame");
    assert_eq!(get(&s, 0), p);
}

#[test]
fn rotation_names_segments_by_base_and_keeps_numbers() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 200);
    s.sync().unwrap();
    let segs: Vec<u64> = dir.names().iter().filter_map(|n| crate::naming::parse_segment_file_name(n)).collect();
    assert!(segs.len() > 5, "{segs:?}");
    assert_eq!(segs[0], 0);
    for w in s.manifest().sealed.windows(2) {
        assert_eq!(w[0].end(), w[1].base, "contiguous");
        assert!(w[0].bytes <= 1024);
    }
    check_all(&s, 0..200);
}

#[test]
fn clean_close_reopens_without_scanning() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 50);
    s.close().unwrap();
    let (mut s, report) = open(&dir);
    assert!(report.clean, "{report:?}");
    // Only the open chunk (which new entries join) is read.
    let open_chunk = s.active_chunks().last().map_or(0, |c| u64::from(c.end));
    assert!(report.scanned_bytes <= open_chunk, "{report:?}");
    assert!(!report.found_damage());
    assert_eq!(s.next_entry(), 50);
    assert_eq!(s.durable_end(), 50);
    check_all(&s, 0..50);
    append_n(&mut s, 50, 5);
    s.sync().unwrap();
    check_all(&s, 0..55);
}

#[test]
fn process_crash_keeps_flushed_entries_and_loses_only_the_buffer() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 10);
    s.sync().unwrap();
    append_n(&mut s, 10, 3);
    s.flush_buffer().unwrap(); // in the page cache, not synced
    append_n(&mut s, 13, 2); // only in the buffer
    let img = dir.crash_image(CrashMode::Process);
    drop(s);
    let (s, report) = open(&img);
    assert!(!report.clean);
    assert_eq!(s.next_entry(), 13);
    assert_eq!(s.durable_end(), 13);
    check_all(&s, 0..13);
}

#[test]
fn power_loss_keeps_synced_entries() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 30);
    s.sync().unwrap();
    append_n(&mut s, 30, 10);
    s.flush_buffer().unwrap();
    for seed in 0..20 {
        let img = dir.crash_image(CrashMode::Torn { seed });
        let (s2, report) = open(&img);
        assert!(s2.next_entry() >= 30, "seed {seed}: {report:?}");
        assert!(report.quarantined.is_empty(), "seed {seed}: {report:?}");
        check_all(&s2, 0..s2.next_entry());
    }
}

#[test]
fn torn_tail_is_truncated_and_numbering_continues() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 3);
    s.close().unwrap();
    let name = segment_file_name(0);
    let mut bytes = dir.file_bytes(&name).unwrap();
    bytes.truncate(bytes.len() - 5);
    dir.set_file_bytes(&name, &bytes);
    // The durable head covers the chopped bytes: their chunk is lost (the
    // segment is sealed with it recorded), numbering resumes after entry 2.
    let (mut s, report) = open(&dir);
    assert_eq!(report.lost_chunks, [(0, 0)], "{report:?}");
    assert_eq!(report.missing, vec![Range { start: 0, end: 3 }]);
    assert_eq!(s.next_entry(), 3);
    assert_eq!(s.append(9, &[b"new"]).unwrap(), 3..4);
    s.sync().unwrap();
    assert_eq!(get(&s, 3), b"new");
    assert!(matches!(s.read(1, &mut Vec::new()), Err(Error::Lost { start: 0, end: 3, .. })));
    assert!(!dir.names().iter().any(|n| n.ends_with(".quarantined")), "nothing renamed");
}

#[test]
fn unsynced_torn_tail_is_cut_at_the_last_whole_entry() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 2);
    s.sync().unwrap();
    append_n(&mut s, 2, 1);
    s.flush_buffer().unwrap();
    let name = segment_file_name(0);
    let full = dir.file_bytes(&name).unwrap();
    let img = dir.crash_image(CrashMode::Process);
    img.set_file_bytes(&name, &full[..full.len() - 5]);
    let (mut s, report) = open(&img);
    assert_eq!(report.torn.len(), 1);
    assert!(report.quarantined.is_empty());
    assert_eq!(s.next_entry(), 2);
    assert_eq!(s.append(1, &[b"n"]).unwrap(), 2..3);
    s.sync().unwrap();
    assert_eq!(get(&s, 2), b"n");
}

#[test]
fn lost_manifest_is_rebuilt_with_exact_numbers() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 120);
    s.sync().unwrap();
    let d = s.delete_oldest(2).unwrap();
    assert_eq!(d.segments, 2);
    let first = s.first_entry();
    assert!(first > 0);
    s.close().unwrap();
    dir.delete(MANIFEST_FILE);
    let (s, report) = open(&dir);
    assert!(report.rebuilt_manifest);
    assert_eq!(s.first_entry(), first);
    assert_eq!(s.next_entry(), 120);
    check_all(&s, first..120);
}

/// Writes `n` entries with interval 4 (some segments sealed, the active
/// one holding entries), closed cleanly or not.
fn shard_with_interval_4(n: u64, clean: bool) -> MemDir {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    assert_eq!(s.interval(), 4);
    append_n(&mut s, 0, n);
    s.sync().unwrap();
    assert!(!s.manifest().sealed.is_empty() && s.active_bytes() > 0);
    if clean {
        s.close().unwrap();
    }
    dir
}

/// Rewrites the head as a head written before it recorded the interval.
fn forget_head_interval(dir: &MemDir) {
    let f = dir.open(crate::state::STATE_FILE, OpenMode::ReadWrite).unwrap();
    let mut hs = FileHeadStore::new(f).unwrap();
    let (mut h, _) = DurableHead::decode(&hs.load().unwrap()).unwrap();
    assert_eq!(h.interval, 4);
    h.interval = 0;
    hs.store(&h).unwrap();
}

#[test]
fn lost_manifest_is_rebuilt_with_the_interval_the_shard_was_written_with() {
    for clean in [true, false] {
        let dir = shard_with_interval_4(61, clean);
        dir.delete(MANIFEST_FILE);
        let mut other = cfg();
        other.interval = 7;
        let (mut s, report) = open_on(&dir, other).unwrap();
        assert!(report.rebuilt_manifest, "clean {clean}");
        assert!(report.quarantined.is_empty() && report.missing.is_empty(), "clean {clean}: {report:?}");
        assert_eq!(s.interval(), 4, "the shard keeps its interval (D-5)");
        assert_eq!(s.next_entry(), 61);
        check_all(&s, 0..61);
        append_n(&mut s, 61, 10);
        s.close().unwrap();
        let (s, report) = open_on(&dir, other).unwrap();
        assert!(report.clean && !report.found_damage(), "clean {clean}: {report:?}");
        check_all(&s, 0..71);
    }
}

#[test]
fn heads_without_a_recorded_interval_find_it_among_the_candidates() {
    // a damaged manifest whose header still names the interval
    let dir = shard_with_interval_4(61, true);
    forget_head_interval(&dir);
    let len = dir.file_bytes(MANIFEST_FILE).unwrap().len() as u64;
    dir.corrupt(MANIFEST_FILE, len - 1, 0xFF);
    let mut other = cfg();
    other.interval = 7;
    let (s, report) = open_on(&dir, other).unwrap();
    assert!(report.rebuilt_manifest && report.quarantined.is_empty(), "{report:?}");
    assert_eq!(s.interval(), 4);
    check_all(&s, 0..61);
    // a lost manifest, the shard written with the configured interval
    let dir = shard_with_interval_4(61, false);
    forget_head_interval(&dir);
    dir.delete(MANIFEST_FILE);
    let (s, report) = open_on(&dir, cfg()).unwrap();
    assert!(report.rebuilt_manifest && report.quarantined.is_empty(), "{report:?}");
    check_all(&s, 0..61);
    // the chunk tables' headers name it too
    let dir = shard_with_interval_4(61, false);
    forget_head_interval(&dir);
    dir.delete(MANIFEST_FILE);
    let (s, report) = open_on(&dir, other).unwrap();
    assert!(report.rebuilt_manifest && report.quarantined.is_empty(), "{report:?}");
    assert_eq!(s.interval(), 4);
    // no candidate reproduces the head: damage, quarantined as before
    let dir = shard_with_interval_4(61, false);
    forget_head_interval(&dir);
    dir.delete(MANIFEST_FILE);
    for n in dir.names().into_iter().filter(|n| n.ends_with(".chunks")) {
        dir.delete(&n);
    }
    let (_, report) = open_on(&dir, other).unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert_eq!(report.quarantined[0].reason, QuarantineReason::Checksum);
}

#[test]
fn corrupt_manifest_is_kept_aside_and_rebuilt() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 60);
    s.close().unwrap();
    dir.corrupt(MANIFEST_FILE, 2, 0xFF);
    let (s, report) = open(&dir);
    assert!(report.rebuilt_manifest);
    assert_eq!(report.manifest_error, Some(WireError::BadMagic));
    assert!(dir.file_bytes("index.bin.corrupt").is_some());
    check_all(&s, 0..60);
}

#[test]
fn flipped_bit_in_synced_active_data_costs_only_its_chunk() {
    let dir = MemDir::new();
    let mut c = cfg();
    c.max_file_size = 1 << 20;
    let (mut s, _) = open_on(&dir, c).unwrap();
    append_n(&mut s, 0, 20);
    s.sync().unwrap();
    drop(s); // crash: head not clean
    dir.corrupt(&segment_file_name(0), 40, 0x04); // inside chunk 0 (entries 0..4)
    let (mut s, report) = open_on(&dir, c).unwrap();
    assert!(report.quarantined.is_empty(), "{report:?}");
    for i in 0..20 {
        let mut v = Vec::new();
        match s.read(i, &mut v) {
            Err(Error::Damaged(d)) => assert_eq!((d.segment, d.chunk, d.first, d.end), (0, 0, 0, 4), "entry {i}"),
            Ok(_) => assert!(i >= 4, "entry {i} of the damaged chunk was served"),
            Err(e) => panic!("entry {i}: {e:?}"),
        }
    }
    check_all(&s, 4..20);
    append_n(&mut s, 20, 1);
    s.sync().unwrap();
    check_all(&s, 4..21);
}

#[test]
fn flipped_bit_in_the_open_chunk_seals_the_segment_with_that_chunk_lost() {
    let dir = MemDir::new();
    let mut c = cfg();
    c.max_file_size = 1 << 20;
    let (mut s, _) = open_on(&dir, c).unwrap();
    append_n(&mut s, 0, 22); // chunk 5 (entries 20, 21) is open
    s.sync().unwrap();
    drop(s);
    let seg = dir.file_bytes(&segment_file_name(0)).unwrap();
    dir.corrupt(&segment_file_name(0), seg.len() as u64 - 2, 0x10);
    let (mut s, report) = open_on(&dir, c).unwrap();
    assert_eq!(report.lost_chunks, [(0, 5)]);
    assert_eq!(report.missing, vec![Range { start: 20, end: 22 }]);
    assert_eq!(s.next_entry(), 22, "numbers are never reused");
    assert!(matches!(s.read(21, &mut Vec::new()), Err(Error::Lost { entry: 21, start: 20, end: 22 })));
    check_all(&s, 0..20);
    append_n(&mut s, 22, 1);
    s.sync().unwrap();
    check_all(&s, 22..23);
    drop(s);
    let (s, report) = open_on(&dir, c).unwrap();
    assert!(!report.found_damage(), "{report:?}");
    check_all(&s, 0..20);
    check_all(&s, 22..23);
}

#[test]
fn go_written_shards_are_refused_with_a_typed_error() {
    let dir = MemDir::new();
    dir.set_file_bytes("log-0000000000000001.comet", b"");
    assert!(matches!(open_on(&dir, cfg()), Err(Error::ForeignFormat)));
    let dir = MemDir::new();
    dir.set_file_bytes(MANIFEST_FILE, b"TMOC\x01\0\0\0");
    assert!(matches!(open_on(&dir, cfg()), Err(Error::ForeignFormat)));
}

#[test]
fn oversized_entries_and_batches_are_rejected_whole() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    let big = vec![0u8; (1 << 16) + 1];
    let r = s.append(1, &[b"ok".as_slice(), &big]);
    assert!(matches!(r, Err(Error::EntryTooLarge { len: 65537, max: 65536 })));
    assert_eq!(s.next_entry(), 0, "nothing numbered");
    s.append(1, &[b"ok"]).unwrap();
    s.sync().unwrap();
    assert_eq!(get(&s, 0), b"ok");
}

#[test]
fn entries_larger_than_the_buffer_are_written_directly() {
    let dir = MemDir::new();
    let mut c = cfg();
    c.max_file_size = 1 << 20;
    let (mut s, _) = open_on(&dir, c).unwrap();
    let big: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 300 + i * 50]).collect();
    s.append(1, &[b"small".to_vec()]).unwrap();
    assert_eq!(s.append(2, &big).unwrap(), 1..6);
    s.append(3, &[b"after".to_vec()]).unwrap();
    s.close().unwrap();
    let (s, report) = open_on(&dir, c).unwrap();
    assert!(report.clean);
    assert_eq!(get(&s, 0), b"small");
    for (i, b) in big.iter().enumerate() {
        assert_eq!(&get(&s, i as u64 + 1), b);
    }
    assert_eq!(get(&s, 6), b"after");
}

#[test]
fn full_disk_fails_the_append_and_loses_nothing() {
    for at in 1..12 {
        let fs = FailingStorage::new(MemDir::new());
        let faults = fs.faults();
        let (mut s, _) = open_on(&fs, cfg()).unwrap();
        append_n(&mut s, 0, 5);
        s.sync().unwrap();
        faults.fail_at(at, ErrorKind::StorageFull);
        let mut next = 5;
        let mut failed = false;
        for _ in 0..40 {
            match s.append(1, &[payload(next)]) {
                Ok(r) => {
                    assert_eq!(r, next..next + 1);
                    next += 1;
                }
                Err(Error::Storage { source, .. }) => {
                    assert_eq!(source.kind, ErrorKind::StorageFull);
                    failed = true;
                    break;
                }
                Err(Error::Poisoned) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(failed || s.is_poisoned() || next == 45, "at {at}");
        faults.heal();
        if s.is_poisoned() {
            drop(s);
            let (s2, _) = open_on(&fs, cfg()).unwrap();
            s = s2;
            next = s.next_entry();
        }
        append_n(&mut s, next, 3);
        s.sync().unwrap();
        check_all(&s, 0..next + 3);
    }
}

#[test]
fn failed_large_batch_is_rolled_back() {
    let fs = FailingStorage::new(MemDir::new());
    let faults = fs.faults();
    let mut c = cfg();
    c.max_file_size = 1 << 20;
    let (mut s, _) = open_on(&fs, c).unwrap();
    append_n(&mut s, 0, 3);
    let batch: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; 100]).collect();
    faults.fail_at(3, ErrorKind::StorageFull);
    assert!(s.append(1, &batch).is_err());
    assert_eq!(s.next_entry(), 3);
    faults.heal();
    assert_eq!(s.append(1, &batch).unwrap(), 3..23);
    s.close().unwrap();
    let (s, report) = open_on(&fs, c).unwrap();
    assert!(report.clean, "{report:?}");
    check_all(&s, 0..3);
    for (i, b) in batch.iter().enumerate() {
        assert_eq!(&get(&s, 3 + i as u64), b);
    }
}

#[test]
fn failed_sync_poisons_until_reopen() {
    let fs = FailingStorage::new(MemDir::new());
    let faults = fs.faults();
    let (mut s, _) = open_on(&fs, cfg()).unwrap();
    append_n(&mut s, 0, 4);
    faults.fail_once_at(3, ErrorKind::Other); // 1: flush write, 2: journal, 3: sync
    assert!(s.sync().is_err());
    assert!(s.is_poisoned());
    assert!(matches!(s.append(1, &[b"x"]), Err(Error::Poisoned)));
    assert_eq!(s.durable_end(), 0, "nothing published");
    drop(s);
    let (s, _) = open_on(&fs, cfg()).unwrap();
    assert_eq!(s.next_entry(), 4, "the page cache still had them");
    check_all(&s, 0..4);
}

#[test]
fn short_io_storage_works_end_to_end() {
    let dir = MemDir::new();
    let short = ShortIo::new(dir.clone(), 3);
    let (mut s, _) = open_on(&short, cfg()).unwrap();
    append_n(&mut s, 0, 40);
    s.close().unwrap();
    let (s, report) = open_on(&short, cfg()).unwrap();
    assert!(report.clean);
    check_all(&s, 0..40);
}

#[test]
fn retention_crash_between_manifest_and_unlink_leaves_only_orphans() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 100);
    s.sync().unwrap();
    let victims: Vec<u64> = s.manifest().sealed[..2].iter().map(|m| m.base).collect();
    let keep = s.manifest().sealed[2].base;
    // advance the manifest, then "crash" before the unlinks
    let mut m = (**s.manifest()).clone();
    m.sealed.drain(..2);
    m.first_entry = keep;
    s.write_manifest(m).unwrap();
    let img = dir.crash_image(CrashMode::Durable);
    drop(s);
    for b in &victims {
        assert!(img.file_bytes(&segment_file_name(*b)).is_some());
    }
    let (s, report) = open(&img);
    assert_eq!(report.orphans_removed, 2);
    assert_eq!(s.first_entry(), keep);
    for b in &victims {
        assert!(img.file_bytes(&segment_file_name(*b)).is_none());
    }
    check_all(&s, keep..100);
}

#[test]
fn missing_sealed_segment_is_a_reported_gap() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 100);
    s.close().unwrap();
    let lost = {
        let (s, _) = open(&dir);
        s.manifest().sealed[1].clone()
    };
    dir.delete(&segment_file_name(lost.base));
    let (s, report) = open(&dir);
    assert_eq!(report.missing, vec![Range { start: lost.base, end: lost.end() }]);
    let (start, end) = (lost.base, lost.end());
    assert!(
        matches!(s.read(lost.base, &mut Vec::new()), Err(Error::Lost { start: a, end: b, .. }) if (a, b) == (start, end))
    );
    check_all(&s, 0..lost.base);
    check_all(&s, lost.end()..100);
}

#[test]
fn garbage_state_block_is_reset_and_data_survives() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 10);
    s.close().unwrap();
    dir.set_file_bytes(crate::state::STATE_FILE, &[0xAB; 1024]);
    let (s, report) = open(&dir);
    assert!(report.state_reset);
    assert!(report.quarantined.is_empty());
    check_all(&s, 0..10);
}

#[test]
fn counters_drain_as_deltas() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    let mut seen = Vec::new();
    s.drain_counters(|c, v| seen.push((c, v)));
    assert!(seen.contains(&(Counter::Opens, 1)));
    s.append(7, &[b"ab".as_slice(), b"c"]).unwrap();
    let mut seen = Vec::new();
    s.drain_counters(|c, v| seen.push((c, v)));
    assert!(seen.contains(&(Counter::EntriesAppended, 2)));
    assert!(seen.contains(&(Counter::RawBytes, 3)));
    assert!(seen.contains(&(Counter::StoredBytes, 3)));
    assert!(seen.contains(&(Counter::LastAppendNs, 7)));
    let mut again = 0;
    s.drain_counters(|_, _| again += 1);
    assert_eq!(again, 0);
    let _ = format!("{s:?}");
}

#[test]
fn a_gauge_set_to_zero_is_drained() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    s.drain_counters(|_, _| {});
    s.bump(Counter::OldestEntryNs, 5);
    s.bump(Counter::OldestEntryNs, 0);
    let mut seen = Vec::new();
    s.drain_counters(|c, v| seen.push((c, v)));
    assert_eq!(seen, [(Counter::OldestEntryNs, 0)], "no entry retained any more is news");
    s.drain_counters(|c, v| panic!("drained twice: {c:?} {v}"));
}

/// A shard type that uses `MemFile` explicitly (keeps the alias honest).
#[allow(dead_code)]
type Explicit = Shard<MemDir, FileHeadStore<MemFile>, NoCompression>;

#[test]
fn close_with_hands_over_what_the_close_counted() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 5);
    s.drain_counters(|_, _| {});
    let mut got = Vec::new();
    s.close_with(|c, v| got.push((c, v))).unwrap();
    for c in [Counter::Syncs, Counter::Flushes] {
        assert_eq!(got.iter().find(|(k, _)| *k == c).map(|(_, v)| *v), Some(1), "{c:?} in {got:?}");
    }
    // A clean close writes O(1) metadata: no manifest.
    assert!(!got.iter().any(|(k, _)| *k == Counter::ManifestWrites), "{got:?}");
}

#[test]
fn read_into_matches_read_and_reports_a_small_buffer() {
    let dir = MemDir::new();
    let (mut s, _) = open(&dir);
    append_n(&mut s, 0, 40);
    s.sync().unwrap();
    assert!(s.manifest().sealed.len() > 1, "spans rotations");
    let mut buf = [0u8; 256];
    // A chunk buffer smaller than most chunks (but as large as any
    // payload, as platforms size it): those stream.
    for chunk in [128usize, 4096] {
        let mut rb = ReadBuf::fixed(chunk, 64);
        for i in 0..40 {
            let mut v = Vec::new();
            let a = s.read(i, &mut v).unwrap();
            let b = s.read_with(i, &mut rb, &mut buf).unwrap();
            assert_eq!(a, b);
            assert_eq!(&buf[..b.header.len as usize], &v[..], "entry {i}");
            let loc = s.locate(i, &mut rb).unwrap();
            assert!(loc.entry_range().contains(&i));
        }
        let big = (0..40).find(|&i| !payload(i).is_empty()).unwrap();
        assert!(matches!(s.read_with(big, &mut rb, &mut [0u8; 0]), Err(Error::Capacity { .. })));
        // sequential reads of streamed chunks read on from the file
        for i in 0..40 {
            let b = s.read_with(i, &mut rb, &mut buf).unwrap();
            assert_eq!(&buf[..b.header.len as usize], &get(&s, i)[..], "entry {i}");
        }
        assert!(matches!(s.read_with(40, &mut rb, &mut buf), Err(Error::EntryUnavailable { .. })));
    }
}

#[test]
fn bounded_checkpoint_capacity_is_preallocated_and_reused_across_rotations() {
    let dir = MemDir::new();
    let mut c = cfg();
    c.max_chunks = 3;
    c.max_file_size = 1 << 20;
    let (mut s, _) = open_on(&dir, c).unwrap();
    assert!(s.chunks.capacity() >= 3);
    let cap = s.chunks.capacity();
    append_n(&mut s, 0, 40);
    s.sync().unwrap();
    assert!(s.manifest().sealed.len() >= 3, "rotated on chunk capacity");
    assert_eq!(s.chunks.capacity(), cap, "never regrown");
    check_all(&s, 0..40);
    // a batch that alone needs more chunks than the capacity is refused whole
    let before = s.next_entry();
    let batch: Vec<Vec<u8>> = (0..12).map(payload).collect();
    assert!(matches!(s.append(5_000, &batch), Err(Error::Capacity { .. })));
    assert_eq!(s.next_entry(), before);
}

/// The raw-batch fast path against the general one.
mod plain_path {
    use super::*;
    use alloc::string::String;
    use proptest::prelude::*;

    /// Every file of `dir` (name, bytes), sorted by name.
    fn files(dir: &MemDir) -> Vec<(String, Vec<u8>)> {
        let mut names = dir.names();
        names.sort();
        names.into_iter().map(|n| (n.clone(), dir.file_bytes(&n).unwrap_or_default())).collect()
    }

    /// One step of [`plain_batches_are_stored_exactly_as_by_the_general_path`].
    #[derive(Debug, Clone)]
    enum PlainOp {
        Append { ts: u64, lens: Vec<u8>, magic: bool },
        Sync,
    }

    proptest! {
        /// The raw-batch fast path (`push_plain`) against the per-entry path
        /// (`push_buffered`): the same batches, appended to one shard where
        /// they are "plain" (every payload below `min_compress`) and to one
        /// with `min_compress = 0`, where every entry goes through
        /// `encode_payload` (which, with `NoCompression`, stores it raw too),
        /// leave byte-identical segments, manifests and heads, after every
        /// sync and after close. Small buffers, segments and chunk intervals
        /// put chunk starts, flushes, direct writes and rotations in the mix.
        #[test]
        fn plain_batches_are_stored_exactly_as_by_the_general_path(
            interval in 1u32..6,
            buffer_size in 64usize..400,
            ops in proptest::collection::vec(
                prop_oneof![
                    6 => (0u64..3_000, proptest::collection::vec(0u8..64, 0..14), proptest::bool::weighted(0.1))
                        .prop_map(|(ts, lens, magic)| PlainOp::Append { ts, lens, magic }),
                    1 => Just(PlainOp::Sync),
                ],
                1..40,
            ),
        ) {
            let fast_cfg = EngineConfig { interval, buffer_size, min_compress: 64, max_file_size: 2048, ..cfg() };
            let general_cfg = EngineConfig { min_compress: 0, ..fast_cfg };
            let (fast_dir, general_dir) = (MemDir::new(), MemDir::new());
            let (mut fast, _) = open_on(&fast_dir, fast_cfg).unwrap();
            let (mut general, _) = open_on(&general_dir, general_cfg).unwrap();
            let mut k = 0u8;
            for op in ops {
                match op {
                    PlainOp::Append { ts, lens, magic } => {
                        let batch: Vec<Vec<u8>> = lens
                            .iter()
                            .enumerate()
                            .map(|(i, &len)| {
                                k = k.wrapping_add(1);
                                let mut p: Vec<u8> = (0..len).map(|j| k.wrapping_mul(31).wrapping_add(j)).collect();
                                if magic && i == 0 {
                                    // A payload that needs the general path in both shards.
                                    p.splice(0..0, ZSTD_MAGIC);
                                }
                                p
                            })
                            .collect();
                        let a = fast.append(ts, &batch).map_err(|e| format!("{e:?}"));
                        let b = general.append(ts, &batch).map_err(|e| format!("{e:?}"));
                        prop_assert_eq!(a, b);
                        prop_assert_eq!(fast.active_bytes(), general.active_bytes());
                    }
                    PlainOp::Sync => {
                        fast.sync().unwrap();
                        general.sync().unwrap();
                        prop_assert_eq!(files(&fast_dir), files(&general_dir));
                        prop_assert_eq!(fast.active_chunks(), general.active_chunks());
                        prop_assert_eq!(fast.durable_head(), general.durable_head());
                    }
                }
            }
            let (mut ca, mut cb) = (Vec::new(), Vec::new());
            fast.drain_counters(|c, v| ca.push((c, v)));
            general.drain_counters(|c, v| cb.push((c, v)));
            prop_assert_eq!(ca, cb);
            fast.close().unwrap();
            general.close().unwrap();
            prop_assert_eq!(files(&fast_dir), files(&general_dir));
        }
    }
}

fn manifest_bytes(dir: &MemDir) -> Vec<u8> {
    let f = dir.open(MANIFEST_FILE, OpenMode::Read).unwrap();
    let mut b = vec![0u8; f.len().unwrap() as usize];
    crate::storage::read_exact_at(&f, 0, &mut b).unwrap();
    b
}

#[test]
fn a_bounded_manifest_is_reserved_at_open_refuses_rotations_past_it_and_retention_makes_room() {
    let dir = MemDir::new();
    let mut c = cfg();
    c.max_sealed = 3;
    let (mut s, _) = open_on(&dir, c).unwrap();
    assert!(s.manifest().sealed.capacity() >= 3, "reserved at open");
    let cap = s.manifest().sealed.capacity();
    let mut i = 0;
    let err = loop {
        match s.append(1_000 + i, &[payload(i)]) {
            Ok(r) => assert_eq!(r, i..i + 1),
            Err(e) => break e,
        }
        i += 1;
        assert!(i < 10_000, "never refused");
    };
    assert!(matches!(err, Error::Capacity { what: "sealed segments", needed: 4, available: 3 }), "{err:?}");
    assert_eq!(s.manifest().sealed.len(), 3);
    assert_eq!(s.manifest().sealed.capacity(), cap, "never regrown");
    assert_eq!(s.next_entry(), i, "the refused append numbered nothing");
    s.sync().unwrap();
    check_all(&s, 0..i);
    // The manifest on disk is what the streaming writer produced: exactly
    // the in-memory manifest's encoding.
    let on_disk = manifest_bytes(&dir);
    let mut encoded = Vec::new();
    s.manifest().encode(&mut encoded);
    assert_eq!(on_disk, encoded);
    // Retention makes room; the refused entry goes in after all.
    let gone = s.delete_oldest(1).unwrap();
    assert_eq!(gone.segments, 1);
    let first = s.first_entry();
    assert_eq!(s.append(1_000 + i, &[payload(i)]).unwrap(), i..i + 1);
    s.sync().unwrap();
    check_all(&s, first..i + 1);
    assert_eq!(s.manifest().sealed.capacity(), cap, "never regrown");
    let mut encoded = Vec::new();
    s.manifest().encode(&mut encoded);
    assert_eq!(manifest_bytes(&dir), encoded, "after a deletion too");
    s.close().unwrap();
    // A shard with more sealed segments than a smaller bound is refused at open.
    c.max_sealed = 1;
    assert!(matches!(open_on(&dir, c), Err(Error::Capacity { .. })));
    c.max_sealed = 3;
    let (s, _) = open_on(&dir, c).unwrap();
    check_all(&s, first..i + 1);
}

#[test]
fn windowed_reads_of_large_chunks_serve_any_order_exactly() {
    let dir = MemDir::new();
    let mut c = cfg();
    c.interval = 16;
    c.max_file_size = 1 << 20;
    let (mut s, _) = open_on(&dir, c).unwrap();
    append_n(&mut s, 0, 100);
    s.sync().unwrap();
    s.rotate().unwrap();
    append_n(&mut s, 100, 37);
    s.sync().unwrap();
    let mut buf = [0u8; 256];
    let mut order: Vec<u64> = (0..137).collect();
    order.extend((0..137).rev());
    let mut x = 7u64;
    order.extend((0..300).map(|_| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 33) % 137
    }));
    // Windows from one maximal entry (90-byte payloads) up: chunks of 16
    // entries (up to 1.6 KB) slide through them.
    for window in [102usize, 103, 150, 500, 1000] {
        let mut rb = ReadBuf::fixed(window, 64);
        for &i in &order {
            let b = s.read_with(i, &mut rb, &mut buf).unwrap_or_else(|e| panic!("window {window} entry {i}: {e:?}"));
            assert_eq!(&buf[..b.header.len as usize], &payload(i)[..], "window {window} entry {i}");
        }
    }
}

#[test]
fn seeks_step_over_lost_ranges_and_stay_in_the_retained_range() {
    let dir = MemDir::new();
    let mut c = cfg();
    c.max_file_size = 1 << 20;
    let (mut s, _) = open_on(&dir, c).unwrap();
    append_n(&mut s, 0, 22); // chunk 5 (entries 20, 21) is open
    s.sync().unwrap();
    drop(s);
    let seg = dir.file_bytes(&segment_file_name(0)).unwrap();
    dir.corrupt(&segment_file_name(0), seg.len() as u64 - 2, 0x10);
    let (mut s, report) = open_on(&dir, c).unwrap();
    assert_eq!(report.missing, vec![Range { start: 20, end: 22 }]);
    append_n(&mut s, 22, 3);
    s.sync().unwrap();
    assert_eq!((s.first_entry(), s.durable_end()), (0, 25));
    assert_eq!(s.readable_from(7), 7);
    assert_eq!(s.readable_from(20), 22, "past the lost range");
    assert_eq!(s.readable_from(21), 22);
    assert_eq!(s.readable_from(99), 25, "clamped to the end");
    let mut rb = ReadBuf::growing();
    // Entry i was appended at 1_000 + i.
    assert_eq!(s.seek_time(0, &mut rb).unwrap(), 0);
    assert_eq!(s.seek_time(1_005, &mut rb).unwrap(), 5);
    assert_eq!(s.seek_time(1_020, &mut rb).unwrap(), 22, "a time inside the lost range");
    assert_eq!(s.seek_time(1_023, &mut rb).unwrap(), 23);
    assert_eq!(s.seek_time(u64::MAX, &mut rb).unwrap(), 25);
}

//! Black-box behaviour of the embedded log on a real directory.
#![allow(clippy::field_reassign_with_default, clippy::cast_possible_truncation)]

mod common;

use comet_embedded::{Consumer, Counter, EmbeddedConfig, Error, Log, SeekTo, ShardId};
use common::{S0, json, payload, small};

fn read(log: &mut Log, shard: ShardId, n: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let e = log.read_into(shard, n, &mut buf).unwrap_or_else(|e| panic!("read {n}: {e}"));
    assert_eq!(e.entry, n);
    buf.truncate(e.len);
    buf
}

#[test]
fn entries_are_visible_only_after_sync_and_read_back_exactly() {
    let t = tempfile::tempdir().unwrap();
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    assert!(log.recovery(S0).unwrap().created, "a new shard says so");
    let r = log.append(S0, 10, &[b"a".as_slice(), b"", b"ccc"]).unwrap();
    assert_eq!(r, 0..3);
    assert_eq!(log.durable_end(S0).unwrap(), 0);
    let mut buf = [0u8; 16];
    assert!(matches!(log.read_into(S0, 0, &mut buf), Err(Error::Unavailable { entry: 0, end: 0, .. })));
    log.sync(S0, 11).unwrap();
    assert_eq!(read(&mut log, S0, 0), b"a");
    assert_eq!(read(&mut log, S0, 1), b"");
    assert_eq!(read(&mut log, S0, 2), b"ccc");
    assert!(log.read_into(S0, 3, &mut buf).is_err());
    assert!(t.path().join("shard-0000/writer.lock").exists());
    assert!(t.path().join("shard-0000/comet.state").exists());
    assert!(t.path().join("shard-0000/offsets.state").exists());
    assert!(t.path().join("shard-0000/index.bin").exists());
    assert!(t.path().join("shard-0000/log-00000000000000000000.comet").exists());
}

#[test]
fn rotation_reopen_and_numbering_survive_a_clean_close() {
    let t = tempfile::tempdir().unwrap();
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    for i in 0..300 {
        assert_eq!(log.append(S0, 100 + i, &[payload(i)]).unwrap(), i..i + 1);
    }
    log.sync(S0, 500).unwrap();
    for i in 0..300 {
        assert_eq!(read(&mut log, S0, i), payload(i), "entry {i}");
    }
    assert!(log.counter(S0, Counter::Rotations).unwrap() > 3);
    log.close().unwrap();

    let mut log = Log::open(t.path(), small(), 2).unwrap();
    let rep = log.recovery(S0).unwrap();
    assert!(rep.clean && !rep.created, "{rep:?}");
    // A clean open reads at most the open chunk (new entries join it).
    let one_chunk = u64::from(small().boundary_interval) * 64;
    assert!(rep.scanned_bytes <= one_chunk, "{rep:?}");
    assert_eq!(log.next_entry(S0).unwrap(), 300);
    for i in (0..300).rev() {
        assert_eq!(read(&mut log, S0, i), payload(i));
    }
    assert_eq!(log.append(S0, 1, &[b"next"]).unwrap(), 300..301);
    assert!(log.counter(S0, Counter::EntriesAppended).unwrap() >= 300);
}

#[test]
fn a_dropped_log_keeps_what_it_buffered() {
    let t = tempfile::tempdir().unwrap();
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    log.append(S0, 1, &[b"kept"]).unwrap();
    drop(log);
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    assert_eq!(read(&mut log, S0, 0), b"kept");
}

#[test]
fn a_second_writer_fails_fast_naming_the_holder() {
    let t = tempfile::tempdir().unwrap();
    let log = Log::open(t.path(), small(), 1).unwrap();
    match Log::open(t.path(), small(), 1) {
        Err(Error::Locked { shard, pid }) => {
            assert_eq!(shard, S0);
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    let msg = Log::open(t.path(), small(), 1).unwrap_err().to_string();
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    log.close().unwrap();
    Log::open(t.path(), small(), 1).unwrap();
}

#[test]
fn invalid_config_and_inputs_are_typed_errors() {
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.max_shards = 0;
    assert!(matches!(
        Log::open(t.path(), c, 1),
        Err(Error::Config(e)) if e.field == "max_shards"
    ));
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let big = vec![0u8; 1025];
    assert!(matches!(log.append(S0, 1, &[&big]), Err(Error::EntryTooLarge { len: 1025, .. })));
    let s9 = ShardId::new(9).unwrap();
    assert!(matches!(log.append(s9, 1, &[b"x"]), Err(Error::ShardNotOpen(_))));
    for id in 1..4 {
        log.open_shard(ShardId::new(id).unwrap(), 1).unwrap();
    }
    assert!(matches!(log.open_shard(s9, 1), Err(Error::TooManyShards { max: 4 })));
    assert!(matches!(Consumer::new(""), Err(Error::InvalidGroup(_))));
    assert!(matches!(Consumer::new(&"g".repeat(48)), Err(Error::InvalidGroup(_))));
    assert!(Consumer::new(&"g".repeat(47)).is_ok());
    assert!(matches!(log.ack(S0, "a\0b", 1), Err(Error::Offsets { .. })));
    // a caller buffer too small for the payload
    log.append(S0, 1, &[b"0123456789"]).unwrap();
    log.sync(S0, 1).unwrap();
    assert!(matches!(log.read_into(S0, 0, &mut [0u8; 4]), Err(Error::BufferTooSmall { needed: 10, available: 4 })));
}

#[test]
fn tick_flushes_on_the_interval_and_reports_the_next_deadline() {
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.flush_interval = std::time::Duration::from_millis(10);
    let ms = 1_000_000u64;
    let mut log = Log::open(t.path(), c, 1000 * ms).unwrap();
    log.append(S0, 1000 * ms, &[b"x"]).unwrap();
    let r = log.tick(1005 * ms).unwrap();
    assert_eq!(r.synced, 0);
    assert_eq!(log.durable_end(S0).unwrap(), 0);
    assert_eq!(r.next_due, 1010 * ms);
    let r = log.tick(1010 * ms).unwrap();
    assert_eq!(r.synced, 1);
    assert_eq!(log.durable_end(S0).unwrap(), 1);
    assert_eq!(log.tick(1030 * ms).unwrap().synced, 0, "nothing new");
}

#[test]
fn durable_appends_are_visible_when_append_returns() {
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.durable_appends = true;
    let mut log = Log::open(t.path(), c, 1).unwrap();
    log.append(S0, 1, &[b"now"]).unwrap();
    assert_eq!(log.durable_end(S0).unwrap(), 1);
}

#[test]
fn compressed_entries_roundtrip_and_magic_payloads_stay_unambiguous() {
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.min_compress_size = Some(64);
    let mut log = Log::open(t.path(), c, 1).unwrap();
    let lines: Vec<u8> = (0..20).flat_map(json).collect();
    let lines = &lines[..1000];
    let mut magic = vec![0x28, 0xB5, 0x2F, 0xFD];
    magic.extend_from_slice(b"raw bytes that look like zstd");
    let full_magic = {
        let mut m = vec![0x28, 0xB5, 0x2F, 0xFD];
        m.resize(1024, 0xEE);
        m
    };
    log.append(S0, 1, &[lines, &magic, b"short", &full_magic]).unwrap();
    log.sync(S0, 1).unwrap();
    let mut buf = vec![0u8; 1024];
    let e = log.read_into(S0, 0, &mut buf).unwrap();
    assert!(e.compressed);
    assert_eq!(&buf[..e.len], lines);
    assert_eq!(read(&mut log, S0, 1), magic);
    assert_eq!(read(&mut log, S0, 2), b"short");
    // stored as a raw frame 12 bytes longer than the caller's exact buffer
    let e = log.read_into(S0, 3, &mut buf).unwrap();
    assert_eq!(&buf[..e.len], &full_magic[..]);
    assert!(log.counter(S0, Counter::CompressedEntries).unwrap() >= 1);
    let stored = log.counter(S0, Counter::StoredBytes).unwrap();
    let raw = log.counter(S0, Counter::RawBytes).unwrap();
    assert!(stored < raw, "{stored} < {raw}");
}

#[test]
fn consumer_groups_resume_ack_forward_only_and_report_lag() {
    let t = tempfile::tempdir().unwrap();
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    for i in 0..50 {
        log.append(S0, i + 1, &[payload(i)]).unwrap();
    }
    log.sync(S0, 60).unwrap();
    let mut c = Consumer::new("billing").unwrap();
    assert_eq!(c.lag(&log, S0).unwrap(), 50);
    assert_eq!(log.group_offset(S0, "billing").unwrap(), None, "lookups never claim");
    let mut buf = vec![0u8; 512];
    for i in 0..20 {
        let e = c.next(&mut log, S0, &mut buf).unwrap().unwrap();
        assert_eq!(e.entry, i);
        assert_eq!(&buf[..e.len], &payload(i)[..]);
    }
    assert_eq!(c.ack(&log, S0).unwrap(), 20);
    assert_eq!(c.lag(&log, S0).unwrap(), 30);
    assert_eq!(log.ack(S0, "billing", 5).unwrap(), 20, "never backwards");
    // read but not acked: redelivered to a new consumer (at-least-once)
    for _ in 0..5 {
        c.next(&mut log, S0, &mut buf).unwrap().unwrap();
    }
    let mut again = Consumer::new("billing").unwrap();
    assert_eq!(again.next(&mut log, S0, &mut buf).unwrap().unwrap().entry, 20);
    // an independent group
    let mut audit = Consumer::new("audit").unwrap();
    assert_eq!(audit.next(&mut log, S0, &mut buf).unwrap().unwrap().entry, 0);
    // seek backwards (replay)
    assert_eq!(c.seek(&log, S0, 3).unwrap(), 3);
    assert_eq!(c.next(&mut log, S0, &mut buf).unwrap().unwrap().entry, 3);
    // caught up; a seek past the durable end stops at it (D-59)
    assert_eq!(c.seek(&log, S0, 500).unwrap(), 50);
    assert!(c.next(&mut log, S0, &mut buf).unwrap().is_none());
    log.close().unwrap();
    // offsets survive a restart
    let log = Log::open(t.path(), small(), 1).unwrap();
    assert_eq!(log.group_offset(S0, "billing").unwrap(), Some(50));
    assert_eq!(log.lag(S0, "audit").unwrap(), 50);
}

#[test]
fn groups_seek_like_the_std_crate_and_acks_stop_at_the_durable_end() {
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.retention.max_shard_size = Some(16 << 10);
    let mut log = Log::open(t.path(), c, 1).unwrap();
    for i in 0..400 {
        log.append(S0, 1_000 + i, &[payload(i)]).unwrap();
    }
    log.sync(S0, 2_000).unwrap();
    assert!(log.run_retention(3_000).unwrap().segments > 0, "no group protects anything");
    let first = log.first_entry(S0).unwrap();
    assert!(first > 0);
    assert_eq!(log.seek(S0, "g", SeekTo::Start).unwrap(), first);
    assert_eq!(log.group_offset(S0, "g").unwrap(), Some(first));
    assert_eq!(log.seek(S0, "g", SeekTo::End).unwrap(), 400);
    assert_eq!(log.lag(S0, "g").unwrap(), 0);
    assert_eq!(log.seek(S0, "g", SeekTo::FromEnd(10)).unwrap(), 390);
    assert_eq!(log.lag(S0, "g").unwrap(), 10);
    assert_eq!(log.seek(S0, "g", SeekTo::Entry(0)).unwrap(), first, "clamped to the retained range");
    assert_eq!(log.seek(S0, "g", SeekTo::Entry(9_999)).unwrap(), 400, "clamped to the end");
    // Entry i was appended at 1_000 + i.
    assert_eq!(log.seek(S0, "g", SeekTo::Time(1_350)).unwrap(), 350);
    assert_eq!(log.seek(S0, "g", SeekTo::Time(0)).unwrap(), first);
    assert_eq!(log.seek(S0, "g", SeekTo::Time(u64::MAX)).unwrap(), 400);
    // The consumer's cursor follows a seek.
    let mut g = Consumer::new("g").unwrap();
    let mut buf = vec![0u8; 512];
    assert_eq!(g.seek_to(&mut log, S0, SeekTo::Time(1_377)).unwrap(), 377);
    assert_eq!(g.next(&mut log, S0, &mut buf).unwrap().unwrap().entry, 377);
    assert_eq!(g.seek_to(&mut log, S0, SeekTo::FromEnd(2)).unwrap(), 398);
    assert_eq!(g.next(&mut log, S0, &mut buf).unwrap().unwrap().entry, 398);
    // An ack cannot pass the durable end (entries not yet synced).
    log.append(S0, 5_000, &[b"unsynced".as_slice()]).unwrap();
    assert_eq!(log.ack(S0, "g", 1_000).unwrap(), 400);
    assert_eq!(log.group_offset(S0, "g").unwrap(), Some(400));
    log.sync(S0, 5_001).unwrap();
    assert_eq!(log.lag(S0, "g").unwrap(), 1);
    assert!(matches!(log.seek(ShardId::new(9).unwrap(), "g", SeekTo::Start), Err(Error::ShardNotOpen(_))));
    assert!(matches!(log.seek(S0, "a\0b", SeekTo::Start), Err(Error::Offsets { .. })));
}

#[test]
fn retention_deletes_old_segments_but_not_unread_ones() {
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.retention.max_shard_size = Some(16 << 10);
    let mut log = Log::open(t.path(), c, 1).unwrap();
    for i in 0..400 {
        log.append(S0, i + 1, &[payload(i)]).unwrap();
    }
    log.sync(S0, 1000).unwrap();
    log.ack(S0, "slow", 10).unwrap();
    let r = log.run_retention(2000).unwrap();
    assert_eq!(r.segments, 0, "the slow group protects everything");
    assert!(r.protected > 0);
    log.ack(S0, "slow", 400).unwrap();
    let r = log.run_retention(3000).unwrap();
    assert!(r.segments > 0);
    let first = log.first_entry(S0).unwrap();
    assert!(first > 0);
    let mut buf = [0u8; 512];
    assert!(log.read_into(S0, first - 1, &mut buf).is_err());
    for i in first..400 {
        assert_eq!(read(&mut log, S0, i), payload(i));
    }
    assert_eq!(log.counter(S0, Counter::SegmentsDeleted).unwrap(), r.segments);
    log.close().unwrap();
    let mut log = Log::open(t.path(), c, 1).unwrap();
    assert_eq!(log.first_entry(S0).unwrap(), first);
    assert_eq!(log.next_entry(S0).unwrap(), 400, "numbering unchanged");
    assert_eq!(read(&mut log, S0, 399), payload(399));
}

#[test]
fn a_hard_total_cap_wins_and_moves_lagging_groups() {
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.shard_count = 2;
    c.retention.max_total_size = Some(20 << 10);
    c.retention.hard_cap = true;
    let s1 = ShardId::new(1).unwrap();
    let mut log = Log::open(t.path(), c, 1).unwrap();
    for i in 0..400 {
        log.append(S0, i + 1, &[payload(i)]).unwrap();
        log.append(s1, i + 1, &[payload(i)]).unwrap();
    }
    log.sync_all(1000).unwrap();
    log.ack(S0, "never-reads", 0).unwrap();
    let r = log.run_retention(2000).unwrap();
    assert!(r.forced > 0, "{r:?}");
    let first = log.first_entry(S0).unwrap();
    assert_eq!(log.group_offset(S0, "never-reads").unwrap(), Some(first));
    // the loss is in the report: one group, every entry below `first`
    assert_eq!((r.lifted.groups, r.lifted.entries), (1, first), "{r:?}");
    assert!(log.counter(S0, Counter::ForcedDeletions).unwrap() > 0);
}

#[test]
fn pick_shard_spreads_over_the_open_shards() {
    let t = tempfile::tempdir().unwrap();
    let mut c = EmbeddedConfig::default();
    c.shard_count = 4;
    let log = Log::open(t.path(), c, 1).unwrap();
    let mut seen = [false; 4];
    for k in 0..100u32 {
        let id = log.pick_shard(&k.to_le_bytes());
        seen[id.get() as usize] = true;
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(log.shards().count(), 4);
}

#[test]
fn the_helper_thread_ticks() {
    use std::sync::{Arc, Mutex};
    let t = tempfile::tempdir().unwrap();
    let mut c = small();
    c.flush_interval = std::time::Duration::from_millis(1);
    let log = Arc::new(Mutex::new(Log::open(t.path(), c, comet_embedded::now_ns()).unwrap()));
    log.lock().unwrap().append(S0, comet_embedded::now_ns(), &[b"x"]).unwrap();
    let h =
        comet_embedded::spawn_helper(Arc::clone(&log), std::time::Duration::from_millis(2), |e| panic!("{e}")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.lock().unwrap().durable_end(S0).unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "helper never synced");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    h.stop();
}

/// The Display text of `e` and of each of its sources.
fn chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out
}

#[test]
fn error_chains_print_each_message_once() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut errors = vec![Log::open(&file, small(), 1).unwrap_err()];
    let mut log = Log::open(t.path().join("log"), small(), 1).unwrap();
    errors.push(log.read_into(S0, 99, &mut [0u8; 16]).unwrap_err());
    errors.push(Consumer::new("bad name").unwrap_err());
    let mut bad = small();
    bad.max_shards = 0;
    errors.push(Log::open(t.path().join("other"), bad, 1).unwrap_err());
    for e in &errors {
        let levels = chain(e);
        for (i, a) in levels.iter().enumerate() {
            assert!(!a.is_empty(), "{levels:?}");
            for b in &levels[i + 1..] {
                assert!(!a.contains(b.as_str()) && !b.contains(a.as_str()), "repeated text in {levels:?}");
            }
        }
    }
    // An I/O error names the operation and the path; the OS error is its
    // source. Checked values are part of the message (no source).
    let io = chain(&errors[0]);
    assert_eq!(io.len(), 2, "{io:?}");
    assert_eq!(io[0], format!("open {}", file.display()));
    assert_eq!(io[1], "not a directory", "the same rule as comet's `Client::open`");
    assert_eq!(chain(&errors[1]), ["shard 0000: entry 99 is not readable (retained and durable: 0..0)"]);
    assert!(chain(&errors[2])[0].starts_with("invalid consumer group name: "), "{:?}", chain(&errors[2]));
}

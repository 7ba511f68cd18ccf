//! A real full file system: each test mounts a small tmpfs, fills it, and
//! drives `comet` (std) and `comet-embedded` through every operation that
//! allocates: append and sync, a new group's first ack, seek, a new shard,
//! and the read-only ones (stat, groups, reads). Each either works or
//! returns a typed error; nothing raises a signal (a SIGBUS would kill this
//! test binary); nothing reported durable is lost; once space is freed,
//! writing continues and `verify` finds nothing.
//!
//! Mounting needs root, so the tests are ignored by default and `.ci/run`
//! (which runs as root) runs them with `--ignored`.

#![allow(clippy::cast_possible_truncation, clippy::field_reassign_with_default)]

use std::path::Path;

use comet::{Client, Consumer, MessageId, SeekTo, ShardId};
use comet_tests::{Tmpfs, payload, sid, small_config};

const MIB: u64 = 1024 * 1024;

/// True if `e` or an error in its source chain is `ENOSPC`.
fn is_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull) {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Every durable entry of `shard` reads back as appended.
fn assert_readable(c: &Client, shard: ShardId, end: u64) {
    let mut r = c.reader(shard).unwrap();
    for i in 0..end {
        let m = r.read(i).unwrap_or_else(|e| panic!("entry {i} of {end}: {e}"));
        assert_eq!(m.data(), payload(i), "entry {i}");
    }
}

fn assert_verified(dir: &Path) {
    let report = comet::verify(dir).unwrap();
    assert!(report.is_ok(), "verify: {:?}", report.findings);
}

/// Free space left when the disk is "full", in bytes: the disk then fills
/// at a different step each time (a data write, a chunk-table append, a
/// rotation's new segment or manifest).
const SLACKS: [u64; 6] = [0, 4096, 8192, 12288, 20480, 36864];

#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it as root with --ignored"]
fn std_every_operation_on_a_full_disk_works_or_is_a_typed_error_and_nothing_durable_is_lost() {
    for slack in SLACKS {
        std_full_disk_round(slack);
    }
}

fn std_full_disk_round(slack: u64) {
    let fs = Tmpfs::mount(4 * MIB);
    let dir = fs.path().join("data");
    let mut c = Client::open(&dir, small_config()).unwrap();
    for i in 0..50 {
        c.append_shard(sid(1), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
    let mut g = Consumer::new(&c, "before").unwrap();
    g.ack(&[MessageId { shard: sid(1), entry: 9 }]).unwrap();
    let filler = fs.fill("filler", slack);

    // Append and sync until the disk refuses; everything synced stays.
    let mut durable = c.durable_len(sid(1)).unwrap();
    let mut next = 50;
    let err = loop {
        assert!(next < 1_000_000, "the disk never filled up");
        let r = c.append_shard(sid(1), &[payload(next)]).and_then(|_| c.sync_shard(sid(1)));
        match r {
            Ok(()) => {
                next += 1;
                durable = c.durable_len(sid(1)).unwrap();
                assert_eq!(durable, next);
            }
            Err(e) => break e,
        }
    };
    assert!(is_full(&err), "append on a full disk: {err} ({err:?})");
    eprintln!("slack {slack}: {next} entries, stopped by: {err}");
    assert!(c.durable_len(sid(1)).unwrap() >= durable);
    assert_readable(&c, sid(1), durable);

    // A new group's first ack, a seek, and the read-only operations.
    let mut fresh = Consumer::new(&c, "fresh").unwrap();
    let _ = fresh.ack(&[MessageId { shard: sid(1), entry: 4 }]).map_err(|e| assert!(is_full(&e), "{e}"));
    let _ = fresh.seek(sid(1), SeekTo::Entry(7)).map_err(|e| assert!(is_full(&e), "{e}"));
    assert_eq!(g.offset(sid(1)).unwrap(), 10, "an existing group keeps its offset");
    let groups = g.groups(sid(1)).unwrap();
    assert!(groups.iter().any(|s| s.group == "before"), "{groups:?}");
    let stats = c.shard_stats(sid(1)).unwrap();
    assert!(stats.durable_end >= durable, "{stats:?}");
    c.stats().unwrap();

    // A new shard: created whole or not at all.
    match c.append_shard(sid(2), &[b"new"]) {
        Ok(_) => {}
        Err(e) => assert!(is_full(&e), "new shard: {e}"),
    }
    let ro = Client::open_read_only(&dir, small_config()).unwrap();
    assert_readable(&ro, sid(1), durable);
    ro.stats().unwrap();
    drop(ro);

    // Space freed: writing continues after a reopen (a failed sync poisons
    // the shard; the entry the failed append numbered may or may not be
    // recovered, and holds `payload(next)` if it is).
    fs.remove_filler(&filler);
    c.close().unwrap_or_else(|e| eprintln!("close after a full disk: {e}"));
    c = Client::open(&dir, small_config()).unwrap();
    let next = c.shard_len(sid(1)).unwrap();
    assert!(next >= durable);
    for i in next..next + 20 {
        let ids = c.append_shard(sid(1), &[payload(i)]).unwrap();
        assert_eq!(ids.entries.start, i, "numbering continues");
    }
    c.append_shard(sid(2), &[b"new"]).unwrap();
    c.sync().unwrap();
    let mut fresh = Consumer::new(&c, "fresh").unwrap();
    fresh.ack(&[MessageId { shard: sid(1), entry: 4 }]).unwrap();
    assert!(fresh.offset(sid(1)).unwrap() >= 5);
    assert_readable(&c, sid(1), next + 20);
    c.close().unwrap();
    assert_verified(&dir);
}

#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it as root with --ignored"]
fn std_a_directory_created_on_a_full_disk_holds_no_half_shard() {
    let fs = Tmpfs::mount(MIB);
    let filler = fs.fill("filler", 0);
    let dir = fs.path().join("data");
    match Client::open(&dir, small_config()) {
        Err(e) => assert!(is_full(&e), "open: {e}"),
        Ok(c) => {
            let e = c.append_shard(sid(3), &[b"x"]).and_then(|_| c.sync()).expect_err("the disk is full");
            assert!(is_full(&e), "append: {e}");
            drop(c);
        }
    }
    if dir.exists() {
        assert_verified(&dir);
    }
    fs.remove_filler(&filler);
    let c = Client::open(&dir, small_config()).unwrap();
    c.append_shard(sid(3), &[b"x"]).unwrap();
    c.sync().unwrap();
    assert_eq!(c.read("s:shard:0003", 0).unwrap().data(), b"x");
    c.close().unwrap();
    assert_verified(&dir);
}

mod embedded {
    use comet_embedded::{EmbeddedConfig, Log};

    use super::*;

    fn config() -> EmbeddedConfig {
        let mut c = EmbeddedConfig::default();
        c.write_buffer_bytes = 4096;
        c.read_buffer_bytes = 4096;
        c.max_entry_size = 1024;
        c.max_file_size = 16 * 1024;
        c.boundary_interval = 8;
        c.checkpoint_capacity = 64;
        c.retention.max_age = None;
        c.retention.cleanup_interval = None;
        c
    }

    fn small(i: u64) -> Vec<u8> {
        let mut p = payload(i);
        p.truncate(1000);
        p
    }

    #[test]
    #[ignore = "needs root to mount a tmpfs; .ci/run runs it as root with --ignored"]
    fn embedded_every_operation_on_a_full_disk_works_or_is_a_typed_error_and_nothing_durable_is_lost() {
        for slack in SLACKS {
            round(slack);
        }
    }

    fn round(slack: u64) {
        let fs = Tmpfs::mount(4 * MIB);
        let dir = fs.path().join("data");
        let s = sid(1);
        let mut log = Log::open(&dir, config(), 1).unwrap();
        log.open_shard(s, 1).unwrap();
        for i in 0..50 {
            log.append(s, 2, &[small(i)]).unwrap();
        }
        log.sync(s, 3).unwrap();
        log.ack(s, "before", 10).unwrap();
        let filler = fs.fill("filler", slack);

        let mut durable = log.durable_end(s).unwrap();
        let mut next = 50;
        let err = loop {
            assert!(next < 1_000_000, "the disk never filled up");
            match log.append(s, 4, &[small(next)]).and_then(|_| log.sync(s, 5)) {
                Ok(()) => {
                    next += 1;
                    durable = log.durable_end(s).unwrap();
                    assert_eq!(durable, next);
                }
                Err(e) => break e,
            }
        };
        assert!(is_full(&err), "append on a full disk: {err} ({err:?})");
        eprintln!("slack {slack}: {next} entries, stopped by: {err}");
        let mut buf = vec![0u8; 2048];
        for i in 0..durable {
            let e = log.read_into(s, i, &mut buf).unwrap_or_else(|e| panic!("entry {i} of {durable}: {e}"));
            assert_eq!(&buf[..e.len], &small(i)[..], "entry {i}");
        }
        let _ = log.ack(s, "fresh", 5).map_err(|e| assert!(is_full(&e), "{e}"));
        let _ = log.reset_offset(s, "fresh", 7).map_err(|e| assert!(is_full(&e), "{e}"));
        assert_eq!(log.group_offset(s, "before").unwrap(), Some(10));
        log.lag(s, "before").unwrap();
        match log.open_shard(sid(2), 6) {
            Ok(_) => {}
            Err(e) => assert!(is_full(&e), "new shard: {e}"),
        }
        let _ = log.close();

        fs.remove_filler(&filler);
        let mut log = Log::open(&dir, config(), 7).unwrap();
        log.open_shard(s, 7).unwrap();
        let next = log.next_entry(s).unwrap();
        assert!(next >= durable);
        for i in next..next + 20 {
            let r = log.append(s, 8, &[small(i)]).unwrap_or_else(|e| {
                panic!(
                    "append {i} with the space free again ({} B free): {e:?}; files {:?}",
                    fs.free_bytes(),
                    fs.files()
                )
            });
            assert_eq!(r, i..i + 1);
        }
        log.sync(s, 9).unwrap();
        log.open_shard(sid(2), 9).unwrap();
        log.append(sid(2), 9, &[b"new"]).unwrap();
        log.sync_all(10).unwrap();
        log.ack(s, "fresh", 5).unwrap();
        for i in 0..next + 20 {
            let e = log.read_into(s, i, &mut buf).unwrap_or_else(|e| panic!("entry {i}: {e}"));
            assert_eq!(&buf[..e.len], &small(i)[..], "entry {i}");
        }
        log.close().unwrap();
        assert_verified(&dir);
    }
}

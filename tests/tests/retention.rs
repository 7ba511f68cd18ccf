//! Retention: limits, consumer protection, the hard cap, crash safety.

#![allow(clippy::cast_possible_truncation)]

use std::fs;
use std::time::Duration;

use comet::{Client, Config, Consumer, Counter, Error, MessageId};
use comet_tests::{files, payload, segments, sid, small_config};

fn stream(n: u32) -> String {
    format!("events:v1:shard:{n:04}")
}

/// Retention only when asked, no age limit.
fn cfg() -> Config {
    let mut c = small_config();
    c.retention.cleanup_interval = None;
    c.retention.max_age = None;
    c
}

fn fill(c: &Client, shard: u32, range: std::ops::Range<u64>) {
    for i in range {
        c.append(&stream(shard), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
}

fn check_from(c: &Client, shard: u32, end: u64) -> u64 {
    let mut r = c.reader(sid(shard)).unwrap();
    let (first, e) = r.bounds().unwrap();
    assert_eq!(e, end);
    for i in first..end {
        assert_eq!(r.read(i).unwrap().data(), &payload(i)[..], "entry {i}");
    }
    first
}

#[test]
fn max_age_deletes_old_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    // Generous against a loaded machine: each fill must take well under
    // max_age, and the sleep must exceed it.
    c0.retention.max_age = Some(Duration::from_secs(1));
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..1500);
    std::thread::sleep(Duration::from_millis(1300));
    fill(&c, 1, 1500..3000);
    let before = segments(&dir.path().join("shard-0001")).len();
    let r = c.run_retention_now().unwrap();
    assert!(r.segments_deleted() > 0);
    assert_eq!(segments(&dir.path().join("shard-0001")).len(), before - r.segments_deleted() as usize);
    let first = check_from(&c, 1, 3000);
    assert!(first > 0 && first <= 1500, "{first}");
    // nothing newer than max_age went
    assert_eq!(c.run_retention_now().unwrap().segments_deleted(), 0);
    let st = c.shard_stats(sid(1)).unwrap();
    assert_eq!(st.counters.get(Counter::SegmentsDeleted), r.segments_deleted());
    assert!(st.counters.get(Counter::RetentionRuns) >= 2);
}

#[test]
fn max_shard_size_bounds_each_shard() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(64 * 1024);
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..3000);
    fill(&c, 2, 0..300);
    c.run_retention_now().unwrap();
    let stats = c.retention_stats().unwrap();
    let s1 = stats.iter().find(|s| s.shard == sid(1)).unwrap();
    assert!(s1.bytes <= 64 * 1024, "{s1:?}");
    assert_eq!(s1.next.delete, 0, "nothing more to do");
    check_from(&c, 1, 3000);
    assert_eq!(check_from(&c, 2, 300), 0, "small shard untouched");
}

#[test]
fn max_total_size_takes_the_oldest_across_shards_and_min_files_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_total_size = Some(100 * 1024);
    c0.retention.min_files_to_keep = 2;
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..2000);
    fill(&c, 2, 0..2000);
    c.run_retention_now().unwrap();
    let total: u64 = c.retention_stats().unwrap().iter().map(|s| s.bytes).sum();
    let sealed: Vec<u64> = c.retention_stats().unwrap().iter().map(|s| s.sealed_segments).collect();
    assert!(total <= 100 * 1024 || sealed.iter().all(|&n| n <= 2), "{total} {sealed:?}");
    assert!(sealed.iter().all(|&n| n >= 2), "{sealed:?}");
    check_from(&c, 1, 2000);
    check_from(&c, 2, 2000);
}

#[test]
fn unacked_segments_are_protected_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(1);
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..2000);
    let mut slow = Consumer::new(&c, "slow").unwrap();
    let mut fast = Consumer::new(&c, "fast").unwrap();
    slow.ack(&[MessageId { shard: sid(1), entry: 600 }]).unwrap();
    fast.ack(&[MessageId { shard: sid(1), entry: 1800 }]).unwrap();
    let r = c.run_retention_now().unwrap();
    assert!(r.shards[0].protected > 0);
    let first = check_from(&c, 1, 2000);
    assert!(first <= 601, "slow's next entry (601) survives: first = {first}");
    assert!(first > 0);
    assert_eq!(slow.offset(sid(1)).unwrap(), 601);
    // once slow catches up, the rest may go
    slow.ack(&[MessageId { shard: sid(1), entry: 1999 }]).unwrap();
    c.run_retention_now().unwrap();
    let first2 = check_from(&c, 1, 2000);
    assert!(first2 > 601 && first2 <= 1801, "{first2}");
    assert!(c.shard_stats(sid(1)).unwrap().counters.get(Counter::ProtectedSkips) > 0);
}

#[test]
fn protection_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(1);
    c0.retention.protect_unconsumed = false;
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..2000);
    Consumer::new(&c, "slow").unwrap().ack(&[MessageId { shard: sid(1), entry: 5 }]).unwrap();
    c.run_retention_now().unwrap();
    assert!(check_from(&c, 1, 2000) > 1000);
}

#[test]
fn the_hard_cap_overrides_protection_and_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_total_size = Some(32 * 1024);
    c0.retention.hard_cap = true;
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..2000);
    let mut g = Consumer::new(&c, "laggard").unwrap();
    g.ack(&[MessageId { shard: sid(1), entry: 9 }]).unwrap();
    let r = c.run_retention_now().unwrap();
    let s = &r.shards[0];
    assert!(s.forced > 0, "{s:?}");
    assert_eq!(s.group_losses.len(), 1);
    let first = check_from(&c, 1, 2000);
    assert_eq!(s.group_losses[0], ("laggard".to_string(), first - 10));
    assert_eq!(g.offset(sid(1)).unwrap(), first, "moved to the first surviving entry");
    let mut out = Vec::new();
    g.read_shard(sid(1), 3, &mut out).unwrap();
    assert_eq!(out[0].id.entry, first, "reads do not fail");
    assert!(c.shard_stats(sid(1)).unwrap().counters.get(Counter::ForcedDeletions) > 0);
}

#[test]
fn reopen_after_deletion_keeps_every_entry_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(40 * 1024);
    let first = {
        let c = Client::open(dir.path(), c0).unwrap();
        fill(&c, 1, 0..2500);
        c.run_retention_now().unwrap();
        let first = check_from(&c, 1, 2500);
        c.close().unwrap();
        first
    };
    assert!(first > 0);
    let c = Client::open(dir.path(), c0).unwrap();
    assert_eq!(check_from(&c, 1, 2500), first);
    assert_eq!(c.append(&stream(1), &[payload(2500)]).unwrap().entries, 2500..2501);
    // and after losing the index too
    c.close().unwrap();
    fs::remove_file(dir.path().join("shard-0001/index.bin")).unwrap();
    let c = Client::open(dir.path(), c0).unwrap();
    c.append(&stream(1), &[payload(2501)]).unwrap();
    c.sync().unwrap();
    assert_eq!(check_from(&c, 1, 2502), first);
}

#[test]
fn an_orphan_left_by_a_crash_between_manifest_and_unlink_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(40 * 1024);
    let sd = dir.path().join("shard-0001");
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..2500);
    let before = files(&sd);
    let saved: Vec<(String, Vec<u8>)> =
        before.iter().filter(|f| f.ends_with(".comet")).map(|f| (f.clone(), fs::read(sd.join(f)).unwrap())).collect();
    c.run_retention_now().unwrap();
    c.close().unwrap();
    // put the deleted files back: as if the unlinks never happened
    for (name, bytes) in &saved {
        if !sd.join(name).exists() {
            fs::write(sd.join(name), bytes).unwrap();
        }
    }
    let c = Client::open(dir.path(), c0).unwrap();
    c.append(&stream(1), &[payload(2500)]).unwrap();
    let report = c.recovery_report(sid(1)).unwrap();
    assert!(report.orphans_removed > 0, "{report:?}");
    c.sync().unwrap();
    check_from(&c, 1, 2501);
    assert!(c.shard_stats(sid(1)).unwrap().counters.get(Counter::OrphansRemoved) > 0);
}

#[test]
fn reads_and_consumers_keep_working_during_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(32 * 1024);
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..500);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let c = c.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = c.reader(sid(1)).unwrap();
            let mut ok = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let (first, end) = r.bounds().unwrap();
                for i in first..end {
                    match r.read(i) {
                        Ok(m) => {
                            assert_eq!(m.data(), &payload(i)[..]);
                            ok += 1;
                        }
                        // deleted under our feet: only ever "unavailable"
                        Err(Error::Unavailable { .. }) => {}
                        Err(e) => panic!("entry {i}: {e}"),
                    }
                }
            }
            ok
        })
    };
    let mut g = Consumer::new(&c, "g").unwrap();
    for round in 1..20u64 {
        fill(&c, 1, round * 500..round * 500 + 500);
        let mut out = Vec::new();
        g.read_shard(sid(1), 400, &mut out).unwrap();
        if let Some(last) = out.last() {
            g.ack(&[last.id]).unwrap();
        }
        c.run_retention_now().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    check_from(&c, 1, 10_000);
}

#[test]
fn only_the_writer_of_a_shard_deletes_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(1);
    c0.retention.protect_unconsumed = false;
    let owner = Client::open(dir.path(), c0).unwrap();
    fill(&owner, 1, 0..2000);
    let other = Client::open(dir.path(), c0).unwrap();
    let r = other.run_retention_now().unwrap();
    assert_eq!(r.segments_deleted(), 0);
    assert!(r.shards[0].skipped.is_some());
    assert!(owner.run_retention_now().unwrap().segments_deleted() > 0);
}

#[test]
fn the_background_pass_runs_and_stops_with_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut c0 = cfg();
    c0.retention.max_shard_size = Some(32 * 1024);
    c0.retention.cleanup_interval = Some(Duration::from_millis(20));
    let c = Client::open(dir.path(), c0).unwrap();
    fill(&c, 1, 0..3000);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.shard_stats(sid(1)).unwrap().counters.get(Counter::SegmentsDeleted) == 0 {
        assert!(std::time::Instant::now() < deadline, "background retention never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    c.close().unwrap();
}

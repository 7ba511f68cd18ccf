//! Stats snapshots: entry time bounds and counters against what was
//! appended.

use std::time::Duration;

use comet::{Client, ShardId};
use comet_tests::{payload, segments, small_config};

fn one() -> ShardId {
    ShardId::new(1).unwrap()
}

#[test]
fn entry_time_bounds_cover_the_durable_entries_also_right_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.flush_interval = Duration::from_secs(3600);
    let c = Client::open(dir.path(), cfg).unwrap();
    c.append_shard(one(), &[payload(1)]).unwrap();
    c.sync().unwrap();
    let mut r = c.reader(one()).unwrap();
    let first_ts = r.read(0).unwrap().timestamp;
    let st = c.shard_stats(one()).unwrap();
    assert_eq!((st.oldest_ns, st.newest_ns), (first_ts, first_ts), "only the active segment holds entries");
    // Append synced entries until an append rotates: the new active
    // segment holds only that unsynced append, so no durable entry.
    let mut i = 1;
    while segments(&dir.path().join("shard-0001")).len() == 1 {
        c.sync().unwrap();
        c.append_shard(one(), &[payload(i)]).unwrap();
        i += 1;
    }
    let durable = c.durable_len(one()).unwrap();
    assert_eq!(durable, i - 1, "the rotating append is not durable yet");
    let newest = r.read(durable - 1).unwrap().timestamp;
    let ro = Client::open_read_only(dir.path(), cfg).unwrap();
    for client in [&c, &ro] {
        let st = client.shard_stats(one()).unwrap();
        assert_eq!(st.durable_end, durable);
        assert_eq!(st.newest_ns, newest, "newest durable entry, from the sealed segment");
        assert_eq!(st.oldest_ns, first_ts);
    }
    c.sync().unwrap();
    let st = c.shard_stats(one()).unwrap();
    assert_eq!(st.newest_ns, r.read(i - 1).unwrap().timestamp);
    c.close().unwrap();
}

#[test]
fn close_persists_the_counters_of_its_own_sync() {
    use comet::Counter;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.flush_interval = Duration::from_secs(3600);
    let c = Client::open(dir.path(), cfg).unwrap();
    for i in 0..10 {
        c.append_shard(one(), &[payload(i)]).unwrap();
    }
    let before = c.shard_stats(one()).unwrap().counters;
    c.close().unwrap();
    let ro = Client::open_read_only(dir.path(), cfg).unwrap();
    let after = ro.shard_stats(one()).unwrap().counters;
    for (counter, by) in [(Counter::Syncs, 1), (Counter::ManifestWrites, 0), (Counter::ManifestGeneration, 0)] {
        assert_eq!(after.get(counter), before.get(counter) + by, "{counter:?} (a close writes no manifest)");
    }
    assert!(after.get(Counter::Flushes) > before.get(Counter::Flushes));
    // and a writer reopening counts on from there
    let c = Client::open(dir.path(), cfg).unwrap();
    c.recover_shard(one()).unwrap();
    let reopened = c.shard_stats(one()).unwrap().counters;
    assert_eq!(reopened.get(Counter::Syncs), after.get(Counter::Syncs));
    assert_eq!(reopened.get(Counter::CleanOpens), 1);
    c.close().unwrap();
}

/// A manifest that does not load is the shard's error in stats and in
/// retention's view, as it is for a reader, not a shard that seems to hold
/// only its active segment (which a retention plan would then misjudge).
#[test]
fn a_damaged_manifest_is_an_error_in_stats_not_a_smaller_shard() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config();
    let c = Client::open(dir.path(), cfg).unwrap();
    for i in 0..400 {
        c.append_shard(one(), &[payload(i)]).unwrap();
    }
    c.close().unwrap();
    let sd = dir.path().join("shard-0001");
    assert!(segments(&sd).len() > 2);
    let ro = Client::open_read_only(dir.path(), cfg).unwrap();
    let healthy = ro.shard_stats(one()).unwrap();
    assert_eq!((healthy.first_entry, healthy.durable_end), (0, 400));
    let index = sd.join("index.bin");
    let mut bytes = std::fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&index, &bytes).unwrap();
    let manifest = |e: comet::Error| matches!(e, comet::Error::Corrupt { corruption, .. } if corruption.file == comet::FileKind::Manifest);
    assert!(manifest(ro.shard_stats(one()).unwrap_err()));
    assert!(manifest(ro.stats().unwrap_err()));
    assert!(manifest(ro.retention_stats().unwrap_err()));
    ro.close().unwrap();
}

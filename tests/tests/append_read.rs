//! Appends and reads through the public API: round trips, visibility,
//! rotation, limits, names.

#![allow(clippy::cast_possible_truncation)]

use std::time::Duration;

use comet::{Client, Config, Error, ShardId};
use comet_tests::{payload, small_config};

const S1: &str = "events:v1:shard:0001";

fn shard(n: u32) -> ShardId {
    ShardId::new(n).unwrap()
}

#[test]
fn round_trips_every_kind_of_payload() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    let entries: Vec<Vec<u8>> = (0..300).map(payload).collect();
    let ids = c.append(S1, &entries).unwrap();
    assert_eq!(ids.entries, 0..300);
    c.sync().unwrap();
    let mut r = c.reader(shard(1)).unwrap();
    let mut zero_copy = 0;
    for (i, want) in entries.iter().enumerate() {
        let m = r.read(i as u64).unwrap();
        assert_eq!(m.data(), &want[..], "entry {i}");
        assert_eq!(m.id.entry, i as u64);
        zero_copy += usize::from(m.is_zero_copy());
    }
    assert!(zero_copy > 100, "raw entries are borrowed from the map");
    let stats = c.shard_stats(shard(1)).unwrap();
    assert!(stats.counters.get(comet::Counter::CompressedEntries) > 0);
    assert!(stats.compression_ratio > 1.0);
}

#[test]
fn a_readers_cached_head_is_refreshed_by_every_sync_of_any_client() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    c.append(S1, &[b"first".to_vec()]).unwrap();
    c.sync().unwrap();
    let ro = Client::open_read_only(dir.path(), small_config()).unwrap();
    let mut readers = [c.reader(shard(1)).unwrap(), ro.reader(shard(1)).unwrap()];
    for r in &mut readers {
        assert_eq!(r.head().unwrap().unwrap().end(), 1);
        assert_eq!(r.bounds().unwrap(), (0, 1));
        assert!(matches!(r.read(1), Err(Error::Unavailable { end: 1, .. })));
    }
    // Many syncs, across segment rotations: each one is seen.
    let mut end = 1u64;
    let mut bases = std::collections::HashSet::new();
    for round in 0..40u64 {
        let batch: Vec<Vec<u8>> = (0..round + 1).map(payload).collect();
        c.append(S1, &batch).unwrap();
        c.sync().unwrap();
        end += round + 1;
        for r in &mut readers {
            let head = r.head().unwrap().unwrap();
            assert_eq!(head.end(), end);
            bases.insert(head.base);
            assert_eq!(r.read(end - 1).unwrap().data(), &payload(round)[..]);
        }
    }
    assert!(bases.len() > 1, "the test covers rotations: {bases:?}");
}

#[test]
fn entries_become_visible_only_when_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.flush_interval = Duration::from_secs(3600);
    let c = Client::open(dir.path(), cfg).unwrap();
    c.append(S1, &[b"a", b"b"]).unwrap();
    assert_eq!(c.len(S1).unwrap(), 2, "len counts appended entries");
    assert_eq!(c.durable_len(shard(1)).unwrap(), 0);
    let mut r = c.reader(shard(1)).unwrap();
    assert!(matches!(r.read(0), Err(Error::Unavailable { entry: 0, end: 0, .. })));
    c.sync().unwrap();
    assert_eq!(r.read(1).unwrap().data(), b"b");
    assert_eq!(c.durable_len(shard(1)).unwrap(), 2);
}

#[test]
fn the_periodic_flush_makes_entries_visible() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    c.append(S1, &[b"tick"]).unwrap();
    assert!(c.wait_for(shard(1), 0, Duration::from_secs(5)).unwrap(), "flushed within the interval");
    assert_eq!(c.reader(shard(1)).unwrap().read(0).unwrap().data(), b"tick");
}

#[test]
fn durable_appends_are_visible_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.durable_appends = true;
    cfg.storage.flush_interval = Duration::from_secs(3600);
    let c = Client::open(dir.path(), cfg).unwrap();
    c.append(S1, &[b"now"]).unwrap();
    assert_eq!(c.durable_len(shard(1)).unwrap(), 1);
}

#[test]
fn rotation_keeps_numbers_and_names_segments_by_base_entry() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    for i in 0..2000u64 {
        c.append(S1, &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
    let files = comet_tests::files(&dir.path().join("shard-0001"));
    let segs: Vec<&String> = files.iter().filter(|f| f.ends_with(".comet")).collect();
    assert!(segs.len() > 3, "{files:?}");
    assert_eq!(segs[0], "log-00000000000000000000.comet");
    let mut r = c.reader(shard(1)).unwrap();
    for i in 0..2000 {
        assert_eq!(r.read(i).unwrap().data(), &payload(i)[..], "entry {i}");
    }
    // random access too
    for i in [1999, 0, 1234, 17, 999] {
        assert_eq!(r.read(i).unwrap().data(), &payload(i)[..]);
    }
}

#[test]
fn entries_up_to_the_maximum_size_read_back_anywhere_in_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.max_entry_size = 12 << 20;
    let c = Client::open(dir.path(), cfg).unwrap();
    let big: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 251) as u8).collect();
    c.append(S1, &[&b"small"[..], &big, &b"after"[..], &big]).unwrap();
    let too_big = vec![0u8; (12 << 20) + 1];
    assert!(matches!(c.append(S1, &[&too_big]), Err(Error::EntryTooLarge { .. })));
    c.sync().unwrap();
    let mut r = c.reader(shard(1)).unwrap();
    assert_eq!(r.read(0).unwrap().data(), b"small");
    assert_eq!(r.read(1).unwrap().data(), &big[..]);
    assert_eq!(r.read(2).unwrap().data(), b"after");
    assert_eq!(r.read(3).unwrap().data(), &big[..]);
    assert_eq!(c.len(S1).unwrap(), 4);
}

#[test]
fn failed_append_leaves_no_gap_in_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    c.append(S1, &[b"a"]).unwrap();
    let huge = vec![0u8; (16 << 20) + 1];
    assert!(c.append(S1, &[&b"b"[..], &huge]).is_err());
    assert_eq!(c.append(S1, &[b"c"]).unwrap().entries, 1..2);
    c.sync().unwrap();
    assert_eq!(c.reader(shard(1)).unwrap().read(1).unwrap().data(), b"c");
}

#[test]
fn invalid_stream_names_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    for bad in ["", "events", "events:v1:42", "../x:shard:0001", "a/b:shard:0001", "x:shard:12345", "x\0:shard:1"] {
        assert!(matches!(c.append(bad, &[b"x"]), Err(Error::InvalidStream(_))), "{bad:?}");
        assert!(matches!(c.len(bad), Err(Error::InvalidStream(_))), "{bad:?}");
    }
    assert!(comet_tests::files(dir.path()).is_empty(), "nothing created");
}

#[test]
fn stream_helpers_route_like_the_go_package() {
    let count = comet::ShardCount::new(4).unwrap();
    let picked: Vec<u32> =
        ["alice", "bob", "charlie", "diana"].iter().map(|k| comet::pick_shard(k.as_bytes(), count).get()).collect();
    assert_eq!(picked, [3, 0, 1, 0]);
    assert_eq!(comet::pick_shard_stream("events:v1", b"alice", count).unwrap(), "events:v1:shard:0003");
    let all = comet::all_shard_streams("m", count).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(comet::parse_stream(&all[2]).unwrap().get(), 2);
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), Config::default()).unwrap();
    assert_eq!(c.pick_shard(b"user-123").get(), 3, "16 shards by default");
}

#[test]
fn zero_and_absurd_config_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.max_file_size = 0;
    assert!(matches!(Client::open(dir.path(), cfg), Err(Error::Config(e)) if e.field == "storage.max_file_size"));
    let mut cfg = Config::default();
    cfg.indexing.boundary_interval = 0;
    assert!(matches!(Client::open(dir.path(), cfg), Err(Error::Config(_))));
}

#[test]
fn read_only_paths_never_create_files() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    assert_eq!(c.len(S1).unwrap(), 0);
    assert_eq!(c.durable_len(shard(3)).unwrap(), 0);
    let mut r = c.reader(shard(1)).unwrap();
    assert!(r.read(0).is_err());
    assert_eq!(r.bounds().unwrap(), (0, 0));
    let _ = c.stats().unwrap();
    assert!(comet_tests::files(dir.path()).is_empty());
    assert!(c.shards().unwrap().is_empty());
}

#[test]
fn append_after_close_fails() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    let c2 = c.clone();
    c.append(S1, &[b"x"]).unwrap();
    c.close().unwrap();
    assert!(matches!(c2.append(S1, &[b"y"]), Err(Error::Closed)));
}

#[test]
fn read_only_clients_refuse_appends() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Client::open(dir.path(), small_config()).unwrap();
        c.append(S1, &[b"x"]).unwrap();
        c.close().unwrap();
    }
    let ro = Client::open_read_only(dir.path(), small_config()).unwrap();
    assert!(matches!(ro.append(S1, &[b"y"]), Err(Error::ReadOnly)));
    assert_eq!(ro.reader(shard(1)).unwrap().read(0).unwrap().data(), b"x");
    assert!(Client::open_read_only(dir.path().join("missing"), small_config()).is_err());
}

#[test]
fn seek_by_time_finds_the_first_entry_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    let mut stamps = Vec::new();
    for i in 0..300u64 {
        c.append(S1, &[payload(i)]).unwrap();
        if i % 50 == 0 {
            c.sync().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    c.sync().unwrap();
    let mut r = c.reader(shard(1)).unwrap();
    for i in 0..300 {
        stamps.push(r.read(i).unwrap().timestamp);
    }
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "timestamps never decrease");
    for probe in [0usize, 1, 57, 150, 299] {
        let t = stamps[probe];
        let first = stamps.iter().position(|&s| s >= t).unwrap() as u64;
        assert_eq!(r.seek_time(t).unwrap(), first);
    }
    assert_eq!(r.seek_time(u64::MAX).unwrap(), 300);
    assert_eq!(r.seek_time(0).unwrap(), 0);
}

#[test]
fn message_ids_display_and_parse_like_go() {
    let id = comet::MessageId { shard: shard(7), entry: 42 };
    assert_eq!(id.to_string(), "7-42");
    assert_eq!("7-42".parse::<comet::MessageId>().unwrap(), id);
    for bad in ["7", "7-", "-1", "7-42x", "a-1", "10000-1"] {
        assert!(bad.parse::<comet::MessageId>().is_err(), "{bad}");
    }
}

//! `Reader::iter`: the entries of a range, in order, stopping at (never
//! skipping) an unreadable entry.

use std::ops::Bound;

use comet::{Client, Config, Error, ShardId};

fn sid(n: u32) -> ShardId {
    ShardId::new(n).unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    format!("entry {i} ").repeat(usize::try_from(i % 17).unwrap() + 1).into_bytes()
}

fn entries(it: impl Iterator<Item = comet::Result<comet::Message>>) -> Vec<u64> {
    it.map(|m| m.unwrap().id.entry).collect()
}

#[test]
fn iterates_any_range_across_segments_and_compressed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.max_file_size = 8192;
    cfg.compression.min_compress_size = 64;
    let c = Client::open(dir.path(), cfg).unwrap();
    for i in 0..1000u64 {
        c.append_shard(sid(1), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
    let mut r = c.reader(sid(1)).unwrap();

    let all: Vec<_> = r.iter(..).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 1000);
    for (i, m) in all.iter().enumerate() {
        assert_eq!((m.id.shard, m.id.entry), (sid(1), i as u64));
        assert_eq!(m.data(), &payload(i as u64)[..]);
    }
    assert!(all.iter().any(|m| !m.is_zero_copy()), "some entries were compressed");
    assert!(c.shard_stats(sid(1)).unwrap().segments > 3);

    assert_eq!(entries(r.iter(10..20)), (10..20).collect::<Vec<_>>());
    assert_eq!(entries(r.iter(..=5)), (0..=5).collect::<Vec<_>>());
    assert_eq!(entries(r.iter(995..)), (995..1000).collect::<Vec<_>>());
    assert_eq!(entries(r.iter(990..5000)), (990..1000).collect::<Vec<_>>(), "stops at the durable end");
    assert_eq!(entries(r.iter((Bound::Excluded(3), Bound::Included(6)))), vec![4, 5, 6]);
    assert!(entries(r.iter(5..5)).is_empty());
    assert!(entries(r.iter(2000..)).is_empty());
    // Iterators and single reads share the reader's cursor and maps.
    let mut it = r.iter(500..);
    assert_eq!(it.next().unwrap().unwrap().id.entry, 500);
    assert_eq!(it.nth(10).unwrap().unwrap().id.entry, 511);
    drop(it);
    assert_eq!(r.read(7).unwrap().data(), &payload(7)[..]);
}

#[test]
fn the_end_is_the_durable_end_when_the_iteration_begins() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), Config::default()).unwrap();
    for i in 0..10 {
        c.append_shard(sid(1), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
    let mut r = c.reader(sid(1)).unwrap();
    let mut it = r.iter(..);
    assert_eq!(it.next().unwrap().unwrap().id.entry, 0);
    for i in 10..20 {
        c.append_shard(sid(1), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
    assert_eq!(it.count(), 9, "entries 1..10");
    assert_eq!(r.iter(..).count(), 20, "a new iteration sees them");
}

#[test]
fn an_unreadable_entry_ends_the_iteration_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), Config::default()).unwrap();
    for i in 0..300u64 {
        c.append_shard(sid(1), &[format!("e{i}").into_bytes()]).unwrap();
    }
    c.sync().unwrap();
    // Flip a payload bit of entry 150 (chunk 1 holds entries 100..200).
    let seg = dir.path().join("shard-0001").join(comet_core::platform::naming::segment_file_name(0).as_str());
    let mut bytes = std::fs::read(&seg).unwrap();
    let header = comet_core::platform::wire::HEADER_LEN;
    let mut off = 0usize;
    for _ in 0..150 {
        off += header + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    }
    bytes[off + header] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let mut r = c.reader(sid(1)).unwrap();
    let mut it = r.iter(50..);
    let mut read = Vec::new();
    let err = loop {
        match it.next().expect("the iteration ends with the error") {
            Ok(m) => read.push(m.id.entry),
            Err(e) => break e,
        }
    };
    assert_eq!(read, (50..100).collect::<Vec<_>>(), "entries before the damaged chunk");
    assert!(matches!(err, Error::Damaged { damage, .. } if (damage.first, damage.end) == (100, 200)), "{err}");
    assert!(it.next().is_none(), "nothing after the error: no entry is skipped");
    assert!(it.next().is_none());
    // A range past the damage reads on.
    assert_eq!(entries(r.iter(200..203)), vec![200, 201, 202]);
}

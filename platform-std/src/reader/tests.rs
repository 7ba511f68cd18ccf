use super::*;
use crate::{Client, Config};
use comet_core::platform::naming::segment_file_name;
use comet_core::platform::wire::HEADER_LEN;
use std::path::Path;

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i} ").repeat(usize::try_from(i % 13).unwrap_or(0) + 1).into_bytes()
}

/// A shard of many small sealed segments.
fn shard_with_segments(dir: &Path, n: u64) -> Client {
    let mut cfg = Config::default();
    cfg.storage.max_file_size = 4096;
    cfg.indexing.boundary_interval = 8;
    cfg.compression.min_compress_size = 1 << 20;
    let c = Client::open(dir, cfg).unwrap();
    for i in 0..n {
        c.append("events:v1:shard:0001", &[entry(i)]).unwrap();
    }
    c.sync().unwrap();
    c
}

#[test]
fn evicting_a_sealed_map_never_unmaps_a_message_still_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let c = shard_with_segments(dir.path(), 1200);
    let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
    r.engine.set_sealed_cap(2);
    let mut held = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    // Random order, across every segment: each read maps, most evict.
    let mut k = 7u64;
    for _ in 0..600 {
        k = (k * 1_103_515_245 + 12_345) % 1200;
        let m = r.read(k).unwrap();
        assert_eq!(m.data(), &entry(k)[..]);
        let bases: Vec<u64> = r.engine.sealed_maps().map(|(base, _)| base).collect();
        assert!(bases.len() <= 2);
        assert!(bases.windows(2).all(|w| w[0] < w[1]), "sorted by base");
        seen.extend(bases);
        held.push(m);
    }
    assert!(seen.len() > 10, "the reads covered many segments: {}", seen.len());
    // Every message still reads its bytes from its own map.
    for m in &held {
        assert_eq!(m.data(), &entry(m.id.entry)[..]);
    }
    // Sequential reads across segment boundaries after evictions.
    let mut out = Vec::new();
    assert_eq!(r.read_batch(0, 1200, &mut out).unwrap(), 1200);
    assert!(out.iter().enumerate().all(|(i, m)| m.data() == &entry(i as u64)[..]));
}

#[test]
fn a_large_cache_keeps_every_sealed_map_of_a_shard() {
    let dir = tempfile::tempdir().unwrap();
    let c = shard_with_segments(dir.path(), 1200);
    let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
    let (first, end) = r.bounds().unwrap();
    for e in (first..end).rev() {
        assert_eq!(r.read(e).unwrap().data(), &entry(e)[..]);
    }
    let segments = r.engine.sealed_maps().count();
    assert!(segments > 10 && segments <= SEALED_CACHE, "{segments}");
    let before: Vec<*const SegmentMap> = r.engine.sealed_maps().map(|(_, m)| Arc::as_ptr(m)).collect();
    for e in first..end {
        r.read(e).unwrap();
    }
    let after: Vec<*const SegmentMap> = r.engine.sealed_maps().map(|(_, m)| Arc::as_ptr(m)).collect();
    assert_eq!(before, after, "no segment was mapped twice");
}

/// Entries 0..600 of shard 1 in 8 KiB segments, most of them
/// compressed.
fn compressed_segments(dir: &Path) -> (Client, ShardId) {
    let mut cfg = Config::default();
    cfg.storage.max_file_size = 8192;
    cfg.compression.min_compress_size = 64;
    let c = Client::open(dir, cfg).unwrap();
    for i in 0..600u64 {
        c.append("events:v1:shard:0001", &[entry(i)]).unwrap();
    }
    c.sync().unwrap();
    (c, ShardId::new(1).unwrap())
}

/// Message batches match single reads, and lent batches match message
/// batches, across segments and compressed entries.
#[test]
fn batches_and_lent_batches_match_single_reads_across_segments_and_compressed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (c, shard) = compressed_segments(dir.path());
    let mut single = c.reader(shard).unwrap();
    let mut batched = c.reader(shard).unwrap();
    let mut lent = c.reader(shard).unwrap();
    let mut batch = LentBatch::new();
    let (mut from, mut compressed, mut maps) = (0, 0, 0);
    for size in [1usize, 7, 100, 33, 1000].iter().cycle() {
        let mut out = Vec::new();
        let n = batched.read_batch(from, *size, &mut out).unwrap();
        assert_eq!(n, out.len());
        assert_eq!(lent.read_lent(from, *size, &mut batch).unwrap(), n);
        assert_eq!(batch.len(), n);
        for (i, m) in out.iter().enumerate() {
            let one = single.read(m.id.entry).unwrap();
            assert_eq!((m.id, m.timestamp, m.data()), (one.id, one.timestamp, one.data()));
            assert_eq!(m.data(), &entry(m.id.entry)[..]);
            let e = batch.get(i).unwrap();
            assert_eq!((e.id, e.timestamp, e.data), (m.id, m.timestamp, m.data()));
            compressed += usize::from(!m.is_zero_copy());
        }
        assert!(batch.get(n).is_none());
        assert_eq!(batch.last_id(), out.last().map(|m| m.id));
        maps = maps.max(batch.mappings());
        from += n as u64;
        if n < *size {
            break;
        }
    }
    assert_eq!(from, 600);
    assert!(compressed > 10, "{compressed}");
    assert!(maps > 1, "a batch spanned segments: {maps}");
    assert!(batch.mappings() <= 1 + batch.len() / 2, "a mapping is held once per run of entries, not per entry");
}

#[test]
fn a_batch_stops_at_a_damaged_chunk_and_never_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), Config::default()).unwrap();
    for i in 0..300u64 {
        c.append("events:v1:shard:0001", &[format!("e{i}").into_bytes()]).unwrap();
    }
    c.sync().unwrap();
    let seg = dir.path().join("shard-0001").join(segment_file_name(0).as_str());
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut off = 0usize;
    for _ in 0..150 {
        off += HEADER_LEN + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    }
    bytes[off + HEADER_LEN] ^= 0x01; // a payload bit of entry 150 (chunk 1: entries 100..200)
    std::fs::write(&seg, &bytes).unwrap();
    let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
    let mut out = Vec::new();
    let e = r.read_batch(50, 100, &mut out).unwrap_err();
    assert!(matches!(e, Error::Damaged { damage, .. } if (damage.first, damage.end) == (100, 200)), "{e}");
    assert_eq!(out.len(), 50, "entries before the damaged chunk");
    assert_eq!(out.last().unwrap().data(), b"e99");
    out.clear();
    assert!(matches!(r.read(150), Err(Error::Damaged { .. })), "never served");
    assert!(matches!(r.read(120), Err(Error::Damaged { .. })), "nothing of the chunk");
    assert_eq!(r.read(200).unwrap().data(), b"e200", "later chunks still read");
    assert_eq!(r.read(99).unwrap().data(), b"e99");
}

/// What users rely on: messages and batches cross threads; a message
/// clones (sharing its mapping).
#[test]
fn messages_and_batches_keep_their_traits() {
    fn shared<T: Send + Sync + std::fmt::Debug>() {}
    fn cloned<T: Clone>() {}
    shared::<Message>();
    shared::<LentBatch>();
    shared::<Reader>();
    cloned::<Message>();
}

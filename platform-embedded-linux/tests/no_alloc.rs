//! After open, the append (without rotation; raw and compressed entries),
//! sync, tick, read and consumer paths make no heap allocation: a counting
//! global allocator proves it.
//!
//! Excluded, and allocating by design: rotation and retention deletions
//! (the manifest is copied and re-encoded), opening shards. See the crate
//! docs.
#![allow(clippy::field_reassign_with_default, clippy::cast_possible_truncation)]

mod common;

use comet_core::sim::noise;
use comet_embedded::{Consumer, EmbeddedConfig, Log, ShardId};
use comet_test_child::heap::{Counting, bytes, count};
use common::{S0, json, payload};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_paths_do_not_allocate() {
    let t = tempfile::tempdir().unwrap();
    let mut c = EmbeddedConfig::default();
    c.shard_count = 2;
    c.write_buffer_bytes = 8 << 10;
    c.max_entry_size = 4 << 10;
    c.read_buffer_bytes = 8 << 10;
    c.max_file_size = 256 << 10;
    c.boundary_interval = 8;
    c.checkpoint_capacity = 4096;
    c.min_compress_size = Some(2048);
    c.retention.cleanup_interval = Some(std::time::Duration::from_millis(1));
    c.retention.max_shard_size = Some(64 << 20);
    let s1 = ShardId::new(1).unwrap();
    let ms = 1_000_000;
    let mut log = Log::open(t.path(), c, ms).unwrap();

    // Warm up outside the measurement: one compressed entry, a rotation so
    // there is a sealed segment, a first read of each kind.
    let big: Vec<u8> = (0..40).flat_map(json).collect::<Vec<u8>>()[..4000].to_vec();
    log.append(S0, ms, &[&big]).unwrap();
    let mut i = 0;
    while log.counter(S0, comet_embedded::Counter::Rotations).unwrap() == 0 {
        log.append(S0, ms, &[payload(i)]).unwrap();
        if i % 100 == 0 {
            log.sync(S0, ms).unwrap();
        }
        i += 1;
    }
    log.sync(S0, ms).unwrap();
    let mut buf = vec![0u8; 8 << 10];
    log.read_into(S0, 0, &mut buf).unwrap();
    let mut consumer = Consumer::new("shipper").unwrap();
    consumer.next(&mut log, S0, &mut buf).unwrap();
    consumer.ack(&log, S0).unwrap();
    log.tick(2 * ms).unwrap();

    // Appends, including ones that fill the buffer and flush it.
    let entries: Vec<Vec<u8>> = (0..500).map(payload).collect();
    let batch: Vec<&[u8]> = entries[..64].iter().map(Vec::as_slice).collect();
    let ((), n) = count(|| {
        for (i, e) in entries.iter().enumerate() {
            let shard = if i % 2 == 0 { S0 } else { s1 };
            log.append(shard, 3 * ms, &[e]).unwrap();
        }
        log.append(S0, 3 * ms, &batch).unwrap();
    });
    assert_eq!(n, 0, "append allocated {n} times");
    assert_eq!(log.counter(S0, comet_embedded::Counter::Rotations).unwrap(), 1, "no rotation in the measured appends");

    let (r, n) = count(|| log.sync(S0, 4 * ms));
    r.unwrap();
    assert_eq!(n, 0, "sync allocated");
    let (r, n) = count(|| log.tick(5000 * ms));
    let r = r.unwrap();
    assert!(r.synced >= 1 && r.retention.is_some());
    assert_eq!(n, 0, "tick (sync + retention pass without deletions) allocated");

    // Reads: compressed, raw, active segment, errors.
    let end = log.durable_end(S0).unwrap();
    let ((), n) = count(|| {
        let e = log.read_into(S0, 0, &mut buf).unwrap();
        assert!(e.compressed);
        for i in 1..end {
            log.read_into(S0, i, &mut buf).unwrap();
        }
        assert!(log.read_into(S0, end, &mut buf).is_err());
        assert!(log.read_into(S0, 0, &mut [0u8; 1]).is_err());
    });
    assert_eq!(n, 0, "read_into allocated");

    // Consumers.
    let ((), n) = count(|| {
        let mut c = Consumer::new("metrics").unwrap();
        while let Some(e) = c.next(&mut log, S0, &mut buf).unwrap() {
            if e.entry % 50 == 0 {
                c.ack(&log, S0).unwrap();
            }
        }
        c.ack(&log, S0).unwrap();
        assert_eq!(c.lag(&log, S0).unwrap(), 0);
        consumer.next(&mut log, S0, &mut buf).unwrap();
        consumer.ack(&log, S0).unwrap();
        let _ = log.lag(s1, "shipper").unwrap();
    });
    assert_eq!(n, 0, "consumer paths allocated");

    // Rotation reuses the checkpoint table, but the manifest rewrite
    // allocates: shown here so the exclusion is not silent.
    let ((), n) = count(|| {
        for i in 0..6000 {
            log.append(S0, 6 * ms, &[payload(i)]).unwrap();
        }
    });
    log.sync(S0, 7 * ms).unwrap();
    assert!(log.counter(S0, comet_embedded::Counter::Rotations).unwrap() > 1);
    assert!(n > 0, "rotation is expected to allocate (manifest)");
    log.close().unwrap();
}

/// Compressed appends allocate nothing either: the compressor's buffers
/// are sized when the log opens. JSON bundles of 4 to 93 lines (all stored
/// compressed), and between them payloads that do not compress (stored
/// raw) or use bytes above 128.
#[test]
fn compressed_appends_do_not_allocate() {
    let t = tempfile::tempdir().unwrap();
    let mut c = EmbeddedConfig::default();
    c.write_buffer_bytes = 64 << 10;
    c.max_entry_size = 16 << 10;
    c.read_buffer_bytes = 64 << 10;
    c.max_file_size = 64 << 20;
    c.min_compress_size = Some(256);
    let ms = 1_000_000;
    let mut log = Log::open(t.path(), c, ms).unwrap();
    let lines: Vec<Vec<u8>> = (0..400).map(json).collect();
    let bundle = |i: usize, n: usize| -> Vec<u8> { lines[i % 300..][..n].concat() };
    let entries: Vec<(Vec<u8>, bool)> = (0..240)
        .map(|i| match i % 12 {
            5 => (noise(300 + i * 50, i as u64), false),
            11 => ((0..4000).map(|k| 128 + (k * k % 97) as u8).collect(), true),
            _ => (bundle(i * 7, 4 + i % 90), true),
        })
        .collect();
    assert!(entries.iter().all(|(e, _)| e.len() <= 16 << 10));
    let before = bytes();
    let ((), n) = count(|| {
        for (e, _) in &entries {
            log.append(S0, 2 * ms, &[e]).unwrap();
        }
    });
    let churn = bytes() - before;
    println!(
        "compressed appends: {} entries, {:.2} allocations and {:.0} bytes allocated per append",
        entries.len(),
        n as f64 / entries.len() as f64,
        churn as f64 / entries.len() as f64
    );
    assert_eq!(log.counter(S0, comet_embedded::Counter::Rotations).unwrap(), 0);
    log.sync(S0, 3 * ms).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    for (i, (e, compresses)) in entries.iter().enumerate() {
        let got = log.read_into(S0, i as u64, &mut buf).unwrap();
        assert!(buf[..got.len] == e[..], "entry {i}");
        assert_eq!(got.compressed, *compresses, "entry {i}");
    }
    assert_eq!(n, 0, "compressed appends allocated {n} times ({churn} bytes)");
    log.close().unwrap();
}

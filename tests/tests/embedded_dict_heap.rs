//! `comet-embedded` reading dictionary-compressed entries stays within
//! `EmbeddedConfig::heap_budget()`: its allowance for one dictionary
//! (`ZstdDecompressor::dict_heap_bytes`, a 64 KiB dictionary the largest it
//! reads) measured with a counting allocator, over reads that switch
//! between two dictionaries (each switch rebuilds the decoder) from open
//! to close.
#![allow(clippy::cast_possible_truncation)]

use comet::{Client, Config, ShardId};
use comet_embedded::{EmbeddedConfig, Log};
use comet_test_child::heap::{Counting, high_water, start};
use comet_tests::json_line;

#[global_allocator]
static GLOBAL: Counting = Counting;

const SHARD: ShardId = ShardId::MIN;
/// Entries stored raw, the first dictionary's samples.
const RAW: u64 = 16_000;
/// Entries compressed with each dictionary.
const EACH: u64 = 4_000;

/// A `comet` writer that trains dictionaries of up to `max_size` bytes
/// once `samples` bytes of entries were appended.
fn writer(dir: &std::path::Path, max_size: u32, samples: u32) -> Client {
    let mut cfg = Config::default();
    cfg.retention.cleanup_interval = None;
    cfg.retention.max_age = None;
    cfg.compression.dictionary = true;
    cfg.compression.dict_max_size = max_size;
    cfg.compression.dict_sample_bytes = samples;
    Client::open(dir, cfg).unwrap()
}

/// comet-embedded's reader configuration and its heap budget.
fn embedded() -> (EmbeddedConfig, usize) {
    let mut ecfg = EmbeddedConfig { max_entry_size: 4096, read_buffer_bytes: 64 << 10, ..EmbeddedConfig::default() };
    ecfg.retention.max_age = None;
    ecfg.retention.cleanup_interval = None;
    let budget = ecfg.heap_budget().total(usize::from(ecfg.shard_count));
    (ecfg, budget)
}

#[test]
fn reading_two_64_kib_dictionaries_stays_within_the_heap_budget() {
    let t = tempfile::tempdir().unwrap();
    // Written by comet: the first dictionary trained by the sync after
    // RAW lines of samples, the second on demand EACH lines later; both as
    // large as comet-embedded reads.
    let c = writer(t.path(), 64 << 10, 4 << 20);
    let lines: Vec<Vec<u8>> = (0..RAW + 2 * EACH).map(json_line).collect();
    let append = |range: std::ops::Range<u64>| {
        for chunk in lines[range.start as usize..range.end as usize].chunks(100) {
            c.append_shard(SHARD, chunk).unwrap();
        }
        c.sync().unwrap();
    };
    append(0..RAW);
    append(RAW..RAW + EACH);
    let first = c.shard_stats(SHARD).unwrap().dictionaries;
    assert_eq!(first.len(), 1, "{first:?}");
    c.train_dictionary(SHARD).unwrap();
    append(RAW + EACH..lines.len() as u64);
    c.close().unwrap();
    let sizes: Vec<u64> = std::fs::read_dir(t.path().join("shard-0000"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".zdict"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert!(sizes.len() == 2 && sizes.iter().all(|&n| n > 48 << 10), "two dictionaries near 64 KiB: {sizes:?}");

    let (ecfg, budget) = embedded();

    let base = start();
    let mut log = Log::open(t.path(), ecfg, comet_embedded::now_ns()).unwrap();
    let mut buf = vec![0u8; 4096];
    let (mut compressed, mut switches, mut last) = (0, 0, None);
    // Alternate between the two dictionaries' entries.
    for k in 0..400u64 {
        let i = RAW + (k % 2) * EACH + k * 37 % EACH;
        let e = log.read_into(SHARD, i, &mut buf).unwrap();
        assert_eq!(&buf[..e.len], &lines[i as usize][..], "entry {i}");
        compressed += u64::from(e.compressed);
        let side = i >= RAW + EACH;
        switches += u64::from(last.is_some_and(|l| l != side));
        last = Some(side);
    }
    log.close().unwrap();
    let high_water = high_water(base);
    eprintln!("two 64 KiB dictionaries, {switches} switches: heap high-water {high_water} B of a {budget} B budget");
    assert_eq!(compressed, 400, "the entries read must be dictionary frames");
    assert_eq!(switches, 399);
    assert!(high_water <= budget, "heap high-water {high_water} B above the budget {budget} B");
}

/// A dictionary file larger than comet-embedded reads (a valid one from a
/// `comet` writer with a large `dict_max_size`, or one grown by damage) is a
/// typed `Capacity` error before it is read into memory: the heap stays
/// within the budget.
#[test]
fn a_dictionary_larger_than_comet_embedded_reads_is_refused_before_it_is_loaded() {
    let t = tempfile::tempdir().unwrap();
    let c = writer(t.path(), 4 << 10, 64 << 10);
    let lines: Vec<Vec<u8>> = (0..600).map(json_line).collect();
    for chunk in lines.chunks(100) {
        c.append_shard(SHARD, chunk).unwrap();
        c.sync().unwrap();
    }
    c.close().unwrap();
    // The dictionary file grows to 1 MiB, the format's largest.
    let path = t.path().join("shard-0000/dict-0000032768.zdict");
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1 << 20).unwrap();

    let (ecfg, budget) = embedded();
    let base = start();
    let mut log = Log::open(t.path(), ecfg, comet_embedded::now_ns()).unwrap();
    let mut buf = vec![0u8; 4096];
    match log.read_into(SHARD, 599, &mut buf) {
        Err(comet_embedded::Error::Capacity { needed, available, .. }) => {
            assert!(needed > available, "{needed} {available}");
        }
        other => panic!("expected a Capacity error, got {other:?}"),
    }
    log.close().unwrap();
    let high_water = high_water(base);
    assert!(high_water <= budget, "heap high-water {high_water} B above the budget {budget} B");
}

//! Compressed appends and reads of realistic JSON log lines (250-450
//! bytes, five services' shapes; the Go package's
//! `BenchmarkWrite_CompressionComparison`), batches of 100:
//!
//! * `json_append_batch_100`: `comet_zstd` (`compression.min_compress_size
//!   = 256`, level 3: every line is compressed on its own), `comet_raw`
//!   (compression off) and `write_floor` (bare `write(2)`s of the raw
//!   bytes);
//! * `json_read_batch_100`: `Reader::read_batch` of the same lines stored
//!   compressed (`comet_zstd`, decompressed into owned buffers) and raw
//!   (`comet_raw`, zero-copy).
//!
//! The compression ratio is printed with the figures.

use std::hint::black_box;

use comet::Message;
use comet_benches::data::json_lines;
use comet_benches::floor::WriteFloor;
use comet_benches::meter::timed;
use comet_benches::mode::{Timing, pick};
use comet_benches::rig::{self, Rig};
use criterion::{Criterion, Throughput};

const BATCH: usize = 100;

fn config(compress: bool) -> comet::Config {
    let mut c = rig::config();
    c.compression.min_compress_size = if compress { 256 } else { u32::MAX };
    c
}

fn append(c: &mut Criterion) {
    let lines = json_lines(BATCH * 10);
    let batches: Vec<&[Vec<u8>]> = lines.chunks(BATCH).collect();
    let raw_bytes: usize = lines.iter().map(|l| l.len() + 12).sum::<usize>() / 10;
    let reset_at = pick(1 << 20, 64 << 20, 64 << 20);
    let mut g = c.benchmark_group("json_append_batch_100");
    Timing::FAST.apply(&mut g);
    g.throughput(Throughput::Elements(BATCH as u64));
    for (function, compress) in [("comet_zstd", true), ("comet_raw", false)] {
        let mut rig = Rig::new(config(compress), &[1], reset_at);
        let stream = rig::stream(1);
        let id = format!("json_append_batch_100/{function}");
        let mut k = 0;
        g.bench_function(function, |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, BATCH as u64, |m| {
                    for _ in 0..iters {
                        black_box(rig.client().append(&stream, batches[k]).unwrap());
                        k = (k + 1) % batches.len();
                        if rig.note(raw_bytes as u64) {
                            m.pause();
                            rig.reset();
                            m.resume();
                        }
                    }
                })
            });
        });
        let stats = rig.client().shard_stats(rig::shard(1)).unwrap();
        eprintln!("{id}: compression ratio (raw/stored) {:.2}", stats.compression_ratio);
    }
    let mut floor = WriteFloor::buffered(rig::config().storage.write_buffer_size as usize, reset_at);
    g.bench_function("write_floor", |b| {
        b.iter_custom(|iters| {
            timed("json_append_batch_100/write_floor", iters, BATCH as u64, |m| {
                for _ in 0..iters {
                    floor.append(raw_bytes);
                    if floor.needs_reset() {
                        m.pause();
                        floor.reset();
                        m.resume();
                    }
                }
            })
        });
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let n = pick(2_000usize, 100_000, 300_000);
    let lines = json_lines(4096);
    let mut g = c.benchmark_group("json_read_batch_100");
    Timing::FAST.apply(&mut g);
    g.throughput(Throughput::Elements(BATCH as u64));
    for (function, compress) in [("comet_zstd", true), ("comet_raw", false)] {
        let rig = Rig::new(config(compress), &[1], u64::MAX);
        rig::fill(rig.client(), 1, n, |i| lines[i % lines.len()].clone());
        let stats = rig.client().shard_stats(rig::shard(1)).unwrap();
        eprintln!(
            "json_read_batch_100/{function}: {} entries, {} bytes on disk, ratio {:.2}",
            n, stats.bytes, stats.compression_ratio
        );
        let mut reader = rig.client().reader(rig::shard(1)).unwrap();
        let mut out: Vec<Message> = Vec::with_capacity(BATCH);
        let mut from = 0u64;
        let id = format!("json_read_batch_100/{function}");
        g.bench_function(function, |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, BATCH as u64, |_| {
                    for _ in 0..iters {
                        out.clear();
                        let got = reader.read_batch(from, BATCH, &mut out).unwrap();
                        for m in &out {
                            black_box(m.data());
                        }
                        from += got as u64;
                        if got < BATCH {
                            from = 0;
                        }
                    }
                })
            });
        });
    }
    g.finish();
}

criterion::criterion_group!(benches, append, read);
comet_benches::bench_main!("compression"; benches);

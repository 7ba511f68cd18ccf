//! Compressed appends and reads of realistic JSON log lines (250-450
//! bytes, five services' shapes; the Go package's
//! `BenchmarkWrite_CompressionComparison`), batches of 100:
//!
//! * `json_append_batch_100`: `comet_zstd` (`compression.min_compress_size
//!   = 256`, level 3: every line is compressed on its own), `comet_raw`
//!   (compression off), `comet_zstd_dict` (`compression.dictionary`: a
//!   16 KiB dictionary trained on 1000 of the lines with
//!   `Client::train_dictionary` before measuring, after every rig reset
//!   too; every line compressed with it) and `write_floor` (bare
//!   `write(2)`s of the raw bytes);
//! * `json_read_batch_100`: `Reader::read_batch` of the same lines stored
//!   compressed (`comet_zstd`, decompressed into owned buffers), with the
//!   dictionary (`comet_zstd_dict`; the 1000 raw priming entries are not
//!   read) and raw (`comet_raw`, zero-copy).
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Raw,
    Zstd,
    Dict,
}

const MODES: [(&str, Mode); 3] =
    [("comet_zstd", Mode::Zstd), ("comet_raw", Mode::Raw), ("comet_zstd_dict", Mode::Dict)];

fn config(mode: Mode) -> comet::Config {
    let mut c = rig::config();
    c.compression.min_compress_size = if mode == Mode::Zstd { 256 } else { u32::MAX };
    c.compression.dictionary = mode == Mode::Dict;
    c
}

/// Entries appended (raw) and trained on before a dictionary case.
const PRIME: usize = 1000;

/// For the dictionary case: appends [`PRIME`] lines and trains the shard's
/// dictionary on them. Returns the next entry number.
fn prime(client: &comet::Client, mode: Mode, lines: &[Vec<u8>]) -> u64 {
    if mode != Mode::Dict {
        return 0;
    }
    let next = rig::fill(client, 1, PRIME, |i| lines[i % lines.len()].clone());
    client.train_dictionary(rig::shard(1)).unwrap_or_else(|e| panic!("train: {e}"));
    next
}

fn append(c: &mut Criterion) {
    let lines = json_lines(BATCH * 10);
    let batches: Vec<&[Vec<u8>]> = lines.chunks(BATCH).collect();
    let raw_bytes: usize = lines.iter().map(|l| l.len() + 12).sum::<usize>() / 10;
    let reset_at = pick(1 << 20, 64 << 20, 64 << 20);
    let mut g = c.benchmark_group("json_append_batch_100");
    Timing::FAST.apply(&mut g);
    g.throughput(Throughput::Elements(BATCH as u64));
    for (function, mode) in MODES {
        let mut rig = Rig::new(config(mode), &[1], reset_at);
        prime(rig.client(), mode, &lines);
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
                            prime(rig.client(), mode, &lines);
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
    for (function, mode) in MODES {
        let rig = Rig::new(config(mode), &[1], u64::MAX);
        let start = prime(rig.client(), mode, &lines);
        rig::fill(rig.client(), 1, n, |i| lines[i % lines.len()].clone());
        let stats = rig.client().shard_stats(rig::shard(1)).unwrap();
        eprintln!(
            "json_read_batch_100/{function}: {} entries, {} bytes on disk, ratio {:.2}",
            n, stats.bytes, stats.compression_ratio
        );
        let mut reader = rig.client().reader(rig::shard(1)).unwrap();
        let mut out: Vec<Message> = Vec::with_capacity(BATCH);
        let mut from = start;
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
                            from = start;
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

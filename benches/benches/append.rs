//! Buffered appends (the Go package's `BenchmarkWrite_*` set): one entry,
//! and batches of 10, 100, 1,000 and 10,000 entries of 100 bytes, each
//! beside its floor — bare `write(2)`s of the same bytes in the same
//! buffer-sized chunks — in the same run.
//!
//! Groups are `append_single`, `append_batch_<n>` and
//! `append_batch_100_buffer_4096KiB` (a 4 MiB write buffer); functions
//! `comet…` and `write_floor`. `append_single/comet_stream_at` stamps with
//! the caller's time (`Client::append_at`, read once per 256 appends). The CPU report at the end gives user-space CPU per
//! entry (docs/DESIGN.md §8: <= 60 ns single, <= 15 ns per entry in batches of
//! 100).

use std::hint::black_box;

use comet_benches::data::{STORED_LEN, log_entries, log_entry};
use comet_benches::floor::WriteFloor;
use comet_benches::meter::timed;
use comet_benches::mode::{Timing, pick};
use comet_benches::rig::{self, Rig};
use criterion::{Criterion, Throughput};

/// Start over (outside the measured time) after this many bytes.
fn reset_at() -> u64 {
    pick(1 << 20, 64 << 20, 64 << 20)
}

fn buffer_size() -> usize {
    rig::config().storage.write_buffer_size as usize
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_single");
    Timing::FAST.apply(&mut g);
    g.throughput(Throughput::Elements(1));
    let entry = log_entry(42);
    let stream = rig::stream(1);
    let shard = rig::shard(1);
    {
        let mut rig = Rig::new(rig::config(), &[1], reset_at());
        g.bench_function("comet_stream", |b| {
            b.iter_custom(|iters| {
                timed("append_single/comet_stream", iters, 1, |m| {
                    for _ in 0..iters {
                        black_box(rig.client().append(&stream, &[entry.as_slice()]).unwrap());
                        if rig.note(STORED_LEN as u64) {
                            m.pause();
                            rig.reset();
                            m.resume();
                        }
                    }
                })
            });
        });
        // The caller's clock (`Client::append_at`, D-55): a timestamp read
        // once per 256 appends, inside the measured time.
        g.bench_function("comet_stream_at", |b| {
            b.iter_custom(|iters| {
                timed("append_single/comet_stream_at", iters, 1, |m| {
                    let mut now = 0;
                    for i in 0..iters {
                        if i % 256 == 0 {
                            now = comet::unix_ns(std::time::SystemTime::now());
                        }
                        black_box(rig.client().append_at(&stream, now, &[entry.as_slice()]).unwrap());
                        if rig.note(STORED_LEN as u64) {
                            m.pause();
                            rig.reset();
                            m.resume();
                        }
                    }
                })
            });
        });
        g.bench_function("comet_shard", |b| {
            b.iter_custom(|iters| {
                timed("append_single/comet_shard", iters, 1, |m| {
                    for _ in 0..iters {
                        black_box(rig.client().append_shard(shard, &[entry.as_slice()]).unwrap());
                        if rig.note(STORED_LEN as u64) {
                            m.pause();
                            rig.reset();
                            m.resume();
                        }
                    }
                })
            });
        });
    }
    let mut floor = WriteFloor::buffered(buffer_size(), reset_at());
    g.bench_function("write_floor", |b| {
        b.iter_custom(|iters| {
            timed("append_single/write_floor", iters, 1, |m| {
                for _ in 0..iters {
                    floor.append(STORED_LEN);
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

fn batches(c: &mut Criterion) {
    let default_buffer = buffer_size();
    // The last case: the same batches through a 4 MiB write buffer (as in
    // `Config::high_throughput`), so a full buffer — and the background
    // sync it triggers — comes 64 times less often.
    let cases = [
        (10usize, default_buffer),
        (100, default_buffer),
        (1_000, default_buffer),
        (10_000, default_buffer),
        (100, 4 << 20),
    ];
    for (n, buffer) in cases {
        let name = if buffer == default_buffer {
            format!("append_batch_{n}")
        } else {
            format!("append_batch_{n}_buffer_{}KiB", buffer >> 10)
        };
        let mut g = c.benchmark_group(&name);
        Timing::FAST.apply(&mut g);
        g.throughput(Throughput::Elements(n as u64));
        let batch = log_entries(n);
        let stream = rig::stream(1);
        let bytes = n * STORED_LEN;
        {
            let mut config = rig::config();
            config.storage.write_buffer_size = u32::try_from(buffer).unwrap();
            let mut rig = Rig::new(config, &[1], reset_at());
            let id = format!("{name}/comet");
            g.bench_function("comet", |b| {
                b.iter_custom(|iters| {
                    timed(&id, iters, n as u64, |m| {
                        for _ in 0..iters {
                            black_box(rig.client().append(&stream, &batch).unwrap());
                            if rig.note(bytes as u64) {
                                m.pause();
                                rig.reset();
                                m.resume();
                            }
                        }
                    })
                });
            });
        }
        let mut floor = WriteFloor::buffered(buffer, reset_at());
        let id = format!("{name}/write_floor");
        g.bench_function("write_floor", |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, n as u64, |m| {
                    for _ in 0..iters {
                        floor.append(bytes);
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
}

criterion::criterion_group!(benches, single, batches);
comet_benches::bench_main!("append"; benches);

//! Durable appends (`storage.durable_appends`: the append returns after
//! its bytes are synced and visible), one entry and batches of 100, each
//! beside its floor: one bare `write` + `fdatasync` of the same bytes.
//! docs/DESIGN.md §8: within 1.1x of the floor.
//!
//! Also `append_then_sync`: a buffered append of 100 followed by
//! `Client::sync()`, the other way to get the same guarantee.

use std::hint::black_box;

use comet_benches::data::{STORED_LEN, log_entries};
use comet_benches::floor::WriteFloor;
use comet_benches::meter::timed;
use comet_benches::mode::{Timing, pick};
use comet_benches::rig::{self, Rig};
use criterion::{Criterion, Throughput};

fn reset_at() -> u64 {
    pick(1 << 20, 16 << 20, 16 << 20)
}

fn durable(c: &mut Criterion) {
    for n in [1usize, 100] {
        let name = if n == 1 { "durable_single".to_string() } else { format!("durable_batch_{n}") };
        let mut g = c.benchmark_group(&name);
        Timing::SLOW.apply(&mut g);
        g.throughput(Throughput::Elements(n as u64));
        let batch = log_entries(n);
        let stream = rig::stream(1);
        let bytes = (n * STORED_LEN) as u64;
        {
            let mut config = rig::config();
            config.storage.durable_appends = true;
            let mut rig = Rig::new(config, &[1], reset_at());
            let id = format!("{name}/comet");
            g.bench_function("comet", |b| {
                b.iter_custom(|iters| {
                    timed(&id, iters, n as u64, |m| {
                        for _ in 0..iters {
                            black_box(rig.client().append(&stream, &batch).unwrap());
                            if rig.note(bytes) {
                                m.pause();
                                rig.reset();
                                m.resume();
                            }
                        }
                    })
                });
            });
        }
        {
            let mut rig = Rig::new(rig::config(), &[1], reset_at());
            let id = format!("{name}/comet_append_then_sync");
            g.bench_function("comet_append_then_sync", |b| {
                b.iter_custom(|iters| {
                    timed(&id, iters, n as u64, |m| {
                        for _ in 0..iters {
                            black_box(rig.client().append(&stream, &batch).unwrap());
                            rig.client().sync().unwrap();
                            if rig.note(bytes) {
                                m.pause();
                                rig.reset();
                                m.resume();
                            }
                        }
                    })
                });
            });
        }
        let mut floor = WriteFloor::durable(reset_at());
        let id = format!("{name}/write_fdatasync_floor");
        g.bench_function("write_fdatasync_floor", |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, n as u64, |m| {
                    for _ in 0..iters {
                        floor.append(n * STORED_LEN);
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

criterion::criterion_group!(benches, durable);
comet_benches::bench_main!("durable"; benches);

//! Segment rotation under concurrent load (the Go package's
//! `BenchmarkFileRotation`): 4 writer threads append single ~100-byte
//! entries to one shard whose `storage.max_file_size` is 1 KiB, 10 KiB or
//! 100 KiB. Group `rotation_<size>`, one element per append.
//!
//! A rotation seals the segment (sync), creates the next file, and
//! rewrites `index.bin` (temp file, fsync, rename, directory fsync), so the
//! figures are dominated by fsyncs. The directory is started afresh
//! (outside the measured time) every 256 segments, which bounds the
//! manifest that every rotation rewrites.
#![allow(clippy::cast_possible_truncation)] // bench sizes fit in usize on the 64-bit hosts benches run on

use std::hint::black_box;

use comet_benches::data::{STORED_LEN, log_entry};
use comet_benches::meter::timed;
use comet_benches::mode::Timing;
use comet_benches::rig::{self, Rig};
use criterion::{Criterion, Throughput};

const WRITERS: u64 = 4;

fn rotation(c: &mut Criterion) {
    for kib in [1u64, 10, 100] {
        let name = format!("rotation_{kib}KiB");
        let mut g = c.benchmark_group(&name);
        Timing::SLOW.apply(&mut g);
        g.throughput(Throughput::Elements(1));
        let mut config = rig::config();
        config.storage.max_file_size = kib << 10;
        let mut rig = Rig::new(config, &[0], (kib << 10) * 256);
        let stream = rig::stream(0);
        let entries: Vec<Vec<u8>> = (0..WRITERS as usize).map(|w| log_entry(w * 1_000_000)).collect();
        let id = format!("{name}/comet_4_writers");
        g.bench_function("comet_4_writers", |b| {
            b.iter_custom(|iters| {
                if rig.needs_reset() {
                    rig.reset();
                }
                let per = iters.div_ceil(WRITERS);
                let client = rig.client().clone();
                let wall = timed(&id, per * WRITERS, 1, |_| {
                    std::thread::scope(|s| {
                        for e in &entries {
                            let (client, stream) = (&client, &stream);
                            s.spawn(move || {
                                for _ in 0..per {
                                    black_box(client.append(stream, &[e.as_slice()]).unwrap());
                                }
                            });
                        }
                    });
                });
                rig.note(per * WRITERS * STORED_LEN as u64);
                // criterion divides by `iters`; we ran `per * WRITERS`.
                wall.mul_f64(iters as f64 / (per * WRITERS) as f64)
            });
        });
        g.finish();
    }
}

criterion::criterion_group!(benches, rotation);
comet_benches::bench_main!("rotation"; benches);

//! Random access: 5 reads of random entries through one `Reader`
//! (docs/DESIGN.md §8: <= 1 µs for the five), page cache hot, in three shapes:
//!
//! * `active` — the default 256 MiB segments: the shard is one active
//!   segment, which the reader indexes itself (a mark every 64 entries);
//! * `sealed_6_segments` — sealed segments found through the manifest's
//!   checkpoints (one per 100 entries), all within the reader's cache of 8
//!   open maps;
//! * `sealed_32_segments` — more segments than that cache holds, so most
//!   reads map a segment first.
//!
//! Group `random_read_5`; an element is one read.

use std::hint::black_box;

use comet_benches::data::{Rng, STORED_LEN, log_entry};
use comet_benches::meter::timed;
use comet_benches::mode::{Timing, pick};
use comet_benches::rig::{self, Rig};
use criterion::{Criterion, Throughput};

fn random_reads(c: &mut Criterion) {
    let n = pick(5_000usize, 300_000, 1_000_000);
    let mut g = c.benchmark_group("random_read_5");
    Timing::FAST.apply(&mut g);
    g.throughput(Throughput::Elements(5));
    for (shape, segments) in [("active", 1u64), ("sealed_6_segments", 6), ("sealed_32_segments", 32)] {
        let mut config = rig::config();
        if segments > 1 {
            // `segments` sealed ones plus a small active one.
            let per = (n as u64 * STORED_LEN as u64 / segments).div_ceil(1024) * 1024;
            config.storage.max_file_size = per.max(1024);
        }
        let rig = Rig::new(config, &[0], u64::MAX);
        rig::fill(rig.client(), 0, n, log_entry);
        let mut reader = rig.client().reader(rig::shard(0)).unwrap();
        let mut rng = Rng::new(7);
        let picks: Vec<u64> = (0..4096).map(|_| rng.below(n as u64)).collect();
        let mut k = 0usize;
        let id = format!("random_read_5/{shape}");
        g.bench_function(shape, |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, 5, |_| {
                    for _ in 0..iters {
                        for _ in 0..5 {
                            let m = reader.read(picks[k]).unwrap();
                            black_box(m.data());
                            k = (k + 1) & 4095;
                        }
                    }
                })
            });
        });
    }
    g.finish();
}

criterion::criterion_group!(benches, random_reads);
comet_benches::bench_main!("reader"; benches);

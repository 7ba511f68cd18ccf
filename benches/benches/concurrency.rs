//! Concurrent writers on many shards (the Go package's
//! `BenchmarkShardStress` / `BenchmarkWrite_ConcurrentMultiShard`): 1 or 4
//! threads append single 100-byte entries (and batches of 10),
//! round-robin over 16 or 256 shards, thread `t` writing shards `t, t+4,
//! …`. Group `concurrent_<shards>_shards`, one element per entry. The
//! machine has 2 cores, so 4 threads measure contention, not scaling.

use std::hint::black_box;

use comet_benches::data::log_entries;
use comet_benches::meter::timed;
use comet_benches::mode::{Timing, pick};
use comet_benches::rig::{self, Rig};
use criterion::{Criterion, Throughput};

fn concurrency(c: &mut Criterion) {
    let shard_counts = pick(vec![16u32, 64], vec![16, 256], vec![16, 256, 1024]);
    for shards in shard_counts {
        let name = format!("concurrent_{shards}_shards");
        let mut g = c.benchmark_group(&name);
        Timing::FAST.apply(&mut g);
        let ids: Vec<u32> = (0..shards).collect();
        // Never reset inside a measurement: closing and reopening hundreds
        // of shards takes seconds, which would skew criterion's warm-up
        // estimate. Start afresh between functions instead.
        let mut rig = Rig::new(rig::config(), &ids, u64::MAX);
        for (k, (threads, batch)) in [(1u64, 1usize), (4, 1), (4, 10)].into_iter().enumerate() {
            let entries = log_entries(batch);
            let function = format!("comet_{threads}_threads_batch_{batch}");
            let id = format!("{name}/{function}");
            g.throughput(Throughput::Elements(batch as u64));
            if k > 0 {
                rig.reset();
            }
            g.bench_function(&function, |b| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(threads);
                    let client = rig.client().clone();
                    let wall = timed(&id, per * threads, batch as u64, |_| {
                        std::thread::scope(|s| {
                            for t in 0..threads {
                                let (client, entries) = (&client, &entries);
                                s.spawn(move || {
                                    let mine: Vec<_> =
                                        (0..shards).filter(|s| u64::from(*s) % threads == t).map(rig::shard).collect();
                                    let mut k = 0;
                                    for _ in 0..per {
                                        black_box(client.append_shard(mine[k], entries).unwrap());
                                        k += 1;
                                        if k == mine.len() {
                                            k = 0;
                                        }
                                    }
                                });
                            }
                        });
                    });
                    wall.mul_f64(iters as f64 / (per * threads) as f64)
                });
            });
        }
        g.finish();
    }
}

criterion::criterion_group!(benches, concurrency);
comet_benches::bench_main!("concurrency"; benches);

//! Consumer groups: acks (the Go package's `BenchmarkConsumerAck`
//! `SingleAck` and `BatchAckMultiShard`), sequential consumption (read +
//! ack in batches of 50 and 100, as the `process` loop does it), and the
//! lag query, all with the page cache hot.
//!
//! docs/DESIGN.md §8: ack <= 20 ns; sequential consume >= 20 M entries/s (a
//! bare mmap scan, `mmap_scan_floor` here, does about 120 M/s).

use std::hint::black_box;

use comet::{Message, MessageId};
use comet_benches::data::log_entry;
use comet_benches::meter::timed;
use comet_benches::mode::{Timing, pick};
use comet_benches::rig::{self, Rig};
use criterion::{Criterion, Throughput};

const SHARDS: [u32; 4] = [0, 1, 2, 3];

/// Entries per shard.
fn entries() -> usize {
    pick(2_000, 300_000, 1_000_000)
}

fn acks(c: &mut Criterion, rig: &Rig, n: u64) {
    let client = rig.client();
    let mut consumer = rig::consumer(client, "bench-acks");
    {
        let mut g = c.benchmark_group("ack_single");
        Timing::FAST.apply(&mut g);
        g.throughput(Throughput::Elements(1));
        // `comet` acks ids below the offset once `e` wrapped (after the
        // first `n` acks: nearly every measured ack); in `comet_advancing`
        // every ack moves the offset by one, the group being reset outside
        // the measured time.
        for (function, group, reset) in
            [("comet", "bench-acks", false), ("comet_advancing", "bench-acks-advancing", true)]
        {
            let mut acker = rig::consumer(client, group);
            let id = format!("ack_single/{function}");
            let mut e = 0u64;
            g.bench_function(function, |b| {
                b.iter_custom(|iters| {
                    timed(&id, iters, 1, |m| {
                        for _ in 0..iters {
                            acker.ack(&[rig::id(0, e)]).unwrap();
                            e += 1;
                            if e == n {
                                e = 0;
                                if reset {
                                    m.pause();
                                    acker.reset_offset(rig::shard(0), 0).unwrap();
                                    m.resume();
                                }
                            }
                        }
                    })
                });
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("ack_batch_4_shards");
        Timing::FAST.apply(&mut g);
        g.throughput(Throughput::Elements(4));
        let mut e = 0u64;
        g.bench_function("comet", |b| {
            b.iter_custom(|iters| {
                timed("ack_batch_4_shards/comet", iters, 4, |_| {
                    for _ in 0..iters {
                        let ids: [MessageId; 4] = SHARDS.map(|s| rig::id(s, e));
                        consumer.ack(&ids).unwrap();
                        e += 1;
                        if e == n {
                            e = 0;
                        }
                    }
                })
            });
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("lag");
        Timing::FAST.apply(&mut g);
        g.throughput(Throughput::Elements(1));
        g.bench_function("comet", |b| {
            b.iter_custom(|iters| {
                timed("lag/comet", iters, 1, |_| {
                    for _ in 0..iters {
                        black_box(consumer.lag(rig::shard(0)).unwrap());
                    }
                })
            });
        });
        g.finish();
    }
}

/// The active segment's file of shard 0 (the shard fits in one segment).
fn segment_path(rig: &Rig) -> std::path::PathBuf {
    let dir = rig.dir().join("shard-0000");
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "comet"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "the consume benches expect one segment: {segs:?}");
    segs.remove(0)
}

fn consume(c: &mut Criterion, rig: &Rig, n: u64) {
    let client = rig.client();
    let shard = rig::shard(0);
    let seg = std::fs::File::open(segment_path(rig)).unwrap();
    // SAFETY: the segment is append-only and nothing truncates it while
    // the bench runs; only bytes below the durable end are read.
    let map = unsafe { memmap2::Mmap::map(&seg).unwrap() };
    for batch in [50usize, 100] {
        let name = format!("consume_batch_{batch}");
        let mut g = c.benchmark_group(&name);
        Timing::FAST.apply(&mut g);
        g.throughput(Throughput::Elements(batch as u64));
        let group = format!("bench-consume-{batch}");
        let mut consumer = rig::consumer(client, &group);
        let mut out: Vec<Message> = Vec::with_capacity(batch);
        let mut ids: Vec<MessageId> = Vec::with_capacity(batch);
        let id = format!("{name}/comet_read_ack");
        g.bench_function("comet_read_ack", |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, batch as u64, |m| {
                    for _ in 0..iters {
                        out.clear();
                        let got = consumer.read_shard(shard, batch, &mut out).unwrap();
                        ids.clear();
                        ids.extend(out.iter().map(|msg| msg.id));
                        for msg in &out {
                            black_box(msg.data());
                        }
                        consumer.ack(&ids).unwrap();
                        if got < batch {
                            m.pause();
                            consumer.reset_offset(shard, 0).unwrap();
                            m.resume();
                        }
                    }
                })
            });
        });
        // The same loop through a `LentBatch`: payloads lent from the
        // mappings, no reference count per message; acked up to its last id.
        let mut lent_consumer = rig::consumer(client, &format!("{group}-lent"));
        let mut lent = comet::LentBatch::new();
        let id = format!("{name}/comet_read_ack_lent");
        g.bench_function("comet_read_ack_lent", |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, batch as u64, |m| {
                    for _ in 0..iters {
                        let got = lent_consumer.read_shard_lent(shard, batch, &mut lent).unwrap();
                        for e in lent.iter() {
                            black_box(e.data);
                        }
                        if let Some(last) = lent.last_id() {
                            lent_consumer.ack_up_to(last).unwrap();
                        }
                        if got < batch {
                            m.pause();
                            lent_consumer.reset_offset(shard, 0).unwrap();
                            m.resume();
                        }
                    }
                })
            });
        });
        let mut reader = client.reader(shard).unwrap();
        let mut from = 0u64;
        let id = format!("{name}/comet_reader_read_batch");
        g.bench_function("comet_reader_read_batch", |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, batch as u64, |_| {
                    for _ in 0..iters {
                        out.clear();
                        let got = reader.read_batch(from, batch, &mut out).unwrap();
                        for msg in &out {
                            black_box(msg.data());
                        }
                        from += got as u64;
                        if got < batch {
                            from = 0;
                        }
                    }
                })
            });
        });
        let bytes: &[u8] = &map;
        let mut off = 0usize;
        let mut seen = 0u64;
        let id = format!("{name}/mmap_scan_floor");
        g.bench_function("mmap_scan_floor", |b| {
            b.iter_custom(|iters| {
                timed(&id, iters, batch as u64, |_| {
                    for _ in 0..iters {
                        for _ in 0..batch {
                            let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
                            let ts = u64::from_le_bytes(bytes[off + 4..off + 12].try_into().unwrap());
                            black_box((ts, &bytes[off + 12..off + 12 + len]));
                            off += 12 + len;
                            seen += 1;
                            if seen == n {
                                (off, seen) = (0, 0);
                            }
                        }
                    }
                })
            });
        });
        g.finish();
    }
}

fn consumer_benches(c: &mut Criterion) {
    let n = entries();
    let rig = Rig::new(rig::config(), &SHARDS, u64::MAX);
    for s in SHARDS {
        let durable = rig::fill(rig.client(), s, n, log_entry);
        assert_eq!(durable, n as u64);
    }
    acks(c, &rig, n as u64);
    consume(c, &rig, n as u64);
}

criterion::criterion_group!(benches, consumer_benches);
comet_benches::bench_main!("consumer"; benches);

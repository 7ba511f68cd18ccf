//! Wake-up latency of a blocked reader (same process): a thread blocks in
//! `Client::wait_for` (or `Consumer::tail`) for the next entry; the bench
//! thread appends one entry, lets the waiter park, and calls `sync()`.
//!
//! The durable point (head published, waiters notified) lies inside
//! `sync()`, after its fsync. To time from there, the shard lives on tmpfs
//! (`/dev/shm`, where fsync costs nothing), and the latency is taken from
//! the *start* of `sync()` to the waiter running again: an upper bound
//! that includes the flush and the head publish. The lower bound, from
//! `sync()` returning, is printed beside it. `condvar_floor` is the bare
//! hand-off through a `Mutex` + `Condvar`, timed from before the lock.
//! docs/DESIGN.md §8: <= 50 µs median.
//!
//! Criterion sees only the summed latencies, while each iteration also
//! sleeps, so the measurement time is set short: the wall time of the
//! group is several times what criterion reports.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use comet_benches::data::log_entry;
use comet_benches::meter::{Meter, timed};
use comet_benches::rig::{self, Rig};
use criterion::Criterion;

/// Lets the waiter get back into its blocking wait.
const PARK: Duration = Duration::from_micros(200);

fn measure(id: &str, iters: u64, mut one: impl FnMut() -> Duration) -> Duration {
    timed(id, iters, 1, |m: &mut Meter| {
        m.pause();
        for _ in 0..iters {
            m.add_wall(one());
        }
    })
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn tmpfs() -> Option<PathBuf> {
    let p = PathBuf::from("/dev/shm");
    p.is_dir().then_some(p)
}

fn comet_waiters(c: &mut Criterion) {
    let mut g = c.benchmark_group("tail_wake");
    g.sample_size(10).warm_up_time(Duration::from_millis(100)).measurement_time(Duration::from_millis(500));
    let entry = log_entry(1);
    let root = tmpfs();
    for waiter_kind in ["client_wait_for", "consumer_tail"] {
        // No periodic flush in between: only the bench's sync wakes the waiter.
        let mut config = rig::config();
        config.storage.flush_interval = Duration::from_secs(3600);
        let rig = Rig::new_in(root.clone(), config, &[0], u64::MAX);
        let client = rig.client().clone();
        let shard = rig::shard(0);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Instant>();
        let waiter = {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut consumer = rig::consumer(&client, "bench-tail");
                let mut next = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let woke = if waiter_kind == "consumer_tail" {
                        let got = consumer.tail(shard, 1, Duration::from_millis(50)).unwrap();
                        let t = Instant::now();
                        if let Some(m) = got.last() {
                            consumer.ack(&[m.id]).unwrap();
                        }
                        (!got.is_empty()).then_some(t)
                    } else {
                        let ok = client.wait_for(shard, next, Duration::from_millis(50)).unwrap();
                        ok.then(Instant::now)
                    };
                    if let Some(t) = woke {
                        next += 1;
                        if tx.send(t).is_err() {
                            return;
                        }
                    }
                }
            })
        };
        let id = format!("tail_wake/{waiter_kind}");
        let mut from_return = Vec::new();
        let mut sync_took = Vec::new();
        g.bench_function(waiter_kind, |b| {
            b.iter_custom(|iters| {
                measure(&id, iters, || {
                    client.append_shard(shard, &[entry.as_slice()]).unwrap();
                    std::thread::sleep(PARK);
                    let start = Instant::now();
                    client.sync().unwrap();
                    let synced = Instant::now();
                    let woke = rx.recv().unwrap();
                    from_return.push(woke.saturating_duration_since(synced));
                    sync_took.push(synced - start);
                    woke.saturating_duration_since(start)
                })
            });
        });
        eprintln!(
            "{id}: median from sync() returning {:.1?}; median sync() duration {:.1?} ({})",
            median(&mut from_return),
            median(&mut sync_took),
            if root.is_some() { "tmpfs" } else { "disk" }
        );
        stop.store(true, Ordering::Release);
        drop(rx);
        waiter.join().unwrap();
    }
    g.finish();
}

fn condvar_floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("tail_wake");
    g.sample_size(10).warm_up_time(Duration::from_millis(100)).measurement_time(Duration::from_millis(500));
    let pair = Arc::new((Mutex::new(0u64), Condvar::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Instant>();
    let waiter = {
        let (pair, stop) = (pair.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::Acquire) {
                let (m, cv) = &*pair;
                let mut g = m.lock().unwrap();
                while *g == seen && !stop.load(Ordering::Acquire) {
                    g = cv.wait_timeout(g, Duration::from_millis(50)).unwrap().0;
                }
                if *g != seen {
                    let t = Instant::now();
                    seen = *g;
                    drop(g);
                    if tx.send(t).is_err() {
                        return;
                    }
                }
            }
        })
    };
    g.bench_function("condvar_floor", |b| {
        b.iter_custom(|iters| {
            measure("tail_wake/condvar_floor", iters, || {
                std::thread::sleep(PARK);
                let (m, cv) = &*pair;
                let start = Instant::now();
                *m.lock().unwrap() += 1;
                cv.notify_all();
                rx.recv().unwrap().saturating_duration_since(start)
            })
        });
    });
    stop.store(true, Ordering::Release);
    drop(rx);
    waiter.join().unwrap();
    g.finish();
}

criterion::criterion_group!(benches, comet_waiters, condvar_floor);
comet_benches::bench_main!("wake"; benches);

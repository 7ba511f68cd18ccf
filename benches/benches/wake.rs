//! Wake-up latency of a blocked reader (same process): a thread blocks in
//! `Client::wait_for` (or `Consumer::tail`) for the next entry; the bench
//! thread appends one entry, lets the waiter park, calls `sync()`, and
//! the latency is the time from `sync()` returning to the waiter running
//! again (the wake-up is issued at the end of `sync`, after the head is
//! published, so this is the futex wake plus the waiter's re-check).
//!
//! `condvar_floor` is the same hand-off through a bare `Mutex` +
//! `Condvar` (the futex wake alone). DESIGN.md §8: <= 50 µs median.
//!
//! Criterion sees only the summed latencies, while each iteration also
//! sleeps and fsyncs, so the measurement time is set short: the wall
//! time of the group is about 25 times what criterion reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use comet_benches::data::log_entry;
use comet_benches::meter::Meter;
use comet_benches::meter::timed;
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

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("tail_wake");
    g.sample_size(10).warm_up_time(Duration::from_millis(100)).measurement_time(Duration::from_millis(300));
    let entry = log_entry(1);
    for waiter_kind in ["client_wait_for", "consumer_tail"] {
        // No periodic flush in between: only the bench's sync wakes the waiter.
        let mut config = rig::config();
        config.storage.flush_interval = Duration::from_secs(3600);
        let rig = Rig::new(config, &[0], u64::MAX);
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
                        if let Some(m) = got.last() {
                            consumer.ack(&[m.id]).unwrap();
                        }
                        !got.is_empty()
                    } else {
                        client.wait_for(shard, next, Duration::from_millis(50)).unwrap()
                    };
                    if woke {
                        let t = Instant::now();
                        next += 1;
                        if tx.send(t).is_err() {
                            return;
                        }
                    }
                }
            })
        };
        let id = format!("tail_wake/{waiter_kind}");
        g.bench_function(waiter_kind, |b| {
            b.iter_custom(|iters| {
                measure(&id, iters, || {
                    client.append_shard(shard, &[entry.as_slice()]).unwrap();
                    std::thread::sleep(PARK);
                    client.sync().unwrap();
                    let synced = Instant::now();
                    let woke = rx.recv().unwrap();
                    woke.saturating_duration_since(synced)
                })
            });
        });
        stop.store(true, Ordering::Release);
        drop(rx);
        waiter.join().unwrap();
    }
    {
        // The floor: one Mutex + Condvar hand-off.
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
                        seen = *g;
                        drop(g);
                        if tx.send(Instant::now()).is_err() {
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
                    *m.lock().unwrap() += 1;
                    cv.notify_all();
                    let notified = Instant::now();
                    rx.recv().unwrap().saturating_duration_since(notified)
                })
            });
        });
        stop.store(true, Ordering::Release);
        drop(rx);
        waiter.join().unwrap();
    }
    g.finish();
}

criterion::criterion_group!(benches, wake);
comet_benches::bench_main!("wake"; benches);

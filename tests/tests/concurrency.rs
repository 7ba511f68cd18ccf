//! Threads and clients sharing a directory: locks, batches, readers.

#![allow(clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comet::{Client, Error, ShardId};
use comet_tests::{payload, small_config};

const S1: &str = "events:v1:shard:0001";

fn one() -> ShardId {
    ShardId::new(1).unwrap()
}

#[test]
fn second_writer_on_a_shard_fails_fast_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let a = Client::open(dir.path(), small_config()).unwrap();
    a.append(S1, &[b"a"]).unwrap();
    let b = Client::open(dir.path(), small_config()).unwrap();
    let err = b.append(S1, &[b"b"]).unwrap_err();
    match &err {
        Error::Locked { shard, pid } => {
            assert_eq!(*shard, one());
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&std::process::id().to_string()));
    // other shards are free
    b.append("events:v1:shard:0002", &[b"b"]).unwrap();
    // once the holder closes, the lock is free
    a.close().unwrap();
    assert_eq!(b.append(S1, &[b"b"]).unwrap().entries, 1..2);
}

#[test]
fn reading_before_appending_keeps_numbering_after_existing_entries() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Client::open(dir.path(), small_config()).unwrap();
        for i in 0..100 {
            c.append(S1, &[payload(i)]).unwrap();
        }
        c.close().unwrap();
    }
    let c = Client::open(dir.path(), small_config()).unwrap();
    let mut r = c.reader(one()).unwrap();
    assert_eq!(r.read(42).unwrap().data(), &payload(42)[..]);
    assert_eq!(c.len(S1).unwrap(), 100);
    assert_eq!(c.append(S1, &[payload(100)]).unwrap().entries, 100..101);
    c.sync().unwrap();
    for i in 0..101 {
        assert_eq!(r.read(i).unwrap().data(), &payload(i)[..]);
    }
}

/// Payload naming its writer and sequence, so every id can be checked.
fn tagged(t: u64, k: u64) -> Vec<u8> {
    let mut p = format!("t{t}-k{k}-").into_bytes();
    p.extend(std::iter::repeat_n(b'.', (k % 40) as usize));
    p
}

#[test]
fn concurrent_appends_syncs_and_rotations_never_split_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.max_file_size = 4096;
    cfg.storage.flush_interval = Duration::from_millis(2);
    let c = Client::open(dir.path(), cfg).unwrap();
    let got: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // a reader checking that everything visible is readable, all the time
    let reader = {
        let c = c.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = c.reader(one()).unwrap();
            let mut next = 0;
            while !stop.load(Ordering::Acquire) {
                let (_, end) = r.bounds().unwrap();
                while next < end {
                    r.read(next).unwrap_or_else(|e| panic!("visible entry {next} unreadable: {e}"));
                    next += 1;
                }
            }
            next
        })
    };
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            let got = got.clone();
            std::thread::spawn(move || {
                for k in 0..150u64 {
                    let batch: Vec<Vec<u8>> = (0..(k % 5 + 1)).map(|j| tagged(t, k * 10 + j)).collect();
                    let ids = c.append(S1, &batch).unwrap();
                    assert_eq!(ids.len(), batch.len());
                    let mut g = got.lock().unwrap();
                    for (id, p) in ids.entries.clone().zip(batch) {
                        assert!(g.insert(id, p).is_none(), "id {id} handed out twice");
                    }
                    drop(g);
                    if k % 13 == 0 {
                        c.sync().unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    c.sync().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Release);
    let seen = reader.join().unwrap();
    let got = got.lock().unwrap();
    let n = got.len() as u64;
    assert!(seen <= n);
    assert_eq!(*got.keys().max().unwrap(), n - 1, "dense numbering");
    c.close().unwrap();
    let c = Client::open(dir.path(), cfg).unwrap();
    let mut r = c.reader(one()).unwrap();
    for (id, p) in got.iter() {
        assert_eq!(r.read(*id).unwrap().data(), &p[..], "entry {id}");
    }
    // batches are contiguous: within a batch, sequence numbers are consecutive
    let files = comet_tests::files(&dir.path().join("shard-0001"));
    assert!(files.iter().filter(|f| f.ends_with(".comet")).count() > 5, "rotated: {files:?}");
}

#[test]
fn messages_stay_valid_across_remaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.max_file_size = 1 << 20;
    let c = Client::open(dir.path(), cfg).unwrap();
    let mut r = c.reader(one()).unwrap();
    let mut held = Vec::new();
    for round in 0..50u64 {
        for i in round * 20..round * 20 + 20 {
            c.append(S1, &[payload(i)]).unwrap();
        }
        c.sync().unwrap();
        held.push(r.read(round * 20).unwrap());
    }
    assert!(r.remaps() >= 40, "the reader remapped as the file grew: {}", r.remaps());
    for (round, m) in held.iter().enumerate() {
        assert_eq!(m.data(), &payload(round as u64 * 20)[..]);
    }
}

#[test]
fn readers_never_disturb_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config();
    let c = Client::open(dir.path(), cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut r = c.reader(one()).unwrap();
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let (first, end) = r.bounds().unwrap();
                    for i in first..end {
                        assert_eq!(r.read(i).unwrap().data(), &payload(i)[..]);
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for i in 0..3000 {
        c.append(S1, &[payload(i)]).unwrap();
        if i % 100 == 0 {
            c.sync().unwrap();
        }
    }
    c.sync().unwrap();
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    c.close().unwrap();
    let c = Client::open(dir.path(), cfg).unwrap();
    let mut r = c.reader(one()).unwrap();
    for i in 0..3000 {
        assert_eq!(r.read(i).unwrap().data(), &payload(i)[..]);
    }
    assert!(c.recovery_report(one()).is_none());
}

#[test]
fn many_shards_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    let hs: Vec<_> = (0..8u32)
        .map(|s| {
            let c = c.clone();
            std::thread::spawn(move || {
                let stream = format!("m:shard:{s:04}");
                for i in 0..300 {
                    c.append(&stream, &[payload(i)]).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    c.sync().unwrap();
    assert_eq!(c.shards().unwrap().len(), 8);
    let stats = c.stats().unwrap();
    assert_eq!(stats.entries, 8 * 300);
    for s in 0..8 {
        let mut r = c.reader(ShardId::new(s).unwrap()).unwrap();
        assert_eq!(r.read(299).unwrap().data(), &payload(299)[..]);
    }
}

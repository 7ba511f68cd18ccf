//! Consumer groups: offsets, acks, reads that never skip, the process loop.

#![allow(clippy::cast_possible_truncation)]

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use comet::{
    Client, Config, Consumer, Error, Flow, MessageId, PoisonAction, ProcessOptions, ProcessedMarks, SeekTo, Shards,
};
use comet_tests::{payload, sid, small_config};

fn stream(n: u32) -> String {
    format!("events:v1:shard:{n:04}")
}

fn fill(c: &Client, shard: u32, n: u64) {
    for i in 0..n {
        c.append(&stream(shard), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
}

#[test]
fn reads_do_not_advance_and_acks_are_cumulative() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 10);
    let mut g = Consumer::new(&c, "billing").unwrap();
    let mut out = Vec::new();
    assert_eq!(g.read_shard(sid(1), 4, &mut out).unwrap(), 4);
    let mut again = Vec::new();
    g.read_shard(sid(1), 4, &mut again).unwrap();
    assert_eq!(out.iter().map(|m| m.id).collect::<Vec<_>>(), again.iter().map(|m| m.id).collect::<Vec<_>>());
    g.ack(&[out[3].id]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 4);
    g.ack(&[out[0].id]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 4, "never backwards");
    assert_eq!(g.lag(sid(1)).unwrap(), 6);
    // acking beyond the durable end is capped
    g.ack(&[MessageId { shard: sid(1), entry: 1000 }]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 10);
    assert_eq!(g.lag(sid(1)).unwrap(), 0);
}

#[test]
fn cached_ack_state_follows_other_members_other_groups_and_new_data() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 10);
    let id = |entry| MessageId { shard: sid(1), entry };
    let mut g = Consumer::new(&c, "billing").unwrap();
    g.ack(&[id(2)]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 3);
    // Other groups claim slots (some on the same probe chain) after g
    // cached its slot; another member of the same group acks.
    for i in 0..40 {
        Consumer::new(&c, &format!("other-{i}")).unwrap().ack(&[id(i % 10)]).unwrap();
    }
    let mut h = Consumer::new(&c, "billing").unwrap();
    h.ack(&[id(6)]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 7, "g reads the shared slot");
    g.ack(&[id(4)]).unwrap();
    assert_eq!(h.offset(sid(1)).unwrap(), 7, "never backwards");
    h.seek(sid(1), SeekTo::Entry(1)).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 1);
    g.ack(&[id(3)]).unwrap();
    assert_eq!(h.offset(sid(1)).unwrap(), 4);
    // The cached durable end (10) is refreshed when an ack passes it.
    g.ack(&[id(1000)]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 10);
    fill(&c, 1, 10);
    g.ack(&[id(15)]).unwrap();
    assert_eq!(h.offset(sid(1)).unwrap(), 16);
    g.ack(&[id(1000)]).unwrap();
    assert_eq!(h.offset(sid(1)).unwrap(), 20, "capped at the new durable end");
    for i in 0..40 {
        let off = Consumer::new(&c, &format!("other-{i}")).unwrap().offset(sid(1)).unwrap();
        assert_eq!(off, i % 10 + 1);
    }
    drop((g, h));
    drop(c);
    let c = Client::open(dir.path(), small_config()).unwrap();
    assert_eq!(Consumer::new(&c, "billing").unwrap().offset(sid(1)).unwrap(), 20, "stored in offsets.state");
}

#[test]
fn an_ack_over_more_shards_than_the_inline_array_takes_each_shards_highest() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    let shards: Vec<u32> = (0..13).collect();
    for &s in &shards {
        fill(&c, s, 5);
    }
    let mut ids = Vec::new();
    for entry in [3u64, 1, 4, 0, 2] {
        for &s in shards.iter().rev() {
            // shard s acks up to entry min(e, s % 5)
            ids.push(MessageId { shard: sid(s), entry: entry.min(u64::from(s % 5)) });
        }
    }
    let mut g = Consumer::new(&c, "wide").unwrap();
    g.ack(&ids).unwrap();
    for &s in &shards {
        assert_eq!(g.offset(sid(s)).unwrap(), u64::from(s % 5) + 1, "shard {s}");
    }
    g.ack(&[]).unwrap();
}

#[test]
fn many_groups_on_one_shard_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 50);
    let mut groups: Vec<Consumer> = (0..20).map(|i| Consumer::new(&c, &format!("group-{i}")).unwrap()).collect();
    for (i, g) in groups.iter_mut().enumerate() {
        g.ack(&[MessageId { shard: sid(1), entry: i as u64 }]).unwrap();
    }
    for (i, g) in groups.iter_mut().enumerate() {
        assert_eq!(g.offset(sid(1)).unwrap(), i as u64 + 1);
    }
    let stats = c.shard_stats(sid(1)).unwrap();
    assert_eq!(stats.groups.len(), 20);
    assert_eq!(stats.groups.iter().find(|g| g.group == "group-7").unwrap().lag, 42);
}

#[test]
fn offsets_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Client::open(dir.path(), small_config()).unwrap();
        fill(&c, 2, 30);
        let mut g = Consumer::new(&c, "audit").unwrap();
        g.ack(&[MessageId { shard: sid(2), entry: 11 }]).unwrap();
        c.close().unwrap();
    }
    let c = Client::open(dir.path(), small_config()).unwrap();
    let mut g = Consumer::new(&c, "audit").unwrap();
    assert_eq!(g.offset(sid(2)).unwrap(), 12);
    let mut out = Vec::new();
    g.read_shard(sid(2), 1, &mut out).unwrap();
    assert_eq!(out[0].id.entry, 12);
    assert_eq!(out[0].data(), &payload(12)[..]);
}

#[test]
fn redelivery_after_a_crash_between_handle_and_ack() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 20);
    let mut g = Consumer::new(&c, "g").unwrap();
    let mut first = Vec::new();
    g.read_shard(sid(1), 5, &mut first).unwrap();
    g.ack(&[first[4].id]).unwrap();
    let mut handled = Vec::new();
    g.read_shard(sid(1), 5, &mut handled).unwrap();
    drop(g); // "crash" after handling 5..10, before the ack
    let mut g = Consumer::new(&c, "g").unwrap();
    let mut again = Vec::new();
    g.read_shard(sid(1), 5, &mut again).unwrap();
    assert_eq!(again.iter().map(|m| m.id.entry).collect::<Vec<_>>(), [5, 6, 7, 8, 9], "at-least-once");
}

#[test]
fn group_names_are_validated_47_48_49() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 3);
    let mut g = Consumer::new(&c, &"g".repeat(47)).unwrap();
    g.ack(&[MessageId { shard: sid(1), entry: 1 }]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 2);
    for bad in ["g".repeat(48), "g".repeat(49), String::new(), "a\0b".into()] {
        assert!(matches!(Consumer::new(&c, &bad), Err(Error::InvalidGroup(_))), "{bad:?}");
    }
}

#[test]
fn a_full_slot_table_is_a_typed_error_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 3);
    for i in 0..512 {
        let mut g = Consumer::new(&c, &format!("g{i}")).unwrap();
        g.ack(&[MessageId { shard: sid(1), entry: 0 }]).unwrap();
    }
    let mut extra = Consumer::new(&c, "one-too-many").unwrap();
    assert!(matches!(extra.ack(&[MessageId { shard: sid(1), entry: 0 }]), Err(Error::Offsets { .. })));
    assert_eq!(extra.offset(sid(1)).unwrap(), 0, "lookups never claim");
    let mut g = Consumer::new(&c, "g300").unwrap();
    g.ack(&[MessageId { shard: sid(1), entry: 2 }]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 3);
}

#[test]
fn a_read_stops_at_an_unreadable_entry_and_never_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.max_file_size = 1 << 20;
    let c = Client::open(dir.path(), cfg).unwrap();
    for i in 0..10u64 {
        c.append(&stream(1), &[format!("entry-{i}")]).unwrap();
    }
    c.sync().unwrap();
    // damage entry 5's header in place: zero timestamp with a length
    let seg = dir.path().join("shard-0001/log-00000000000000000000.comet");
    let mut bytes = fs::read(&seg).unwrap();
    let mut off = 0usize;
    for _ in 0..5 {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        off += 12 + len;
    }
    bytes[off + 4..off + 12].fill(0);
    fs::write(&seg, &bytes).unwrap();
    let mut g = Consumer::new(&c, "g").unwrap();
    // The damaged header fails its chunk (entries 0..8, interval 8): the
    // chunk is refused whole, never served in part or skipped.
    let (messages, errors) = g.read(&[sid(1)], 100).into_parts();
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(&errors[0].1, Error::Damaged { damage, .. } if (damage.first, damage.end) == (0, 8)),
        "{errors:?}"
    );
    let (messages, errors) = g.read(&[sid(1)], 100).into_parts();
    assert!(messages.is_empty(), "entry 0 is not skipped");
    assert_eq!(errors.len(), 1);
    assert_eq!(g.offset(sid(1)).unwrap(), 0);
    // Entries of the next chunk read fine on their own.
    assert_eq!(c.reader(sid(1)).unwrap().read(8).unwrap().data(), b"entry-8");
}

#[test]
fn one_failing_shard_does_not_fail_the_read_and_the_callers_list_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 5);
    fill(&c, 2, 5);
    // shard 3 has a broken index
    fill(&c, 3, 5);
    c.close().unwrap();
    fs::write(dir.path().join("shard-0003/index.bin"), b"garbage").unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    let shards = vec![sid(1), sid(2), sid(3)];
    let copy = shards.clone();
    let mut g = Consumer::new(&c, "g").unwrap();
    let (messages, errors) = g.read(&shards, 100).into_parts();
    assert_eq!(shards, copy);
    assert_eq!(messages.len(), 10, "{errors:?}");
}

#[test]
fn seek_and_reset_replay() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 40);
    let mut g = Consumer::new(&c, "g").unwrap();
    assert_eq!(g.seek(sid(1), SeekTo::End).unwrap(), 40);
    assert_eq!(g.lag(sid(1)).unwrap(), 0);
    assert_eq!(g.seek(sid(1), SeekTo::FromEnd(10)).unwrap(), 30);
    assert_eq!(g.reset_offset(sid(1), 5).unwrap(), 5);
    assert_eq!(g.seek(sid(1), SeekTo::Entry(1000)).unwrap(), 40, "clamped");
    let ts = c.reader(sid(1)).unwrap().read(17).unwrap().timestamp;
    let at = g.seek(sid(1), SeekTo::Time(ts)).unwrap();
    assert!(at <= 17);
    assert_eq!(g.seek(sid(1), SeekTo::Start).unwrap(), 0);
}

#[test]
fn ack_range_refuses_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 10);
    let mut g = Consumer::new(&c, "g").unwrap();
    g.ack_range(sid(1), 0..4).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 4);
    assert!(matches!(g.ack_range(sid(1), 6..8), Err(Error::AckGap { offset: 4, start: 6, .. })));
    assert!(matches!(g.ack_range(sid(1), 4..11), Err(Error::Unavailable { .. })));
    g.ack_range(sid(1), 2..8).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 8);
}

#[test]
fn process_handles_everything_and_stops_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    for s in 0..4 {
        fill(&c, s, 100);
    }
    let mut g = Consumer::new(&c, "g").unwrap();
    let seen = Mutex::new(HashSet::new());
    let batches = AtomicUsize::new(0);
    let summary = g
        .process(
            |msgs| {
                let mut s = seen.lock().unwrap();
                for m in msgs {
                    assert!(s.insert(m.id));
                    assert_eq!(m.data(), &payload(m.id.entry)[..]);
                }
                Ok(Flow::Continue)
            },
            ProcessOptions {
                batch_size: 37,
                until_idle: true,
                on_batch: Some(Box::new(|_| {
                    batches.fetch_add(1, Ordering::Relaxed);
                })),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(summary.messages, 400);
    assert_eq!(seen.lock().unwrap().len(), 400);
    assert_eq!(batches.load(Ordering::Relaxed) as u64, summary.batches);
    for s in 0..4 {
        assert_eq!(g.lag(sid(s)).unwrap(), 0);
    }
}

#[test]
fn workers_split_shards_without_handling_anything_twice() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    for s in 0..6 {
        fill(&c, s, 50);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hs: Vec<_> = (0..3u32)
        .map(|i| {
            let c = c.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut g = Consumer::new(&c, "workers").unwrap();
                g.process(
                    |msgs| {
                        seen.lock().unwrap().extend(msgs.iter().map(|m| (i, m.id)));
                        Ok(Flow::Continue)
                    },
                    ProcessOptions { worker: Some((i, 3)), until_idle: true, ..Default::default() },
                )
                .unwrap()
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 300);
    let ids: HashSet<MessageId> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), 300, "no entry handled twice");
    for (w, id) in seen.iter() {
        assert_eq!(id.shard.get() % 3, *w, "one assignment rule");
    }
    let mut g = Consumer::new(&c, "g").unwrap();
    assert!(g.process(|_| Ok(Flow::Continue), ProcessOptions { worker: Some((3, 3)), ..Default::default() }).is_err());
}

#[test]
fn a_poison_batch_is_retried_then_handled_by_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 10);
    let calls = AtomicUsize::new(0);
    // default policy: stop with an error after max_retries, nothing acked
    let mut g = Consumer::new(&c, "g").unwrap();
    let r = g.process(
        |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            Err("boom".into())
        },
        ProcessOptions {
            max_retries: 2,
            retry_backoff: Duration::from_millis(1),
            until_idle: true,
            ..Default::default()
        },
    );
    assert!(matches!(r, Err(Error::Handler { attempts: 3, .. })));
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(g.offset(sid(1)).unwrap(), 0);
    // skip: ack the poison batch, record it, keep going
    let skipped = Mutex::new(Vec::new());
    let summary = g
        .process(
            |msgs| {
                if msgs.iter().any(|m| m.id.entry == 3) { Err("poison".into()) } else { Ok(Flow::Continue) }
            },
            ProcessOptions {
                batch_size: 2,
                max_retries: 1,
                retry_backoff: Duration::from_millis(1),
                until_idle: true,
                on_poison: Some(Box::new(|p| {
                    skipped.lock().unwrap().extend(p.messages.iter().map(|m| m.id.entry));
                    PoisonAction::Skip
                })),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(*skipped.lock().unwrap(), [2, 3]);
    assert_eq!(summary.skipped, 1);
    assert_eq!(g.offset(sid(1)).unwrap(), 10);
}

#[test]
fn a_stop_from_the_handler_acks_the_batch_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 10);
    let mut g = Consumer::new(&c, "g").unwrap();
    let s = g
        .process(
            |_| Ok(Flow::Stop),
            ProcessOptions { batch_size: 4, shards: Shards::Only(vec![sid(1)]), ..Default::default() },
        )
        .unwrap();
    assert_eq!(s.batches, 1);
    assert_eq!(g.offset(sid(1)).unwrap(), 4);
}

#[test]
fn process_discovers_new_shards_and_stops_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 5);
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let h = {
        let c = c.clone();
        let stop = stop.clone();
        let total = total.clone();
        std::thread::spawn(move || {
            let mut g = Consumer::new(&c, "g").unwrap();
            g.process(
                |msgs| {
                    total.fetch_add(msgs.len(), Ordering::Relaxed);
                    Ok(Flow::Continue)
                },
                ProcessOptions { discover_every: Duration::from_millis(10), stop: Some(stop), ..Default::default() },
            )
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    fill(&c, 9, 7); // a shard that did not exist when process started
    let deadline = Instant::now() + Duration::from_secs(10);
    while total.load(Ordering::Relaxed) < 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Release);
    let s = h.join().unwrap();
    assert_eq!(s.messages, 12);
}

#[test]
fn tail_wakes_on_new_durable_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.flush_interval = Duration::from_secs(3600);
    let c = Client::open(dir.path(), cfg).unwrap();
    c.append(&stream(1), &[b"first"]).unwrap();
    c.sync().unwrap();
    let mut g = Consumer::new(&c, "g").unwrap();
    g.seek(sid(1), SeekTo::End).unwrap();
    let writer = {
        let c = c.clone();
        std::thread::spawn(move || {
            for i in 0..50u64 {
                std::thread::sleep(Duration::from_millis(2));
                c.append(&stream(1), &[payload(i)]).unwrap();
                c.sync().unwrap();
            }
        })
    };
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < 50 && Instant::now() < deadline {
        let msgs = g.tail(sid(1), 100, Duration::from_secs(5)).unwrap();
        if let Some(last) = msgs.last() {
            g.ack(&[last.id]).unwrap();
        }
        got += msgs.len();
    }
    writer.join().unwrap();
    assert_eq!(got, 50);
}

#[test]
fn processed_marks_give_effectively_once_on_redelivery() {
    let mut marks = ProcessedMarks::new();
    let id = |e| MessageId { shard: sid(1), entry: e };
    assert!(marks.is_new(id(0)));
    marks.mark(id(4));
    assert!(!marks.is_new(id(3)));
    assert!(marks.is_new(id(5)));
    let enc = marks.encode();
    assert_eq!(enc, "1=5");
    assert_eq!(ProcessedMarks::decode(&enc).unwrap(), marks);
    assert!(ProcessedMarks::decode("x=1").is_none());
}

#[test]
fn an_empty_offsets_file_reads_as_no_groups() {
    // what another process leaves for an instant while it creates the file
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), small_config()).unwrap();
    fill(&c, 1, 5);
    fs::write(dir.path().join("shard-0001/offsets.state"), b"").unwrap();
    let mut g = Consumer::new(&c, "g").unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 0);
    assert!(c.shard_stats(sid(1)).unwrap().groups.is_empty());
    g.ack(&[MessageId { shard: sid(1), entry: 2 }]).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 3);
}

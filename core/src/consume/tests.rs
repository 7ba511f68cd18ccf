use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::time::Duration;

use super::*;
use crate::ConfigError;

fn id(shard: u32, entry: u64) -> MessageId {
    MessageId { shard: ShardId::new(shard).unwrap(), entry }
}

#[test]
fn message_ids_display_and_parse_strictly() {
    let m = id(7, 42);
    assert_eq!(m.to_string(), "7-42");
    assert_eq!("7-42".parse::<MessageId>(), Ok(m));
    assert_eq!("0007-42".parse::<MessageId>(), Ok(m));
    for bad in ["", "7", "7-", "-4", "7-4x", "+7-4", "7--4", "10000-1", "1-18446744073709551616", "7 -4"] {
        assert_eq!(bad.parse::<MessageId>(), Err(NameError::BadShardDigits), "{bad:?}");
    }
}

#[test]
fn processed_marks_are_cumulative_and_round_trip() {
    let mut m = ProcessedMarks::new();
    assert!(m.is_new(id(3, 0)));
    m.mark(id(3, 5));
    m.mark(id(3, 2));
    m.mark(id(1, u64::MAX));
    assert!(!m.is_new(id(3, 5)) && !m.is_new(id(3, 0)) && m.is_new(id(3, 6)) && m.is_new(id(2, 0)));
    assert_eq!(m.encode(), alloc::format!("1={},3=6", u64::MAX));
    assert_eq!(ProcessedMarks::decode(&m.encode()), Some(m.clone()));
    let ids = [id(3, 4), id(3, 6), id(2, 0)];
    assert_eq!(m.filter(&ids).copied().collect::<Vec<_>>(), [id(3, 6), id(2, 0)]);
    assert_eq!(ProcessedMarks::decode(""), Some(ProcessedMarks::new()));
    for bad in ["3", "3=x", "x=1", "10000=1", "3=1,,4"] {
        let got = ProcessedMarks::decode(bad);
        assert!(bad == "3=1,,4" && got.is_some() || got.is_none(), "{bad:?}");
    }
}

#[test]
fn appended_lists_its_ids() {
    let a = Appended { shard: ShardId::new(2).unwrap(), entries: 5..8 };
    assert_eq!(a.ids().collect::<Vec<_>>(), [id(2, 5), id(2, 6), id(2, 7)]);
    assert_eq!((a.len(), a.is_empty()), (3, false));
    assert!(Appended { shard: ShardId::new(2).unwrap(), entries: 5..5 }.is_empty());
}

/// Shard `s` holds entries `0..len[s]`; shard 2 fails at entry `fail_at`.
fn rotating_read(rotate: &mut usize, max: usize, fail_at: u64) -> ReadBatch<MessageId, String> {
    let shards = [ShardId::new(1).unwrap(), ShardId::new(2).unwrap(), ShardId::new(3).unwrap()];
    ReadBatch::read_rotating(&shards, rotate, max, |shard, left, out| {
        for entry in 0..(left as u64).min(4) {
            if shard.get() == 2 && entry == fail_at {
                return Err(String::from("bad"));
            }
            out.push(MessageId { shard, entry });
        }
        Ok(left.min(4))
    })
}

#[test]
fn a_rotating_read_starts_at_the_next_shard_and_keeps_errors_beside_messages() {
    let mut rotate = 0;
    let (m, e) = rotating_read(&mut rotate, 6, 99).into_parts();
    assert_eq!(m, [id(1, 0), id(1, 1), id(1, 2), id(1, 3), id(2, 0), id(2, 1)]);
    assert!(e.is_empty());
    let (m, _) = rotating_read(&mut rotate, 2, 99).into_parts();
    assert_eq!(m, [id(2, 0), id(2, 1)], "the second read starts at the second shard");
    let b = rotating_read(&mut rotate, 100, 1);
    assert!(!b.is_ok());
    let err = b.into_result().unwrap_err();
    assert_eq!(err.to_string(), "the read of 1 shard stopped at an error (0002)");
    assert_eq!(
        err.messages(),
        [id(3, 0), id(3, 1), id(3, 2), id(3, 3), id(1, 0), id(1, 1), id(1, 2), id(1, 3), id(2, 0)]
    );
    assert_eq!(err.errors(), [(ShardId::new(2).unwrap(), String::from("bad"))]);
    let empty: ReadBatch<MessageId, String> = ReadBatch::read_rotating(&[], &mut rotate, 5, |_, _, _| Ok(0));
    assert_eq!(empty.into_result().unwrap(), Vec::<MessageId>::new());
}

/// Entries `first..end`; `fail` makes that entry's read an error.
struct Fake {
    first: u64,
    end: u64,
    fail: Option<u64>,
    batches: usize,
}

impl BatchRead for Fake {
    type Message = u64;
    type Error = u64;

    fn bounds(&mut self) -> Result<(u64, u64), u64> {
        Ok((self.first, self.end))
    }

    fn read_batch(&mut self, from: u64, max: usize, out: &mut Vec<u64>) -> Result<usize, u64> {
        self.batches += 1;
        let before = out.len();
        for e in from..self.end.min(from + max as u64) {
            if Some(e) == self.fail {
                return Err(e);
            }
            out.push(e);
        }
        Ok(out.len() - before)
    }
}

#[test]
fn entries_resolve_their_range_and_end_at_the_first_error() {
    let mut r = Fake { first: 10, end: 600, fail: None, batches: 0 };
    assert_eq!(Entries::new(&mut r, ..).count(), 590);
    assert_eq!(r.batches, 3, "in batches of 256");
    assert_eq!(Entries::new(&mut r, 20..=22).map(Result::unwrap).collect::<Vec<_>>(), [20, 21, 22]);
    assert_eq!(Entries::new(&mut r, (Bound::Excluded(597), Bound::Unbounded)).count(), 2);
    assert_eq!(Entries::new(&mut r, 590..10_000).count(), 10, "clamped to the durable end");
    assert_eq!(Entries::new(&mut r, 700..).count(), 0);
    r.fail = Some(300);
    let got: Vec<_> = Entries::new(&mut r, 298..).collect();
    assert_eq!(got, [Ok(298), Ok(299), Err(300)], "the error after the entries before it, then the end");
}

/// A group over shards of `len` entries each, with a fake clock.
struct Group {
    len: BTreeMap<ShardId, u64>,
    offset: BTreeMap<ShardId, u64>,
    rotate: usize,
    clock: Cell<Duration>,
    slept: Cell<Duration>,
    waits: u32,
    logged: u32,
}

impl Group {
    fn new(shards: &[(u32, u64)]) -> Group {
        Group {
            len: shards.iter().map(|&(s, n)| (ShardId::new(s).unwrap(), n)).collect(),
            offset: BTreeMap::new(),
            rotate: 0,
            clock: Cell::new(Duration::ZERO),
            slept: Cell::new(Duration::ZERO),
            waits: 0,
            logged: 0,
        }
    }

    fn offset(&self, s: u32) -> u64 {
        self.offset.get(&ShardId::new(s).unwrap()).copied().unwrap_or(0)
    }
}

#[derive(Debug, PartialEq)]
enum GroupError {
    Config(&'static str),
    Poisoned(u32, String),
}

impl From<ConfigError> for GroupError {
    fn from(e: ConfigError) -> Self {
        GroupError::Config(e.field)
    }
}

impl GroupSource for Group {
    type Message = MessageId;
    type Error = GroupError;

    fn all_shards(&mut self) -> Result<Vec<ShardId>, GroupError> {
        Ok(self.len.keys().copied().collect())
    }

    fn read(&mut self, shards: &[ShardId], max: usize) -> ReadBatch<MessageId, GroupError> {
        let (len, offset) = (&self.len, &self.offset);
        ReadBatch::read_rotating(shards, &mut self.rotate, max, |shard, left, out| {
            let from = offset.get(&shard).copied().unwrap_or(0);
            let end = len.get(&shard).copied().unwrap_or(0).min(from + left as u64);
            out.extend((from..end).map(|entry| MessageId { shard, entry }));
            Ok((end - from) as usize)
        })
    }

    fn ack(&mut self, messages: &[MessageId]) -> Result<(), GroupError> {
        for m in messages {
            let o = self.offset.entry(m.shard).or_insert(0);
            *o = (*o).max(m.entry + 1);
        }
        Ok(())
    }

    fn wait(&mut self, _: &[ShardId], timeout: Duration, stopped: &dyn Fn() -> bool) -> Result<(), GroupError> {
        self.waits += 1;
        if !stopped() {
            self.clock.set(self.clock.get() + timeout);
        }
        Ok(())
    }

    fn now(&self) -> Duration {
        self.clock.get()
    }

    fn sleep(&self, d: Duration) {
        self.clock.set(self.clock.get() + d);
        self.slept.set(self.slept.get() + d);
    }

    fn poisoned(attempts: u32, source: HandlerError) -> GroupError {
        GroupError::Poisoned(attempts, source.to_string())
    }

    fn handler_failed(&mut self, _: u32, _: &HandlerError) {
        self.logged += 1;
    }
}

fn idle<'a>() -> ProcessOptions<'a, MessageId, GroupError> {
    ProcessOptions { batch_size: 10, until_idle: true, ..ProcessOptions::default() }
}

#[test]
fn process_handles_every_entry_of_the_assigned_shards_and_acks_it() {
    let mut g = Group::new(&[(1, 25), (2, 7), (3, 4)]);
    let mut seen = Vec::new();
    let s = process(
        &mut g,
        |m: &[MessageId]| {
            seen.extend_from_slice(m);
            Ok(Flow::Continue)
        },
        idle(),
    )
    .unwrap();
    assert_eq!(s, ProcessSummary { batches: 4, messages: 36, retries: 0, skipped: 0 });
    assert_eq!((g.offset(1), g.offset(2), g.offset(3)), (25, 7, 4));
    assert_eq!(seen.len(), 36);

    let mut g = Group::new(&[(1, 5), (2, 5), (3, 5), (4, 5)]);
    let opts = ProcessOptions { worker: Some((1, 2)), ..idle() };
    process(&mut g, |_: &[MessageId]| Ok(Flow::Continue), opts).unwrap();
    assert_eq!((g.offset(1), g.offset(2), g.offset(3), g.offset(4)), (5, 0, 5, 0), "worker 1 of 2: odd shards");
    for bad in [(0, 0), (2, 2)] {
        let opts = ProcessOptions { worker: Some(bad), ..idle() };
        assert_eq!(
            process(&mut g, |_: &[MessageId]| Ok(Flow::Continue), opts),
            Err(GroupError::Config("process.worker"))
        );
    }
    let opts = ProcessOptions { shards: Shards::Only(vec![ShardId::new(2).unwrap()]), auto_ack: false, ..idle() };
    let mut calls = 0;
    let s = process(
        &mut g,
        |_: &[MessageId]| {
            calls += 1;
            Ok(Flow::Stop)
        },
        opts,
    )
    .unwrap();
    assert_eq!((s.batches, calls, g.offset(2)), (1, 1, 0), "a stop returns after the batch; no auto-ack, no ack");
}

#[test]
fn a_failing_batch_is_retried_with_doubling_backoff_then_settled_by_the_poison_policy() {
    // Stop (the default): the platform's error with the attempts, nothing acked.
    let mut g = Group::new(&[(1, 3)]);
    let opts = ProcessOptions { max_retries: 3, retry_backoff: Duration::from_millis(10), ..idle() };
    let r = process(&mut g, |_: &[MessageId]| Err("boom".into()), opts);
    assert_eq!(r, Err(GroupError::Poisoned(4, "boom".into())));
    assert_eq!(g.slept.get(), Duration::from_millis(10 + 20 + 40));
    assert_eq!((g.offset(1), g.logged), (0, 4));

    // Skip: acked and counted; Retry: another round first.
    let mut g = Group::new(&[(1, 3), (2, 2)]);
    let mut rounds = 0;
    let mut infos = Vec::new();
    let opts = ProcessOptions {
        max_retries: 1,
        on_poison: Some(Box::new(|p: &PoisonBatch<'_, MessageId>| {
            rounds += 1;
            assert_eq!(p.error.to_string(), "shard 1 is poison");
            if p.attempts < 4 { PoisonAction::Retry } else { PoisonAction::Skip }
        })),
        on_batch: Some(Box::new(|i: &BatchInfo| infos.push((i.size, i.attempts, i.acked)))),
        ..idle()
    };
    let handler = |m: &[MessageId]| {
        if m.iter().any(|m| m.shard.get() == 1) { Err("shard 1 is poison".into()) } else { Ok(Flow::Continue) }
    };
    let s = process(&mut g, handler, opts).unwrap();
    assert_eq!(s, ProcessSummary { batches: 1, messages: 5, retries: 2, skipped: 1 });
    assert_eq!((rounds, g.offset(1), g.offset(2)), (2, 3, 2));
    assert_eq!(infos, [(5, 4, true)]);
}

#[test]
fn process_waits_when_idle_and_returns_once_stopped() {
    let mut g = Group::new(&[(1, 0)]);
    let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let opts = ProcessOptions {
        stop: Some(stop),
        poll_interval: Duration::from_millis(50),
        on_read_error: None,
        ..ProcessOptions::default()
    };
    let mut g2 = Group::new(&[(1, 0)]);
    // A source whose wait sets the flag after three waits.
    struct Stopping<'a>(&'a mut Group, Arc<core::sync::atomic::AtomicBool>);
    impl GroupSource for Stopping<'_> {
        type Message = MessageId;
        type Error = GroupError;
        fn all_shards(&mut self) -> Result<Vec<ShardId>, GroupError> {
            self.0.all_shards()
        }
        fn read(&mut self, s: &[ShardId], max: usize) -> ReadBatch<MessageId, GroupError> {
            self.0.read(s, max)
        }
        fn ack(&mut self, m: &[MessageId]) -> Result<(), GroupError> {
            self.0.ack(m)
        }
        fn wait(&mut self, s: &[ShardId], t: Duration, stopped: &dyn Fn() -> bool) -> Result<(), GroupError> {
            if self.0.waits == 2 {
                self.1.store(true, core::sync::atomic::Ordering::Release);
            }
            self.0.wait(s, t, stopped)
        }
        fn now(&self) -> Duration {
            self.0.now()
        }
        fn sleep(&self, d: Duration) {
            self.0.sleep(d)
        }
        fn poisoned(a: u32, e: HandlerError) -> GroupError {
            Group::poisoned(a, e)
        }
    }
    let s = process(&mut Stopping(&mut g, flag), |_: &[MessageId]| Ok(Flow::Continue), opts).unwrap();
    assert_eq!((s, g.waits), (ProcessSummary::default(), 3));
    assert_eq!(g.clock.get(), Duration::from_millis(100), "two full waits; the third saw the flag");
    // Without a stop flag and with nothing new, `until_idle` returns at once.
    assert_eq!(process(&mut g2, |_: &[MessageId]| Ok(Flow::Continue), idle()), Ok(ProcessSummary::default()));
    assert_eq!(g2.waits, 0);
}

/// A mapping of fixed bytes.
#[derive(Debug)]
struct Bytes(Vec<u8>);

impl Mapping for Bytes {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[test]
fn messages_borrow_from_their_mapping_or_own_their_payload() {
    let map = Arc::new(Bytes(b"hello world".to_vec()));
    let m = Message::mapped(id(1, 7), 99, map.clone(), 6..11);
    assert_eq!((m.data(), m.is_zero_copy(), m.id(), m.as_ref()), (&b"world"[..], true, id(1, 7), &b"world"[..]));
    assert_eq!(Arc::strong_count(&map), 2, "the message keeps the mapping alive");
    assert_eq!(m.clone().into_vec(), b"world");
    let past = Message::mapped(id(1, 8), 99, map.clone(), 6..40);
    assert_eq!(past.data(), b"", "a range past the mapping reads as empty, never panics");
    let o: Message<Bytes> = Message::owned(id(1, 9), 100, b"unzipped".to_vec());
    assert_eq!((o.data(), o.is_zero_copy()), (&b"unzipped"[..], false));
    assert_eq!(o.into_vec(), b"unzipped");
}

#[test]
fn a_lent_batch_holds_each_mapping_once_per_run() {
    let a = Arc::new(Bytes(b"aaaabbbb".to_vec()));
    let b = Arc::new(Bytes(b"cccc".to_vec()));
    let mut batch = LentBatch::new();
    batch.push_mapped(id(2, 0), 1, &a, 0..4);
    batch.push_mapped(id(2, 1), 2, &a, 4..8);
    batch.push_owned(id(2, 2), 3, b"zip".to_vec());
    batch.push_mapped(id(2, 3), 4, &b, 0..4);
    batch.push_mapped(id(2, 4), 5, &b, 2..9);
    assert_eq!((batch.len(), batch.mappings(), Arc::strong_count(&a)), (5, 2, 2));
    let got: Vec<(u64, u64, &[u8])> = batch.iter().map(|e| (e.id.entry, e.timestamp, e.data)).collect();
    assert_eq!(got, [(0, 1, &b"aaaa"[..]), (1, 2, b"bbbb"), (2, 3, b"zip"), (3, 4, b"cccc"), (4, 5, b"")]);
    assert_eq!((batch.get(2).map(|e| e.data), batch.get(5)), (Some(&b"zip"[..]), None));
    assert_eq!(batch.last_id(), Some(id(2, 4)));
    batch.clear();
    assert!(batch.is_empty() && batch.mappings() == 0 && batch.last_id().is_none());
    assert_eq!(Arc::strong_count(&a), 1, "cleared batches release their mappings");
}

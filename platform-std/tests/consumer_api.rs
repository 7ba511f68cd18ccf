//! Cumulative acks (`ack_up_to`, `ack_through`, `ack_batch`) and reads
//! whose errors cannot be dropped silently (`ReadBatch`).

use std::error::Error as _;

use comet::{Client, Config, Consumer, MessageId, ShardId};

fn sid(n: u32) -> ShardId {
    ShardId::new(n).unwrap()
}

fn id(shard: u32, entry: u64) -> MessageId {
    MessageId { shard: sid(shard), entry }
}

/// A client with `n` durable entries in each of `shards`.
fn filled(dir: &std::path::Path, shards: &[u32], n: u64) -> Client {
    let c = Client::open(dir, Config::default()).unwrap();
    for &s in shards {
        for i in 0..n {
            c.append_shard(sid(s), &[format!("{s}-{i}")]).unwrap();
        }
    }
    c.sync().unwrap();
    c
}

#[test]
fn ack_up_to_is_cumulative_capped_and_never_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let c = filled(dir.path(), &[1, 2], 10);
    let mut g = Consumer::new(&c, "g").unwrap();
    g.ack_up_to(id(1, 4)).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 5, "entries 0..=4 acked");
    assert_eq!(g.offset(sid(2)).unwrap(), 0, "other shards untouched");
    g.ack_up_to(id(1, 2)).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 5, "never backwards");
    g.ack_up_to(id(1, 1_000)).unwrap();
    assert_eq!(g.offset(sid(1)).unwrap(), 10, "capped at the durable end");

    // ack_through: up to and including a message read.
    let mut out = Vec::new();
    g.read_shard(sid(2), 3, &mut out).unwrap();
    g.ack_through(out.last().unwrap()).unwrap();
    assert_eq!(g.offset(sid(2)).unwrap(), 3);
    // Another member of the group sees it (offsets are shared).
    assert_eq!(Consumer::new(&c, "g").unwrap().offset(sid(2)).unwrap(), 3);
}

#[test]
fn ack_batch_acks_each_shard_up_to_its_highest_message() {
    let dir = tempfile::tempdir().unwrap();
    let c = filled(dir.path(), &[1, 2, 3], 10);
    let mut g = Consumer::new(&c, "g").unwrap();
    let shards = [sid(1), sid(2), sid(3)];
    let mut batch = g.read(&shards, 12).into_result().unwrap();
    assert_eq!(batch.len(), 12);
    // Any order: the highest of each shard counts.
    batch.reverse();
    g.ack_batch(&batch).unwrap();
    let mut read = std::collections::BTreeMap::<u32, u64>::new();
    for m in &batch {
        let h = read.entry(m.id.shard.get()).or_default();
        *h = (*h).max(m.id.entry + 1);
    }
    for s in shards {
        assert_eq!(g.offset(s).unwrap(), read.get(&s.get()).copied().unwrap_or(0), "shard {s}");
    }
    // The next read starts after them, and an empty batch acks nothing.
    g.ack_batch(&[]).unwrap();
    let rest = g.read(&shards, 100).into_result().unwrap();
    assert_eq!(rest.len(), 30 - 12);
    g.ack_batch(&rest).unwrap();
    assert!(shards.iter().all(|&s| g.lag(s).unwrap() == 0));
}

#[test]
fn a_read_batch_hands_out_messages_only_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = filled(dir.path(), &[1, 2, 3], 5);
    c.close().unwrap();
    // Shard 3's manifest is garbage: its read fails, the others do not.
    std::fs::write(dir.path().join("shard-0003/index.bin"), b"garbage").unwrap();
    let c = Client::open_read_only(dir.path(), Config::default()).unwrap();
    let mut g = Consumer::new(&c, "g").unwrap();
    let shards = [sid(1), sid(2), sid(3)];

    let batch = g.read(&shards, 100);
    assert!(!batch.is_ok());
    assert_eq!(batch.errors().len(), 1);
    assert_eq!(batch.errors()[0].0, sid(3));
    let e = batch.into_result().expect_err("shard 3 failed");
    assert_eq!(e.messages().len(), 10, "the other shards' messages come with the error");
    assert_eq!(e.errors()[0].0, sid(3));
    assert_eq!(e.to_string(), "the read of 1 shard stopped at an error (0003)");
    // The shard's own error is the source: a chain prints each text once.
    let source = e.source().expect("source").to_string();
    assert!(source.starts_with("shard 0003: "), "{source}");
    assert_eq!(comet::ErrorChain(&e).to_string(), format!("{e}: {source}"));
    let (messages, errors) = e.into_parts();
    assert_eq!((messages.len(), errors.len()), (10, 1));

    // Without errors, into_result is the messages.
    let ok = g.read(&shards[..2], 100);
    assert!(ok.is_ok() && ok.errors().is_empty());
    assert_eq!(ok.into_result().unwrap().len(), 10);
}

/// Single acks store the offset at once; their counts (the shard's `acks`
/// counter, and the group's update count in `offsets.state`) are published within 1 ms of the
/// ack clock or at the consumer's next read, lag, offset, groups, seek or
/// drop — whichever comes first, so these checks hold at any speed.
#[test]
fn ack_counts_add_up_at_the_publishing_points() {
    use comet::Counter;
    let dir = tempfile::tempdir().unwrap();
    let c = filled(dir.path(), &[1], 50);
    let acks = |c: &Client| c.shard_stats(sid(1)).unwrap().counters.get(Counter::Acks);
    let mut g = Consumer::new(&c, "g").unwrap();
    for e in 0..20 {
        g.ack(&[id(1, e)]).unwrap();
        // The offset is in the shared table when `ack` returns.
        let other = Consumer::new(&c, "g").unwrap().offset(sid(1)).unwrap();
        assert_eq!(other, e + 1);
    }
    // Acks that do not move the offset count too.
    for e in 0..5 {
        g.ack(&[id(1, e)]).unwrap();
    }
    assert!(g.groups(sid(1)).unwrap().iter().any(|s| s.group == "g" && s.offset == 20));
    assert_eq!(acks(&c), 25, "`groups` publishes first");
    g.ack(&[id(1, 30)]).unwrap();
    assert_eq!(g.lag(sid(1)).unwrap(), 19);
    assert_eq!(acks(&c), 26, "`lag` publishes");
    g.ack(&[id(1, 31)]).unwrap();
    drop(g);
    assert_eq!(acks(&c), 27, "drop publishes");
}

/// A `LentBatch` read and acked through the consumer moves the group as
/// `read_shard` + `ack_batch` do.
#[test]
fn lent_batches_read_and_ack_like_message_batches() {
    let dir = tempfile::tempdir().unwrap();
    let c = filled(dir.path(), &[1], 250);
    let mut lent = Consumer::new(&c, "lent").unwrap();
    let mut msgs = Consumer::new(&c, "msgs").unwrap();
    let mut batch = comet::LentBatch::new();
    let mut out = Vec::new();
    loop {
        out.clear();
        let n = lent.read_shard_lent(sid(1), 64, &mut batch).unwrap();
        assert_eq!(msgs.read_shard(sid(1), 64, &mut out).unwrap(), n);
        assert_eq!(batch.len(), n);
        for (e, m) in batch.iter().zip(&out) {
            assert_eq!((e.id, e.timestamp, e.data), (m.id, m.timestamp, m.data()));
        }
        let Some(last) = batch.last_id() else { break };
        lent.ack_up_to(last).unwrap();
        msgs.ack_batch(&out).unwrap();
        assert_eq!(lent.offset(sid(1)).unwrap(), msgs.offset(sid(1)).unwrap());
    }
    assert!(batch.is_empty());
    assert_eq!(lent.offset(sid(1)).unwrap(), 250);
}

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

//! A group's lag counts every durable entry it has still to read: shards
//! it never acked count from their first retained entry, and an offset
//! retention overtook counts from there too.

use comet::{Client, Config, Consumer, ShardId};

fn sid(n: u32) -> ShardId {
    ShardId::new(n).unwrap()
}

fn config() -> Config {
    let mut c = Config::default();
    c.storage.max_file_size = 4096;
    c.compression.min_compress_size = 1 << 20;
    c.retention.cleanup_interval = None;
    c.retention.protect_unconsumed = false;
    c
}

fn fill(c: &Client, shard: u32, n: u64) {
    for i in 0..n {
        c.append_shard(sid(shard), &[format!("{shard}:{i:0>100}")]).unwrap();
    }
}

#[test]
fn shards_a_group_never_acked_count_from_their_first_retained_entry() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), config()).unwrap();
    for s in 1..=3 {
        fill(&c, s, 10);
    }
    c.sync().unwrap();
    let mut g = Consumer::new(&c, "g").unwrap();
    g.ack_up_to(comet::MessageId { shard: sid(1), entry: 4 }).unwrap();

    let stats = c.stats().unwrap();
    assert_eq!(stats.group_names(), ["g"]);
    assert_eq!(stats.group_lag("g"), 5 + 10 + 10, "shards 2 and 3 were never acked");
    let two = stats.shards.iter().find(|s| s.shard == sid(2)).unwrap();
    assert!(two.groups.is_empty(), "no slot in a shard the group never acked");
    assert_eq!((two.group_offset("g"), two.group_lag("g")), (0, 10));
    // The consumer's own view agrees, shard by shard.
    assert_eq!([g.lag(sid(1)).unwrap(), g.lag(sid(2)).unwrap(), g.lag(sid(3)).unwrap()], [5, 10, 10]);
    let listed = g.groups(sid(1)).unwrap();
    assert_eq!((listed[0].offset, listed[0].lag), (5, 5));
    assert!(g.groups(sid(2)).unwrap().is_empty());

    // Retention deletes the oldest segments of shards 1 and 2: what is left
    // counts from the first retained entry, also where g's stored offset
    // fell behind it.
    fill(&c, 1, 200);
    fill(&c, 2, 200);
    c.sync().unwrap();
    let mut cfg = config();
    cfg.retention.max_shard_size = Some(8192);
    c.close().unwrap();
    let c = Client::open(dir.path(), cfg).unwrap();
    let report = c.run_retention_now().unwrap();
    assert!(report.segments_deleted() > 0, "{report:?}");
    let stats = c.stats().unwrap();
    let mut g = Consumer::new(&c, "g").unwrap();
    let mut total = 0;
    for st in &stats.shards {
        let expect =
            if st.shard == sid(1) { st.durable_end - st.first_entry.max(5) } else { st.durable_end - st.first_entry };
        assert_eq!(st.group_lag("g"), expect, "shard {}", st.shard);
        assert_eq!(g.lag(st.shard).unwrap(), expect, "shard {}", st.shard);
        total += expect;
    }
    let one = stats.shards.iter().find(|s| s.shard == sid(1)).unwrap();
    assert!(one.first_entry > 5, "retention overtook g's offset in shard 1: {}", one.first_entry);
    assert_eq!(one.group_offset("g"), one.first_entry);
    assert!(stats.shards.iter().find(|s| s.shard == sid(2)).unwrap().first_entry > 0);
    assert_eq!(stats.group_lag("g"), total);
    // The stored slot still says where g acked (the figures `stat --json`
    // prints); `group_lag` is what is left to read.
    assert_eq!(one.groups[0].offset, 5);
}

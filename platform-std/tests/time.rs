//! `SystemTime` accessors beside the raw nanosecond timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comet::{Client, Config, Consumer, SeekTo, ShardId};

fn sid(n: u32) -> ShardId {
    ShardId::new(n).unwrap()
}

#[test]
fn messages_stats_and_groups_give_system_times() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open(dir.path(), Config::default()).unwrap();
    // An empty shard has no times.
    c.append_shard(sid(2), &[] as &[&[u8]]).unwrap();
    let before = SystemTime::now();
    c.append_shard(sid(1), &[b"first"]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let middle = SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    c.append_shard(sid(1), &[b"second"]).unwrap();
    c.sync().unwrap();
    let after = SystemTime::now();

    let mut r = c.reader(sid(1)).unwrap();
    let (first, second) = (r.read(0).unwrap(), r.read(1).unwrap());
    for m in [&first, &second] {
        assert_eq!(m.time(), UNIX_EPOCH + Duration::from_nanos(m.timestamp));
        assert_eq!(comet::unix_ns(m.time()), m.timestamp);
        assert_eq!(comet::system_time(m.timestamp), m.time());
        // The writer's clock: within this test's run (with a little slack
        // for clock granularity).
        assert!(m.time() + Duration::from_millis(10) >= before && m.time() <= after, "{:?}", m.time());
    }
    assert!(first.time() < middle && middle < second.time());

    let st = c.shard_stats(sid(1)).unwrap();
    assert_eq!(st.oldest(), Some(first.time()));
    assert_eq!(st.newest(), Some(second.time()));
    let empty = c.shard_stats(sid(2)).unwrap();
    assert_eq!((empty.oldest(), empty.newest()), (None, None));
    let retention = c.retention_stats().unwrap();
    let one = retention.iter().find(|s| s.shard == sid(1)).unwrap();
    assert_eq!((one.oldest(), one.newest()), (Some(first.time()), Some(second.time())));

    // Seeking by SystemTime finds the first entry at or after it.
    let mut g = Consumer::new(&c, "g").unwrap();
    assert_eq!(g.seek(sid(1), SeekTo::time(middle)).unwrap(), 1);
    assert_eq!(g.seek(sid(1), SeekTo::time(UNIX_EPOCH - Duration::from_secs(1))).unwrap(), 0);
    assert_eq!(SeekTo::time(middle), SeekTo::Time(comet::unix_ns(middle)));

    // The last ack's time.
    let acked_at = SystemTime::now();
    g.ack_through(&second).unwrap();
    let groups = g.groups(sid(1)).unwrap();
    let last = groups[0].last_ack().expect("acked");
    assert_eq!(last, UNIX_EPOCH + Duration::from_nanos(groups[0].last_ack_ns));
    // The ack clock is the coarse one (a few ms of resolution).
    assert!(last + Duration::from_millis(50) >= acked_at && last <= SystemTime::now(), "{last:?}");
    c.close().unwrap();
}

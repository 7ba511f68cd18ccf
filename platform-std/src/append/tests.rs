use super::*;

#[test]
fn the_stream_cache_answers_as_parse_stream() {
    let names = [
        "events:v1:shard:0007",
        "events:v1:shard:0007",
        "events:v1:shard:0008",
        "events:v1:shard:0007x",
        "events:v1:shard:00070",
        "events:v1:shard:0007",
        "",
        "a/b:shard:0001",
        "x:0012",
        "x:0012",
        "x:shard:12",
        "x:shard:12",
    ];
    for n in names {
        assert_eq!(stream_shard(n), parse_stream(n), "{n:?}");
    }
    let long = format!("{}:shard:0001", "a".repeat(MAX_STREAM_LEN));
    assert_eq!(stream_shard(&long), parse_stream(&long));
    assert!(stream_shard(&long).is_err());
    // A prefix of the remembered name is not the remembered name.
    assert_eq!(stream_shard("x:shard:12").map(ShardId::get), Ok(12));
    assert_eq!(stream_shard("x:shard:1").map(ShardId::get), Ok(1));
}

#[test]
fn append_at_stamps_the_callers_time_never_decreasing() {
    let dir = tempfile::tempdir().unwrap();
    let client = crate::Client::open(dir.path(), crate::Config::default()).unwrap();
    let s = "t:v1:shard:0003";
    let t0 = 1_700_000_000_000_000_000;
    assert_eq!(client.append_at(s, t0, &[b"a"]).unwrap().entries, 0..1);
    client.append_at(s, t0 + 5, &[b"b", b"c"]).unwrap();
    // Older than the shard's last timestamp: raised to it.
    client.append_at(s, t0 - 1, &[b"d"]).unwrap();
    client.append_shard_at(ShardId::new(3).unwrap(), t0 + 9, &[b"e"]).unwrap();
    // The system clock is later than `t0 + 9`: the clock's time again.
    let before = comet_linux::now_ns();
    client.append(s, &[b"f"]).unwrap();
    client.sync().unwrap();
    let mut r = client.reader(ShardId::new(3).unwrap()).unwrap();
    let ts: Vec<u64> = (0..5).map(|e| r.read(e).unwrap().timestamp).collect();
    assert_eq!(ts, [t0, t0 + 5, t0 + 5, t0 + 5, t0 + 9]);
    assert!(r.read(5).unwrap().timestamp >= before);
    assert_eq!(r.read(3).unwrap().data(), b"d");
}

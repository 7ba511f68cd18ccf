//! The fixed per-append work of [`Client::append`](crate::Client::append)
//! that is not the engine's: the stream name's shard, exactly what
//! `parse_stream` gives, with less work (D-55). The append clock is
//! [`comet_linux::now_ns`].

use std::cell::RefCell;

use comet_core::{MAX_STREAM_LEN, NameError, ShardId, parse_stream};

/// The last stream name this thread resolved, and its shard.
struct LastStream {
    len: usize,
    name: [u8; MAX_STREAM_LEN],
    shard: Option<ShardId>,
}

thread_local! {
    /// Per thread, so a lookup takes no lock and shares no cache line; no
    /// destructor, so the access is a plain thread-local load.
    static LAST_STREAM: RefCell<LastStream> =
        const { RefCell::new(LastStream { len: 0, name: [0; MAX_STREAM_LEN], shard: None }) };
}

/// [`parse_stream`], remembering the last name that parsed on this thread:
/// an append to the same stream as the thread's previous one compares the
/// name's bytes instead of validating and parsing it again. The answer is
/// the same as `parse_stream`'s (a pure function of the name; only names
/// that parsed are remembered, so every error comes from `parse_stream`).
#[inline]
pub(crate) fn stream_shard(stream: &str) -> Result<ShardId, NameError> {
    let bytes = stream.as_bytes();
    let hit = LAST_STREAM.with(|c| {
        let c = c.try_borrow().ok()?;
        let name = c.name.get(..c.len)?;
        if name == bytes { c.shard } else { None }
    });
    if let Some(shard) = hit {
        return Ok(shard);
    }
    let shard = parse_stream(stream)?;
    LAST_STREAM.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut()
            && let Some(dst) = c.name.get_mut(..bytes.len())
        {
            dst.copy_from_slice(bytes);
            c.len = bytes.len();
            c.shard = Some(shard);
        }
    });
    Ok(shard)
}

#[cfg(test)]
mod tests {
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
}

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
mod tests;

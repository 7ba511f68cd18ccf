//! The one boundary where 64-bit and `usize` quantities become the
//! format's 32-bit fields.
//!
//! Segments stay below 4 GiB ([`MAX_SEGMENT_BYTES`](crate::shard::MAX_SEGMENT_BYTES):
//! a segment rotates before a batch would cross it, and a batch that alone
//! would is refused), so every byte offset inside a segment, every chunk
//! index and chunk count (a chunk holds at least one 12-byte entry) and
//! every stored entry length (at most the configured maximum, a `u32`)
//! fits in 32 bits by construction. These functions convert at that
//! boundary, and nothing else in the crate narrows such a value.
//!
//! Should an invariant ever break, they saturate to `u32::MAX` instead of
//! wrapping: `u32::MAX` is never a valid offset, index or length in a
//! checked structure (chunk ends are below the segment's length, indices
//! below the chunk count, lengths below the maximum), so the next
//! validation rejects the value instead of aliasing valid data.

/// A byte offset inside a segment.
pub fn offset32<T: TryInto<u32>>(pos: T) -> u32 {
    pos.try_into().unwrap_or(u32::MAX)
}

/// A chunk index or chunk count, or a count of lost chunks.
pub fn index32<T: TryInto<u32>>(k: T) -> u32 {
    k.try_into().unwrap_or(u32::MAX)
}

/// A stored entry length or a count of entries in a header field.
pub fn len32<T: TryInto<u32>>(n: T) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

/// A byte position reported in an error (`WireError::InvalidField`): a
/// diagnostic, so saturating at `u32::MAX` loses nothing that matters.
pub fn at32<T: TryInto<u32>>(pos: T) -> u32 {
    pos.try_into().unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate_instead_of_wrapping() {
        assert_eq!(offset32(7), 7);
        assert_eq!(offset32(u64::from(u32::MAX) + 1), u32::MAX);
        assert_eq!(offset32(12usize), 12);
        assert_eq!(index32(3), 3);
        assert_eq!(len32(0), 0);
        assert_eq!(at32(5u64), 5);
        assert_eq!(at32(u64::MAX), u32::MAX);
        assert_eq!(at32(usize::MAX), u32::MAX);
    }
}

//! The 12-byte entry header and the classification every scanner shares.

use super::WireError;
use super::le;

/// Size of an entry header in bytes: `u32` length + `u64` timestamp.
pub const HEADER_LEN: usize = 12;

mod field {
    use core::ops::Range;
    pub const LENGTH: Range<usize> = 0..4;
    pub const TIMESTAMP: Range<usize> = 4..12;
}

/// A decoded entry header.
///
/// `len` counts the *stored* payload bytes (after compression, header
/// excluded). `timestamp` is nanoseconds since the Unix epoch and is never 0
/// in a written entry, so a header of twelve zero bytes is the end marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryHeader {
    /// Stored payload length in bytes.
    pub len: u32,
    /// Timestamp in nanoseconds since the Unix epoch.
    pub timestamp: u64,
}

impl EntryHeader {
    /// Parses the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let (Some(len), Some(timestamp)) =
            (le::u32_at(bytes, field::LENGTH.start), le::u64_at(bytes, field::TIMESTAMP.start))
        else {
            return Err(WireError::Truncated { needed: HEADER_LEN as u64, available: bytes.len() as u64 });
        };
        Ok(EntryHeader { len, timestamp })
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[field::LENGTH].copy_from_slice(&self.len.to_le_bytes());
        out[field::TIMESTAMP].copy_from_slice(&self.timestamp.to_le_bytes());
        out
    }

    /// True for the all-zero end marker.
    pub fn is_end_marker(&self) -> bool {
        self.len == 0 && self.timestamp == 0
    }

    /// Header plus payload length in bytes.
    pub fn total_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// What a scanner finds at one position of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// A complete, well-formed entry.
    Valid(EntryHeader),
    /// No bytes left, or the all-zero end marker (a zero-filled tail).
    End,
    /// Fewer than [`HEADER_LEN`] bytes remain and they are not all zero.
    TornHeader,
    /// The header is well formed but the payload runs past the data.
    TornPayload(EntryHeader),
    /// The header is malformed: zero timestamp with a non-zero length, or a
    /// length above the maximum entry size.
    Invalid(WireError),
}

/// Classifies the entry whose header starts at `head` (up to
/// [`HEADER_LEN`] bytes; fewer when the data ends), given `remaining` bytes
/// from that position to the end of the data and the maximum stored entry
/// size. Every scanner (recovery, verify, readers) uses this one rule.
pub fn classify_entry(head: &[u8], remaining: u64, max_entry: u32) -> EntryStatus {
    let avail = head.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
    let head = &head[..avail];
    if head.is_empty() {
        return EntryStatus::End;
    }
    let Ok(header) = EntryHeader::parse(head) else {
        return if head.iter().all(|&b| b == 0) { EntryStatus::End } else { EntryStatus::TornHeader };
    };
    if header.is_end_marker() {
        return EntryStatus::End;
    }
    if header.timestamp == 0 {
        return EntryStatus::Invalid(WireError::InvalidField { offset: 4 });
    }
    if header.len > max_entry {
        return EntryStatus::Invalid(WireError::TooLarge { len: u64::from(header.len), max: u64::from(max_entry) });
    }
    if header.total_len() > remaining {
        return EntryStatus::TornPayload(header);
    }
    EntryStatus::Valid(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    static GOLDEN: [u8; 12] = [0x05, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11];
    const REPR: EntryHeader = EntryHeader { len: 5, timestamp: 0x1122_3344_5566_7788 };

    #[test]
    fn test_deconstruct() {
        let h = EntryHeader::parse(&GOLDEN).unwrap();
        assert_eq!(h.len, 5);
        assert_eq!(h.timestamp, 0x1122_3344_5566_7788);
    }

    #[test]
    fn test_construct() {
        assert_eq!(REPR.to_bytes(), GOLDEN);
    }

    #[test]
    fn test_parse_emit_roundtrip() {
        assert_eq!(EntryHeader::parse(&REPR.to_bytes()).unwrap(), REPR);
        assert_eq!(REPR.total_len(), 17);
    }

    #[test]
    fn truncated_header_is_an_error() {
        for n in 0..12 {
            assert!(matches!(EntryHeader::parse(&GOLDEN[..n]), Err(WireError::Truncated { needed: 12, .. })));
        }
    }

    #[test]
    fn classification() {
        let max = 1 << 20;
        assert_eq!(classify_entry(&GOLDEN, 17, max), EntryStatus::Valid(REPR));
        assert_eq!(classify_entry(&GOLDEN, 16, max), EntryStatus::TornPayload(REPR));
        assert_eq!(classify_entry(&GOLDEN[..5], 5, max), EntryStatus::TornHeader);
        assert_eq!(classify_entry(&[0; 5], 5, max), EntryStatus::End);
        assert_eq!(classify_entry(&[0; 12], 100, max), EntryStatus::End);
        assert_eq!(classify_entry(&[], 0, max), EntryStatus::End);
        // zero-length payload with a timestamp is a real entry
        let empty = EntryHeader { len: 0, timestamp: 9 }.to_bytes();
        assert!(matches!(classify_entry(&empty, 12, max), EntryStatus::Valid(_)));
        // zero timestamp with a length is invalid
        let bad = EntryHeader { len: 3, timestamp: 0 }.to_bytes();
        assert!(matches!(classify_entry(&bad, 15, max), EntryStatus::Invalid(_)));
        assert!(matches!(classify_entry(&GOLDEN, 17, 4), EntryStatus::Invalid(WireError::TooLarge { .. })));
        // `remaining` shorter than the slice limits what is looked at
        assert_eq!(classify_entry(&GOLDEN, 3, max), EntryStatus::TornHeader);
    }
}

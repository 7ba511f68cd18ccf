//! Wire formats: entry framing, zstd frame rules, and shard picking (the Go
//! package's key hash). Names and shard patterns are not wire format: they
//! are [`crate::naming`].
//!
//! # No-panic contract
//!
//! Every function in this module that takes bytes from outside (a file, a
//! user) checks lengths before indexing and reports problems as a small,
//! `Copy` [`WireError`]; none of them panics on any input. The parsers are
//! fuzzed (`fuzz/fuzz_targets/entry_decode.rs`).
//!
//! # Entry framing (the seed's format, byte for byte)
//!
//! ```text
//!  0        4                    12
//!  +--------+--------------------+---------------------------+
//!  | length | timestamp (ns)     | payload (length bytes)    |
//!  | u32 LE | u64 LE, never 0    | raw, or one zstd frame    |
//!  +--------+--------------------+---------------------------+
//! ```
//!
//! A header of twelve zero bytes marks the end of data (a zero-filled tail).
//! A stored payload that begins with [`ZSTD_MAGIC`] is always a zstd frame:
//! the writer wraps raw payloads that happen to start with the magic in a
//! frame of raw blocks, so reading is never ambiguous.

mod dict;
#[cfg(feature = "alloc")]
mod encoder;
mod entry;
mod fnv;
mod zstd;

pub use dict::{
    DICT_FILE_MAGIC, DICT_FILE_VERSION, DICT_HEADER_LEN, DICT_ID_MAX, DICT_ID_MIN, DICT_MAX_BYTES, DictFile,
    ZDICT_MAGIC, encode_dict_header, parse_dict_file, set_dict_id,
};
#[cfg(feature = "alloc")]
pub use encoder::FrameEncoder;
pub use entry::{EntryHeader, EntryStatus, HEADER_LEN, classify_entry};
pub use fnv::{ShardCount, fnv1a32, pick_member_shard, pick_shard, shard_member};
pub use zstd::{
    Compressor, Decompressor, ENTRY_SIZE_LIMIT, NoCompression, RawFrameDecoder, STORED_LIMIT, StoredPayload,
    ZSTD_MAGIC, encode_payload, frame_content_size, frame_dict_id, is_frame, raw_frame_len, write_raw_frame,
};

/// A problem found while decoding bytes. Small and `Copy`, as in smoltcp's
/// `wire::Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A magic number did not match.
    BadMagic,
    /// A format version this build does not know (e.g. written by a newer comet).
    UnsupportedVersion(u32),
    /// A checksum did not match.
    ChecksumMismatch {
        /// Checksum stored in the data.
        expected: u32,
        /// Checksum computed over the data.
        actual: u32,
    },
    /// A length field exceeds its limit.
    TooLarge {
        /// The length found.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A field holds a value that the format forbids.
    InvalidField {
        /// Byte offset of the field within its structure.
        offset: u32,
    },
    /// A zstd frame uses a feature this decoder does not implement.
    UnsupportedFrame,
    /// The output buffer is too small for the decoded data.
    OutputTooSmall {
        /// Bytes needed.
        needed: u64,
    },
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            WireError::Truncated { needed, available } => {
                write!(f, "truncated: need {needed} bytes, have {available}")
            }
            WireError::BadMagic => f.write_str("bad magic number"),
            WireError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            WireError::ChecksumMismatch { expected, actual } => {
                write!(f, "checksum mismatch: stored {expected:#010x}, computed {actual:#010x}")
            }
            WireError::TooLarge { len, max } => write!(f, "length {len} exceeds limit {max}"),
            WireError::InvalidField { offset } => write!(f, "invalid field at byte {offset}"),
            WireError::UnsupportedFrame => f.write_str("unsupported zstd frame feature"),
            WireError::OutputTooSmall { needed } => {
                write!(f, "output buffer too small: need {needed} bytes")
            }
        }
    }
}

impl core::error::Error for WireError {}

/// Little-endian field access that never panics: callers check lengths
/// first, and these helpers take fixed-size arrays.
pub(crate) mod le {
    use super::WireError;

    /// Checks the common start of comet's file headers: the 4-byte `magic`
    /// at offset 0, then a version (u32 at offset 4) in `accepted`, which
    /// it returns. A header shorter than 8 bytes is `Truncated`.
    pub fn magic_version(
        h: &[u8],
        magic: &[u8; 4],
        accepted: core::ops::RangeInclusive<u32>,
    ) -> Result<u32, WireError> {
        let (Some(m), Some(version)) = (h.get(..4), u32_at(h, 4)) else {
            return Err(WireError::Truncated { needed: 8, available: h.len() as u64 });
        };
        if m != magic {
            return Err(WireError::BadMagic);
        }
        if !accepted.contains(&version) {
            return Err(WireError::UnsupportedVersion(version));
        }
        Ok(version)
    }

    /// Reads a u16 at `at` or `None` when out of bounds.
    pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
    }
    /// Reads a u32 at `at` or `None` when out of bounds.
    pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
    }
    /// Reads a u64 at `at` or `None` when out of bounds.
    pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
    }
    /// Writes a u32 at `at`; returns `false` when out of bounds.
    pub fn put_u32(b: &mut [u8], at: usize, v: u32) -> bool {
        put(b, at, &v.to_le_bytes())
    }
    /// Writes a u64 at `at`; returns `false` when out of bounds.
    pub fn put_u64(b: &mut [u8], at: usize, v: u64) -> bool {
        put(b, at, &v.to_le_bytes())
    }
    fn put(b: &mut [u8], at: usize, v: &[u8]) -> bool {
        match at.checked_add(v.len()).and_then(|end| b.get_mut(at..end)) {
            Some(dst) => {
                dst.copy_from_slice(v);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_version_checks_length_magic_and_the_accepted_versions() {
        let h = [b'A', b'B', b'C', b'D', 2, 0, 0, 0];
        assert_eq!(le::magic_version(&h, b"ABCD", 1..=2), Ok(2));
        assert_eq!(le::magic_version(&h, b"ABCE", 1..=2), Err(WireError::BadMagic));
        assert_eq!(le::magic_version(&h, b"ABCD", 1..=1), Err(WireError::UnsupportedVersion(2)));
        assert_eq!(le::magic_version(&h[..7], b"ABCD", 1..=2), Err(WireError::Truncated { needed: 8, available: 7 }));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use std::vec;

    proptest! {
        #[test]
        fn entry_headers_roundtrip(len in any::<u32>(), timestamp in any::<u64>()) {
            let h = EntryHeader { len, timestamp };
            prop_assert_eq!(EntryHeader::parse(&h.to_bytes()).unwrap(), h);
        }

        #[test]
        fn classification_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), remaining in any::<u64>(), max in any::<u32>()) {
            let _ = classify_entry(&bytes, remaining, max);
        }

        #[test]
        fn raw_frames_roundtrip_and_reject_truncation(payload in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut frame = vec![0u8; raw_frame_len(payload.len())];
            write_raw_frame(&payload, &mut frame).unwrap();
            let mut out = vec![0u8; payload.len()];
            prop_assert_eq!(RawFrameDecoder.decompress(&frame, &mut out).unwrap(), payload.len());
            prop_assert_eq!(&out, &payload);
            for cut in [0, 1, 4, 5, frame.len() / 2, frame.len() - 1] {
                prop_assert!(RawFrameDecoder.decompress(&frame[..cut.min(frame.len() - 1)], &mut out).is_err());
            }
        }

        #[test]
        fn frame_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut with_magic = ZSTD_MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let mut out = vec![0u8; 4096];
            let _ = RawFrameDecoder.decompress(&with_magic, &mut out);
            let _ = frame_content_size(&with_magic);
        }

        #[test]
        fn encoded_payloads_are_never_ambiguous(payload in proptest::collection::vec(any::<u8>(), 0..600), magic in any::<bool>(), min in 0usize..700) {
            let mut p = payload;
            if magic {
                let mut m = ZSTD_MAGIC.to_vec();
                m.extend_from_slice(&p);
                p = m;
            }
            let mut dst = vec![0u8; raw_frame_len(p.len())];
            match encode_payload(&p, min, &mut NoCompression, &mut dst).unwrap() {
                StoredPayload::Raw => prop_assert!(!is_frame(&p)),
                StoredPayload::Frame(n) => {
                    let mut out = vec![0u8; p.len()];
                    RawFrameDecoder.decompress(&dst[..n], &mut out).unwrap();
                    prop_assert_eq!(out, p);
                }
            }
        }
    }
}

//! The dictionary file of a shard: `dict-<id>.zdict`.
//!
//! ```text
//! header (32 bytes)
//!   0  magic "CMTD"             4  version u32 = 1
//!   8  dictionary id u32        12 dictionary length u32
//!  16  first entry u64: the first entry number the writer may have
//!      compressed with this dictionary
//!  24  crc32 (IEEE) of bytes 0..24 followed by the dictionary bytes u32
//!  28  reserved u32 = 0
//! dictionary bytes from byte 32: a standard zstd dictionary
//!   (magic 37 A4 30 EC, its own dictionary id u32 = the header's, tables,
//!   content)
//! ```
//!
//! Frames compressed with it are standard zstd frames whose header names
//! the dictionary id ([`frame_dict_id`](super::frame_dict_id)). Ids are in
//! zstd's private range `DICT_ID_MIN..=DICT_ID_MAX`, numbered per shard in
//! the order the dictionaries were made.

use super::WireError;
use super::le;

/// The dictionary file's magic: `CMTD`.
pub const DICT_FILE_MAGIC: [u8; 4] = *b"CMTD";
/// The dictionary file format version this build writes and reads.
pub const DICT_FILE_VERSION: u32 = 1;
/// Bytes of the dictionary file's header.
pub const DICT_HEADER_LEN: usize = 32;
/// The zstd dictionary magic number as stored (0xEC30A437 LE).
pub const ZDICT_MAGIC: [u8; 4] = [0x37, 0xA4, 0x30, 0xEC];
/// The lowest dictionary id comet uses (zstd reserves lower ids for a
/// registry).
pub const DICT_ID_MIN: u32 = 32_768;
/// The highest dictionary id comet uses (zstd reserves higher ones).
pub const DICT_ID_MAX: u32 = (1 << 31) - 1;
/// The largest dictionary the format accepts (1 MiB; writers use far less,
/// `comet` 16 KiB by default).
pub const DICT_MAX_BYTES: u32 = 1 << 20;

/// Where the dictionary starts in the file, for error offsets.
const HEADER_AT: u32 = 32;

/// A parsed and checked dictionary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictFile<'a> {
    /// The dictionary id (the header's, equal to the zstd dictionary's).
    pub id: u32,
    /// The first entry number the writer may have compressed with it.
    pub first_entry: u64,
    /// The zstd dictionary bytes.
    pub dict: &'a [u8],
}

fn header_crc(header: &[u8], dict: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header.get(..24).unwrap_or(header));
    h.update(dict);
    h.finalize()
}

/// Checks a zstd dictionary's magic and id (range and, with `want`, value).
fn check_zdict(dict: &[u8], want: Option<u32>, base: u32) -> Result<u32, WireError> {
    if dict.len() < 8 {
        return Err(WireError::Truncated {
            needed: u64::from(base) + 8,
            available: u64::from(base) + dict.len() as u64,
        });
    }
    if dict[..4] != ZDICT_MAGIC {
        return Err(WireError::InvalidField { offset: base });
    }
    let id = le::u32_at(dict, 4).unwrap_or(0);
    if !(DICT_ID_MIN..=DICT_ID_MAX).contains(&id) || want.is_some_and(|w| w != id) {
        return Err(WireError::InvalidField { offset: base + 4 });
    }
    Ok(id)
}

/// The header of a dictionary file for `dict` (a zstd dictionary whose id
/// is already set, see [`set_dict_id`]), first used at `first_entry`.
/// Fails if `dict` is not a zstd dictionary, its id is outside
/// `DICT_ID_MIN..=DICT_ID_MAX`, or it is longer than [`DICT_MAX_BYTES`].
pub fn encode_dict_header(first_entry: u64, dict: &[u8]) -> Result<[u8; DICT_HEADER_LEN], WireError> {
    let id = check_zdict(dict, None, HEADER_AT)?;
    let len = u32::try_from(dict.len())
        .ok()
        .filter(|&l| l <= DICT_MAX_BYTES)
        .ok_or(WireError::TooLarge { len: dict.len() as u64, max: u64::from(DICT_MAX_BYTES) })?;
    let mut h = [0u8; DICT_HEADER_LEN];
    h[..4].copy_from_slice(&DICT_FILE_MAGIC);
    h[4..8].copy_from_slice(&DICT_FILE_VERSION.to_le_bytes());
    h[8..12].copy_from_slice(&id.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h[16..24].copy_from_slice(&first_entry.to_le_bytes());
    let crc = header_crc(&h, dict);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    Ok(h)
}

/// Parses and checks a whole dictionary file: magic, version, length (the
/// file is exactly header + dictionary), CRC, the zstd dictionary's magic,
/// and that its id equals the header's. Never panics.
pub fn parse_dict_file(bytes: &[u8]) -> Result<DictFile<'_>, WireError> {
    let Some(h) = bytes.get(..DICT_HEADER_LEN) else {
        return Err(WireError::Truncated { needed: DICT_HEADER_LEN as u64, available: bytes.len() as u64 });
    };
    le::magic_version(h, &DICT_FILE_MAGIC, DICT_FILE_VERSION..=DICT_FILE_VERSION)?;
    let id = le::u32_at(h, 8).unwrap_or(0);
    let len = le::u32_at(h, 12).unwrap_or(0);
    if len > DICT_MAX_BYTES {
        return Err(WireError::TooLarge { len: u64::from(len), max: u64::from(DICT_MAX_BYTES) });
    }
    let first_entry = le::u64_at(h, 16).unwrap_or(0);
    let stored = le::u32_at(h, 24).unwrap_or(0);
    if le::u32_at(h, 28) != Some(0) {
        return Err(WireError::InvalidField { offset: 28 });
    }
    let end = DICT_HEADER_LEN + len as usize;
    let Some(dict) = bytes.get(DICT_HEADER_LEN..end) else {
        return Err(WireError::Truncated { needed: end as u64, available: bytes.len() as u64 });
    };
    if bytes.len() != end {
        return Err(WireError::InvalidField { offset: 12 });
    }
    let actual = header_crc(h, dict);
    if actual != stored {
        return Err(WireError::ChecksumMismatch { expected: stored, actual });
    }
    check_zdict(dict, Some(id), HEADER_AT)?;
    Ok(DictFile { id, first_entry, dict })
}

/// Sets the id of a zstd dictionary (bytes 4..8; trainers pick a random
/// one). Fails if `dict` is not a zstd dictionary or `id` is outside
/// `DICT_ID_MIN..=DICT_ID_MAX`.
pub fn set_dict_id(dict: &mut [u8], id: u32) -> Result<(), WireError> {
    if !(DICT_ID_MIN..=DICT_ID_MAX).contains(&id) {
        return Err(WireError::InvalidField { offset: 4 });
    }
    if dict.len() < 8 {
        return Err(WireError::Truncated { needed: 8, available: dict.len() as u64 });
    }
    if dict[..4] != ZDICT_MAGIC {
        return Err(WireError::BadMagic);
    }
    dict[4..8].copy_from_slice(&id.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn zdict(id: u32, n: usize) -> Vec<u8> {
        let mut d = ZDICT_MAGIC.to_vec();
        d.extend_from_slice(&id.to_le_bytes());
        d.extend((0..n).map(|i| (i * 7) as u8));
        d
    }

    fn file(first: u64, dict: &[u8]) -> Vec<u8> {
        let mut f = encode_dict_header(first, dict).unwrap().to_vec();
        f.extend_from_slice(dict);
        f
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_writer_files_parse(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            id in DICT_ID_MIN..=DICT_ID_MAX,
            first in proptest::prelude::any::<u64>(),
        ) {
            let _ = parse_dict_file(&bytes);
            let _ = super::super::frame_dict_id(&bytes);
            let mut d = ZDICT_MAGIC.to_vec();
            d.extend_from_slice(&[0; 4]);
            d.extend_from_slice(&body);
            set_dict_id(&mut d, id).unwrap();
            let f = file(first, &d);
            proptest::prop_assert_eq!(parse_dict_file(&f), Ok(DictFile { id, first_entry: first, dict: &d }));
        }
    }

    #[test]
    fn roundtrip_and_golden_header() {
        let d = zdict(40_000, 100);
        let f = file(1234, &d);
        let p = parse_dict_file(&f).unwrap();
        assert_eq!(p, DictFile { id: 40_000, first_entry: 1234, dict: &d });
        assert_eq!(&f[..16], &[b'C', b'M', b'T', b'D', 1, 0, 0, 0, 0x40, 0x9C, 0, 0, 108, 0, 0, 0]);
        assert_eq!(&f[16..24], &1234u64.to_le_bytes());
        assert_eq!(&f[28..32], &[0, 0, 0, 0]);
    }

    #[test]
    fn every_flipped_bit_and_cut_is_an_error() {
        let d = zdict(DICT_ID_MIN, 40);
        let f = file(7, &d);
        for i in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                assert!(parse_dict_file(&g).is_err(), "byte {i} bit {bit}");
            }
        }
        for cut in 0..f.len() {
            assert!(parse_dict_file(&f[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = f.clone();
        longer.push(0);
        assert_eq!(parse_dict_file(&longer), Err(WireError::InvalidField { offset: 12 }));
    }

    #[test]
    fn header_and_dictionary_ids_must_agree() {
        let d = zdict(50_000, 40);
        let mut f = file(0, &d);
        // rewrite the header id and its CRC: the CRC passes, the id check fails
        f[8..12].copy_from_slice(&50_001u32.to_le_bytes());
        let crc = header_crc(&f[..DICT_HEADER_LEN], &f[DICT_HEADER_LEN..]);
        f[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse_dict_file(&f), Err(WireError::InvalidField { offset: 36 }));
    }

    #[test]
    fn ids_outside_the_private_range_are_refused() {
        assert!(encode_dict_header(0, &zdict(5, 10)).is_err());
        assert!(encode_dict_header(0, b"not a dictionary").is_err());
        let mut d = zdict(12, 10);
        assert!(set_dict_id(&mut d, 1).is_err());
        set_dict_id(&mut d, DICT_ID_MAX).unwrap();
        assert_eq!(parse_dict_file(&file(0, &d)).unwrap().id, DICT_ID_MAX);
        assert_eq!(set_dict_id(&mut [0u8; 8], DICT_ID_MIN), Err(WireError::BadMagic));
    }
}

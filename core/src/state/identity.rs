//! The data directory's identity file, `<root>/comet.id`: a random 128-bit
//! id, created once and never changed, so that anything naming an entry
//! outside the directory (the forwarder's `Nats-Msg-Id`) can tell two
//! directories apart even when their shard and entry numbers coincide.
//!
//! Layout (28 bytes, little-endian; docs/FORMAT.md, "`comet.id`"):
//!
//! ```text
//!  0       4   5       8                      24         28
//!  | magic | v | zeros |        id (16)       | crc32 LE |
//!  "CMID"   1                                   CRC-32 (IEEE) of bytes 0..24
//! ```
//!
//! This module holds the layout and its checks ([`DirId::encode`],
//! [`DirId::decode`]); creating and reading the file (created whole, never
//! rewritten; a damaged file is reported and left alone) is the Linux
//! layer's `comet_linux::dir_identity`.

use core::fmt;

/// The identity file's name inside the data directory.
pub const IDENTITY_FILE: &str = "comet.id";

/// The file's size in bytes.
pub const IDENTITY_LEN: usize = 28;

const MAGIC: [u8; 4] = *b"CMID";
const VERSION: u8 = 1;

/// Byte ranges of the fields.
mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const RESERVED: Range<usize> = 5..8;
    pub const ID: Range<usize> = 8..24;
    pub const CRC: Range<usize> = 24..28;
}

/// A data directory's identity: 128 random bits, shown as 32 lowercase hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirId([u8; 16]);

impl DirId {
    /// The id's bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// An id from its bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> DirId {
        DirId(bytes)
    }

    /// The identity file's bytes for this id.
    pub fn encode(self) -> [u8; IDENTITY_LEN] {
        let mut b = [0u8; IDENTITY_LEN];
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
        b[field::ID].copy_from_slice(&self.0);
        let crc = crc32fast::hash(&b[..field::CRC.start]);
        b[field::CRC].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Checks and decodes an identity file: `bytes` as read (at most one
    /// byte more than [`IDENTITY_LEN`] is enough to tell a long file from a
    /// full one), `len` the file's length. The checks run in this order:
    /// length, magic, checksum, version, reserved bytes.
    pub fn decode(bytes: &[u8], len: u64) -> Result<DirId, IdentityDamage> {
        let b: &[u8; IDENTITY_LEN] = bytes.try_into().map_err(|_| IdentityDamage::Length(len))?;
        let magic: [u8; 4] = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(IdentityDamage::Magic(magic));
        }
        let expected = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
        let got = crc32fast::hash(&b[..field::CRC.start]);
        if got != expected {
            return Err(IdentityDamage::Checksum { got, expected });
        }
        if b[field::VERSION] != VERSION {
            return Err(IdentityDamage::Version(b[field::VERSION]));
        }
        if b[field::RESERVED].iter().any(|&x| x != 0) {
            return Err(IdentityDamage::Reserved);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[field::ID]);
        Ok(DirId(id))
    }
}

impl fmt::Display for DirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirId({self})")
    }
}

/// What is wrong with a damaged `comet.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityDamage {
    /// The file is not 28 bytes long.
    Length(u64),
    /// The first 4 bytes are not `CMID`.
    Magic([u8; 4]),
    /// A version this build does not know.
    Version(u8),
    /// Reserved bytes are not zero.
    Reserved,
    /// The checksum does not match.
    Checksum {
        /// CRC-32 of bytes 0..24.
        got: u32,
        /// The stored CRC-32.
        expected: u32,
    },
}

impl fmt::Display for IdentityDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityDamage::Length(n) => write!(f, "{n} bytes long, expected {IDENTITY_LEN}"),
            IdentityDamage::Magic(m) => write!(f, "bad magic {m:02x?}"),
            IdentityDamage::Version(v) => write!(f, "unknown version {v}"),
            IdentityDamage::Reserved => f.write_str("reserved bytes are not zero"),
            IdentityDamage::Checksum { got, expected } => {
                write!(f, "checksum mismatch (computed {got:#010x}, stored {expected:#010x})")
            }
        }
    }
}

impl core::error::Error for IdentityDamage {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    /// The bitwise CRC-32 (IEEE 802.3, reflected) the file format was first
    /// written with: `crc32fast` must give the same bytes.
    fn bitwise_crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn crc_matches_the_standard_check_value_and_the_bitwise_original() {
        assert_eq!(bitwise_crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32fast::hash(b""), 0);
        for seed in 0..=255u8 {
            let id = DirId::from_bytes(core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8)));
            let b = id.encode();
            assert_eq!(&b[24..], &bitwise_crc32(&b[..24]).to_le_bytes());
        }
    }

    #[test]
    fn golden_bytes_round_trip() {
        let id = DirId::from_bytes(*b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10");
        let b = id.encode();
        assert_eq!(&b[..8], b"CMID\x01\0\0\0");
        assert_eq!(&b[8..24], &id.to_bytes());
        assert_eq!(&b[24..], &bitwise_crc32(&b[..24]).to_le_bytes());
        assert_eq!(DirId::decode(&b, IDENTITY_LEN as u64), Ok(id));
        assert_eq!(id.to_string(), "0123456789abcdeffedcba9876543210");
    }

    #[test]
    fn every_damage_is_named() {
        let good = DirId::from_bytes([7; 16]).encode();
        assert_eq!(DirId::decode(&good[..27], 27), Err(IdentityDamage::Length(27)));
        let mut b = good;
        b[0] = b'X';
        assert!(matches!(DirId::decode(&b, 28), Err(IdentityDamage::Magic(_))));
        for at in 8..28 {
            let mut b = good;
            b[at] ^= 0x10;
            assert!(matches!(DirId::decode(&b, 28), Err(IdentityDamage::Checksum { .. })), "flip at {at}");
        }
        let mut b = good;
        b[4] = 2;
        let crc = bitwise_crc32(&b[..24]);
        b[24..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(DirId::decode(&b, 28), Err(IdentityDamage::Version(2)));
        b[4] = 1;
        b[6] = 1;
        let crc = bitwise_crc32(&b[..24]);
        b[24..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(DirId::decode(&b, 28), Err(IdentityDamage::Reserved));
    }
}

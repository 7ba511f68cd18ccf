//! The Go package's `index.bin` (magic bytes `TMOC`), read for import.
//!
//! ```text
//! header, 36 bytes: magic "TMOC" | version u32 = 1 | current entry u64 |
//!   current write offset u64 | consumers u32 | nodes u32 | files u32
//! consumers: [u8 name len][name][u64 offset] x consumers
//! nodes:     [u64 entry][u32 file index][u64 byte offset] x nodes (20 bytes each)
//! files:     [u16 path len][path][u64 start off][u64 end off][u64 start entry]
//!            [u64 entries][u64 start ns][u64 end ns] x files
//! ```
//!
//! No checksum; paths are whatever the Go process used (absolute or
//! relative), so only their last component is kept. A file shorter than 36
//! bytes but at least 32 has no file section (older Go versions).

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{WireError, le};

/// The Go package's index magic as stored (`TMOC`).
pub const GO_INDEX_MAGIC: [u8; 4] = *b"TMOC";

/// One file record of a Go index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFile {
    /// The file's name (last path component).
    pub name: String,
    /// Entry number of its first entry.
    pub start_entry: u64,
    /// Entries the index attributes to it.
    pub entries: u64,
    /// Creation time, unix ns.
    pub start_ns: u64,
    /// Last update time, unix ns.
    pub end_ns: u64,
}

/// A decoded Go index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoIndex {
    /// The durable entry count the index recorded.
    pub current_entry: u64,
    /// Legacy consumer offsets stored in the index.
    pub consumers: Vec<(String, u64)>,
    /// File records, in the order stored.
    pub files: Vec<GoFile>,
}

impl GoIndex {
    /// Decodes a Go `index.bin`. Never panics; counts are bounded by the
    /// input length before anything is allocated.
    pub fn decode(b: &[u8]) -> Result<GoIndex, WireError> {
        let trunc = |needed: usize| WireError::Truncated { needed: needed as u64, available: b.len() as u64 };
        if b.len() < 32 {
            return Err(trunc(32));
        }
        le::magic_version(b, &GO_INDEX_MAGIC, 1..=1)?;
        let u32_at = |at: usize| le::u32_at(b, at).ok_or(trunc(at + 4));
        let u64_at = |at: usize| le::u64_at(b, at).ok_or(trunc(at + 8));
        let current_entry = u64_at(8)?;
        let consumers = u32_at(24)? as usize;
        let nodes = u32_at(28)? as usize;
        let (files, mut at) = if b.len() > 36 { (u32_at(32)? as usize, 36) } else { (0, 32) };
        if consumers > b.len() / 9 || nodes > b.len() / 20 || files > b.len() / 50 {
            return Err(WireError::InvalidField { offset: 24 });
        }
        let mut idx = GoIndex { current_entry, consumers: Vec::with_capacity(consumers), files: Vec::new() };
        for _ in 0..consumers {
            let len = usize::from(*b.get(at).ok_or(trunc(at + 1))?);
            let name = b.get(at + 1..at + 1 + len).ok_or(trunc(at + 1 + len))?;
            let off = u64_at(at + 1 + len)?;
            if let Ok(name) = core::str::from_utf8(name) {
                idx.consumers.push((String::from(name), off));
            }
            at += 1 + len + 8;
        }
        at = at.checked_add(nodes * 20).ok_or(trunc(usize::MAX))?;
        if at > b.len() {
            return Err(trunc(at));
        }
        idx.files.reserve(files);
        for _ in 0..files {
            let len = usize::from(le::u16_at(b, at).ok_or(trunc(at + 2))?);
            let path = b.get(at + 2..at + 2 + len).ok_or(trunc(at + 2 + len))?;
            let rec = at + 2 + len;
            let path = core::str::from_utf8(path).map_err(|_| WireError::InvalidField { offset: offset32(at) })?;
            let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
            idx.files.push(GoFile {
                name: String::from(name),
                start_entry: u64_at(rec + 16)?,
                entries: u64_at(rec + 24)?,
                start_ns: u64_at(rec + 32)?,
                end_ns: u64_at(rec + 40)?,
            });
            at = rec + 48;
        }
        Ok(idx)
    }

    /// The record for a file name.
    pub fn file(&self, name: &str) -> Option<&GoFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

fn offset32(at: usize) -> u32 {
    crate::num::at32(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> Vec<u8> {
        let mut b = b"TMOC".to_vec();
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&600u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes()); // consumers
        b.extend_from_slice(&1u32.to_le_bytes()); // nodes
        b.extend_from_slice(&1u32.to_le_bytes()); // files
        b.push(3);
        b.extend_from_slice(b"old");
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&[0u8; 20]);
        let path = b"small/shard-0001/log-0000000000000001.comet";
        b.extend_from_slice(&(path.len() as u16).to_le_bytes());
        b.extend_from_slice(path);
        for v in [0u64, 100, 0, 209, 5, 6] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn decodes_go_layout() {
        let idx = GoIndex::decode(&sample()).unwrap();
        assert_eq!(idx.current_entry, 600);
        assert_eq!(idx.consumers, vec![(String::from("old"), 7)]);
        assert_eq!(idx.files.len(), 1);
        assert_eq!(idx.files[0].name, "log-0000000000000001.comet");
        assert_eq!((idx.files[0].start_entry, idx.files[0].entries), (0, 209));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = sample();
        for cut in 0..b.len() {
            if cut == 32 || cut == 36 {
                continue; // legal short forms
            }
            assert!(GoIndex::decode(&b[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn absurd_counts_are_rejected_before_allocating() {
        let mut b = sample();
        b[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(GoIndex::decode(&b).is_err());
    }
}

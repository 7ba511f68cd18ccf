//! `offsets.state`: consumer-group offsets, the Go layout with safe claiming.
//!
//! ```text
//! 0      64-byte header: u32 version, u32 magic 0xC0FE0FF5, 56 reserved
//! 64     512 slots x 128 bytes:
//!          0  name, 48 bytes, NUL-padded (at most 47 bytes used)
//!         48  offset i64: next entry to read
//!         56  last update i64: 0 free, 1 claimed, >1 unix ns of last set
//!         64  ack count u64
//!         72  name check u32: CRC-32 of the 48 name bytes, | 1 (never 0)
//!         76  reserved u32
//!         80  offset check u64: the offset's bitwise complement (version 3)
//!         88  reserved (40 bytes)
//! ```
//!
//! Version 1 is the Go package's file. Version 2 (earlier comet builds)
//! adds the name check: a slot is claimed by a compare-and-swap of `last
//! update` from 0 to 1, then the name is written, then the name check; a
//! slot whose check does not match its name is a claim in progress (or one
//! torn by a crash) and never matches a lookup. Lookups never claim.
//!
//! Version 3 (ours) adds the offset check, so a flipped bit in an offset is
//! found instead of making a group skip or repeat entries. An offset whose
//! check does not match (a bit flip at rest, or a writer killed between
//! its two stores) is read as the smaller of the offset and the check's
//! complement: damage never makes a group skip entries, at worst it
//! redelivers some, and `verify` reports it. Writers that find a mismatch
//! (after waiting out a concurrent update) store that safe value first.
//! The atomics are in `state::shm` ([`crate::platform::shm`]), over the
//! platform's mapping; this module defines offsets and pure helpers.

use crate::error::NameError;
use crate::wire::{WireError, fnv1a32, le};

/// File name of the offsets table.
pub const OFFSETS_FILE: &str = "offsets.state";
/// Header size.
pub const HEADER_SIZE: usize = 64;
/// Number of slots.
pub const SLOTS: usize = 512;
/// Size of one slot.
pub const SLOT_SIZE: usize = 128;
/// Total file size: 65 600 bytes.
pub const FILE_SIZE: usize = HEADER_SIZE + SLOTS * SLOT_SIZE;
/// Magic number (u32 LE at byte 4).
pub const MAGIC: u32 = 0xC0FE_0FF5;
/// The Go package's version.
pub const VERSION_GO: u32 = 1;
/// Earlier comet builds (slots carry a name check).
pub const VERSION_NAME_CHECK: u32 = 2;
/// Our version (slots carry a name check and an offset check).
pub const VERSION: u32 = 3;
/// Size of the name field.
pub const NAME_FIELD: usize = 48;
/// Longest group name in bytes.
pub const MAX_GROUP_LEN: usize = NAME_FIELD - 1;

/// Byte offsets inside a slot.
pub mod slot {
    /// Name field (48 bytes).
    pub const NAME: usize = 0;
    /// Offset (i64).
    pub const OFFSET: usize = 48;
    /// Last update (i64): 0 free, 1 claimed, >1 ns.
    pub const LAST_UPDATE: usize = 56;
    /// Ack count (u64).
    pub const ACK_COUNT: usize = 64;
    /// Name check (u32).
    pub const NAME_CHECK: usize = 72;
    /// Offset check (u64): the offset's complement (version 3).
    pub const OFFSET_CHECK: usize = 80;
}

/// `last update` of a free slot.
pub const FREE: i64 = 0;
/// `last update` of a claimed slot whose offset was never set.
pub const CLAIMED: i64 = 1;

const _: () = {
    assert!(FILE_SIZE == 65_600);
    assert!(slot::OFFSET.is_multiple_of(8) && slot::LAST_UPDATE.is_multiple_of(8) && slot::ACK_COUNT.is_multiple_of(8));
    assert!(HEADER_SIZE.is_multiple_of(8) && SLOT_SIZE.is_multiple_of(8));
};

/// Validates a consumer group name: 1..=47 bytes of printable ASCII
/// (`!` 0x21 to `~` 0x7E), without `/`, `\\` or `..`. Space, control
/// bytes, DEL and non-ASCII bytes are refused, so a name prints as itself
/// and can never fake a line, a column or a path (docs/FORMAT.md,
/// `offsets.state`). Names already stored in a file are read back as they
/// are; tools escape them when printing.
pub fn validate_group(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_GROUP_LEN {
        return Err(NameError::TooLong { len: name.len(), max: MAX_GROUP_LEN });
    }
    if let Some((at, byte)) =
        name.bytes().enumerate().find(|&(_, b)| !(0x21..=0x7e).contains(&b) || b == b'/' || b == b'\\')
    {
        return Err(NameError::ForbiddenByte { byte, at });
    }
    if name.contains("..") {
        return Err(NameError::DotDot);
    }
    Ok(())
}

/// Byte offset of slot `i` in the file.
pub const fn slot_offset(i: usize) -> usize {
    HEADER_SIZE + i * SLOT_SIZE
}

/// The slots to probe for `name`, in order: FNV-1a modulo 512, then linear.
pub fn probe_order(name: &str) -> impl Iterator<Item = usize> {
    let start = fnv1a32(name.as_bytes()) as usize % SLOTS;
    (0..SLOTS).map(move |k| (start + k) % SLOTS)
}

/// The 48-byte name field for a validated `name`.
pub fn name_field(name: &str) -> [u8; NAME_FIELD] {
    let mut f = [0u8; NAME_FIELD];
    let n = name.len().min(MAX_GROUP_LEN);
    f[..n].copy_from_slice(&name.as_bytes()[..n]);
    f
}

/// The name check of a 48-byte name field (never 0, so 0 means "not set").
pub fn name_check(field: &[u8; NAME_FIELD]) -> u32 {
    crc32fast::hash(field) | 1
}

/// The 64-byte header of a new file: version, magic, and (version 3) a
/// header check at byte 8, `crc32(bytes 0..8) | 1`, so a flipped version
/// byte is found rather than read as an older table.
pub fn new_header() -> [u8; HEADER_SIZE] {
    let mut h = [0u8; HEADER_SIZE];
    le::put_u32(&mut h, 0, VERSION);
    le::put_u32(&mut h, 4, MAGIC);
    let check = header_check(&h);
    le::put_u32(&mut h, 8, check);
    h
}

/// The header check of a header's first 8 bytes (never 0: 0 means "not
/// written", as in tables before version 3).
pub fn header_check(header: &[u8]) -> u32 {
    crc32fast::hash(header.get(..8).unwrap_or_default()) | 1
}

/// Validates a header; returns its version (1 = Go and 2 = earlier comet,
/// both upgraded by the first write; 3).
pub fn check_header(header: &[u8], file_len: u64) -> Result<u32, WireError> {
    if file_len != FILE_SIZE as u64 {
        return Err(WireError::Truncated { needed: FILE_SIZE as u64, available: file_len });
    }
    let (Some(version), Some(magic)) = (le::u32_at(header, 0), le::u32_at(header, 4)) else {
        return Err(WireError::Truncated { needed: 8, available: header.len() as u64 });
    };
    if magic != MAGIC {
        return Err(WireError::BadMagic);
    }
    if !(VERSION_GO..=VERSION).contains(&version) {
        return Err(WireError::UnsupportedVersion(version));
    }
    // Only version 3 writes the check; one present must match (a version
    // byte flipped to an older version would otherwise pass). A version 3
    // header without it is the moment between an upgrade's two stores (the
    // header word first, then the check), and harmless otherwise: version
    // and magic are still validated.
    let stored = le::u32_at(header, 8).unwrap_or(0);
    let actual = header_check(header);
    if stored != 0 && stored != actual && !cfg!(fuzzing) {
        return Err(WireError::ChecksumMismatch { expected: stored, actual });
    }
    Ok(version)
}

/// A decoded slot (for tools, tests and fuzzing; live code reads fields
/// atomically).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotView<'a> {
    /// The name field.
    pub name: &'a [u8; NAME_FIELD],
    /// Next entry to read.
    pub offset: i64,
    /// 0 free, 1 claimed, >1 ns of the last set.
    pub last_update: i64,
    /// Number of sets.
    pub ack_count: u64,
    /// Stored name check.
    pub check: u32,
    /// Stored offset check (version 3: the offset's complement).
    pub offset_check: u64,
}

/// The state of a slot as a lookup sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState<'a> {
    /// Never claimed: ends a probe chain.
    Free,
    /// Claimed and named; `Some(offset)` once an offset was set.
    Named {
        /// The group name (without NUL padding).
        name: &'a [u8],
        /// The offset, if one was ever set.
        offset: Option<i64>,
    },
    /// Claimed but the name check does not match (claim in progress or torn
    /// by a crash): skipped by lookups, never reused.
    Unsettled,
}

impl<'a> SlotView<'a> {
    /// Decodes a 128-byte slot.
    pub fn parse(bytes: &'a [u8]) -> Result<SlotView<'a>, WireError> {
        if bytes.len() < SLOT_SIZE {
            return Err(WireError::Truncated { needed: SLOT_SIZE as u64, available: bytes.len() as u64 });
        }
        let Some(name) = bytes.get(..NAME_FIELD).and_then(|n| n.try_into().ok()) else {
            return Err(WireError::Truncated { needed: SLOT_SIZE as u64, available: bytes.len() as u64 });
        };
        let (Some(offset), Some(last), Some(acks), Some(check), Some(offset_check)) = (
            le::u64_at(bytes, slot::OFFSET),
            le::u64_at(bytes, slot::LAST_UPDATE),
            le::u64_at(bytes, slot::ACK_COUNT),
            le::u32_at(bytes, slot::NAME_CHECK),
            le::u64_at(bytes, slot::OFFSET_CHECK),
        ) else {
            return Err(WireError::Truncated { needed: SLOT_SIZE as u64, available: bytes.len() as u64 });
        };
        Ok(SlotView { name, offset: offset as i64, last_update: last as i64, ack_count: acks, check, offset_check })
    }

    /// True if the stored offset matches its check (always for tables
    /// before version 3, which have none).
    pub fn offset_intact(&self, version: u32) -> bool {
        version < VERSION || self.offset_check == !(self.offset as u64)
    }

    /// Interprets the slot. `version` is the file's header version: Go's
    /// files have no name checks, so any NUL-terminated name counts.
    pub fn state(&self, version: u32) -> SlotState<'a> {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
        if self.last_update == FREE && len == 0 {
            return SlotState::Free;
        }
        let settled = if version == VERSION_GO {
            len > 0 && len < NAME_FIELD
        } else {
            len > 0 && len < NAME_FIELD && self.check == name_check(self.name)
        };
        if !settled {
            return SlotState::Unsettled;
        }
        let stored = safe_offset(self.offset as u64, self.offset_check, version);
        let offset = (self.last_update > CLAIMED).then_some(stored as i64).filter(|&o| o >= 0);
        SlotState::Named { name: &self.name[..len], offset }
    }
}

/// The offset to use for a slot: the stored one when it matches its check
/// (or the table has no checks), else the smaller of it and the check's
/// complement, so damage never makes a group skip entries.
pub fn safe_offset(offset: u64, check: u64, version: u32) -> u64 {
    if version < VERSION || check == !offset { offset } else { offset.min(!check) }
}

/// Builds a fresh table image from the bytes of a damaged `offsets.state`
/// (wrong size, bad header): every slot whose name check matches a valid
/// group name keeps its offset ([`safe_offset`]) and last update; anything
/// else is dropped (those groups restart from the first retained entry:
/// redelivery, never loss). Writes the image into `out` (all
/// [`FILE_SIZE`] bytes); returns `(groups kept, slots dropped)`.
pub fn salvage(bytes: &[u8], out: &mut [u8; FILE_SIZE]) -> (usize, usize) {
    out.fill(0);
    out[..HEADER_SIZE].copy_from_slice(&new_header());
    let version = check_header(bytes.get(..HEADER_SIZE).unwrap_or(&[]), FILE_SIZE as u64).unwrap_or(VERSION);
    let (mut kept, mut dropped) = (0, 0);
    for i in 0..SLOTS {
        let Some(view) = bytes.get(slot_offset(i)..).and_then(|b| SlotView::parse(b).ok()) else {
            continue;
        };
        if view.last_update == FREE && view.name.iter().all(|&b| b == 0) {
            continue;
        }
        let len = view.name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
        let name = core::str::from_utf8(&view.name[..len]).ok().filter(|g| validate_group(g).is_ok());
        let (Some(name), true) = (name, view.check == name_check(view.name)) else {
            dropped += 1;
            continue;
        };
        let Some(home) = probe_order(name).find(|&k| le::u64_at(out, slot_offset(k) + slot::LAST_UPDATE) == Some(0))
        else {
            dropped += 1;
            continue;
        };
        let at = slot_offset(home);
        let offset = safe_offset(view.offset as u64, view.offset_check, version.max(VERSION_NAME_CHECK));
        out[at..at + NAME_FIELD].copy_from_slice(view.name);
        le::put_u64(out, at + slot::OFFSET, offset);
        le::put_u64(out, at + slot::LAST_UPDATE, (view.last_update as u64).max(CLAIMED as u64));
        le::put_u64(out, at + slot::ACK_COUNT, view.ack_count);
        le::put_u32(out, at + slot::NAME_CHECK, view.check);
        le::put_u64(out, at + slot::OFFSET_CHECK, !offset);
        kept += 1;
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn group_names_47_48_49() {
        assert!(validate_group(&"g".repeat(47)).is_ok());
        assert_eq!(validate_group(&"g".repeat(48)), Err(NameError::TooLong { len: 48, max: 47 }));
        assert_eq!(validate_group(&"g".repeat(49)), Err(NameError::TooLong { len: 49, max: 47 }));
        assert_eq!(validate_group(""), Err(NameError::Empty));
        assert_eq!(validate_group("a\0b"), Err(NameError::ForbiddenByte { byte: 0, at: 1 }));
    }

    #[test]
    fn group_names_are_printable_ascii() {
        for ok in ["demo", "a", "billing-v2", "team.svc_1", "x:y@z", "!~", "~", "a.b.c"] {
            assert_eq!(validate_group(ok), Ok(()), "{ok:?}");
        }
        let bad = |name: &str, byte: u8, at: usize| {
            assert_eq!(validate_group(name), Err(NameError::ForbiddenByte { byte, at }), "{name:?}");
        };
        bad("a b", b' ', 1);
        bad("a\nb", b'\n', 1);
        bad("\u{1b}[2J", 0x1b, 0);
        bad("a\tb", b'\t', 1);
        bad("a\x7f", 0x7f, 1);
        bad("a/b", b'/', 1);
        bad("a\\b", b'\\', 1);
        bad("café", 0xc3, 3);
        bad("\u{202e}x", 0xe2, 0);
        assert_eq!(validate_group(".."), Err(NameError::DotDot));
        assert_eq!(validate_group("a..b"), Err(NameError::DotDot));
        // Every single byte: exactly `!`..=`~` less `/` and `\`.
        for b in 0u8..=0x7f {
            let name = std::string::String::from(char::from(b));
            let ok = (0x21..=0x7e).contains(&b) && b != b'/' && b != b'\\';
            assert_eq!(validate_group(&name).is_ok(), ok, "byte {b:#04x}");
        }
    }

    #[test]
    fn header_checks() {
        let h = new_header();
        assert_eq!(&h[..8], &[3, 0, 0, 0, 0xF5, 0x0F, 0xFE, 0xC0]);
        assert_eq!(check_header(&h, FILE_SIZE as u64), Ok(3));
        for byte in 0..12 {
            let mut bad = h;
            bad[byte] ^= 0x02;
            assert!(check_header(&bad, FILE_SIZE as u64).is_err(), "flip at {byte}");
        }
        let mut older = h;
        older[8..12].fill(0);
        older[0] = 2;
        assert_eq!(check_header(&older, FILE_SIZE as u64), Ok(2), "an earlier comet's table");
        let mut go = h;
        go[0] = 1;
        go[8..12].fill(0);
        assert_eq!(check_header(&go, FILE_SIZE as u64), Ok(1));
        let mut unchecked = h;
        unchecked[8..12].fill(0);
        assert_eq!(check_header(&unchecked, FILE_SIZE as u64), Ok(3), "mid-upgrade");
        assert!(check_header(&h, 100).is_err());
        let mut bad = h;
        bad[4] ^= 1;
        assert_eq!(check_header(&bad, FILE_SIZE as u64), Err(WireError::BadMagic));
        let mut newer = h;
        newer[0] = 4;
        newer[8..12].fill(0);
        assert_eq!(check_header(&newer, FILE_SIZE as u64), Err(WireError::UnsupportedVersion(4)));
    }

    #[test]
    fn slot_states() {
        let mut s = [0u8; SLOT_SIZE];
        assert_eq!(SlotView::parse(&s).unwrap().state(VERSION), SlotState::Free);
        le::put_u64(&mut s, slot::LAST_UPDATE, CLAIMED as u64);
        assert_eq!(SlotView::parse(&s).unwrap().state(VERSION), SlotState::Unsettled);
        let field = name_field("billing");
        s[..NAME_FIELD].copy_from_slice(&field);
        assert_eq!(SlotView::parse(&s).unwrap().state(VERSION), SlotState::Unsettled, "no check yet");
        assert_eq!(SlotView::parse(&s).unwrap().state(VERSION_GO), SlotState::Named { name: b"billing", offset: None });
        le::put_u32(&mut s, slot::NAME_CHECK, name_check(&field));
        assert_eq!(SlotView::parse(&s).unwrap().state(VERSION), SlotState::Named { name: b"billing", offset: None });
        le::put_u64(&mut s, slot::OFFSET, 250);
        le::put_u64(&mut s, slot::OFFSET_CHECK, !250);
        le::put_u64(&mut s, slot::LAST_UPDATE, 1_700_000_000_000_000_000);
        assert_eq!(
            SlotView::parse(&s).unwrap().state(VERSION),
            SlotState::Named { name: b"billing", offset: Some(250) }
        );
        // a flipped offset bit: found, and read as the lower value
        let mut flipped = s;
        flipped[slot::OFFSET + 1] ^= 0x04; // 250 + 1024
        let v = SlotView::parse(&flipped).unwrap();
        assert!(!v.offset_intact(VERSION));
        assert_eq!(v.state(VERSION), SlotState::Named { name: b"billing", offset: Some(250) });
        let mut lowered = s;
        lowered[slot::OFFSET] ^= 0x02; // 248
        assert_eq!(
            SlotView::parse(&lowered).unwrap().state(VERSION),
            SlotState::Named { name: b"billing", offset: Some(248) }
        );
        assert!(SlotView::parse(&s).unwrap().offset_intact(VERSION));
        s[3] ^= 0x20; // torn name
        assert_eq!(SlotView::parse(&s).unwrap().state(VERSION), SlotState::Unsettled);
        assert!(SlotView::parse(&s[..100]).is_err());
    }

    #[test]
    fn salvage_keeps_every_slot_that_checks_out() {
        let mut table = vec![0u8; FILE_SIZE];
        table[..HEADER_SIZE].copy_from_slice(&new_header());
        for (g, off) in [("billing", 10u64), ("audit", 20), ("torn", 30)] {
            let home = probe_order(g).next().unwrap();
            let at = slot_offset(home);
            let field = name_field(g);
            table[at..at + NAME_FIELD].copy_from_slice(&field);
            le::put_u64(&mut table, at + slot::OFFSET, off);
            le::put_u64(&mut table, at + slot::OFFSET_CHECK, !off);
            le::put_u64(&mut table, at + slot::LAST_UPDATE, 99);
            le::put_u32(&mut table, at + slot::NAME_CHECK, name_check(&field) ^ (u32::from(g == "torn") * 2));
        }
        // truncated, header gone
        table[..HEADER_SIZE].fill(0xEE);
        let cut =
            slot_offset(probe_order("billing").next().unwrap().max(probe_order("audit").next().unwrap())) + SLOT_SIZE;
        let mut out = [0u8; FILE_SIZE];
        let (kept, dropped) = salvage(&table[..cut.max(HEADER_SIZE + SLOT_SIZE)], &mut out);
        assert_eq!((kept, dropped), (2, usize::from(slot_offset(probe_order("torn").next().unwrap()) < cut)));
        assert_eq!(check_header(&out, FILE_SIZE as u64), Ok(VERSION));
        let find = |g: &str| {
            (0..SLOTS).find_map(|i| match SlotView::parse(&out[slot_offset(i)..]).unwrap().state(VERSION) {
                SlotState::Named { name, offset } if name == g.as_bytes() => offset,
                _ => None,
            })
        };
        assert_eq!((find("billing"), find("audit"), find("torn")), (Some(10), Some(20), None));
    }

    #[test]
    fn probe_starts_at_fnv() {
        let order: vec::Vec<usize> = probe_order("default").take(3).collect();
        assert_eq!(order, [478, 479, 480], "0x933b5bde % 512 = 478");
        assert_eq!(probe_order("x").count(), SLOTS);
    }
}

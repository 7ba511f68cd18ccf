//! Shared-memory protocols over `comet.state` and `offsets.state`.
//!
//! The platforms map these files `MAP_SHARED` and hand this module the
//! mapping as a slice of `AtomicU64` (the only `unsafe` step, done in their
//! `mmap` modules). Everything here is safe code over that slice, so the
//! same protocol — seqlock for the durable head, compare-and-swap slot
//! claims for consumer groups — runs in every process and every platform,
//! and can be tested without files.
//!
//! Compiled only where 64-bit atomics exist and the host is little-endian
//! (the files are little-endian). There is deliberately no lock-based
//! fallback: a lock inside one process protects nothing in another.
//!
//! Readers may map the files read-only. Every function that only reads
//! ([`load_head_line`], [`load_counter`], [`OffsetsTable::open_read`] and the
//! lookups of a table) therefore does only `Relaxed` 64-bit loads (followed
//! by an `Acquire` fence where ordering matters): those are the atomic
//! accesses Rust permits on read-only memory.

use core::sync::atomic::{AtomicU64, Ordering, fence};

use crate::error::NameError;
use crate::state::offsets::{
    self, CLAIMED, FILE_SIZE, HEADER_SIZE, MAGIC, NAME_FIELD, SLOT_SIZE, SLOTS, VERSION, VERSION_GO, name_check,
    name_field, probe_order, safe_offset, slot, validate_group,
};
use crate::state::{Counter, DurableHead, HEAD_LINE, SEQ_OFFSET, STATE_LINE, STATE_SIZE};
use crate::wire::WireError;

/// Words in `comet.state`.
pub const STATE_WORDS: usize = STATE_SIZE / 8;
/// Words in `offsets.state`.
pub const OFFSETS_WORDS: usize = FILE_SIZE / 8;

const HEAD_WORDS: usize = STATE_LINE / 8;

/// A load with acquire semantics that is safe on read-only memory: a
/// `Relaxed` load followed by an `Acquire` fence.
fn load_acquire(w: &AtomicU64) -> u64 {
    let v = w.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    v
}
const SEQ_WORD: usize = (HEAD_LINE + SEQ_OFFSET) / 8;

/// Publishes `head` into the head line of a `comet.state` mapping under the
/// seqlock: readers see the old or the new head, never a mix.
pub fn store_head(words: &[AtomicU64], head: &DurableHead) {
    let Some(line) = words.get(HEAD_LINE / 8..HEAD_LINE / 8 + HEAD_WORDS) else {
        return;
    };
    let seq = line[SEQ_WORD].load(Ordering::Relaxed);
    let seq = seq + 1 + (seq & 1); // odd: write in progress
    let bytes = head.encode(seq + 1);
    line[SEQ_WORD].store(seq, Ordering::Relaxed);
    fence(Ordering::Release);
    for (i, w) in line.iter().enumerate() {
        if i != SEQ_WORD {
            w.store(word(&bytes, i), Ordering::Relaxed);
        }
    }
    line[SEQ_WORD].store(seq + 1, Ordering::Release);
}

/// Reads the head line consistently (retrying while a writer is mid-way,
/// at most `spins` times). Returns the raw line for
/// [`DurableHead::decode`]; a line left mid-write by a killed writer keeps
/// its odd sequence and fails to decode, as it should.
pub fn load_head_line(words: &[AtomicU64], spins: u32) -> [u8; STATE_LINE] {
    let mut out = [0u8; STATE_LINE];
    let Some(line) = words.get(HEAD_LINE / 8..HEAD_LINE / 8 + HEAD_WORDS) else {
        return out;
    };
    for _ in 0..=spins {
        let s1 = load_acquire(&line[SEQ_WORD]);
        for (i, w) in line.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        fence(Ordering::Acquire);
        let s2 = line[SEQ_WORD].load(Ordering::Relaxed);
        if s1 == s2 && s1 & 1 == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    out
}

/// Reads and decodes the durable head, retrying while a writer is
/// mid-update (a line that stays undecodable after the retries, such as
/// one a killed writer left mid-write or an all-zero state block, is
/// `None`). Returns the head with the seqlock sequence it was published
/// under (see [`head_seq`]).
pub fn load_head(words: &[AtomicU64]) -> Option<(DurableHead, u64)> {
    for _ in 0..100 {
        if let Ok(decoded) = DurableHead::decode(&load_head_line(words, 1000)) {
            return Some(decoded);
        }
        core::hint::spin_loop();
    }
    None
}

/// The head line's seqlock sequence (`Acquire`). It changes with every
/// publication, so a reader that decoded the head at sequence `s` may keep
/// using that head for as long as this still returns `s`.
pub fn head_seq(words: &[AtomicU64]) -> u64 {
    words.get(HEAD_LINE / 8 + SEQ_WORD).map_or(1, load_acquire)
}

fn word(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

fn counter_word(words: &[AtomicU64], c: Counter) -> Option<&AtomicU64> {
    words.get(c.offset() / 8)
}

/// Adds `v` to a counter (or stores it, for gauges).
pub fn add_counter(words: &[AtomicU64], c: Counter, v: u64) {
    if let Some(w) = counter_word(words, c) {
        if c.is_gauge() {
            w.store(v, Ordering::Relaxed);
        } else {
            w.fetch_add(v, Ordering::Relaxed);
        }
    }
}

/// Zeroes every counter but [`Counter::ManifestGeneration`] (which readers
/// compare to notice a replaced manifest). A writer calls it when recovery
/// found the state block invalid
/// ([`RecoveryReport::state_reset`](crate::shard::RecoveryReport::state_reset)),
/// before publishing the engine's counters: the counters of an invalid
/// block mean nothing.
pub fn clear_counters(words: &[AtomicU64]) {
    for c in Counter::ALL {
        if c != Counter::ManifestGeneration
            && let Some(w) = counter_word(words, c)
        {
            w.store(0, Ordering::Relaxed);
        }
    }
}

/// Reads a counter.
pub fn load_counter(words: &[AtomicU64], c: Counter) -> u64 {
    counter_word(words, c).map_or(0, load_acquire)
}

/// Why an offsets operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetsError {
    /// The group name is invalid.
    Name(NameError),
    /// All 512 slots are taken.
    TableFull,
    /// The mapping has the wrong size or header.
    Layout(WireError),
}

impl core::fmt::Display for OffsetsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OffsetsError::Name(n) => write!(f, "invalid group name: {n}"),
            OffsetsError::TableFull => f.write_str("offsets.state is full (512 groups)"),
            OffsetsError::Layout(e) => write!(f, "offsets.state: {e}"),
        }
    }
}

impl core::error::Error for OffsetsError {}

/// One group's stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupOffset {
    /// Next entry to read.
    pub offset: u64,
    /// Unix ns of the last update.
    pub last_update: u64,
    /// Number of updates.
    pub updates: u64,
}

/// A group's slot in `offsets.state`, found (or claimed) once through
/// [`OffsetsTable::slot_of`] or [`OffsetsTable::find_slot`]. Slots never
/// move and are never reused, so updates can go straight to the slot; each
/// one re-checks the table header and the slot's name (a few loads) and
/// reports a mismatch as `None`, after which the caller looks the group up
/// again through [`OffsetsTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSlot {
    index: usize,
    check: u32,
    name: [u64; NAME_WORDS],
}

/// The header word of a current-version table.
const FRESH_HEADER: u64 = VERSION as u64 | (MAGIC as u64) << 32;

impl GroupSlot {
    fn new(index: usize, field: &[u8; NAME_FIELD]) -> GroupSlot {
        GroupSlot { index, check: name_check(field), name: core::array::from_fn(|k| word(field, k)) }
    }

    /// The slot's index in the table.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The slot's words if `words` is still a current table whose slot holds
    /// this group.
    fn words<'a>(&self, words: &'a [AtomicU64]) -> Option<&'a [AtomicU64]> {
        if words.len() != OFFSETS_WORDS || load_acquire(&words[0]) != FRESH_HEADER {
            return None;
        }
        let at = (HEADER_SIZE + self.index * SLOT_SIZE) / 8;
        let s = words.get(at..at + SLOT_WORDS)?;
        if load_acquire(&s[W_LAST]) == 0 || load_check(s) != self.check {
            return None;
        }
        s[..NAME_WORDS].iter().zip(&self.name).all(|(w, n)| load_acquire(w) == *n).then_some(s)
    }

    /// [`OffsetsTable::advance`] at this slot: raises the offset to
    /// `offset` (never lowers it) and returns the offset now stored, or
    /// `None` (nothing written) if the slot no longer holds the group.
    pub fn advance(&self, words: &[AtomicU64], offset: u64, now_ns: u64) -> Option<u64> {
        let s = self.words(words)?;
        Some(advance_slot(s, offset, now_ns, 1))
    }

    /// [`advance`](GroupSlot::advance) without counting the update in the
    /// slot's [`updates`](GroupOffset::updates): the caller counts it
    /// later with [`add_updates`](GroupSlot::add_updates) (one locked
    /// read-modify-write fewer per ack).
    pub fn advance_uncounted(&self, words: &[AtomicU64], offset: u64, now_ns: u64) -> Option<u64> {
        let s = self.words(words)?;
        Some(advance_slot(s, offset, now_ns, 0))
    }

    /// Adds `n` updates to the slot's count; false (nothing written) if the
    /// slot no longer holds the group.
    pub fn add_updates(&self, words: &[AtomicU64], n: u64) -> bool {
        let Some(s) = self.words(words) else { return false };
        if n > 0 {
            s[W_ACKS].fetch_add(n, Ordering::Relaxed);
        }
        true
    }

    /// [`OffsetsTable::get`] at this slot: `Some(None)` if the group has
    /// claimed the slot but set no offset yet, `None` if the slot no longer
    /// holds the group.
    pub fn get(&self, words: &[AtomicU64]) -> Option<Option<GroupOffset>> {
        self.words(words).map(|s| read_slot(s, VERSION))
    }
}

/// The consumer-offset table of one shard, over a mapped `offsets.state`.
#[derive(Debug, Clone, Copy)]
pub struct OffsetsTable<'a> {
    words: &'a [AtomicU64],
    pause: fn(),
    /// A Go-written (version 1) table read without upgrading it: its slots
    /// have no stored name checks, so they are computed from the names.
    go: bool,
    /// The table's version (an older one is read as it is, never upgraded
    /// by a lookup).
    version: u32,
}

const SLOT_WORDS: usize = SLOT_SIZE / 8;
const W_OFFSET: usize = slot::OFFSET / 8;
const W_LAST: usize = slot::LAST_UPDATE / 8;
const W_ACKS: usize = slot::ACK_COUNT / 8;
const W_CHECK: usize = slot::NAME_CHECK / 8;
const W_OFFSET_CHECK: usize = slot::OFFSET_CHECK / 8;
const NAME_WORDS: usize = NAME_FIELD / 8;
/// How long to wait for another process to finish claiming a slot.
const CLAIM_WAIT: u32 = 20_000;

/// Retention's low-water mark from a mapping of `offsets.state`: the
/// lowest offset any group holds, `None` if no group has acked (a file
/// never initialised included). A table whose header does not check out is
/// its error, never `None`: consumer protection must not lapse because the
/// offsets cannot be read.
pub fn low_water(words: &[AtomicU64], pause: fn()) -> Result<Option<u64>, OffsetsError> {
    Ok(OffsetsTable::open_read(words, pause)?.and_then(|t| t.min_offset()))
}

impl<'a> OffsetsTable<'a> {
    /// Wraps a mapping of `offsets.state`, initialising the header of a new
    /// (all-zero) file and upgrading a Go-written (version 1) table in
    /// place. `pause` is called while waiting for a concurrent claim to
    /// settle (e.g. `std::thread::yield_now`).
    pub fn open(words: &'a [AtomicU64], pause: fn()) -> Result<Self, OffsetsError> {
        if words.len() != OFFSETS_WORDS {
            return Err(OffsetsError::Layout(WireError::Truncated {
                needed: FILE_SIZE as u64,
                available: words.len() as u64 * 8,
            }));
        }
        let header = words[0].load(Ordering::Acquire);
        let fresh = FRESH_HEADER;
        if header == 0 {
            // Only one opener may initialise; others see the header.
            let _ = words[0].compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire);
        }
        let header = words[0].load(Ordering::Acquire);
        let version = offsets::check_header(&header_bytes(words), FILE_SIZE as u64).map_err(OffsetsError::Layout)?;
        let t = OffsetsTable { words, pause, go: false, version: VERSION };
        if version < VERSION {
            t.upgrade(version);
            let _ = words[0].compare_exchange(header, fresh, Ordering::AcqRel, Ordering::Acquire);
        }
        // The header check (low half of word 1; the high half is reserved).
        let check = u64::from(offsets::header_check(&fresh.to_le_bytes()));
        if words[1].load(Ordering::Acquire) & 0xFFFF_FFFF != check {
            words[1].store(check, Ordering::Release);
        }
        Ok(t)
    }

    /// Wraps a mapping of `offsets.state` for lookups only, never writing
    /// to it (the mapping may be read-only): `Ok(None)` for a file whose
    /// header was never initialised (no group has acked yet), and a
    /// Go-written (version 1) table is read as it is, without upgrading.
    /// Only [`get`](Self::get), [`for_each`](Self::for_each),
    /// [`min_offset`](Self::min_offset) and
    /// [`dead_claims`](Self::dead_claims) may be called on the result.
    pub fn open_read(words: &'a [AtomicU64], pause: fn()) -> Result<Option<Self>, OffsetsError> {
        if words.len() != OFFSETS_WORDS {
            return Err(OffsetsError::Layout(WireError::Truncated {
                needed: FILE_SIZE as u64,
                available: words.len() as u64 * 8,
            }));
        }
        let header = load_acquire(&words[0]);
        if header == 0 {
            return Ok(None);
        }
        let version = offsets::check_header(&header_bytes(words), FILE_SIZE as u64).map_err(OffsetsError::Layout)?;
        Ok(Some(OffsetsTable { words, pause, go: version == VERSION_GO, version }))
    }

    /// The name check of a slot: stored, or for a Go table computed from
    /// a non-empty name (0 if none).
    fn check(&self, s: &[AtomicU64]) -> u32 {
        if !self.go {
            return load_check(s);
        }
        let name = read_name(s);
        let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
        if len > 0 && len < NAME_FIELD { name_check(&name) } else { 0 }
    }

    /// Adds name checks to the named slots of a Go-written table (version
    /// 1) and offset checks to every named slot of an older one.
    fn upgrade(&self, from: u32) {
        for i in 0..SLOTS {
            let s = self.slot(i);
            let name = read_name(s);
            let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
            if from == VERSION_GO && len > 0 && len < NAME_FIELD && load_check(s) != name_check(&name) {
                if s[W_LAST].load(Ordering::Acquire) == 0 {
                    s[W_LAST].store(CLAIMED as u64, Ordering::Release);
                }
                s[W_CHECK].store(u64::from(name_check(&name)), Ordering::Release);
            }
            if s[W_LAST].load(Ordering::Acquire) != 0 {
                let o = s[W_OFFSET].load(Ordering::Acquire);
                s[W_OFFSET_CHECK].store(!o, Ordering::Release);
            }
        }
    }

    fn slot(&self, i: usize) -> &'a [AtomicU64] {
        let at = (HEADER_SIZE + i * SLOT_SIZE) / 8;
        &self.words[at..at + SLOT_WORDS]
    }

    /// Finds `group`'s slot: `Ok(Some(i))` if present, `Ok(None)` with the
    /// first free slot of its probe chain noted in `free`.
    fn find(&self, field: &[u8; NAME_FIELD], group: &str, free: &mut Option<usize>) -> Option<usize> {
        let check = name_check(field);
        for i in probe_order(group) {
            let s = self.slot(i);
            match self.settled(s, check, field) {
                Settled::Free => {
                    *free = Some(i);
                    return None;
                }
                Settled::Mine => return Some(i),
                Settled::Other | Settled::Dead => {}
            }
        }
        None
    }

    /// Waits briefly for a slot being claimed to settle.
    fn settled(&self, s: &[AtomicU64], check: u32, field: &[u8; NAME_FIELD]) -> Settled {
        let mut waited = 0;
        loop {
            let last = load_acquire(&s[W_LAST]);
            let stored = self.check(s);
            // A named slot of a Go table is taken whatever its last update
            // (upgrading it would mark it claimed).
            if last == 0 && !(self.go && stored != 0) {
                return Settled::Free;
            }
            if stored != 0 {
                let name = read_name(s);
                if stored == name_check(&name) {
                    return if stored == check && name == *field { Settled::Mine } else { Settled::Other };
                }
            }
            // Nobody claims slots in a table read as Go-written.
            if waited >= CLAIM_WAIT || self.go {
                return Settled::Dead;
            }
            waited += 1;
            (self.pause)();
        }
    }

    /// The stored offset of `group`, if it ever set one. Never claims.
    pub fn get(&self, group: &str) -> Result<Option<GroupOffset>, OffsetsError> {
        validate_group(group).map_err(OffsetsError::Name)?;
        let field = name_field(group);
        let Some(i) = self.find(&field, group, &mut None) else {
            return Ok(None);
        };
        Ok(self.read_slot(i))
    }

    fn read_slot(&self, i: usize) -> Option<GroupOffset> {
        read_slot(self.slot(i), self.version)
    }

    /// `group`'s slot if it has one. Never claims.
    pub fn find_slot(&self, group: &str) -> Result<Option<GroupSlot>, OffsetsError> {
        validate_group(group).map_err(OffsetsError::Name)?;
        let field = name_field(group);
        Ok(self.find(&field, group, &mut None).map(|i| GroupSlot::new(i, &field)))
    }

    /// `group`'s slot, claimed if it has none yet (as
    /// [`advance`](OffsetsTable::advance) would).
    pub fn slot_of(&self, group: &str) -> Result<GroupSlot, OffsetsError> {
        let i = self.claim(group)?;
        Ok(GroupSlot::new(i, &name_field(group)))
    }

    /// The slot of `group`, claiming a free one with a compare-and-swap.
    fn claim(&self, group: &str) -> Result<usize, OffsetsError> {
        validate_group(group).map_err(OffsetsError::Name)?;
        let field = name_field(group);
        loop {
            let mut free = None;
            if let Some(i) = self.find(&field, group, &mut free) {
                return Ok(i);
            }
            let Some(i) = free else {
                return Err(OffsetsError::TableFull);
            };
            let s = self.slot(i);
            if s[W_LAST].compare_exchange(0, CLAIMED as u64, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                for (k, w) in s[..NAME_WORDS].iter().enumerate() {
                    w.store(word(&field, k), Ordering::Relaxed);
                }
                // A fresh slot's offset is 0: its check is !0.
                s[W_OFFSET_CHECK].store(!s[W_OFFSET].load(Ordering::Acquire), Ordering::Release);
                s[W_CHECK].store(u64::from(name_check(&field)), Ordering::Release);
                return Ok(i);
            }
            // Lost the race for this slot: look again (it may be our group).
        }
    }

    /// Raises `group`'s offset to `offset` (never lowers it); returns the
    /// offset now stored.
    pub fn advance(&self, group: &str, offset: u64, now_ns: u64) -> Result<u64, OffsetsError> {
        let s = self.slot(self.claim(group)?);
        Ok(advance_slot(s, offset, now_ns, 1))
    }

    /// Sets `group`'s offset to `offset`, backwards if need be (replay).
    pub fn set(&self, group: &str, offset: u64, now_ns: u64) -> Result<(), OffsetsError> {
        let s = self.slot(self.claim(group)?);
        s[W_OFFSET].store(offset, Ordering::Release);
        heal(s);
        touch(s, now_ns, 1);
        Ok(())
    }

    /// Slots whose offset does not match its check (damage, or a writer
    /// killed between its two stores): `(slot, group, stored offset, the
    /// offset read instead)`. Tables before version 3 have no checks.
    pub fn damaged_offsets(&self, mut f: impl FnMut(usize, &str, u64, u64)) {
        if self.version < VERSION {
            return;
        }
        for i in 0..SLOTS {
            let s = self.slot(i);
            let name = read_name(s);
            let stored = self.check(s);
            if stored == 0 || stored != name_check(&name) || load_acquire(&s[W_LAST]) <= CLAIMED as u64 {
                continue;
            }
            let (o, c) = settled_offset(s);
            if c != !o {
                let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
                let group = core::str::from_utf8(&name[..len]).unwrap_or("");
                f(i, group, o, safe_offset(o, c, VERSION));
            }
        }
    }

    /// Repairs damaged slots in place, for `repair` (a table opened for
    /// writing, its writer lock held): a slot that holds an offset but whose
    /// name no longer matches its name check becomes a dead claim (the
    /// group's offset is gone: it restarts from the first retained entry,
    /// redelivery, never loss); a free-looking slot on the probe chain of
    /// a named group (zeroed by damage) becomes a dead claim, so lookups
    /// reach past it again; a named slot whose last-update word was zeroed
    /// gets it back when its offset still matches its check. Returns how
    /// many slots were changed.
    pub fn repair_slots(&self) -> usize {
        let mut fixed = 0;
        for i in 0..SLOTS {
            let s = self.slot(i);
            let last = load_acquire(&s[W_LAST]);
            let name = read_name(s);
            let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
            let check = load_check(s);
            let settled = len > 0 && len < NAME_FIELD && check == name_check(&name);
            if last > CLAIMED as u64 && !settled {
                s[W_CHECK].store(0, Ordering::Release);
                s[W_LAST].store(CLAIMED as u64, Ordering::Release);
                fixed += 1;
            } else if last == 0 && settled {
                let (o, c) = settled_offset(s);
                s[W_LAST].store(if c == !o { CLAIMED as u64 + 1 } else { CLAIMED as u64 }, Ordering::Release);
                fixed += 1;
            }
        }
        // Reachability: no free slot before a named one on its probe chain.
        for i in 0..SLOTS {
            let s = self.slot(i);
            let name = read_name(s);
            let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
            if load_check(s) == 0 || load_check(s) != name_check(&name) {
                continue;
            }
            let Ok(group) = core::str::from_utf8(&name[..len]) else { continue };
            for k in probe_order(group).take_while(|&k| k != i) {
                let other = self.slot(k);
                if load_acquire(&other[W_LAST]) == 0 && read_name(other).iter().all(|&b| b == 0) {
                    other[W_LAST].store(CLAIMED as u64, Ordering::Release);
                    fixed += 1;
                }
            }
        }
        fixed
    }

    /// Stores the safe value ([`safe_offset`]) in every slot whose offset
    /// does not match its check; returns how many were fixed. For repairs.
    pub fn heal_damaged(&self) -> usize {
        let mut n = 0;
        for i in 0..SLOTS {
            let s = self.slot(i);
            if load_acquire(&s[W_LAST]) <= CLAIMED as u64 {
                continue;
            }
            let (o, c) = settled_offset(s);
            if c != !o {
                s[W_OFFSET].store(safe_offset(o, c, VERSION), Ordering::Release);
                heal(s);
                n += 1;
            }
        }
        n
    }

    /// Calls `f` for every group that has an offset.
    pub fn for_each(&self, mut f: impl FnMut(&str, GroupOffset)) {
        self.each(|_, group, o| f(group, o));
    }

    /// Raises every group whose offset is below `first` to `first` (after
    /// retention deleted the entries before it, so the group's reads do not
    /// fail) and calls `lost` with each such group and how many entries it
    /// had not read; returns how many groups moved. Never allocates. For a
    /// table from [`open`](OffsetsTable::open) (it writes).
    pub fn lift_below(&self, first: u64, now_ns: u64, mut lost: impl FnMut(&str, u64)) -> usize {
        let mut moved = 0;
        self.each(|i, group, o| {
            if o.offset < first {
                advance_slot(self.slot(i), first, now_ns, 1);
                lost(group, first - o.offset);
                moved += 1;
            }
        });
        moved
    }

    /// [`for_each`](OffsetsTable::for_each) with each group's slot index.
    fn each(&self, mut f: impl FnMut(usize, &str, GroupOffset)) {
        for i in 0..SLOTS {
            let s = self.slot(i);
            let name = read_name(s);
            let stored = self.check(s);
            if stored == 0 || stored != name_check(&name) {
                continue;
            }
            let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_FIELD);
            let (Ok(group), Some(off)) = (core::str::from_utf8(&name[..len]), self.read_slot(i)) else {
                continue;
            };
            f(i, group, off);
        }
    }

    /// The smallest offset over all groups (the retention low-water mark).
    pub fn min_offset(&self) -> Option<u64> {
        let mut min = None;
        self.for_each(|_, o| min = Some(min.map_or(o.offset, |m: u64| m.min(o.offset))));
        min
    }

    /// Slots taken by claims that never completed (a process killed while
    /// claiming); they are skipped, never reused.
    pub fn dead_claims(&self) -> usize {
        (0..SLOTS)
            .filter(|&i| {
                let s = self.slot(i);
                load_acquire(&s[W_LAST]) != 0 && {
                    let stored = self.check(s);
                    stored == 0 || stored != name_check(&read_name(s))
                }
            })
            .count()
    }
}

/// The first 16 bytes of a table (version, magic, header check), read
/// with loads only.
fn header_bytes(words: &[AtomicU64]) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&load_acquire(&words[0]).to_le_bytes());
    h[8..].copy_from_slice(&load_acquire(&words[1]).to_le_bytes());
    h
}

fn touch(s: &[AtomicU64], now_ns: u64, updates: u64) {
    let now = now_ns.max(CLAIMED as u64 + 1);
    // With a coarse clock most updates carry the time already stored: a
    // load then, not a read-modify-write.
    if s[W_LAST].load(Ordering::Acquire) < now {
        s[W_LAST].fetch_max(now, Ordering::AcqRel);
    }
    if updates > 0 {
        s[W_ACKS].fetch_add(updates, Ordering::Relaxed);
    }
}

fn read_slot(s: &[AtomicU64], version: u32) -> Option<GroupOffset> {
    let last = load_acquire(&s[W_LAST]);
    (last > CLAIMED as u64).then(|| {
        let (o, c) = if version < VERSION { (load_acquire(&s[W_OFFSET]), 0) } else { settled_offset(s) };
        GroupOffset {
            offset: safe_offset(o, c, version),
            last_update: last,
            updates: s[W_ACKS].load(Ordering::Relaxed),
        }
    })
}

/// Reads `(offset, offset check)`, waiting out a concurrent update (a
/// writer stores the offset, then its check): a mismatch that outlasts a
/// few re-reads is damage or a writer killed in between.
fn settled_offset(s: &[AtomicU64]) -> (u64, u64) {
    let mut pair = (0, 0);
    for _ in 0..64 {
        let o = load_acquire(&s[W_OFFSET]);
        let c = load_acquire(&s[W_OFFSET_CHECK]);
        pair = (o, c);
        if c == !o {
            break;
        }
        core::hint::spin_loop();
    }
    pair
}

/// Raises a slot's offset to `offset` and updates its check. A mismatch
/// found first (damage) is replaced by the safe value before the raise, so
/// a flipped-up offset is never made to look valid.
///
/// An advance that does not move the offset (an ack at or below it) makes
/// no read-modify-write of the offset: it is ordered before any concurrent
/// change, which is what a `fetch_max` that lost would have been too.
/// `updates` is added to the slot's update count (0: the caller counts it
/// later, [`GroupSlot::add_updates`]).
fn advance_slot(s: &[AtomicU64], offset: u64, now_ns: u64, updates: u64) -> u64 {
    let mut o = s[W_OFFSET].load(Ordering::Acquire);
    if s[W_OFFSET_CHECK].load(Ordering::Acquire) != !o {
        let (so, c) = settled_offset(s);
        if c != !so {
            let _ = s[W_OFFSET].compare_exchange(so, safe_offset(so, c, VERSION), Ordering::AcqRel, Ordering::Acquire);
            heal(s);
        }
        o = s[W_OFFSET].load(Ordering::Acquire);
    }
    let stored = if offset > o {
        let prev = s[W_OFFSET].fetch_max(offset, Ordering::AcqRel);
        if prev < offset {
            heal(s);
        }
        prev.max(offset)
    } else {
        o
    };
    touch(s, now_ns, updates);
    stored
}

/// Makes the offset check match the offset as it is now. Concurrent
/// healers converge: each stops only after seeing the two agree, and every
/// store is followed by another look.
fn heal(s: &[AtomicU64]) {
    loop {
        let o = s[W_OFFSET].load(Ordering::Acquire);
        let c = s[W_OFFSET_CHECK].load(Ordering::Acquire);
        if c == !o {
            return;
        }
        let _ = s[W_OFFSET_CHECK].compare_exchange(c, !o, Ordering::AcqRel, Ordering::Acquire);
    }
}

enum Settled {
    Free,
    Mine,
    Other,
    Dead,
}

/// The name check: the low 32 bits of its word (the high half is reserved).
fn load_check(s: &[AtomicU64]) -> u32 {
    u32::try_from(load_acquire(&s[W_CHECK]) & 0xFFFF_FFFF).unwrap_or(0)
}

fn read_name(s: &[AtomicU64]) -> [u8; NAME_FIELD] {
    let mut name = [0u8; NAME_FIELD];
    for (k, w) in s[..NAME_WORDS].iter().enumerate() {
        name[k * 8..k * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    fence(Ordering::Acquire);
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    fn noop() {}

    #[test]
    fn head_seqlock_roundtrip_and_its_sequence() {
        let w = words(STATE_WORDS);
        let h = DurableHead {
            base: 5,
            entries: 3,
            bytes: 99,
            open_crc: 7,
            closed_hash: 8,
            last_ts: 9,
            clean: false,
            interval: 10,
        };
        store_head(&w, &h);
        let s1 = head_seq(&w);
        assert_eq!(DurableHead::decode(&load_head_line(&w, 1)).unwrap().1, s1);
        store_head(&w, &h);
        assert!(head_seq(&w) > s1 && head_seq(&w).is_multiple_of(2), "every store moves the sequence");
        assert_eq!(head_seq(&words(1)), 1, "no head line: odd, never cached");
        let line = load_head_line(&w, 10);
        assert_eq!(DurableHead::decode(&line).unwrap().0, h);
        // a writer killed mid-update leaves an odd sequence: rejected
        w[SEQ_WORD].fetch_add(1, Ordering::Relaxed);
        assert!(DurableHead::decode(&load_head_line(&w, 3)).is_err());
    }

    #[test]
    fn load_head_decodes_with_its_sequence_and_refuses_a_torn_or_empty_line() {
        let w = words(STATE_WORDS);
        assert_eq!(load_head(&w), None, "an all-zero state block holds no head");
        let h = DurableHead { base: 2, entries: 4, bytes: 80, last_ts: 3, ..DurableHead::default() };
        store_head(&w, &h);
        assert_eq!(load_head(&w), Some((h, head_seq(&w))));
        w[SEQ_WORD].fetch_add(1, Ordering::Relaxed);
        assert_eq!(load_head(&w), None, "a writer killed mid-update");
    }

    #[test]
    fn counters() {
        let w = words(STATE_WORDS);
        add_counter(&w, Counter::EntriesAppended, 3);
        add_counter(&w, Counter::EntriesAppended, 4);
        add_counter(&w, Counter::LastAppendNs, 10);
        add_counter(&w, Counter::LastAppendNs, 5);
        assert_eq!(load_counter(&w, Counter::EntriesAppended), 7);
        assert_eq!(load_counter(&w, Counter::LastAppendNs), 5);
    }

    #[test]
    fn offsets_basic() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        assert_eq!(t.get("billing").unwrap(), None);
        assert_eq!(t.dead_claims(), 0, "lookups never claim");
        assert_eq!(t.advance("billing", 10, 100).unwrap(), 10);
        assert_eq!(t.advance("billing", 5, 101).unwrap(), 10, "never backwards");
        let g = t.get("billing").unwrap().unwrap();
        assert_eq!((g.offset, g.updates), (10, 2));
        t.set("billing", 3, 102).unwrap();
        assert_eq!(t.get("billing").unwrap().unwrap().offset, 3);
        t.advance("audit", 7, 103).unwrap();
        assert_eq!(t.min_offset(), Some(3));
        let mut all = Vec::new();
        t.for_each(|g, o| all.push((String::from(g), o.offset)));
        all.sort();
        assert_eq!(all, [("audit".into(), 7), ("billing".into(), 3)]);
        // reopening sees the same table
        let t2 = OffsetsTable::open(&w, noop).unwrap();
        assert_eq!(t2.get("audit").unwrap().unwrap().offset, 7);
    }

    #[test]
    fn low_water_is_none_only_without_groups_and_an_error_for_damage() {
        let w = words(OFFSETS_WORDS);
        assert_eq!(low_water(&w, noop).unwrap(), None, "never initialised");
        let t = OffsetsTable::open(&w, noop).unwrap();
        assert_eq!(low_water(&w, noop).unwrap(), None, "no group yet");
        t.advance("a", 40, 1).unwrap();
        t.advance("b", 9, 1).unwrap();
        assert_eq!(low_water(&w, noop).unwrap(), Some(9));
        // a damaged header: an error, not "no group has acked"
        w[0].fetch_xor(0xFF, Ordering::Relaxed);
        assert!(matches!(low_water(&w, noop), Err(OffsetsError::Layout(_))));
        assert!(low_water(&w[1..], noop).is_err(), "a mapping of the wrong size");
    }

    #[test]
    fn lift_below_moves_only_the_groups_behind() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        t.advance("slow", 3, 1).unwrap();
        t.advance("slower", 1, 1).unwrap();
        t.advance("fast", 20, 1).unwrap();
        let mut lost = Vec::new();
        assert_eq!(t.lift_below(10, 5, |g, n| lost.push((String::from(g), n))), 2);
        lost.sort();
        assert_eq!(lost, [("slow".into(), 7), ("slower".into(), 9)]);
        assert_eq!(t.get("slow").unwrap().unwrap().offset, 10);
        assert_eq!(t.get("slow").unwrap().unwrap().last_update, 5);
        assert_eq!(t.get("fast").unwrap().unwrap().offset, 20);
        assert_eq!(t.lift_below(10, 6, |_, _| panic!("nobody is behind")), 0);
    }

    #[test]
    fn group_name_limits_and_a_full_table() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        let g47 = "g".repeat(47);
        t.advance(&g47, 1, 5).unwrap();
        assert_eq!(t.get(&g47).unwrap().unwrap().offset, 1);
        assert!(matches!(t.advance(&"g".repeat(48), 1, 5), Err(OffsetsError::Name(_))));
        assert!(matches!(t.get(""), Err(OffsetsError::Name(_))));
        for i in 1..SLOTS {
            t.advance(&std::format!("group-{i}"), i as u64, 5).unwrap();
        }
        assert_eq!(t.advance("one-too-many", 1, 5), Err(OffsetsError::TableFull));
        assert_eq!(t.get("one-too-many").unwrap(), None);
        assert_eq!(t.get("group-300").unwrap().unwrap().offset, 300);
    }

    #[test]
    fn group_slots_skip_the_lookup_and_notice_a_changed_table() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        assert_eq!(t.find_slot("billing").unwrap(), None, "finding never claims");
        let slot = t.slot_of("billing").unwrap();
        assert_eq!(slot.get(&w), Some(None), "claimed, no offset yet");
        assert_eq!(t.find_slot("billing").unwrap(), Some(slot));
        // Other groups (other consumers, other processes) claim slots,
        // including ones on the same probe chain: ours does not move.
        for i in 0..300 {
            t.advance(&std::format!("g{i}"), i, 5).unwrap();
        }
        assert_eq!(slot.advance(&w, 10, 100), Some(10));
        assert_eq!(slot.advance(&w, 4, 101), Some(10), "never backwards");
        assert_eq!(t.get("billing").unwrap().unwrap().offset, 10);
        t.advance("billing", 12, 102).unwrap();
        let g = slot.get(&w).unwrap().unwrap();
        assert_eq!((g.offset, g.last_update, g.updates), (12, 102, 3));
        assert_eq!(t.slot_of("billing").unwrap(), slot, "the same slot again");
        // A slot that no longer holds the group (here: a renamed slot, and
        // a table re-initialised under us) is refused, nothing written.
        let s = t.slot(slot.index());
        let before = s[0].load(Ordering::Relaxed);
        s[0].store(before ^ 1, Ordering::Relaxed);
        assert_eq!(slot.advance(&w, 50, 103), None);
        assert_eq!(slot.get(&w), None);
        s[0].store(before, Ordering::Relaxed);
        assert_eq!(slot.get(&w).unwrap().unwrap().offset, 12);
        let header = w[0].load(Ordering::Relaxed);
        w[0].store(0, Ordering::Relaxed);
        assert_eq!(slot.advance(&w, 50, 104), None);
        w[0].store(header, Ordering::Relaxed);
        assert_eq!(slot.advance(&words(10), 50, 104), None, "wrong size");
        assert_eq!(t.get("billing").unwrap().unwrap().offset, 12);
        // A slot of another group is never mistaken for ours.
        let other = t.slot_of("g7").unwrap();
        assert_ne!(other.index(), slot.index());
        assert_eq!(other.get(&w).unwrap().unwrap().offset, 7);
    }

    #[test]
    fn dead_claims_are_skipped() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        // a process died after claiming the home slot of "billing"
        let home = probe_order("billing").next().unwrap();
        t.slot(home)[W_LAST].store(CLAIMED as u64, Ordering::Release);
        t.advance("billing", 4, 9).unwrap();
        assert_eq!(t.get("billing").unwrap().unwrap().offset, 4);
        assert_eq!(t.dead_claims(), 1);
    }

    #[test]
    fn concurrent_claims_of_one_group_share_a_slot() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, std::thread::yield_now).unwrap();
        std::thread::scope(|s| {
            for k in 0..4 {
                s.spawn(move || {
                    for i in 0..200u64 {
                        t.advance("shared", i * 4 + k, 10).unwrap();
                        t.advance(&std::format!("g{}", i % 20), i, 10).unwrap();
                    }
                });
            }
        });
        assert_eq!(t.get("shared").unwrap().unwrap().offset, 199 * 4 + 3);
        let mut n = 0;
        t.for_each(|_, _| n += 1);
        assert_eq!(n, 21, "one slot per group");
        assert_eq!(t.dead_claims(), 0);
    }

    #[test]
    fn go_tables_are_upgraded_in_place() {
        let w = words(OFFSETS_WORDS);
        w[0].store(u64::from(VERSION_GO) | u64::from(MAGIC) << 32, Ordering::Relaxed);
        // a Go slot: name, offset 250, last update > 1, no check
        let home = probe_order("billing").next().unwrap();
        let at = (HEADER_SIZE + home * SLOT_SIZE) / 8;
        let field = name_field("billing");
        for k in 0..NAME_WORDS {
            w[at + k].store(word(&field, k), Ordering::Relaxed);
        }
        w[at + W_OFFSET].store(250, Ordering::Relaxed);
        w[at + W_LAST].store(1_700_000_000, Ordering::Relaxed);
        let before: Vec<u64> = w.iter().map(|x| x.load(Ordering::Relaxed)).collect();
        let r = OffsetsTable::open_read(&w, noop).unwrap().unwrap();
        assert_eq!(r.get("billing").unwrap().unwrap().offset, 250);
        let mut seen = Vec::new();
        r.for_each(|g, o| seen.push((String::from(g), o.offset)));
        assert_eq!(seen, [(String::from("billing"), 250)]);
        assert_eq!(r.get("audit").unwrap(), None);
        assert_eq!(r.dead_claims(), 0);
        assert!(w.iter().map(|x| x.load(Ordering::Relaxed)).eq(before), "reading never upgrades");
        let t = OffsetsTable::open(&w, noop).unwrap();
        assert_eq!(t.get("billing").unwrap().unwrap().offset, 250);
        assert_eq!(w[0].load(Ordering::Relaxed) as u32, VERSION);
    }

    #[test]
    fn a_flipped_offset_bit_never_makes_a_group_skip() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        t.advance("billing", 500, 10).unwrap();
        let slot = t.find_slot("billing").unwrap().unwrap();
        let s = t.slot(slot.index());
        // a bit flipped up at rest: read as the value before
        s[W_OFFSET].fetch_xor(1 << 3, Ordering::Relaxed); // 500 -> 508
        let r = OffsetsTable::open_read(&w, noop).unwrap().unwrap();
        assert_eq!(r.get("billing").unwrap().unwrap().offset, 500);
        assert_eq!(slot.get(&w).unwrap().unwrap().offset, 500);
        let mut found = Vec::new();
        r.damaged_offsets(|i, g, stored, safe| found.push((i, String::from(g), stored, safe)));
        assert_eq!(found, [(slot.index(), "billing".into(), 508, 500)]);
        // an ack does not make the flipped value look valid
        assert_eq!(t.advance("billing", 501, 11).unwrap(), 501);
        assert_eq!(r.get("billing").unwrap().unwrap().offset, 501);
        let mut again = 0;
        r.damaged_offsets(|_, _, _, _| again += 1);
        assert_eq!(again, 0);
        // a flipped check bit, healed by a repair
        s[W_OFFSET_CHECK].fetch_xor(1 << 40, Ordering::Relaxed);
        assert_eq!(r.get("billing").unwrap().unwrap().offset, 501);
        assert_eq!(t.heal_damaged(), 1);
        assert_eq!(t.heal_damaged(), 0);
        assert_eq!(r.get("billing").unwrap().unwrap().offset, 501);
    }

    #[test]
    fn repair_turns_damaged_slots_into_dead_claims_and_restores_reachability() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        // two groups on one probe chain: find a name whose home is taken
        t.advance("billing", 40, 10).unwrap();
        let home = probe_order("billing").next().unwrap();
        let mut other = None;
        for k in 0..10_000 {
            let g = std::format!("g{k}");
            if probe_order(&g).next() == Some(home) {
                other = Some(g);
                break;
            }
        }
        let other = other.unwrap();
        t.advance(&other, 7, 10).unwrap();
        // zero billing's slot: other is unreachable behind a free slot
        for word in t.slot(home) {
            word.store(0, Ordering::Relaxed);
        }
        assert_eq!(t.get(&other).unwrap(), None);
        assert!(t.repair_slots() >= 1);
        assert_eq!(t.get(&other).unwrap().unwrap().offset, 7, "reachable again");
        assert_eq!(t.get("billing").unwrap(), None, "its offset is gone: it restarts");
        // a flipped name byte: the slot becomes a dead claim
        let s = t.slot(t.find_slot(&other).unwrap().unwrap().index());
        s[0].fetch_xor(1 << 9, Ordering::Relaxed);
        assert_eq!(t.repair_slots(), 1);
        assert_eq!(t.repair_slots(), 0);
        assert!(t.dead_claims() >= 2);
    }

    #[test]
    fn concurrent_acks_and_seeks_leave_every_check_matching() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, std::thread::yield_now).unwrap();
        std::thread::scope(|sc| {
            for k in 0..4u64 {
                sc.spawn(move || {
                    for i in 0..300u64 {
                        if k == 3 && i % 50 == 0 {
                            t.set("g", i, 5).unwrap();
                        } else {
                            t.advance("g", i * 4 + k, 5).unwrap();
                        }
                    }
                });
            }
        });
        let mut bad = 0;
        t.damaged_offsets(|_, _, _, _| bad += 1);
        assert_eq!(bad, 0);
    }

    #[test]
    fn older_comet_tables_get_offset_checks_on_the_first_write() {
        let w = words(OFFSETS_WORDS);
        let t = OffsetsTable::open(&w, noop).unwrap();
        t.advance("billing", 42, 10).unwrap();
        // as an earlier comet wrote it: version 2, no offset checks
        let s = t.slot(t.find_slot("billing").unwrap().unwrap().index());
        s[W_OFFSET_CHECK].store(0, Ordering::Relaxed);
        w[0].store(2 | u64::from(MAGIC) << 32, Ordering::Relaxed);
        w[1].store(0, Ordering::Relaxed); // no header check before version 3
        let r = OffsetsTable::open_read(&w, noop).unwrap().unwrap();
        assert_eq!(r.get("billing").unwrap().unwrap().offset, 42);
        let mut bad = 0;
        r.damaged_offsets(|_, _, _, _| bad += 1);
        assert_eq!(bad, 0, "no checks to fail");
        let t = OffsetsTable::open(&w, noop).unwrap();
        assert_eq!(w[0].load(Ordering::Relaxed) as u32, VERSION);
        assert_eq!(s[W_OFFSET_CHECK].load(Ordering::Relaxed), !42);
        assert_eq!(t.get("billing").unwrap().unwrap().offset, 42);
    }

    #[test]
    fn reading_an_uninitialised_table_means_no_groups_and_writes_nothing() {
        let w = words(OFFSETS_WORDS);
        assert!(OffsetsTable::open_read(&w, noop).unwrap().is_none());
        assert!(w.iter().all(|x| x.load(Ordering::Relaxed) == 0));
        assert!(OffsetsTable::open_read(&w[1..], noop).is_err());
        let t = OffsetsTable::open(&w, noop).unwrap();
        t.advance("g", 3, 7).unwrap();
        let r = OffsetsTable::open_read(&w, noop).unwrap().unwrap();
        assert_eq!(r.get("g").unwrap().unwrap().offset, 3);
        assert_eq!(r.min_offset(), Some(3));
    }

    #[test]
    fn bad_layouts_are_typed_errors() {
        let w = words(10);
        assert!(matches!(OffsetsTable::open(&w, noop), Err(OffsetsError::Layout(_))));
        let w = words(OFFSETS_WORDS);
        w[0].store(u64::from(VERSION) | 0xBAD << 32, Ordering::Relaxed);
        assert!(matches!(OffsetsTable::open(&w, noop), Err(OffsetsError::Layout(WireError::BadMagic))));
    }
}

//! [`RamStorage`]: one shard directory in a fixed memory region.
//!
//! # Layout
//!
//! The caller hands over one byte region (a `static` buffer on the device, a
//! `Vec` in host tests). It is cut into [`BLOCK_SIZE`]-byte data blocks and a
//! block map (two bytes per block, at the front of the region): a file is a
//! chain of blocks, as in a FAT. The file table ([`MAX_FILES`] names of at
//! most [`NAME_MAX`] bytes) and the 1 KiB `comet.state` region live in the
//! [`RamStorage`] value itself, outside the region, so
//! [`capacity`](RamStorage::capacity) counts file data only.
//!
//! When a write or resize needs more blocks than are free it fails whole,
//! with [`RamError::Full`] ([`ErrorKind::StorageFull`], the engine's
//! `ENOSPC`), before changing anything; a full file table is
//! [`RamError::TooManyFiles`] (also `StorageFull`).
//!
//! # What survives a power loss
//!
//! [`RamStorage::power_loss`] is the crash model. A file's length is durable
//! only up to what its last [`sync`](StorageFile::sync) covered: bytes
//! appended since are dropped (or, with [`PowerLoss::KeepUnsynced`], a
//! prefix of them survives, as a torn write). Writes inside the synced
//! length, truncations, and the file table (create, rename, remove) are
//! durable at once, as a RAM region kept over a warm reset keeps them (so
//! [`sync_dir`](Storage::sync_dir) has nothing to do), and so is
//! `comet.state`. That is weaker than nothing-survives for the unsynced
//! tail, which is exactly the part the engine must not rely on.
//!
//! A flash port would keep the same structure but needs erase-before-write
//! and wear levelling, which this RAM model does not attempt.

use core::cell::RefCell;
use core::fmt;

use comet_core::platform::state::{HEAD_LINE, SEQ_OFFSET, STATE_FILE, STATE_LINE, STATE_SIZE};
use comet_core::platform::storage::{ErrorKind, OpenMode, Storage, StorageError, StorageFile};

/// Bytes per data block.
pub const BLOCK_SIZE: usize = 256;
/// Most files the table holds (not counting `comet.state`).
pub const MAX_FILES: usize = 32;
/// Longest file name in bytes (comet's longest, a set-aside segment such as
/// `log-00000000000000000000.log.quarantined.9`, is 42).
pub const NAME_MAX: usize = 48;

/// Block-map value of a free block.
const FREE: u16 = 0xFFFF;
/// Block-map value of the last block of a chain.
const END: u16 = 0xFFFE;
/// Most blocks a block map of `u16` links can address.
const MAX_BLOCKS: usize = END as usize;
/// Block-map bytes per block.
const LINK: usize = 2;

/// An error of [`RamStorage`]. Every variant maps to an [`ErrorKind`]
/// (see [`StorageError::kind`]), which is what the engine acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RamError {
    /// Not enough free blocks for a write or resize (`StorageFull`).
    Full {
        /// Blocks the operation needed.
        needed: usize,
        /// Blocks that were free.
        free: usize,
    },
    /// The file table is full (`StorageFull`).
    TooManyFiles,
    /// No such file (`NotFound`).
    NotFound,
    /// The file exists and exclusive creation was asked (`AlreadyExists`).
    AlreadyExists,
    /// An empty name or one longer than [`NAME_MAX`] (`InvalidInput`).
    BadName,
    /// A write or resize through a read-only handle (`PermissionDenied`).
    ReadOnly,
    /// An offset or length past what a file can hold (`InvalidInput`).
    TooLarge,
    /// `comet.state` is a fixed 1 KiB region: it cannot be resized,
    /// truncated, renamed, removed or written past its end (`Unsupported`).
    FixedStateRegion,
    /// [`RamStorage::power_loss`] was called with file handles still open
    /// (`Other`): drop the shard first.
    FilesOpen,
    /// An error of the given kind, made by the core
    /// ([`StorageError::from_kind`]).
    Kind(ErrorKind),
}

impl fmt::Display for RamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RamError::Full { needed, free } => {
                write!(f, "storage full: {needed} blocks of {BLOCK_SIZE} bytes needed, {free} free")
            }
            RamError::TooManyFiles => write!(f, "storage full: the file table holds {MAX_FILES} files"),
            RamError::NotFound => f.write_str("no such file"),
            RamError::AlreadyExists => f.write_str("file exists"),
            RamError::BadName => write!(f, "file name empty or longer than {NAME_MAX} bytes"),
            RamError::ReadOnly => f.write_str("file opened read-only"),
            RamError::TooLarge => f.write_str("offset or length too large"),
            RamError::FixedStateRegion => write!(f, "{STATE_FILE} is a fixed {STATE_SIZE}-byte region"),
            RamError::FilesOpen => f.write_str("files still open"),
            RamError::Kind(kind) => write!(f, "{kind:?}"),
        }
    }
}

impl core::error::Error for RamError {}

impl StorageError for RamError {
    fn kind(&self) -> ErrorKind {
        match self {
            RamError::Full { .. } | RamError::TooManyFiles => ErrorKind::StorageFull,
            RamError::NotFound => ErrorKind::NotFound,
            RamError::AlreadyExists => ErrorKind::AlreadyExists,
            RamError::BadName | RamError::TooLarge => ErrorKind::InvalidInput,
            RamError::ReadOnly => ErrorKind::PermissionDenied,
            RamError::FixedStateRegion => ErrorKind::Unsupported,
            RamError::FilesOpen => ErrorKind::Other,
            RamError::Kind(kind) => *kind,
        }
    }

    fn from_kind(kind: ErrorKind) -> Self {
        RamError::Kind(kind)
    }
}

/// What [`RamStorage::power_loss`] keeps of each file's unsynced tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// Every byte appended since the file's last sync is lost.
    DropUnsynced,
    /// Up to this many bytes of each file's unsynced tail survive (a torn
    /// write); `usize::MAX` keeps everything, as a process crash would.
    KeepUnsynced(usize),
}

/// One file of the table.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The slot holds a file.
    used: bool,
    /// The file has a name (false once removed or replaced while open).
    linked: bool,
    name: [u8; NAME_MAX],
    name_len: u8,
    /// First block of the chain, or [`END`] for none.
    first: u16,
    /// Blocks in the chain.
    blocks: u32,
    /// Length in bytes.
    len: u32,
    /// Length covered by the last sync (what survives a power loss).
    synced: u32,
    /// Open handles.
    handles: u32,
}

const EMPTY: Slot = Slot {
    used: false,
    linked: false,
    name: [0; NAME_MAX],
    name_len: 0,
    first: END,
    blocks: 0,
    len: 0,
    synced: 0,
    handles: 0,
};

impl Slot {
    fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }
}

/// Which file a handle refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    State,
    Slot(usize),
}

struct Inner<'a> {
    /// Block map: `LINK` bytes (LE) per block, the next block or `FREE`/`END`.
    map: &'a mut [u8],
    /// `blocks * BLOCK_SIZE` data bytes.
    data: &'a mut [u8],
    blocks: usize,
    free: usize,
    files: [Slot; MAX_FILES],
    state: [u8; STATE_SIZE],
}

/// A shard directory in a fixed memory region (see the module
/// documentation). The engine uses it through `&RamStorage`, which
/// implements [`Storage`]; single-threaded (`RefCell` inside).
pub struct RamStorage<'a> {
    inner: RefCell<Inner<'a>>,
}

impl fmt::Debug for RamStorage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamStorage")
            .field("capacity", &self.capacity())
            .field("used", &self.used_bytes())
            .field("files", &self.file_count())
            .finish_non_exhaustive()
    }
}

/// Bytes needed to hold `len` bytes, in blocks.
fn blocks_for(len: u32) -> usize {
    (len as usize).div_ceil(BLOCK_SIZE)
}

impl<'a> RamStorage<'a> {
    /// Formats `region` as an empty directory: as many blocks as fit with
    /// their two-byte map entries (at most 65,534), and an all-zero
    /// `comet.state` (no head). Bytes left over are unused.
    pub fn new(region: &'a mut [u8]) -> RamStorage<'a> {
        let blocks = (region.len() / (BLOCK_SIZE + LINK)).min(MAX_BLOCKS);
        let (map, rest) = region.split_at_mut(blocks * LINK);
        let data = &mut rest[..blocks * BLOCK_SIZE];
        for link in map.chunks_exact_mut(LINK) {
            link.copy_from_slice(&FREE.to_le_bytes());
        }
        RamStorage {
            inner: RefCell::new(Inner {
                map,
                data,
                blocks,
                free: blocks,
                files: [EMPTY; MAX_FILES],
                state: [0; STATE_SIZE],
            }),
        }
    }

    /// Bytes of file data the region can hold.
    pub fn capacity(&self) -> usize {
        self.inner.borrow().blocks * BLOCK_SIZE
    }

    /// Bytes of file data in use, counted in whole blocks.
    pub fn used_bytes(&self) -> usize {
        let inner = self.inner.borrow();
        (inner.blocks - inner.free) * BLOCK_SIZE
    }

    /// Bytes still free, in whole blocks.
    pub fn free_bytes(&self) -> usize {
        self.inner.borrow().free * BLOCK_SIZE
    }

    /// Files in the table (named or still open), not counting `comet.state`.
    pub fn file_count(&self) -> usize {
        self.inner.borrow().files.iter().filter(|s| s.used).count()
    }

    /// The length of file `name` (1024 for `comet.state`), if it exists.
    pub fn file_len(&self, name: &str) -> Option<u64> {
        if name == STATE_FILE {
            return Some(STATE_SIZE as u64);
        }
        let inner = self.inner.borrow();
        inner.find(name).map(|i| u64::from(inner.files[i].len))
    }

    /// Simulates a power loss and reboot: each file keeps its synced bytes
    /// plus what `loss` says of its unsynced tail; everything else stays
    /// (see the module documentation). Fails with [`RamError::FilesOpen`]
    /// if a handle is still open: drop the shard (the crash) first.
    pub fn power_loss(&self, loss: PowerLoss) -> Result<(), RamError> {
        let mut inner = self.inner.borrow_mut();
        if inner.files.iter().any(|s| s.used && s.handles > 0) {
            return Err(RamError::FilesOpen);
        }
        for i in 0..MAX_FILES {
            let s = inner.files[i];
            if !s.used {
                continue;
            }
            let keep = match loss {
                PowerLoss::DropUnsynced => s.synced,
                PowerLoss::KeepUnsynced(n) => {
                    let extra = u32::try_from(n).unwrap_or(u32::MAX);
                    s.len.min(s.synced.saturating_add(extra))
                }
            };
            inner.resize(i, keep)?;
            inner.files[i].synced = keep;
        }
        Ok(())
    }

    /// Flips the bits of `mask` in byte `offset` of file `name` (a test aid
    /// for checking that damage is detected). Returns false if there is no
    /// such byte.
    pub fn corrupt(&self, name: &str, offset: u64, mask: u8) -> bool {
        let mut inner = self.inner.borrow_mut();
        let Ok(at) = u32::try_from(offset) else {
            return false;
        };
        if name == STATE_FILE {
            return match inner.state.get_mut(at as usize) {
                Some(b) => {
                    *b ^= mask;
                    true
                }
                None => false,
            };
        }
        let Some(i) = inner.find(name) else {
            return false;
        };
        if at >= inner.files[i].len {
            return false;
        }
        let block = inner.nth_block(i, at as usize / BLOCK_SIZE);
        let pos = usize::from(block) * BLOCK_SIZE + at as usize % BLOCK_SIZE;
        inner.data[pos] ^= mask;
        true
    }

    /// The head line of `comet.state`.
    pub(crate) fn state_line(&self) -> [u8; STATE_LINE] {
        let mut line = [0u8; STATE_LINE];
        line.copy_from_slice(&self.inner.borrow().state[HEAD_LINE..HEAD_LINE + STATE_LINE]);
        line
    }

    /// The seqlock sequence stored in the head line.
    pub(crate) fn state_seq(&self) -> u64 {
        let line = self.state_line();
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&line[SEQ_OFFSET..SEQ_OFFSET + 8]);
        u64::from_le_bytes(seq)
    }

    /// Replaces the head line of `comet.state`.
    pub(crate) fn set_state_line(&self, line: &[u8; STATE_LINE]) {
        self.inner.borrow_mut().state[HEAD_LINE..HEAD_LINE + STATE_LINE].copy_from_slice(line);
    }

    fn handle(&self, id: Id, writable: bool) -> RamFile<'_, 'a> {
        RamFile { storage: self, id, writable }
    }
}

impl Inner<'_> {
    fn link(&self, block: u16) -> u16 {
        let at = usize::from(block) * LINK;
        u16::from_le_bytes([self.map[at], self.map[at + 1]])
    }

    fn set_link(&mut self, block: u16, next: u16) {
        let at = usize::from(block) * LINK;
        self.map[at..at + LINK].copy_from_slice(&next.to_le_bytes());
    }

    /// The `n`-th block of slot `i`'s chain (`n < blocks`).
    fn nth_block(&self, i: usize, n: usize) -> u16 {
        let mut b = self.files[i].first;
        for _ in 0..n {
            b = self.link(b);
        }
        b
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|s| s.used && s.linked && s.name() == name.as_bytes())
    }

    /// Frees the blocks of slot `i`'s chain from its `keep`-th on.
    fn cut_chain(&mut self, i: usize, keep: usize) {
        let s = self.files[i];
        if keep >= s.blocks as usize {
            return;
        }
        let mut b = if keep == 0 {
            s.first
        } else {
            let last = self.nth_block(i, keep - 1);
            let next = self.link(last);
            self.set_link(last, END);
            next
        };
        while b != END {
            let next = self.link(b);
            self.set_link(b, FREE);
            self.free += 1;
            b = next;
        }
        if keep == 0 {
            self.files[i].first = END;
        }
        #[allow(clippy::cast_possible_truncation)] // keep < blocks, a u32
        {
            self.files[i].blocks = keep as u32;
        }
    }

    /// Sets slot `i`'s length, allocating (and zeroing) or freeing blocks.
    /// Growing fails whole with [`RamError::Full`] when blocks run out.
    fn resize(&mut self, i: usize, len: u32) -> Result<(), RamError> {
        let s = self.files[i];
        let want = blocks_for(len);
        let have = s.blocks as usize;
        if want > have {
            let needed = want - have;
            if needed > self.free {
                return Err(RamError::Full { needed, free: self.free });
            }
            let mut last = if have == 0 { END } else { self.nth_block(i, have - 1) };
            let mut search = 0u16;
            for _ in 0..needed {
                while self.link(search) != FREE {
                    search += 1;
                }
                let b = search;
                self.set_link(b, END);
                let at = usize::from(b) * BLOCK_SIZE;
                self.data[at..at + BLOCK_SIZE].fill(0);
                if last == END {
                    self.files[i].first = b;
                } else {
                    self.set_link(last, b);
                }
                last = b;
                self.free -= 1;
            }
            #[allow(clippy::cast_possible_truncation)] // want <= MAX_BLOCKS
            {
                self.files[i].blocks = want as u32;
            }
        }
        if len > s.len && have > 0 {
            // Bytes past the old length in its last block may be stale.
            let start = s.len as usize;
            let end = (len as usize).min(have * BLOCK_SIZE);
            if start < end {
                self.fill(i, start, end - start);
            }
        }
        if want < have {
            self.cut_chain(i, want);
        }
        let slot = &mut self.files[i];
        slot.len = len;
        slot.synced = slot.synced.min(len);
        Ok(())
    }

    /// Zeroes `n` bytes of slot `i` from `at` (inside its blocks).
    fn fill(&mut self, i: usize, at: usize, n: usize) {
        let mut b = self.nth_block(i, at / BLOCK_SIZE);
        let (mut off, mut left) = (at % BLOCK_SIZE, n);
        while left > 0 {
            let k = left.min(BLOCK_SIZE - off);
            let pos = usize::from(b) * BLOCK_SIZE + off;
            self.data[pos..pos + k].fill(0);
            left -= k;
            off = 0;
            if left > 0 {
                b = self.link(b);
            }
        }
    }

    fn read(&self, i: usize, offset: u64, buf: &mut [u8]) -> usize {
        let s = &self.files[i];
        let Ok(at) = u32::try_from(offset) else {
            return 0;
        };
        if at >= s.len {
            return 0;
        }
        let n = buf.len().min((s.len - at) as usize);
        let mut b = self.nth_block(i, at as usize / BLOCK_SIZE);
        let (mut off, mut done) = (at as usize % BLOCK_SIZE, 0);
        while done < n {
            let k = (n - done).min(BLOCK_SIZE - off);
            let pos = usize::from(b) * BLOCK_SIZE + off;
            buf[done..done + k].copy_from_slice(&self.data[pos..pos + k]);
            done += k;
            off = 0;
            if done < n {
                b = self.link(b);
            }
        }
        n
    }

    fn write(&mut self, i: usize, offset: u64, bufs: &[&[u8]]) -> Result<usize, RamError> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let end = offset.checked_add(total as u64).and_then(|e| u32::try_from(e).ok()).ok_or(RamError::TooLarge)?;
        if end > self.files[i].len {
            self.resize(i, end)?;
        }
        #[allow(clippy::cast_possible_truncation)] // offset < end, a u32
        let at = offset as usize;
        let mut b = self.nth_block(i, at / BLOCK_SIZE);
        let mut off = at % BLOCK_SIZE;
        for src in bufs {
            let mut src: &[u8] = src;
            while !src.is_empty() {
                if off == BLOCK_SIZE {
                    b = self.link(b);
                    off = 0;
                }
                let k = src.len().min(BLOCK_SIZE - off);
                let pos = usize::from(b) * BLOCK_SIZE + off;
                self.data[pos..pos + k].copy_from_slice(&src[..k]);
                src = &src[k..];
                off += k;
            }
        }
        Ok(total)
    }

    /// Drops the name of slot `i`; frees it if no handle is open.
    fn unlink(&mut self, i: usize) {
        self.files[i].linked = false;
        self.release(i);
    }

    /// Frees slot `i` if it is unnamed and unopened.
    fn release(&mut self, i: usize) {
        let s = self.files[i];
        if s.used && !s.linked && s.handles == 0 {
            self.cut_chain(i, 0);
            self.files[i] = EMPTY;
        }
    }
}

fn check_name(name: &str) -> Result<(), RamError> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(RamError::BadName);
    }
    Ok(())
}

/// An open file of a [`RamStorage`]. Like a POSIX descriptor it keeps a
/// removed or replaced file readable until it is dropped.
pub struct RamFile<'s, 'a> {
    storage: &'s RamStorage<'a>,
    id: Id,
    writable: bool,
}

impl fmt::Debug for RamFile<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamFile").field("id", &self.id).field("writable", &self.writable).finish()
    }
}

impl Drop for RamFile<'_, '_> {
    fn drop(&mut self) {
        if let Id::Slot(i) = self.id
            && let Ok(mut inner) = self.storage.inner.try_borrow_mut()
        {
            inner.files[i].handles -= 1;
            inner.release(i);
        }
    }
}

impl StorageFile for RamFile<'_, '_> {
    type Error = RamError;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, RamError> {
        let inner = self.storage.inner.borrow();
        match self.id {
            Id::State => {
                let src = usize::try_from(offset).ok().and_then(|at| inner.state.get(at..)).unwrap_or(&[]);
                let n = src.len().min(buf.len());
                buf[..n].copy_from_slice(&src[..n]);
                Ok(n)
            }
            Id::Slot(i) => Ok(inner.read(i, offset, buf)),
        }
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, RamError> {
        self.write_vectored_at(offset, &[buf])
    }

    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<usize, RamError> {
        if !self.writable {
            return Err(RamError::ReadOnly);
        }
        let mut inner = self.storage.inner.borrow_mut();
        match self.id {
            Id::State => {
                let total: usize = bufs.iter().map(|b| b.len()).sum();
                let at = usize::try_from(offset).map_err(|_| RamError::FixedStateRegion)?;
                if at.checked_add(total).is_none_or(|end| end > STATE_SIZE) {
                    return Err(RamError::FixedStateRegion);
                }
                let mut pos = at;
                for b in bufs {
                    inner.state[pos..pos + b.len()].copy_from_slice(b);
                    pos += b.len();
                }
                Ok(total)
            }
            Id::Slot(i) => inner.write(i, offset, bufs),
        }
    }

    fn len(&self) -> Result<u64, RamError> {
        match self.id {
            Id::State => Ok(STATE_SIZE as u64),
            Id::Slot(i) => Ok(u64::from(self.storage.inner.borrow().files[i].len)),
        }
    }

    fn set_len(&self, len: u64) -> Result<(), RamError> {
        if !self.writable {
            return Err(RamError::ReadOnly);
        }
        match self.id {
            Id::State if len == STATE_SIZE as u64 => Ok(()),
            Id::State => Err(RamError::FixedStateRegion),
            Id::Slot(i) => {
                let len = u32::try_from(len).map_err(|_| RamError::TooLarge)?;
                self.storage.inner.borrow_mut().resize(i, len)
            }
        }
    }

    fn sync(&self) -> Result<(), RamError> {
        if let Id::Slot(i) = self.id {
            let mut inner = self.storage.inner.borrow_mut();
            let s = &mut inner.files[i];
            s.synced = s.len;
        }
        Ok(())
    }
}

impl<'s, 'a> Storage for &'s RamStorage<'a> {
    type Error = RamError;
    type File = RamFile<'s, 'a>;

    fn open(&self, name: &str, mode: OpenMode) -> Result<RamFile<'s, 'a>, RamError> {
        let storage: &'s RamStorage<'a> = self;
        if name == STATE_FILE {
            return match mode {
                OpenMode::CreateNew => Err(RamError::AlreadyExists),
                OpenMode::Truncate => Err(RamError::FixedStateRegion),
                _ => Ok(storage.handle(Id::State, mode != OpenMode::Read)),
            };
        }
        check_name(name)?;
        let mut inner = storage.inner.borrow_mut();
        let i = match (mode, inner.find(name)) {
            (OpenMode::Read | OpenMode::ReadWrite, None) => return Err(RamError::NotFound),
            (OpenMode::CreateNew, Some(_)) => return Err(RamError::AlreadyExists),
            (OpenMode::Truncate, Some(i)) => {
                inner.resize(i, 0)?;
                i
            }
            (_, Some(i)) => i,
            (_, None) => {
                let i = inner.files.iter().position(|s| !s.used).ok_or(RamError::TooManyFiles)?;
                let mut slot = EMPTY;
                slot.used = true;
                slot.linked = true;
                slot.name[..name.len()].copy_from_slice(name.as_bytes());
                #[allow(clippy::cast_possible_truncation)] // checked: <= NAME_MAX
                {
                    slot.name_len = name.len() as u8;
                }
                inner.files[i] = slot;
                i
            }
        };
        inner.files[i].handles += 1;
        Ok(storage.handle(Id::Slot(i), mode != OpenMode::Read))
    }

    fn remove(&self, name: &str) -> Result<(), RamError> {
        if name == STATE_FILE {
            return Err(RamError::FixedStateRegion);
        }
        let mut inner = self.inner.borrow_mut();
        let i = inner.find(name).ok_or(RamError::NotFound)?;
        inner.unlink(i);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), RamError> {
        if from == STATE_FILE || to == STATE_FILE {
            return Err(RamError::FixedStateRegion);
        }
        check_name(to)?;
        let mut inner = self.inner.borrow_mut();
        let i = inner.find(from).ok_or(RamError::NotFound)?;
        if from == to {
            return Ok(());
        }
        if let Some(j) = inner.find(to) {
            inner.unlink(j);
        }
        let slot = &mut inner.files[i];
        slot.name = [0; NAME_MAX];
        slot.name[..to.len()].copy_from_slice(to.as_bytes());
        #[allow(clippy::cast_possible_truncation)] // checked: <= NAME_MAX
        {
            slot.name_len = to.len() as u8;
        }
        Ok(())
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> Result<(), RamError> {
        // Copied out first, so `visit` may call back into the storage.
        let mut names = [([0u8; NAME_MAX], 0usize); MAX_FILES];
        let mut n = 0;
        for s in self.inner.borrow().files.iter().filter(|s| s.used && s.linked) {
            names[n] = (s.name, usize::from(s.name_len));
            n += 1;
        }
        visit(STATE_FILE);
        for (name, len) in &names[..n] {
            // Names are only ever copied from a `&str`.
            if let Ok(name) = core::str::from_utf8(&name[..*len]) {
                visit(name);
            }
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), RamError> {
        // The file table is durable as soon as it changes (module docs).
        Ok(())
    }
}

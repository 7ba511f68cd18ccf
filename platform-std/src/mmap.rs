//! Memory maps: the shared state files as atomics, segments as byte views.
//!
//! # Safety
//!
//! Mapping a file is `unsafe` because another process can change or
//! truncate it underneath the mapping. How each map stays sound:
//!
//! * `comet.state` and `offsets.state` ([`SharedWords`]) are mapped shared,
//!   read-write by the processes that may write them and read-only for
//!   lookups; every access goes through `AtomicU64`, which is exactly the
//!   contract for memory other threads or processes modify concurrently.
//!   A read-only mapping is only ever handed to the read functions of
//!   `comet_core::shm`, which do nothing but `Relaxed` 64-bit loads (the
//!   atomic accesses Rust allows on read-only memory); writers obtain their
//!   slice through [`SharedWords::writable`], which a read-only mapping
//!   refuses. Their size is fixed and they are never truncated by comet (a
//!   file of the wrong size is replaced, never shrunk in place).
//! * Segments ([`SegmentMap`]) are mapped read-only. comet only ever appends
//!   to a segment, and readers only touch bytes below the durable head,
//!   which is never truncated (recovery cuts only bytes beyond it).
//!   Truncating a mapped segment from outside comet would make a read of
//!   the lost pages raise `SIGBUS`; `SAFETY.md` lists this hazard.
//! * A mapping is owned by an `Arc`; a remap creates a new one and old
//!   ones live until the last payload borrowing them is dropped, so memory
//!   a reader still uses is never unmapped.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::atomic::AtomicU64;

use memmap2::{Mmap, MmapMut, MmapOptions};

#[derive(Debug)]
enum WordsMap {
    ReadWrite(MmapMut),
    ReadOnly(Mmap),
}

/// A file mapped shared (read-write or read-only), viewed as `u64` atomics.
#[derive(Debug)]
pub(crate) struct SharedWords {
    map: WordsMap,
}

fn check_len(file: &File, len: usize) -> io::Result<()> {
    if !len.is_multiple_of(8) || file.metadata()?.len() != len as u64 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "shared file has the wrong size"));
    }
    Ok(())
}

impl SharedWords {
    /// Maps all of `file` read-write; it must be `len` bytes, a multiple of
    /// 8, and open for reading and writing.
    pub(crate) fn map(file: &File, len: usize) -> io::Result<SharedWords> {
        check_len(file, len)?;
        // SAFETY: the file is `len` bytes and comet never shrinks it; all
        // accesses to the mapping are atomic (see the module docs).
        let map = unsafe { MmapOptions::new().len(len).map_mut(file)? };
        Ok(SharedWords { map: WordsMap::ReadWrite(map) })
    }

    /// Maps all of `file` read-only (it may be open read-only); see
    /// [`SharedWords::map`] for the size rules.
    pub(crate) fn map_read_only(file: &File, len: usize) -> io::Result<SharedWords> {
        check_len(file, len)?;
        // SAFETY: as in `map`; the mapping is only ever read with `Relaxed`
        // loads (module docs), and `writable` keeps writers away from it.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(SharedWords { map: WordsMap::ReadOnly(map) })
    }

    fn bytes(&self) -> &[u8] {
        match &self.map {
            WordsMap::ReadWrite(m) => m,
            WordsMap::ReadOnly(m) => m,
        }
    }

    /// The mapping as atomics, for the read functions of `comet_core::shm`
    /// only (the mapping may be read-only); writers use
    /// [`writable`](SharedWords::writable).
    pub(crate) fn words(&self) -> &[AtomicU64] {
        let bytes = self.bytes();
        let ptr = bytes.as_ptr();
        debug_assert_eq!(ptr.align_offset(8), 0);
        // SAFETY: mappings are page aligned (so 8-aligned), `len` is a
        // multiple of 8 (checked in `map`), `AtomicU64` has the size and
        // alignment of `u64`, and the memory lives as long as `self.map`,
        // which the returned borrow keeps alive. Concurrent modification by
        // other processes is what atomics permit.
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), bytes.len() / 8) }
    }

    /// The mapping as atomics that may be written, `None` for a read-only
    /// mapping.
    pub(crate) fn writable(&self) -> Option<&[AtomicU64]> {
        matches!(self.map, WordsMap::ReadWrite(_)).then(|| self.words())
    }

    /// Flushes the mapping to the file (`msync`; nothing for a read-only
    /// mapping).
    pub(crate) fn flush(&self) -> io::Result<()> {
        match &self.map {
            WordsMap::ReadWrite(m) => m.flush(),
            WordsMap::ReadOnly(_) => Ok(()),
        }
    }
}

/// A read-only view of the first `len` bytes of a segment.
#[derive(Debug)]
pub(crate) struct SegmentMap {
    map: Option<Mmap>,
}

impl SegmentMap {
    /// An empty view.
    pub(crate) fn empty() -> SegmentMap {
        SegmentMap { map: None }
    }

    /// Maps the first `len` bytes of `file` (empty for `len == 0`).
    pub(crate) fn map(file: &File, len: u64) -> io::Result<SegmentMap> {
        if len == 0 {
            return Ok(SegmentMap { map: None });
        }
        let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
        // SAFETY: segments are append-only and readers access only bytes
        // below the durable head, which is never truncated (module docs).
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(SegmentMap { map: Some(map) })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

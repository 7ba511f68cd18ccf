//! Memory maps: the two small state files as `&[AtomicU64]`
//! ([`SharedWords`]), and read-only views of segment prefixes
//! ([`SegmentMap`], used by the std platform's zero-copy reader).
//!
//! This is the only module of the crate with `unsafe` code.
//!
//! # Safety
//!
//! Mapping a file is `unsafe` because another process can change or
//! truncate it underneath the mapping: a read of a page past the file's end
//! raises `SIGBUS`. How each map stays sound:
//!
//! * Every map is made from a descriptor whose file is checked with
//!   `fstat` first: a state file must have exactly its layout's size (the
//!   files are created fully written, never sparse, and comet never
//!   shrinks them), and a segment map never covers more than the file
//!   holds at that moment.
//! * [`SharedWords`] memory is only accessed through `AtomicU64`, which is
//!   the contract for memory other threads and processes modify
//!   concurrently. A read-only mapping is only ever handed to readers that
//!   do `Relaxed` 64-bit loads (the atomic accesses Rust allows on read-only
//!   memory); writers get their slice through [`SharedWords::writable`],
//!   which a read-only mapping refuses.
//! * [`SegmentMap`] is mapped `PROT_READ`. comet only ever appends to a
//!   segment below its mapped length and never truncates below a durable
//!   head; bytes are handed out only after their chunk's CRC was checked.
//! * A mapping is unmapped only in `Drop`; slices borrow the map, and the
//!   std reader keeps maps in `Arc`s so a message outlives a remap.
//!
//! The remaining hazard, listed in `SAFETY.md`: a process outside comet
//! that truncates a mapped file while a reader touches it raises `SIGBUS`
//! (catching it would need a signal handler, which a library must not
//! install).
//!
//! # References
//!
//! * mmap(2): <https://man7.org/linux/man-pages/man2/mmap.2.html>
//! * munmap(2): same page.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use comet_core::{Corruption, FileKind, WireError};
use rustix::mm::{MapFlags, ProtFlags};

use crate::storage::file_len;

/// A file that does not have the size its layout requires (not mapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongSize {
    /// The file.
    pub file: &'static str,
    /// Its length.
    pub len: u64,
    /// The size its layout has.
    pub expected: u64,
}

impl std::fmt::Display for WrongSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is {} bytes, expected {}", self.file, self.len, self.expected)
    }
}

impl std::error::Error for WrongSize {}

impl WrongSize {
    /// As an `io::Error` (kind `InvalidData`) that carries this value.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The value an `io::Error` made by [`into_io`](WrongSize::into_io)
    /// carries.
    pub fn of(e: &io::Error) -> Option<&WrongSize> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<WrongSize>())
    }

    /// What a reader reports for it: `file` (its kind) truncated, or too
    /// large, at offset 0.
    pub fn corruption(&self, file: FileKind) -> Corruption {
        let error = if self.len < self.expected {
            WireError::Truncated { needed: self.expected, available: self.len }
        } else {
            WireError::TooLarge { len: self.len, max: self.expected }
        };
        Corruption { file, offset: 0, error }
    }
}

/// A `MAP_SHARED` mapping of a small file as 64-bit atomic words.
#[derive(Debug)]
pub struct SharedWords {
    ptr: NonNull<AtomicU64>,
    words: usize,
    writable: bool,
}

// SAFETY: the mapping is only accessed through atomics (see the module
// docs), so sharing and sending the handle across threads is sound.
unsafe impl Send for SharedWords {}
// SAFETY: as above; `&SharedWords` only hands out `&[AtomicU64]`.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Maps all of `fd` (opened read-write), which must be exactly
    /// `words * 8` bytes (`file` names it in the error otherwise).
    pub fn map(fd: impl AsFd, words: usize, file: &'static str) -> io::Result<SharedWords> {
        SharedWords::map_with(fd, words, file, true)
    }

    /// Maps all of `fd` read-only (it may be opened read-only); the same
    /// size rule as [`map`](SharedWords::map).
    pub fn map_read_only(fd: impl AsFd, words: usize, file: &'static str) -> io::Result<SharedWords> {
        SharedWords::map_with(fd, words, file, false)
    }

    fn map_with(fd: impl AsFd, words: usize, file: &'static str, writable: bool) -> io::Result<SharedWords> {
        let len =
            words.checked_mul(8).filter(|&l| l > 0).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let actual = file_len(&fd)?;
        if actual != len as u64 {
            return Err(WrongSize { file, len: actual, expected: len as u64 }.into_io());
        }
        let prot = if writable { ProtFlags::READ | ProtFlags::WRITE } else { ProtFlags::READ };
        // SAFETY: a fresh mapping (null hint, no MAP_FIXED) cannot alias any
        // Rust object; `fd` is a valid open descriptor for the duration of
        // the call; length and offset are valid (len > 0, offset 0) and the
        // file holds `len` bytes (checked above). The returned pointer is
        // checked for null below.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let ptr = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(SharedWords { ptr, words, writable })
    }

    /// The mapping as atomic words, for reading (the mapping may be
    /// read-only: use only `Relaxed` loads and fences); writers use
    /// [`writable`](SharedWords::writable).
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` points to `words` page-aligned, initialised (file
        // backed) `u64`s that stay mapped until `self` is dropped; the slice
        // borrows `self`, so it cannot outlive the mapping. `AtomicU64` has
        // the layout of `u64`, and all access goes through atomics.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.words) }
    }

    /// The mapping as atomics that may be written, `None` for a read-only
    /// mapping.
    pub fn writable(&self) -> Option<&[AtomicU64]> {
        self.writable.then(|| self.words())
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`words * 8` is exactly the mapping created in
        // `map_with`; no slice from `words()` can be alive because they
        // borrow `self`. An error here cannot be handled and leaks address
        // space only.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.words * 8) };
    }
}

/// A read-only view of the first bytes of a segment file.
#[derive(Debug)]
pub struct SegmentMap {
    map: Option<(NonNull<u8>, usize)>,
}

// SAFETY: the mapping is read-only and immutable through this handle;
// concurrent appends by a writer touch only bytes beyond the view.
unsafe impl Send for SegmentMap {}
// SAFETY: as above; `&SegmentMap` only hands out `&[u8]`.
unsafe impl Sync for SegmentMap {}

impl comet_core::platform::consume::Mapping for SegmentMap {
    fn bytes(&self) -> &[u8] {
        SegmentMap::bytes(self)
    }
}

impl SegmentMap {
    /// An empty view.
    pub fn empty() -> SegmentMap {
        SegmentMap { map: None }
    }

    /// Maps the first `min(len, file length)` bytes of `fd` (empty for 0):
    /// never more than the file holds now.
    pub fn map(fd: impl AsFd, len: u64) -> io::Result<SegmentMap> {
        let len = len.min(file_len(&fd)?);
        if len == 0 {
            return Ok(SegmentMap { map: None });
        }
        let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
        // SAFETY: a fresh read-only mapping (null hint, no MAP_FIXED) of at
        // most the file's current length (checked above); see the module
        // docs for why the pages stay valid.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, ProtFlags::READ, MapFlags::SHARED, fd, 0)? };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(SegmentMap { map: Some((ptr, len)) })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        match self.map {
            // SAFETY: `ptr`/`len` is a live read-only mapping owned by
            // `self`; the slice borrows `self`.
            Some((ptr, len)) => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) },
            None => &[],
        }
    }
}

impl Drop for SegmentMap {
    fn drop(&mut self) {
        if let Some((ptr, len)) = self.map {
            // SAFETY: exactly the mapping made in `map`; slices borrow `self`.
            let _ = unsafe { rustix::mm::munmap(ptr.as_ptr().cast(), len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_file_see_each_other() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1024).unwrap();
        let a = SharedWords::map(&f, 128, "t").unwrap();
        let b = SharedWords::map_read_only(&f, 128, "t").unwrap();
        a.writable().unwrap()[5].store(42, Ordering::Release);
        assert_eq!(b.words()[5].load(Ordering::Acquire), 42);
        assert!(b.writable().is_none());
        drop(a);
        assert_eq!(b.words()[5].load(Ordering::Acquire), 42);
    }

    #[test]
    fn a_file_of_the_wrong_size_is_refused_not_mapped() {
        for len in [0u64, 100, 1023, 1025, 1 << 30] {
            let f = tempfile::tempfile().unwrap();
            f.set_len(len).unwrap();
            let e = SharedWords::map(&f, 128, "comet.state").unwrap_err();
            assert_eq!(WrongSize::of(&e), Some(&WrongSize { file: "comet.state", len, expected: 1024 }));
        }
        let f = tempfile::tempfile().unwrap();
        assert!(SharedWords::map(&f, 0, "t").is_err());
    }

    #[test]
    fn a_segment_map_never_covers_more_than_the_file() {
        let f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &f, b"hello world").unwrap();
        assert_eq!(SegmentMap::map(&f, 5).unwrap().bytes(), b"hello");
        assert_eq!(SegmentMap::map(&f, 4096).unwrap().bytes(), b"hello world");
        f.set_len(0).unwrap();
        assert_eq!(SegmentMap::map(&f, 4096).unwrap().bytes(), b"");
    }
}

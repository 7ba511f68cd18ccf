//! Small fixed-size shared mappings: `comet.state` (1 KiB) and
//! `offsets.state` (65,600 bytes), viewed as `&[AtomicU64]`.
//!
//! This is the only module of the crate with `unsafe` code. Segments are
//! never mapped (they are read with `pread`); only these two small files
//! are, because the core's shared-memory protocols (`comet_core::shm`: the
//! seqlock durable head, CAS claims of consumer-group slots, metric
//! counters) need memory that other processes — including ones linking the
//! std crate `comet` — update with atomics.
//!
//! # Safety
//!
//! [`SharedWords`] upholds, for the lifetime of the value:
//!
//! * the mapping is `MAP_SHARED`, readable and writable, page-aligned (so
//!   8-aligned) and `words * 8` bytes long, and is unmapped only in `Drop`;
//! * the memory is only ever accessed through `AtomicU64` (which has the
//!   size and alignment of `u64`), so concurrent access from other threads
//!   and processes is not a data race;
//! * the file is at least `words * 8` bytes long when mapped. A process that
//!   *shrinks* the file afterwards would make accesses raise `SIGBUS`; no
//!   comet process ever shrinks these files (they are created at their
//!   final size), which is the remaining, documented hazard.
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

use rustix::mm::{MapFlags, ProtFlags};

/// A `MAP_SHARED` mapping of a small file as 64-bit atomic words.
#[derive(Debug)]
pub struct SharedWords {
    ptr: NonNull<AtomicU64>,
    words: usize,
}

// SAFETY: the mapping is only accessed through atomics (see the module
// docs), so sharing and sending the handle across threads is sound.
unsafe impl Send for SharedWords {}
// SAFETY: as above; `&SharedWords` only hands out `&[AtomicU64]`.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Maps the first `words * 8` bytes of `fd`, which must be at least that
    /// long (checked here: a shorter file is `InvalidData`).
    pub fn map(fd: impl AsFd, words: usize) -> io::Result<SharedWords> {
        let len =
            words.checked_mul(8).filter(|&l| l > 0).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let st = rustix::fs::fstat(&fd)?;
        if u64::try_from(st.st_size).unwrap_or(0) < len as u64 {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        // SAFETY: a fresh mapping (null hint, no MAP_FIXED) cannot alias any
        // Rust object; `fd` is a valid open descriptor for the duration of
        // the call; length and offset are valid (len > 0, offset 0). The
        // returned pointer is checked for null below.
        let ptr = unsafe {
            rustix::mm::mmap(std::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED, fd, 0)?
        };
        let ptr = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(SharedWords { ptr, words })
    }

    /// The mapping as atomic words.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` points to `words` page-aligned, initialised (file
        // backed) `u64`s that stay mapped until `self` is dropped; the slice
        // borrows `self`, so it cannot outlive the mapping. `AtomicU64` has
        // the layout of `u64`, and all access goes through atomics.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.words) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`words * 8` is exactly the mapping created in `map`;
        // no slice from `words()` can be alive because they borrow `self`.
        // An error here cannot be handled and leaks address space only.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.words * 8) };
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
        let a = SharedWords::map(&f, 128).unwrap();
        let b = SharedWords::map(&f, 128).unwrap();
        a.words()[5].store(42, Ordering::Release);
        assert_eq!(b.words()[5].load(Ordering::Acquire), 42);
        drop(a);
        assert_eq!(b.words()[5].load(Ordering::Acquire), 42);
    }

    #[test]
    fn a_short_file_is_refused_not_mapped() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(100).unwrap();
        assert!(SharedWords::map(&f, 128).is_err());
        assert!(SharedWords::map(&f, 0).is_err());
    }
}

//! The storage boundary: one directory of files.
//!
//! Modelled on redb's `StorageBackend` and raft-engine's `FileSystem`: a
//! handful of small methods with one-sentence contracts. A [`Storage`] is one
//! directory (a shard directory); names are plain file names inside it,
//! never paths. Platforms implement it with `pread`/`pwrite`
//! (`comet-embedded`), with `std::fs` (`comet`), or in memory with fault
//! injection (feature `sim`).
//!
//! Short reads and short writes are allowed, as in `embedded_io::Read`; the
//! helpers [`read_exact_at`] and [`write_all_at`] loop over them. Code in
//! this crate performs all I/O through these traits, which is what lets the
//! fault-injecting wrappers test the production engine.

use crate::error::{Error, IoOp};

/// Broad classes of storage errors, as `embedded_io::ErrorKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// The file already exists (exclusive create).
    AlreadyExists,
    /// No space left on the device (`ENOSPC`), or a quota was hit.
    StorageFull,
    /// Permission denied.
    PermissionDenied,
    /// The operation was interrupted and may be retried.
    Interrupted,
    /// An argument was invalid.
    InvalidInput,
    /// The operation is not supported.
    Unsupported,
    /// The device reported an error (`EIO`) or something else went wrong.
    Other,
}

/// An error from a [`Storage`].
pub trait StorageError: core::fmt::Debug + core::fmt::Display {
    /// The class of the error.
    fn kind(&self) -> ErrorKind;

    /// An error of the given class, for conditions the core detects itself
    /// (e.g. a write that makes no progress).
    fn from_kind(kind: ErrorKind) -> Self
    where
        Self: Sized;
}

#[cfg(feature = "std")]
impl StorageError for std::io::Error {
    fn kind(&self) -> ErrorKind {
        use std::io::ErrorKind as K;
        match std::io::Error::kind(self) {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::StorageFull | K::QuotaExceeded => ErrorKind::StorageFull,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::Interrupted => ErrorKind::Interrupted,
            K::InvalidInput => ErrorKind::InvalidInput,
            K::Unsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        }
    }

    fn from_kind(kind: ErrorKind) -> Self {
        use std::io::ErrorKind as K;
        std::io::Error::from(match kind {
            ErrorKind::NotFound => K::NotFound,
            ErrorKind::AlreadyExists => K::AlreadyExists,
            ErrorKind::StorageFull => K::StorageFull,
            ErrorKind::PermissionDenied => K::PermissionDenied,
            ErrorKind::Interrupted => K::Interrupted,
            ErrorKind::InvalidInput => K::InvalidInput,
            ErrorKind::Unsupported => K::Unsupported,
            ErrorKind::Other => K::Other,
        })
    }
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file if it is missing.
    Create,
    /// Read and write; create the file, failing with
    /// [`ErrorKind::AlreadyExists`] if it exists.
    CreateNew,
    /// Read and write; create the file or truncate it to zero length.
    Truncate,
}

#[allow(clippy::len_without_is_empty)]
/// One open file. Methods take `&self`, like `std::fs::File`'s `&File`
/// impls, so a handle can be shared (e.g. to `sync` outside a lock).
pub trait StorageFile {
    /// The storage's error type.
    type Error: StorageError;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read.
    /// `Ok(0)` means end of file (or an empty `buf`). May read fewer bytes
    /// than asked even before the end of file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error>;

    /// Writes up to `buf.len()` bytes at `offset`, extending the file if
    /// needed; returns how many were written, which may be fewer than asked.
    /// Returns `Ok(0)` only for an empty `buf`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, Self::Error>;

    /// Writes the concatenation of `bufs` at `offset` like [`write_at`]
    /// (`pwritev`); returns how many bytes were written, possibly fewer.
    ///
    /// [`write_at`]: StorageFile::write_at
    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<usize, Self::Error> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write_at(offset, b),
            None => Ok(0),
        }
    }

    /// The file's current length in bytes.
    fn len(&self) -> Result<u64, Self::Error>;

    /// Truncates or zero-extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> Result<(), Self::Error>;

    /// Makes everything written so far durable (`fdatasync`): data and the
    /// metadata needed to read it back, including the length.
    fn sync(&self) -> Result<(), Self::Error>;
}

/// One directory of files.
pub trait Storage {
    /// The error type.
    type Error: StorageError;
    /// An open file.
    type File: StorageFile<Error = Self::Error>;

    /// Opens the file `name` in this directory.
    fn open(&self, name: &str, mode: OpenMode) -> Result<Self::File, Self::Error>;

    /// Removes the file `name`; [`ErrorKind::NotFound`] if it is missing.
    fn remove(&self, name: &str) -> Result<(), Self::Error>;

    /// Renames `from` to `to`, atomically replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> Result<(), Self::Error>;

    /// Calls `visit` with the name of every file in the directory, in no
    /// particular order.
    fn list(&self, visit: &mut dyn FnMut(&str)) -> Result<(), Self::Error>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self) -> Result<(), Self::Error>;
}

/// Reads exactly `buf.len()` bytes at `offset`, looping over short reads and
/// retrying interrupted ones. Returns the number of bytes read, which is
/// less than `buf.len()` only at end of file.
pub fn read_exact_at<F: StorageFile>(file: &F, mut offset: u64, buf: &mut [u8]) -> Result<usize, F::Error> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(offset, &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                offset += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes all of `bufs` at `offset`, looping over short writes and retrying
/// interrupted ones. On error, some prefix may have been written.
pub fn write_all_at<F: StorageFile>(file: &F, mut offset: u64, bufs: &[&[u8]]) -> Result<(), F::Error> {
    let mut idx = 0;
    let mut skip = 0usize;
    while idx < bufs.len() {
        let mut cur: [&[u8]; 8] = [&[]; 8];
        let mut n = 0;
        for (k, b) in bufs[idx..].iter().enumerate() {
            if n == cur.len() {
                break;
            }
            cur[n] = if k == 0 { &b[skip..] } else { b };
            n += 1;
        }
        let total: usize = cur[..n].iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(());
        }
        let written = match file.write_vectored_at(offset, &cur[..n]) {
            Ok(0) => return Err(F::Error::from_kind(ErrorKind::Other)),
            Ok(w) => w,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        offset += written as u64;
        let mut left = written;
        while left > 0 && idx < bufs.len() {
            let avail = bufs[idx].len() - skip;
            if left >= avail {
                left -= avail;
                idx += 1;
                skip = 0;
            } else {
                skip += left;
                left = 0;
            }
        }
        while idx < bufs.len() && bufs[idx].len() == skip {
            idx += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// Copies bytes `range` of `src` to the start of `dst` through `buf`, then
/// syncs `dst`: how import and repair keep bytes they set aside. Stops early
/// at the end of `src`. Errors name the file they came from (`src_name` or
/// `dst_name`).
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
pub(crate) fn copy_range<F: StorageFile>(
    src: &F,
    src_name: &str,
    range: core::ops::Range<u64>,
    dst: &F,
    dst_name: &str,
    buf: &mut [u8],
) -> Result<(), Error<F::Error>> {
    let mut at = range.start;
    while at < range.end {
        let n = usize::try_from(range.end - at).map_or(buf.len(), |left| left.min(buf.len()));
        let got = read_exact_at(src, at, &mut buf[..n]).ctx(IoOp::Read, src_name)?;
        if got == 0 {
            break;
        }
        write_all_at(dst, at - range.start, &[&buf[..got]]).ctx(IoOp::Write, dst_name)?;
        at += got as u64;
    }
    dst.sync().ctx(IoOp::Sync, dst_name)
}

/// Attaches the operation and file name to a storage error.
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
pub(crate) trait Context<T, E> {
    fn ctx(self, op: IoOp, file: &str) -> Result<T, Error<E>>;
}

impl<T, E> Context<T, E> for Result<T, E> {
    fn ctx(self, op: IoOp, file: &str) -> Result<T, Error<E>> {
        self.map_err(|e| Error::storage(op, file, e))
    }
}

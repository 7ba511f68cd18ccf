//! [`DirStorage`]: the core's [`Storage`] over one directory, with
//! `openat`/`pread`/`pwrite`/`pwritev`/`fdatasync` through `rustix` (safe
//! wrappers, no `unsafe` here) and no memory maps.
//!
//! * Every file is opened relative to the directory's descriptor
//!   (`openat`), so renaming the data directory under a running log cannot
//!   redirect its writes, and names are plain file names: a name with a
//!   `/`, a NUL, `.` or `..` is rejected with `InvalidInput`.
//! * Short reads and writes are passed up as the trait allows; the core's
//!   `read_exact_at` / `write_all_at` loop over them. `EINTR` surfaces as
//!   [`ErrorKind::Interrupted`](comet_core::storage::ErrorKind), which those
//!   helpers retry.
//! * `sync` is `fdatasync` (it covers the file length); `sync_dir` is
//!   `fsync` on the directory, which makes creations, renames and removals
//!   durable.
//! * Paths are turned into C strings on the stack (`rustix` uses a 256-byte
//!   buffer for short paths), so no call here allocates except `list`.

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use comet_core::storage::{OpenMode, Storage, StorageFile};
use rustix::fs::{AtFlags, Mode, OFlags};

/// Permission bits of files the log creates.
const FILE_MODE: u32 = 0o644;

/// One open file, read and written at explicit offsets.
#[derive(Debug)]
pub struct FsFile {
    fd: OwnedFd,
}

impl FsFile {
    /// Wraps an open descriptor.
    pub fn from_fd(fd: OwnedFd) -> FsFile {
        FsFile { fd }
    }
}

impl AsFd for FsFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl StorageFile for FsFile {
    type Error = io::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Ok(rustix::io::pread(&self.fd, buf, offset)?)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Ok(rustix::io::pwrite(&self.fd, buf, offset)?)
    }

    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<usize> {
        // The core hands at most 8 buffers at a time; more are written by
        // the next call (a short write, which the trait allows).
        let mut slices = [IoSlice::new(&[]); 8];
        let mut n = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            if n == slices.len() {
                break;
            }
            slices[n] = IoSlice::new(b);
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        Ok(rustix::io::pwritev(&self.fd, &slices[..n], offset)?)
    }

    fn len(&self) -> io::Result<u64> {
        let st = rustix::fs::fstat(&self.fd)?;
        u64::try_from(st.st_size).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        Ok(rustix::fs::ftruncate(&self.fd, len)?)
    }

    fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fdatasync(&self.fd)?)
    }
}

/// One directory (a shard directory), addressed through its descriptor.
#[derive(Debug)]
pub struct DirStorage {
    dir: OwnedFd,
}

/// Rejects anything but a plain file name.
pub(crate) fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == 0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    Ok(())
}

impl DirStorage {
    /// Wraps an open directory descriptor.
    pub fn from_fd(dir: OwnedFd) -> DirStorage {
        DirStorage { dir }
    }

    /// Opens the directory at `path` (which must exist).
    pub fn open_path(path: &std::path::Path) -> io::Result<DirStorage> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(DirStorage { dir: fd })
    }

    /// Opens (creating if needed) the subdirectory `name`; the second value
    /// is true if it was created (the caller then syncs this directory).
    pub fn open_subdir(&self, name: &str, create: bool) -> io::Result<(DirStorage, bool)> {
        check_name(name)?;
        let mut created = false;
        if create {
            match rustix::fs::mkdirat(&self.dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => created = true,
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let fd =
            rustix::fs::openat(&self.dir, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok((DirStorage { dir: fd }, created))
    }

    /// Opens `name` for reading and writing, creating it if missing, with
    /// the descriptor exposed (for locks and shared mappings).
    pub(crate) fn open_raw(&self, name: &str) -> io::Result<OwnedFd> {
        check_name(name)?;
        Ok(rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )?)
    }
}

impl AsFd for DirStorage {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

impl Storage for DirStorage {
    type Error = io::Error;
    type File = FsFile;

    fn open(&self, name: &str, mode: OpenMode) -> io::Result<FsFile> {
        check_name(name)?;
        let flags = match mode {
            OpenMode::Read => OFlags::RDONLY,
            OpenMode::ReadWrite => OFlags::RDWR,
            OpenMode::Create => OFlags::RDWR | OFlags::CREATE,
            OpenMode::CreateNew => OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
            OpenMode::Truncate => OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC,
        };
        let fd = rustix::fs::openat(&self.dir, name, flags | OFlags::CLOEXEC, Mode::from_raw_mode(FILE_MODE))?;
        Ok(FsFile { fd })
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        Ok(rustix::fs::unlinkat(&self.dir, name, AtFlags::empty())?)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        Ok(rustix::fs::renameat(&self.dir, from, &self.dir, to)?)
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> io::Result<()> {
        let mut dir = rustix::fs::Dir::read_from(&self.dir)?;
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = entry.file_name();
            let Ok(name) = name.to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            if entry.file_type() == rustix::fs::FileType::Directory {
                continue;
            }
            visit(name);
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.dir)?)
    }
}

#[cfg(test)]
mod tests;

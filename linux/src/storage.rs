//! [`DirStorage`]: the core's [`Storage`] over one directory, with
//! `openat`/`pread`/`pwrite`/`pwritev`/`fdatasync` through `rustix` (safe
//! wrappers, no `unsafe` here) and no memory maps.
//!
//! * Every file is opened relative to the directory's descriptor
//!   (`openat`), so renaming the data directory under a running process
//!   cannot redirect its writes, and names are plain file names: a name with
//!   a `/`, a NUL, `.` or `..` is rejected with `InvalidInput`.
//! * Every open is non-blocking and refuses anything but a regular file
//!   (a FIFO, a device, a socket or a directory where a file should be, also
//!   behind a symlink) with `InvalidInput` naming what it found: such a file
//!   can neither hang a call nor feed endless bytes.
//! * Short reads and writes are passed up as the trait allows; the core's
//!   `read_exact_at` / `write_all_at` loop over them. `EINTR` surfaces as
//!   [`ErrorKind::Interrupted`](comet_core::platform::storage::ErrorKind), which those
//!   helpers retry.
//! * `sync` is `fdatasync` (it covers the file length); `sync_dir` is
//!   `fsync` on the directory, which makes creations, renames and removals
//!   durable.
//! * Paths are turned into C strings on the stack (`rustix` uses a 256-byte
//!   buffer for short paths), so no call here allocates except `list`.

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use comet_core::platform::storage::{OpenMode, Storage, StorageFile};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Permission bits of files comet creates.
const FILE_MODE: u32 = 0o644;

/// One open file, read and written at explicit offsets. Clones share the
/// descriptor (so a sync can run outside a lock).
#[derive(Debug, Clone)]
pub struct FsFile {
    fd: Arc<OwnedFd>,
}

impl FsFile {
    /// Wraps an open descriptor.
    pub fn from_fd(fd: OwnedFd) -> FsFile {
        FsFile { fd: Arc::new(fd) }
    }
}

impl AsFd for FsFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `pread` calls made through [`FsFile`]s of this process.
static PREADS: AtomicU64 = AtomicU64::new(0);

/// How many `pread` calls this process has made through comet's files
/// (every platform's reads, recovery and verification included), for
/// measuring what a read costs: sample it before and after.
pub fn pread_calls() -> u64 {
    PREADS.load(Ordering::Relaxed)
}

impl StorageFile for FsFile {
    type Error = io::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        PREADS.fetch_add(1, Ordering::Relaxed);
        Ok(rustix::io::pread(&*self.fd, buf, offset)?)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Ok(rustix::io::pwrite(&*self.fd, buf, offset)?)
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
        Ok(rustix::io::pwritev(&*self.fd, &slices[..n], offset)?)
    }

    fn len(&self) -> io::Result<u64> {
        file_len(&*self.fd)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        Ok(rustix::fs::ftruncate(&*self.fd, len)?)
    }

    fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fdatasync(&*self.fd)?)
    }
}

/// The length of an open file (`fstat`).
pub fn file_len(fd: impl AsFd) -> io::Result<u64> {
    let st = rustix::fs::fstat(fd)?;
    u64::try_from(st.st_size).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// One directory (a shard directory or a data directory), addressed
/// through its descriptor. Clones share it.
#[derive(Debug, Clone)]
pub struct DirStorage {
    dir: Arc<OwnedFd>,
    path: PathBuf,
}

/// Rejects anything but a plain file name.
pub fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == 0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a plain file name")));
    }
    Ok(())
}

/// What a non-regular file is, for error messages.
fn describe(t: FileType) -> &'static str {
    match t {
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        _ => "not a regular file",
    }
}

/// `openat` of a file, with a directory where a file should be reported
/// like the other non-regular files.
fn open_file(dir: &OwnedFd, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
    match rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(FILE_MODE)) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::ISDIR) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is a directory where comet expects a regular file"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Refuses a descriptor that is not a regular file.
fn check_regular(fd: &OwnedFd, name: &str) -> io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is {} where comet expects a regular file", describe(t)),
        ));
    }
    Ok(())
}

impl DirStorage {
    /// Wraps an open directory descriptor (`path` is for messages).
    pub fn from_fd(dir: OwnedFd, path: impl Into<PathBuf>) -> DirStorage {
        DirStorage { dir: Arc::new(dir), path: path.into() }
    }

    /// Opens the directory at `path` (which must exist and be a directory).
    pub fn open_path(path: &Path) -> io::Result<DirStorage> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(DirStorage { dir: Arc::new(fd), path: path.to_path_buf() })
    }

    /// [`open_path`](DirStorage::open_path) for a directory that may not
    /// exist (a shard not created yet): `None` if it does not.
    pub fn open_existing(path: &Path) -> io::Result<Option<DirStorage>> {
        match DirStorage::open_path(path) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The directory's path as it was opened (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the subdirectory `name`, creating it if `create`; the second
    /// value is true if it was created (the caller then syncs this
    /// directory).
    pub fn open_subdir(&self, name: &str, create: bool) -> io::Result<(DirStorage, bool)> {
        check_name(name)?;
        let mut created = false;
        if create {
            match rustix::fs::mkdirat(&*self.dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => created = true,
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let fd = rustix::fs::openat(
            &*self.dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        Ok((DirStorage { dir: Arc::new(fd), path: self.path.join(name) }, created))
    }

    /// Opens `name` (a regular file) with the descriptor exposed, for locks
    /// and shared maps: read-only, or read-write and created if `create`.
    pub fn open_raw(&self, name: &str, write: bool, create: bool) -> io::Result<OwnedFd> {
        check_name(name)?;
        let mut flags = OFlags::CLOEXEC | OFlags::NONBLOCK;
        flags |= if write { OFlags::RDWR } else { OFlags::RDONLY };
        if create {
            flags |= OFlags::CREATE;
        }
        let fd = open_file(&self.dir, name, flags)?;
        check_regular(&fd, name)?;
        Ok(fd)
    }

    /// Renames `from` to `to` only if `to` does not exist
    /// (`RENAME_NOREPLACE`); [`io::ErrorKind::AlreadyExists`] otherwise.
    pub fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        match rustix::fs::renameat_with(&*self.dir, from, &*self.dir, to, rustix::fs::RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            // File systems without RENAME_NOREPLACE: link, then unlink.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                rustix::fs::linkat(&*self.dir, from, &*self.dir, to, AtFlags::empty())?;
                Ok(rustix::fs::unlinkat(&*self.dir, from, AtFlags::empty())?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Renames the subdirectory (or file) `from` of this directory to `to`
    /// in `target`, replacing nothing but an empty directory.
    pub fn rename_dir_to(&self, from: &str, target: &DirStorage, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        Ok(rustix::fs::renameat(&*self.dir, from, &*target.dir, to)?)
    }

    /// Removes the empty subdirectory `name`, or the file `name` and
    /// everything in it when it is a directory comet created (one level).
    pub fn remove_dir_all(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        if let Ok((sub, _)) = self.open_subdir(name, false) {
            let mut names = Vec::new();
            sub.list(&mut |n| names.push(n.to_string()))?;
            for n in names {
                let _ = rustix::fs::unlinkat(&*sub.dir, n.as_str(), AtFlags::empty());
            }
        }
        Ok(rustix::fs::unlinkat(&*self.dir, name, AtFlags::REMOVEDIR)?)
    }

    /// Names of the subdirectories, in no particular order.
    pub fn subdirs(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&*self.dir)?;
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let is_dir = match entry.file_type() {
                FileType::Directory => true,
                FileType::Unknown => rustix::fs::statat(&*self.dir, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
                _ => false,
            };
            if is_dir {
                out.push(name.to_string());
            }
        }
        Ok(out)
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
            OpenMode::Truncate => OFlags::RDWR | OFlags::CREATE,
        };
        let fd = open_file(&self.dir, name, flags | OFlags::CLOEXEC | OFlags::NONBLOCK)?;
        check_regular(&fd, name)?;
        // Truncate only once the file is known to be a regular one.
        if mode == OpenMode::Truncate {
            rustix::fs::ftruncate(&fd, 0)?;
        }
        Ok(FsFile::from_fd(fd))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        Ok(rustix::fs::unlinkat(&*self.dir, name, AtFlags::empty())?)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        Ok(rustix::fs::renameat(&*self.dir, from, &*self.dir, to)?)
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> io::Result<()> {
        let mut dir = rustix::fs::Dir::read_from(&*self.dir)?;
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = entry.file_name();
            let Ok(name) = name.to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            if entry.file_type() == FileType::Directory {
                continue;
            }
            visit(name);
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&*self.dir)?)
    }
}

#[cfg(test)]
mod tests;

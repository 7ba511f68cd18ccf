//! The data directory's identity file `<root>/comet.id` on disk: created
//! once, read with the same checks as every other file. Its layout and
//! checks are the core's ([`comet_core::DirId`]).
//!
//! Invariants: the file is only ever created whole (written to a temporary
//! name, fsynced, hard-linked into place, which fails if another process
//! won the race, then the directory is fsynced) and never rewritten. A file
//! that fails its checks is reported as [`IdentityError::Damaged`] and left
//! alone: replacing it would silently give the same entries new ids.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use comet_core::platform::state::IDENTITY_LEN;
use comet_core::{DirId, IDENTITY_FILE, IdentityDamage, IoOp};

use crate::storage::DirStorage;

/// Why [`dir_identity`] has no id to give.
#[derive(Debug)]
#[non_exhaustive]
pub enum IdentityError {
    /// There is no `comet.id` and the caller did not ask to create one.
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but fails its checks. It is never replaced
    /// automatically: restore it from a backup, or delete it to give the
    /// directory a new identity (everything not yet forwarded then goes out
    /// under new message ids).
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        damage: IdentityDamage,
    },
    /// An I/O operation failed.
    Io {
        /// The operation.
        op: IoOp,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Missing { path } => write!(f, "{} does not exist", path.display()),
            IdentityError::Damaged { path, damage } => write!(
                f,
                "{} is damaged ({damage}); restore it from a backup, or delete it to give the \
                 directory a new identity",
                path.display()
            ),
            IdentityError::Io { op, path, .. } => write!(f, "{op} {}", path.display()),
        }
    }
}

impl std::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IdentityError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The identity of the data directory `root`, from `<root>/comet.id`.
///
/// If the file is missing and `create` is true, a new random id is written
/// (atomically, durably: temporary file, fsync, hard link into place,
/// fsync of `root`); if another process creates it at the same time, both
/// get the id that won. A damaged file is an error, never replaced.
pub fn dir_identity(root: impl AsRef<Path>, create: bool) -> Result<DirId, IdentityError> {
    let root = root.as_ref();
    let path = root.join(IDENTITY_FILE);
    match read_id(&path) {
        Err(IdentityError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    if !create {
        return Err(IdentityError::Missing { path });
    }
    let id = DirId::from_bytes(random_bytes(root)?);
    let io = |op: IoOp, p: &Path| {
        let p = p.to_path_buf();
        move |source| IdentityError::Io { op, path: p, source }
    };
    // Unique per creator (threads share the pid): the new id names it.
    let tmp = root.join(format!("{IDENTITY_FILE}.{}.{id}.tmp", std::process::id()));
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io(IoOp::Open, &tmp))?;
    let written = file.write_all(&id.encode()).map_err(io(IoOp::Write, &tmp)).and_then(|()| {
        file.sync_all().map_err(io(IoOp::Sync, &tmp))?;
        // A hard link fails if `comet.id` exists: the first creator wins
        // and nobody ever replaces an id another process may be using.
        match fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(IoOp::Rename, &path)(e)),
        }
    });
    let _ = fs::remove_file(&tmp);
    let won = written?;
    File::open(root).and_then(|d| d.sync_all()).map_err(io(IoOp::SyncDir, root))?;
    if won { Ok(id) } else { read_id(&path) }
}

/// Reads and checks `path`.
fn read_id(path: &Path) -> Result<DirId, IdentityError> {
    let io = |op: IoOp| move |source| IdentityError::Io { op, path: path.to_path_buf(), source };
    // Non-blocking, regular files only: a FIFO or a device named comet.id
    // must not hang or feed a read.
    let dir = path.parent().unwrap_or(Path::new("."));
    let storage = DirStorage::open_path(dir).map_err(io(IoOp::Open))?;
    let fd = storage.open_raw(IDENTITY_FILE, false, false).map_err(io(IoOp::Open))?;
    let mut file = File::from(fd);
    let mut bytes = Vec::with_capacity(IDENTITY_LEN + 1);
    // One byte more than the format, to tell a long file from a full one.
    Read::by_ref(&mut file).take(IDENTITY_LEN as u64 + 1).read_to_end(&mut bytes).map_err(io(IoOp::Read))?;
    let len = file.metadata().map_err(io(IoOp::Len))?.len();
    DirId::decode(&bytes, len).map_err(|damage| IdentityError::Damaged { path: path.to_path_buf(), damage })
}

/// 16 bytes from the kernel's random source.
fn random_bytes(root: &Path) -> Result<[u8; 16], IdentityError> {
    let src = Path::new("/dev/urandom");
    let mut b = [0u8; 16];
    File::open(src).and_then(|mut f| f.read_exact(&mut b)).map_err(|source| IdentityError::Io {
        op: IoOp::Read,
        path: src.to_path_buf(),
        source,
    })?;
    // Never all zeros: that would read as an uninitialised id.
    if b == [0; 16] {
        return Err(IdentityError::Io {
            op: IoOp::Read,
            path: root.to_path_buf(),
            source: io::Error::other("the random source returned zeros"),
        });
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back_and_never_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(dir_identity(dir.path(), false), Err(IdentityError::Missing { .. })));
        let id = dir_identity(dir.path(), true).expect("create");
        assert_eq!(dir_identity(dir.path(), false).expect("read"), id);
        assert_eq!(dir_identity(dir.path(), true).expect("read"), id);
        let other = tempfile::tempdir().expect("tempdir");
        assert_ne!(dir_identity(other.path(), true).expect("create"), id);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, [IDENTITY_FILE]);
        assert_eq!(fs::read(dir.path().join(IDENTITY_FILE)).expect("read"), id.encode());

        let path = dir.path().join(IDENTITY_FILE);
        let mut bytes = fs::read(&path).expect("read");
        bytes[10] ^= 1;
        fs::write(&path, &bytes).expect("damage");
        for create in [false, true] {
            let e = dir_identity(dir.path(), create).expect_err("damaged");
            assert!(matches!(e, IdentityError::Damaged { damage: IdentityDamage::Checksum { .. }, .. }), "{e}");
        }
        assert_eq!(fs::read(&path).expect("read"), bytes, "a damaged id file is left as it is");
        fs::write(&path, b"").expect("truncate");
        assert!(matches!(
            dir_identity(dir.path(), true),
            Err(IdentityError::Damaged { damage: IdentityDamage::Length(0), .. })
        ));
    }

    #[test]
    fn concurrent_creators_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let ids: Vec<DirId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| dir_identity(&root, true).expect("create"))).collect();
            handles.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        assert!(ids.iter().all(|&id| id == ids[0]), "{ids:?}");
    }
}

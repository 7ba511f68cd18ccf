//! The data directory's identity: a random 128-bit id in `<root>/comet.id`,
//! created once and never changed, so that anything naming an entry outside
//! the directory (the forwarder's `Nats-Msg-Id`) can tell two directories
//! apart even when their shard and entry numbers coincide.
//!
//! Layout (28 bytes, little-endian; docs/FORMAT.md, "`comet.id`"):
//!
//! ```text
//!  0       4   5       8                      24         28
//!  | magic | v | zeros |        id (16)       | crc32 LE |
//!  "CMID"   1                                   CRC-32 (IEEE) of bytes 0..24
//! ```
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

use comet_core::error::IoOp;

/// The identity file's name inside the data directory.
pub const IDENTITY_FILE: &str = "comet.id";

/// The file's size in bytes.
const LEN: usize = 28;
const MAGIC: [u8; 4] = *b"CMID";
const VERSION: u8 = 1;
/// Byte ranges of the fields.
mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const RESERVED: Range<usize> = 5..8;
    pub const ID: Range<usize> = 8..24;
    pub const CRC: Range<usize> = 24..28;
}

/// A data directory's identity: 128 random bits, shown as 32 lowercase hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirId([u8; 16]);

impl DirId {
    /// The id's bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// An id from its bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> DirId {
        DirId(bytes)
    }
}

impl fmt::Display for DirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirId({self})")
    }
}

/// What is wrong with a damaged `comet.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityDamage {
    /// The file is not 28 bytes long.
    Length(u64),
    /// The first 4 bytes are not `CMID`.
    Magic([u8; 4]),
    /// A version this build does not know.
    Version(u8),
    /// Reserved bytes are not zero.
    Reserved,
    /// The checksum does not match.
    Checksum {
        /// CRC-32 of bytes 0..24.
        got: u32,
        /// The stored CRC-32.
        expected: u32,
    },
}

impl fmt::Display for IdentityDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityDamage::Length(n) => write!(f, "{n} bytes long, expected {LEN}"),
            IdentityDamage::Magic(m) => write!(f, "bad magic {m:02x?}"),
            IdentityDamage::Version(v) => write!(f, "unknown version {v}"),
            IdentityDamage::Reserved => f.write_str("reserved bytes are not zero"),
            IdentityDamage::Checksum { got, expected } => {
                write!(f, "checksum mismatch (computed {got:#010x}, stored {expected:#010x})")
            }
        }
    }
}

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
    let id = DirId(random_bytes(root)?);
    let io = |op: IoOp, p: &Path| {
        let p = p.to_path_buf();
        move |source| IdentityError::Io { op, path: p, source }
    };
    // Unique per creator (threads share the pid): the new id names it.
    let tmp = root.join(format!("{IDENTITY_FILE}.{}.{id}.tmp", std::process::id()));
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io(IoOp::Open, &tmp))?;
    let written = file.write_all(&encode(id)).map_err(io(IoOp::Write, &tmp)).and_then(|()| {
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
    let storage = comet_linux::DirStorage::open_path(dir).map_err(io(IoOp::Open))?;
    let fd = storage.open_raw(IDENTITY_FILE, false, false).map_err(io(IoOp::Open))?;
    let mut file = File::from(fd);
    let mut bytes = Vec::with_capacity(LEN + 1);
    // One byte more than the format, to tell a long file from a full one.
    Read::by_ref(&mut file).take(LEN as u64 + 1).read_to_end(&mut bytes).map_err(io(IoOp::Read))?;
    let len = file.metadata().map_err(io(IoOp::Len))?.len();
    decode(&bytes, len).map_err(|damage| IdentityError::Damaged { path: path.to_path_buf(), damage })
}

/// The file's bytes for `id`.
fn encode(id: DirId) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[field::MAGIC].copy_from_slice(&MAGIC);
    b[field::VERSION] = VERSION;
    b[field::ID].copy_from_slice(&id.0);
    let crc = crc32(&b[..field::CRC.start]);
    b[field::CRC].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Checks and decodes the file's bytes (`len` is the file's length).
fn decode(b: &[u8], len: u64) -> Result<DirId, IdentityDamage> {
    let b: &[u8; LEN] = b.try_into().map_err(|_| IdentityDamage::Length(len))?;
    let magic: [u8; 4] = [b[0], b[1], b[2], b[3]];
    if magic != MAGIC {
        return Err(IdentityDamage::Magic(magic));
    }
    let expected = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
    let got = crc32(&b[..field::CRC.start]);
    if got != expected {
        return Err(IdentityDamage::Checksum { got, expected });
    }
    if b[field::VERSION] != VERSION {
        return Err(IdentityDamage::Version(b[field::VERSION]));
    }
    if b[field::RESERVED].iter().any(|&x| x != 0) {
        return Err(IdentityDamage::Reserved);
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[field::ID]);
    Ok(DirId(id))
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

/// CRC-32 (IEEE 802.3, reflected, as zlib and `crc32fast` compute it),
/// bitwise: the file is 24 bytes, read once per open.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn golden_bytes_round_trip() {
        let id = DirId::from_bytes(*b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10");
        let b = encode(id);
        assert_eq!(&b[..8], b"CMID\x01\0\0\0");
        assert_eq!(&b[8..24], &id.to_bytes());
        assert_eq!(&b[24..], &crc32(&b[..24]).to_le_bytes());
        assert_eq!(decode(&b, LEN as u64), Ok(id));
        assert_eq!(id.to_string(), "0123456789abcdeffedcba9876543210");
    }

    #[test]
    fn every_damage_is_named() {
        let good = encode(DirId::from_bytes([7; 16]));
        assert_eq!(decode(&good[..27], 27), Err(IdentityDamage::Length(27)));
        let mut b = good;
        b[0] = b'X';
        assert!(matches!(decode(&b, 28), Err(IdentityDamage::Magic(_))));
        for at in 8..28 {
            let mut b = good;
            b[at] ^= 0x10;
            assert!(matches!(decode(&b, 28), Err(IdentityDamage::Checksum { .. })), "flip at {at}");
        }
        let mut b = good;
        b[4] = 2;
        let crc = crc32(&b[..24]);
        b[24..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&b, 28), Err(IdentityDamage::Version(2)));
        b[4] = 1;
        b[6] = 1;
        let crc = crc32(&b[..24]);
        b[24..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&b, 28), Err(IdentityDamage::Reserved));
    }

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

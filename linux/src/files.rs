//! The lifecycle of a shard's state files and of shard directories, one
//! set of rules for both platforms (`docs/FORMAT.md`, "Damaged and missing
//! files"):
//!
//! * **Created fully written, never sparse.** `comet.state` (1 KiB) and
//!   `offsets.state` (65,600 bytes) are written in full from an image and
//!   synced before anything maps them, so a full disk fails the write with
//!   `ENOSPC` instead of raising `SIGBUS` on the first store into an
//!   unallocated page.
//! * **Checked before mapped.** A map is made only of a file of exactly
//!   its layout's size ([`WrongSize`] otherwise, a typed error).
//! * **`comet.state`** of the wrong size is renamed to `comet.state.corrupt`
//!   (never truncated in place) and replaced by the shard's writer; readers
//!   report it. Its head is then rebuilt by recovery.
//! * **`offsets.state`** that is missing, empty or all zero means "no
//!   groups". One of the wrong size or with a bad header fails lookups and
//!   acks of that shard only; the shard's writer (at open) and `repair`
//!   rename it to `offsets.state.corrupt` and replace it with a table of
//!   every slot that still checks out ([`comet_core::platform::state::offsets::salvage`]);
//!   a legacy `offsets.bin` is merged (offsets only move forward) and
//!   removed.
//! * **Shard directories are created atomically**: built as
//!   `.shard-NNNN.tmp.<pid>` (manifest, segment 0, its journal,
//!   `comet.state`), synced, then renamed into place, so a crash leaves
//!   either no shard or a valid empty one.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use comet_core::platform::go::{LEGACY_OFFSETS_FILE, parse_legacy_offsets};
use comet_core::platform::naming::{parse_shard_dir_name, shard_dir_name};
use comet_core::platform::shard::create_shard_files;
use comet_core::platform::shm::{OFFSETS_WORDS, OffsetsTable, STATE_WORDS};
use comet_core::platform::state::offsets::{
    FILE_SIZE as OFFSETS_SIZE, HEADER_SIZE, OFFSETS_FILE, check_header, salvage,
};
use comet_core::platform::state::{STATE_FILE, STATE_SIZE, state_image};
use comet_core::platform::storage::{OpenMode, Storage, StorageFile, read_exact_at, write_all_at};
use comet_core::{DurableHead, IoOp, ShardId};
use rustix::fs::{FlockOperation, flock};

use crate::error::Error;
use crate::map::{SharedWords, WrongSize};
use crate::storage::{DirStorage, FsFile, file_len};

/// Where a `comet.state` of the wrong size is kept.
pub const STATE_QUARANTINE: &str = "comet.state.corrupt";
/// Where a damaged `offsets.state` is kept.
pub const OFFSETS_QUARANTINE: &str = "offsets.state.corrupt";

/// How long to wait for another process initialising the same file.
const INIT_WAIT: Duration = Duration::from_secs(2);

/// Takes `flock(LOCK_EX)` on `fd` without blocking for longer than
/// [`INIT_WAIT`] (a process holding it longer is not a comet process
/// initialising the file).
fn lock_briefly(fd: &OwnedFd) -> io::Result<()> {
    let start = Instant::now();
    loop {
        match flock(fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::WOULDBLOCK) if start.elapsed() < INIT_WAIT => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits (at most [`INIT_WAIT`]) for a creator that holds `fd`'s
/// exclusive `flock` while it writes the file's image: a reader that saw a
/// size other than the layout's calls this before reporting it, since a
/// file being written grows page by page and `fstat` shows the partial
/// length (a consumer mapping `offsets.state` while another process
/// creates it saw 65,536 of its 65,600 bytes).
fn await_initialiser(fd: &OwnedFd) -> io::Result<()> {
    let start = Instant::now();
    loop {
        match flock(fd, FlockOperation::NonBlockingLockShared) {
            Ok(()) => return flock(fd, FlockOperation::Unlock).map_err(Into::into),
            Err(rustix::io::Errno::WOULDBLOCK) if start.elapsed() < INIT_WAIT => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Maps a state file read-only for a reader: one of the wrong size is
/// first given to its creator to finish ([`await_initialiser`]), then
/// checked again; `None` if it is (still) empty and `empty_is_none`.
fn map_read(fd: OwnedFd, words: usize, name: &'static str, empty_is_none: bool) -> io::Result<Option<SharedWords>> {
    let want = words as u64 * 8;
    let mut len = file_len(&fd)?;
    if len != want {
        await_initialiser(&fd)?;
        len = file_len(&fd)?;
    }
    if len == 0 && empty_is_none {
        return Ok(None);
    }
    SharedWords::map_read_only(&fd, words, name).map(Some)
}

/// Opens `name` read-write (created if missing) and, under an exclusive
/// `flock`, writes `image` in full and syncs it if the file is empty or a
/// shorter run of zeros (a creation cut short). Returns the descriptor.
fn open_initialised(dir: &DirStorage, name: &'static str, image: &[u8]) -> io::Result<OwnedFd> {
    let fd = dir.open_raw(name, true, true)?;
    lock_briefly(&fd)?;
    let len = file_len(&fd)?;
    if len < image.len() as u64 && only_zeros(&fd, len)? {
        let f = FsFile::from_fd(fd);
        write_all_at(&f, 0, &[image])?;
        f.sync()?;
        drop(f);
        let fd = dir.open_raw(name, true, false)?;
        return Ok(fd);
    }
    let _ = flock(&fd, FlockOperation::Unlock);
    Ok(fd)
}

/// True if the first `len` bytes of `fd` are all zero.
fn only_zeros(fd: &OwnedFd, len: u64) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    let mut at = 0u64;
    while at < len {
        let n = rustix::io::pread(fd, &mut buf, at)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// `comet.state` mapped read-only, for readers; `None` if it does not
/// exist. A file of the wrong size is a [`WrongSize`] error, once its
/// creator (if one is writing it) is done (readers never
/// change it).
pub fn map_state_read(dir: &DirStorage) -> io::Result<Option<SharedWords>> {
    let fd = match dir.open_raw(STATE_FILE, false, false) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    map_read(fd, STATE_WORDS, STATE_FILE, false)
}

/// `comet.state` mapped read-write, for the shard's writer and repairs:
/// created fully written (zeros: no head yet) if missing or empty; one of
/// the wrong size is renamed to [`STATE_QUARANTINE`] and replaced. Returns
/// the map, its descriptor (for `fdatasync`) and whether a damaged file was
/// set aside.
pub fn map_state_write(dir: &DirStorage) -> io::Result<(SharedWords, OwnedFd, bool)> {
    let image = state_image(None);
    let mut replaced = false;
    loop {
        let fd = open_initialised(dir, STATE_FILE, &image)?;
        match SharedWords::map(&fd, STATE_WORDS, STATE_FILE) {
            Ok(w) => return Ok((w, fd, replaced)),
            Err(e) if WrongSize::of(&e).is_some() && !replaced => {
                drop(fd);
                dir.rename(STATE_FILE, STATE_QUARANTINE)?;
                dir.sync_dir()?;
                replaced = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `offsets.state` mapped read-only, for lookups: `None` if it does not
/// exist or is empty (no group has acked yet). A file of the wrong size is
/// a [`WrongSize`] error, once its creator (if one is writing it) is done.
pub fn map_offsets_read(dir: &DirStorage) -> io::Result<Option<SharedWords>> {
    let fd = match dir.open_raw(OFFSETS_FILE, false, false) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    map_read(fd, OFFSETS_WORDS, OFFSETS_FILE, true)
}

/// `offsets.state` mapped read-write, for acks and seeks: created fully
/// written if missing or empty. A file of the wrong size is a [`WrongSize`]
/// error (the shard's writer and `repair` replace it, see
/// [`settle_offsets`]).
pub fn map_offsets_write(dir: &DirStorage) -> io::Result<SharedWords> {
    let mut image = vec![0u8; OFFSETS_SIZE];
    image[..HEADER_SIZE].copy_from_slice(&comet_core::platform::state::offsets::new_header());
    let fd = open_initialised(dir, OFFSETS_FILE, &image)?;
    SharedWords::map(&fd, OFFSETS_WORDS, OFFSETS_FILE)
}

/// What [`settle_offsets`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffsetsSettled {
    /// The file was damaged and replaced; `(groups kept, slots dropped)`.
    pub replaced: Option<(usize, usize)>,
    /// Groups merged from a legacy `offsets.bin`.
    pub migrated: usize,
    /// Offsets whose check did not match, set to their safe value, and
    /// damaged slots made dead claims (their groups restart).
    pub healed: usize,
}

/// Puts a shard's `offsets.state` in order, for its writer at open and for
/// `repair` (the caller holds `writer.lock`): a damaged file (wrong size,
/// bad header) is renamed to [`OFFSETS_QUARANTINE`] and replaced by a
/// salvaged table; with `heal`, offsets whose check does not match get
/// their safe value (repair only: a writer at open leaves them to
/// `verify`); a legacy `offsets.bin` is merged and removed. A missing file
/// stays missing.
pub fn settle_offsets(dir: &DirStorage, heal: bool, now_ns: u64) -> io::Result<OffsetsSettled> {
    let mut done = OffsetsSettled::default();
    let file = match dir.open(OFFSETS_FILE, OpenMode::Read) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(f) = file {
        let len = f.len()?;
        let mut head = [0u8; HEADER_SIZE];
        let n = read_exact_at(&f, 0, &mut head)?;
        let all_zero_header = head[..n].iter().all(|&b| b == 0);
        let bad = len != OFFSETS_SIZE as u64 && len != 0 || (!all_zero_header && check_header(&head, len).is_err());
        if bad {
            let keep = usize::try_from(len.min(OFFSETS_SIZE as u64)).unwrap_or(0);
            let mut old = vec![0u8; keep];
            let got = read_exact_at(&f, 0, &mut old)?;
            old.truncate(got);
            drop(f);
            let mut image = Box::new([0u8; OFFSETS_SIZE]);
            done.replaced = Some(salvage(&old, &mut image));
            let tmp = "offsets.state.tmp";
            let t = dir.open(tmp, OpenMode::Truncate)?;
            write_all_at(&t, 0, &[&image[..]])?;
            t.sync()?;
            dir.rename(OFFSETS_FILE, OFFSETS_QUARANTINE)?;
            dir.rename(tmp, OFFSETS_FILE)?;
            dir.sync_dir()?;
        }
    }
    let legacy = match dir.open(LEGACY_OFFSETS_FILE, OpenMode::Read) {
        Ok(f) => {
            let len = f.len()?.min(1 << 20);
            let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
            let n = read_exact_at(&f, 0, &mut bytes)?;
            bytes.truncate(n);
            Some(bytes)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let exists = dir.open(OFFSETS_FILE, OpenMode::Read).is_ok();
    if !(exists && heal) && legacy.is_none() {
        return Ok(done);
    }
    let words = map_offsets_write(dir)?;
    let Some(w) = words.writable() else { return Ok(done) };
    let table = OffsetsTable::open(w, std::thread::yield_now)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if heal {
        done.healed = table.heal_damaged() + table.repair_slots();
    }
    if let Some(bytes) = legacy {
        let mut n = 0;
        if parse_legacy_offsets(&bytes, |group, off| {
            n += usize::from(table.advance(group, off, now_ns).is_ok());
        })
        .is_ok()
        {
            dir.remove(LEGACY_OFFSETS_FILE)?;
            dir.sync_dir()?;
        }
        done.migrated = n;
    }
    Ok(done)
}

/// Makes a shard's `offsets.state` durable (`fsync`), as a writer does
/// when it closes: acks and seeks store into the shared map and leave the
/// write-back to the kernel. A missing file has nothing to sync.
pub fn sync_offsets(dir: &DirStorage) -> io::Result<()> {
    match dir.open(OFFSETS_FILE, OpenMode::ReadWrite) {
        Ok(f) => f.sync(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The directory of shard `shard` under the data directory `root` (which
/// may not exist).
pub fn shard_path(root: &Path, shard: ShardId) -> PathBuf {
    root.join(shard_dir_name(shard).as_str())
}

/// The error for a data directory path that exists but is not a directory:
/// [`Error::Io`] whose source has [`io::ErrorKind::NotADirectory`] and
/// reads `not a directory`, rather than `create_dir_all`'s `File exists`.
fn not_a_directory(root: &Path) -> Error {
    Error::io(IoOp::Open, root, io::Error::new(io::ErrorKind::NotADirectory, "not a directory"))
}

/// Creates the data directory `root` if need be (both platforms' open). A
/// path that exists but is not a directory says so.
pub fn create_root(root: &Path) -> Result<(), Error> {
    match std::fs::create_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) => match std::fs::metadata(root) {
            Ok(m) if !m.is_dir() => Err(not_a_directory(root)),
            _ => Err(Error::io(IoOp::Open, root, e)),
        },
    }
}

/// Fails unless the data directory `root` exists and is a directory (a
/// read-only open, `verify`, `repair`).
pub fn check_root(root: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(IoOp::Open, root, e))?;
    if meta.is_dir() { Ok(()) } else { Err(not_a_directory(root)) }
}

/// [`shard_dirs`] with a listing failure as an [`Error`].
pub fn list_shards(root: &Path) -> Result<Vec<ShardId>, Error> {
    shard_dirs(root).map_err(|e| Error::io(IoOp::List, root, e))
}

/// The shards under the data directory `root`: entries named `shard-NNNN`
/// that are directories (or symlinks to directories), sorted. A missing
/// `root` holds no shard.
pub fn shard_dirs(root: &Path) -> io::Result<Vec<ShardId>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if let Some(id) = e.file_name().to_str().and_then(parse_shard_dir_name)
            && e.path().is_dir()
        {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}

/// Creates shard directory `name` under `root` atomically with an empty
/// shard of chunk interval `interval` (see the module docs). Returns
/// `false` if it already existed (nothing changed). Leftovers of creations
/// cut short by a crash (`.<name>.tmp.<pid>` of a dead process) are
/// removed on the way.
pub fn create_shard_dir(root: &DirStorage, name: &str, interval: u32) -> io::Result<bool> {
    if root.open_subdir(name, false).is_ok() {
        return Ok(false);
    }
    let prefix = format!(".{name}.tmp.");
    for stale in root.subdirs()?.into_iter().filter(|d| d.starts_with(&prefix)) {
        let pid = stale[prefix.len()..].parse::<i32>().ok().and_then(rustix::process::Pid::from_raw);
        let dead = pid.is_some_and(|p| rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH));
        if dead {
            root.remove_dir_all(&stale)?;
        }
    }
    let tmp = format!("{prefix}{}", std::process::id());
    if root.open_subdir(&tmp, false).is_ok() {
        root.remove_dir_all(&tmp)?;
    }
    let (dir, _) = root.open_subdir(&tmp, true)?;
    let built = (|| {
        create_shard_files(&dir, interval).map_err(|e| match e {
            // Keep the OS error's kind (ENOSPC stays StorageFull) and say
            // which file.
            comet_core::Error::Storage { op, file, source } => {
                io::Error::new(source.kind(), format!("{op} {file}: {source}"))
            }
            other => io::Error::other(other),
        })?;
        let head = DurableHead { interval, ..DurableHead::default() };
        let state = dir.open(STATE_FILE, OpenMode::CreateNew)?;
        write_all_at(&state, 0, &[&state_image(Some(&head))[..]])?;
        state.sync()?;
        debug_assert_eq!(state.len()?, STATE_SIZE as u64);
        dir.sync_dir()
    })();
    if let Err(e) = built {
        // Give back the space (a full disk is the usual cause); a leftover
        // is removed by the next attempt anyway.
        let _ = root.remove_dir_all(&tmp);
        return Err(e);
    }
    match root.rename_dir_to(&tmp, root, name) {
        Ok(()) => {
            root.sync_dir()?;
            Ok(true)
        }
        // Another process created it first: theirs stands.
        Err(e)
            if [rustix::io::Errno::EXIST, rustix::io::Errno::NOTEMPTY]
                .iter()
                .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
        {
            root.remove_dir_all(&tmp)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, DirStorage) {
        let t = tempfile::tempdir().unwrap();
        let d = DirStorage::open_path(t.path()).unwrap();
        (t, d)
    }

    #[test]
    fn offsets_sync_needs_no_file_and_counters_need_a_writable_map() {
        let (_t, d) = dir();
        sync_offsets(&d).unwrap();
        drop(map_offsets_write(&d).unwrap());
        sync_offsets(&d).unwrap();
        let (w, _fd, _) = map_state_write(&d).unwrap();
        w.add_counter(comet_core::Counter::Acks, 2);
        w.add_counter(comet_core::Counter::Acks, 3);
        let r = map_state_read(&d).unwrap().unwrap();
        r.add_counter(comet_core::Counter::Acks, 100);
        assert_eq!(comet_core::platform::shm::load_counter(r.words(), comet_core::Counter::Acks), 5);
    }

    #[test]
    fn state_files_are_created_whole_and_checked_before_mapping() {
        let (t, d) = dir();
        assert!(map_state_read(&d).unwrap().is_none());
        let (_, _, replaced) = map_state_write(&d).unwrap();
        assert!(!replaced);
        let meta = std::fs::metadata(t.path().join(STATE_FILE)).unwrap();
        assert_eq!(meta.len(), STATE_SIZE as u64);
        assert!(std::os::unix::fs::MetadataExt::blocks(&meta) * 512 >= STATE_SIZE as u64, "not sparse");
        // wrong size: readers are told, the writer sets it aside
        std::fs::write(t.path().join(STATE_FILE), [7u8; 100]).unwrap();
        let e = map_state_read(&d).unwrap_err();
        assert_eq!(WrongSize::of(&e).map(|w| w.len), Some(100));
        let (_, _, replaced) = map_state_write(&d).unwrap();
        assert!(replaced);
        assert_eq!(std::fs::read(t.path().join(STATE_QUARANTINE)).unwrap(), [7u8; 100]);
    }

    #[test]
    fn a_reader_waits_for_a_state_file_being_created() {
        // A creator holds the exclusive lock while the file is shorter
        // than its layout (as `open_initialised` does while writing): the
        // reader must wait for it instead of reporting the partial size.
        let (t, d) = dir();
        let path = t.path().join(OFFSETS_FILE);
        std::fs::write(&path, vec![0u8; 65_536]).unwrap();
        let creator = d.open_raw(OFFSETS_FILE, true, false).unwrap();
        flock(&creator, FlockOperation::LockExclusive).unwrap();
        let reader = std::thread::spawn(move || map_offsets_read(&d).map(|m| m.map(|m| m.words().len())));
        std::thread::sleep(Duration::from_millis(50));
        let mut image = vec![0u8; OFFSETS_SIZE];
        image[..HEADER_SIZE].copy_from_slice(&comet_core::platform::state::offsets::new_header());
        std::fs::write(&path, &image).unwrap();
        drop(creator);
        assert_eq!(reader.join().unwrap().unwrap(), Some(OFFSETS_WORDS));
        // Nobody writing: a wrong size is reported at once.
        std::fs::write(&path, vec![0u8; 100]).unwrap();
        let (_t2, d) = (t, DirStorage::open_path(path.parent().unwrap()).unwrap());
        let e = map_offsets_read(&d).unwrap_err();
        assert_eq!(WrongSize::of(&e).map(|w| w.len), Some(100));
    }

    #[test]
    fn offsets_are_salvaged_and_legacy_offsets_merged() {
        let (t, d) = dir();
        assert!(map_offsets_read(&d).unwrap().is_none());
        std::fs::write(t.path().join(OFFSETS_FILE), b"").unwrap();
        assert!(map_offsets_read(&d).unwrap().is_none(), "empty: no groups");
        {
            let w = map_offsets_write(&d).unwrap();
            let table = OffsetsTable::open(w.writable().unwrap(), std::thread::yield_now).unwrap();
            table.advance("billing", 40, 5).unwrap();
        }
        // truncated: lookups fail for this shard, the writer salvages it
        let path = t.path().join(OFFSETS_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..40_000]).unwrap();
        assert!(map_offsets_read(&d).is_err());
        let mut legacy = vec![1u8, 1, 0, 0, 0, 5];
        legacy.extend_from_slice(b"audit");
        legacy.extend_from_slice(&9u64.to_le_bytes());
        std::fs::write(t.path().join(LEGACY_OFFSETS_FILE), &legacy).unwrap();
        let done = settle_offsets(&d, true, 7).unwrap();
        assert_eq!(done.migrated, 1);
        assert!(done.replaced.is_some());
        let w = map_offsets_read(&d).unwrap().unwrap();
        let r = OffsetsTable::open_read(w.words(), std::thread::yield_now).unwrap().unwrap();
        assert_eq!(r.get("audit").unwrap().unwrap().offset, 9);
        let kept = r.get("billing").unwrap().map(|o| o.offset);
        assert!(kept == Some(40) || kept.is_none(), "salvaged if its slot survived the cut: {kept:?}");
        assert!(t.path().join(OFFSETS_QUARANTINE).exists());
        assert!(!t.path().join(LEGACY_OFFSETS_FILE).exists());
    }

    #[test]
    fn shard_directories_are_listed_sorted() {
        let (t, _) = dir();
        assert!(shard_dirs(&t.path().join("missing")).unwrap().is_empty());
        for name in ["shard-0012", "shard-0003", "shard-x", "other"] {
            std::fs::create_dir(t.path().join(name)).unwrap();
        }
        std::fs::write(t.path().join("shard-0004"), b"").unwrap();
        let ids: Vec<u32> = shard_dirs(t.path()).unwrap().into_iter().map(ShardId::get).collect();
        assert_eq!(ids, [3, 12]);
    }

    #[test]
    fn a_shard_directory_appears_whole_or_not_at_all() {
        let (t, d) = dir();
        // a creation cut short by a dead process is cleaned up
        std::fs::create_dir(t.path().join(".shard-0001.tmp.999999999")).unwrap();
        assert!(create_shard_dir(&d, "shard-0001", 100).unwrap());
        assert!(!create_shard_dir(&d, "shard-0001", 100).unwrap(), "exists");
        let mut names: Vec<String> = std::fs::read_dir(t.path().join("shard-0001"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["comet.state", "index.bin", "log-00000000000000000000.chunks", "log-00000000000000000000.comet"]
        );
        let dirs: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(dirs, ["shard-0001"]);
    }
}

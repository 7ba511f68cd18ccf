//! Opening a shard for writing, one sequence for the std client, the
//! embedded log and `repair`:
//!
//! 1. the shard directory is created atomically if missing
//!    ([`create_shard_dir`]) and opened;
//! 2. `writer.lock` is taken (a second writer fails naming the holder);
//! 3. `comet.state` is mapped read-write ([`map_state_write`]: created
//!    fully written; one of the wrong size set aside as
//!    [`STATE_QUARANTINE`](crate::STATE_QUARANTINE) and replaced);
//! 4. `offsets.state` is settled without healing ([`settle_offsets`]: a
//!    damaged one salvaged, a legacy `offsets.bin` merged; a missing one
//!    stays missing);
//! 5. the engine opens over the directory and the mapped head
//!    ([`MappedHead`]) and recovers whatever a crash left;
//!    [`RecoveryReport::created`] says whether step 1 made the directory;
//! 6. the shared counters are cleared if recovery reset the state, and the
//!    engine's counters so far are added to them.
//!
//! What each platform logs or reports about it is its own: the outcome is
//! returned whole ([`OpenedWriter`]), a failure says which step failed
//! ([`OpenError`]).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use comet_core::platform::naming::shard_dir_name;
use comet_core::platform::shard::{EngineConfig, Shard};
use comet_core::platform::shm;
use comet_core::platform::state::STATE_FILE;
use comet_core::platform::state::offsets::OFFSETS_FILE;
use comet_core::platform::wire::Compressor;
use comet_core::{RecoveryReport, ShardId};

use crate::files::{OffsetsSettled, create_shard_dir, map_state_write, settle_offsets};
use crate::head::MappedHead;
use crate::lock::{LockError, WRITER_LOCK, WriterLock};
use crate::map::SharedWords;
use crate::storage::DirStorage;

/// A shard open for writing: what [`open_writer`] returns.
#[derive(Debug)]
pub struct OpenedWriter<C> {
    /// The engine, recovered.
    pub engine: Shard<DirStorage, MappedHead, C>,
    /// `writer.lock`, held until dropped.
    pub lock: WriterLock,
    /// The shard directory.
    pub dir: DirStorage,
    /// `comet.state`, mapped read-write (the engine's head store maps the
    /// same).
    pub state: Arc<SharedWords>,
    /// `comet.state`'s descriptor (for `fdatasync`).
    pub state_fd: Arc<OwnedFd>,
    /// `comet.state` had the wrong size and was set aside
    /// ([`STATE_QUARANTINE`](crate::STATE_QUARANTINE)) and replaced.
    pub state_replaced: bool,
    /// What opening did to `offsets.state`.
    pub offsets: OffsetsSettled,
    /// What recovery did (`created`: the directory was made by this open).
    pub report: RecoveryReport,
}

/// Which step of [`open_writer`] failed.
///
/// Deliberately exhaustive: each platform maps every variant to its own
/// typed error, and a new variant must make them say how.
#[derive(Debug)]
pub enum OpenError {
    /// Creating the shard directory ([`create_shard_dir`]) failed.
    CreateDir(io::Error),
    /// Opening the shard directory failed.
    OpenDir(io::Error),
    /// Another writer holds `writer.lock`.
    Locked {
        /// The holder's pid, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// Opening or locking `writer.lock` failed.
    Lock(io::Error),
    /// Opening, creating, setting aside or mapping `comet.state` failed.
    State(io::Error),
    /// Settling `offsets.state` failed.
    Offsets(io::Error),
    /// The engine failed to open or recover the shard.
    Engine(comet_core::Error<io::Error>),
}

impl OpenError {
    /// The file of the shard directory the failed step was about (`"."`
    /// for the directory itself, `None` for the engine, whose error names
    /// its own file).
    pub fn file(&self) -> Option<&'static str> {
        match self {
            OpenError::CreateDir(_) | OpenError::OpenDir(_) => Some("."),
            OpenError::Locked { .. } | OpenError::Lock(_) => Some(WRITER_LOCK),
            OpenError::State(_) => Some(STATE_FILE),
            OpenError::Offsets(_) => Some(OFFSETS_FILE),
            OpenError::Engine(_) => None,
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The OS's or engine's error is the source: not repeated here.
        match self {
            OpenError::CreateDir(_) => f.write_str("create the shard directory"),
            OpenError::OpenDir(_) => f.write_str("open the shard directory"),
            OpenError::Locked { pid: Some(pid) } => write!(f, "shard is locked by another writer (pid {pid})"),
            OpenError::Locked { pid: None } => f.write_str("shard is locked by another writer"),
            OpenError::Lock(_) => write!(f, "take {WRITER_LOCK}"),
            OpenError::State(_) => write!(f, "map {STATE_FILE}"),
            OpenError::Offsets(_) => write!(f, "settle {OFFSETS_FILE}"),
            OpenError::Engine(_) => f.write_str("open the shard"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::CreateDir(e)
            | OpenError::OpenDir(e)
            | OpenError::Lock(e)
            | OpenError::State(e)
            | OpenError::Offsets(e) => Some(e),
            OpenError::Engine(e) => Some(e),
            OpenError::Locked { .. } => None,
        }
    }
}

/// Opens shard `shard` under the data directory `root` for writing (see
/// the module documentation for the steps). `now` (ns since the epoch)
/// stamps offsets merged from a legacy `offsets.bin`.
pub fn open_writer<C: Compressor>(
    root: &DirStorage,
    shard: ShardId,
    engine: EngineConfig,
    compressor: C,
    now: u64,
) -> Result<OpenedWriter<C>, OpenError> {
    let name = shard_dir_name(shard);
    let created = create_shard_dir(root, &name, engine.interval).map_err(OpenError::CreateDir)?;
    let (dir, _) = root.open_subdir(&name, false).map_err(OpenError::OpenDir)?;
    let lock = WriterLock::acquire(&dir).map_err(|e| match e {
        LockError::Held { pid } => OpenError::Locked { pid },
        LockError::Io(e) => OpenError::Lock(e),
    })?;
    let (state, state_fd, state_replaced) = map_state_write(&dir).map_err(OpenError::State)?;
    let offsets = settle_offsets(&dir, false, now).map_err(OpenError::Offsets)?;
    let (state, state_fd) = (Arc::new(state), Arc::new(state_fd));
    let head = MappedHead::new(Arc::clone(&state), Arc::clone(&state_fd));
    let (mut engine, mut report) = Shard::open(dir.clone(), head, compressor, engine).map_err(OpenError::Engine)?;
    report.created |= created;
    // `map_state_write` maps read-write: the words are always writable.
    if let Some(words) = state.writable()
        && report.state_reset
    {
        shm::clear_counters(words);
    }
    engine.drain_counters(|c, v| state.add_counter(c, v));
    Ok(OpenedWriter { engine, lock, dir, state, state_fd, state_replaced, offsets, report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use comet_core::EngineSettings;
    use comet_core::platform::state::STATE_SIZE;
    use comet_core::platform::wire::NoCompression;

    fn setup() -> (tempfile::TempDir, DirStorage, EngineConfig) {
        let t = tempfile::tempdir().unwrap();
        let root = DirStorage::open_path(t.path()).unwrap();
        let engine = EngineConfig::from_settings(&EngineSettings::default()).unwrap();
        (t, root, engine)
    }

    fn id(n: u32) -> ShardId {
        ShardId::new(n).unwrap()
    }

    #[test]
    fn a_fresh_shard_is_created_locked_and_mapped() {
        let (t, root, engine) = setup();
        let mut w = open_writer(&root, id(3), engine, NoCompression, 1).unwrap();
        assert!(w.report.created);
        assert!(!w.state_replaced);
        assert_eq!(w.offsets, OffsetsSettled::default());
        let shard = t.path().join("shard-0003");
        assert_eq!(std::fs::metadata(shard.join(STATE_FILE)).unwrap().len(), STATE_SIZE as u64);
        assert!(shard.join(WRITER_LOCK).exists());
        assert!(!shard.join(OFFSETS_FILE).exists(), "a missing offsets.state stays missing");
        assert!(w.state.writable().is_some());
        w.engine.append(5, &[b"x"]).unwrap();
        w.engine.sync().unwrap();
        w.engine.close_with(|_, _| {}).unwrap();
        drop(w.lock);
        let w = open_writer(&root, id(3), engine, NoCompression, 1).unwrap();
        assert!(!w.report.created, "exists");
        assert_eq!(w.engine.durable_end(), 1);
    }

    #[test]
    fn a_locked_shard_names_its_holder() {
        let (_t, root, engine) = setup();
        let _w = open_writer(&root, id(0), engine, NoCompression, 1).unwrap();
        let e = open_writer(&root, id(0), engine, NoCompression, 1).unwrap_err();
        assert!(matches!(e, OpenError::Locked { pid: Some(p) } if p == std::process::id()), "{e:?}");
        assert_eq!(e.file(), Some(WRITER_LOCK));
    }

    #[test]
    fn a_wrong_sized_state_file_is_set_aside() {
        let (t, root, engine) = setup();
        drop(open_writer(&root, id(1), engine, NoCompression, 1).unwrap());
        let shard = t.path().join("shard-0001");
        std::fs::write(shard.join(STATE_FILE), [9u8; 10]).unwrap();
        let w = open_writer(&root, id(1), engine, NoCompression, 1).unwrap();
        assert!(w.state_replaced);
        assert_eq!(std::fs::read(shard.join(crate::STATE_QUARANTINE)).unwrap(), [9u8; 10]);
        assert_eq!(std::fs::metadata(shard.join(STATE_FILE)).unwrap().len(), STATE_SIZE as u64);
    }

    #[test]
    fn a_damaged_offsets_file_is_salvaged() {
        let (t, root, engine) = setup();
        drop(open_writer(&root, id(2), engine, NoCompression, 1).unwrap());
        let shard = t.path().join("shard-0002");
        std::fs::write(shard.join(OFFSETS_FILE), [1u8; 100]).unwrap();
        let w = open_writer(&root, id(2), engine, NoCompression, 1).unwrap();
        assert!(w.offsets.replaced.is_some());
        assert_eq!(std::fs::read(shard.join(crate::OFFSETS_QUARANTINE)).unwrap(), [1u8; 100]);
        let len = std::fs::metadata(shard.join(OFFSETS_FILE)).unwrap().len();
        assert_eq!(len, comet_core::platform::state::offsets::FILE_SIZE as u64);
    }

    #[test]
    fn a_fifo_in_place_of_the_state_file_is_refused() {
        let (t, root, engine) = setup();
        drop(open_writer(&root, id(4), engine, NoCompression, 1).unwrap());
        let path = t.path().join("shard-0004").join(STATE_FILE);
        std::fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = open_writer(&root, id(4), engine, NoCompression, 1).unwrap_err();
        assert!(matches!(e, OpenError::State(_)), "{e:?}");
        assert_eq!(e.file(), Some(STATE_FILE));
        // nothing was set aside or replaced
        assert!(!t.path().join("shard-0004").join(crate::STATE_QUARANTINE).exists());
        let ft = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&ft));
    }
}

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
//! returned whole ([`OpenedWriter`]); a failure is an [`Error`] naming the
//! file whose step failed.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use comet_core::platform::go::is_go_shard;
use comet_core::platform::naming::shard_dir_name;
use comet_core::platform::shard::{EngineConfig, Shard};
use comet_core::platform::shm;
use comet_core::platform::state::STATE_FILE;
use comet_core::platform::state::offsets::OFFSETS_FILE;
use comet_core::platform::wire::Compressor;
use comet_core::{IoOp, RecoveryReport, ShardId};

use crate::error::Error;

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

/// Opens shard `shard` under the data directory `root` for writing (see
/// the module documentation for the steps). `now` (ns since the epoch)
/// stamps offsets merged from a legacy `offsets.bin`.
pub fn open_writer<C: Compressor>(
    root: &DirStorage,
    shard: ShardId,
    engine: EngineConfig,
    compressor: C,
    now: u64,
) -> Result<OpenedWriter<C>, Error> {
    let name = shard_dir_name(shard);
    let path = root.path().join(name.as_str());
    let io = |file: &str| {
        let path = if file.is_empty() { path.clone() } else { path.join(file) };
        move |e| Error::io(IoOp::Open, path, e)
    };
    let created = create_shard_dir(root, &name, engine.interval).map_err(io(""))?;
    let (dir, _) = root.open_subdir(&name, false).map_err(io(""))?;
    // A Go shard is refused before anything is written into it (the lock
    // file, the state files): only the import may change it.
    if !created && is_go_shard(&dir).map_err(|e| Error::from_core(shard, &path, e))? {
        return Err(Error::ForeignFormat { shard });
    }
    let lock = WriterLock::acquire(&dir).map_err(|e| match e {
        LockError::Held { pid } => Error::Locked { shard, pid },
        LockError::Io(e) => io(WRITER_LOCK)(e),
    })?;
    let (state, state_fd, state_replaced) = map_state_write(&dir).map_err(io(STATE_FILE))?;
    let offsets = settle_offsets(&dir, false, now).map_err(io(OFFSETS_FILE))?;
    let (state, state_fd) = (Arc::new(state), Arc::new(state_fd));
    let head = MappedHead::new(Arc::clone(&state), Arc::clone(&state_fd));
    let (mut engine, mut report) =
        Shard::open(dir.clone(), head, compressor, engine).map_err(|e| Error::from_core(shard, &path, e))?;
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
        assert!(matches!(e, Error::Locked { pid: Some(p), .. } if p == std::process::id()), "{e:?}");
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
        assert!(matches!(&e, Error::Io { path, .. } if path.ends_with(STATE_FILE)), "{e:?}");
        // nothing was set aside or replaced
        assert!(!t.path().join("shard-0004").join(crate::STATE_QUARANTINE).exists());
        let ft = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&ft));
    }
}

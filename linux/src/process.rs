//! Process slots: which process of a multi-process deployment this is.
//!
//! Slots live inside the data directory (`<root>/processes/<role>-NNNN.lock`,
//! not a machine-wide temp file). A live process holds an exclusive `flock`
//! on its slot's file for as long as it runs; the kernel releases it when the
//! process dies, so a dead process's slot is reclaimed automatically and a
//! reused PID cannot fake liveness. A process holds at most one slot per
//! directory and role.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use comet_core::platform::state::offsets::validate_group;
use comet_core::{ConfigError, IoOp, NameError};

use crate::error::Error;
use crate::lock::{LockError, WriterLock};
use crate::storage::DirStorage;

/// Directory under the data root that holds the slot files.
pub const PROCESS_DIR: &str = "processes";

/// Most slots of one role.
const MAX_SLOTS: u32 = 1024;

/// The slots this process holds, by slot directory and role.
fn held() -> &'static Mutex<HashSet<(PathBuf, String)>> {
    static HELD: OnceLock<Mutex<HashSet<(PathBuf, String)>>> = OnceLock::new();
    HELD.get_or_init(Mutex::default)
}

/// A held process slot; released on drop (or by the kernel at exit).
#[derive(Debug)]
pub struct ProcessSlot {
    index: u32,
    count: u32,
    key: (PathBuf, String),
    _lock: WriterLock,
}

impl ProcessSlot {
    /// Takes the lowest free slot of `role` (1..=47 bytes, no NUL or `/`)
    /// among `count` under the data directory `root`.
    pub fn acquire(root: &Path, role: &str, count: u32) -> Result<ProcessSlot, Error> {
        validate_group(role).map_err(Error::InvalidGroup)?;
        if role.contains('/') || role.contains("..") {
            return Err(Error::InvalidGroup(NameError::ForbiddenByte { byte: b'/', at: 0 }));
        }
        if count == 0 || count > MAX_SLOTS {
            return Err(Error::Config(ConfigError {
                field: "concurrency.process_count",
                value: u64::from(count),
                min: 1,
                max: u64::from(MAX_SLOTS),
            }));
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::io(IoOp::Open, path, source)
        };
        let dir = root.join(PROCESS_DIR);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let canon = fs::canonicalize(&dir).map_err(io(&dir))?;
        let key = (canon, role.to_string());
        {
            let mut h = held().lock().unwrap_or_else(|p| p.into_inner());
            if !h.insert(key.clone()) {
                return Err(Error::SlotHeld { role: role.to_string() });
            }
        }
        let release = |key: &(PathBuf, String)| held().lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        let slots = match DirStorage::open_path(&dir) {
            Ok(d) => d,
            Err(e) => {
                release(&key);
                return Err(io(&dir)(e));
            }
        };
        for index in 0..count {
            let name = format!("{role}-{index:04}.lock");
            match WriterLock::acquire_named(&slots, &name) {
                Ok(lock) => return Ok(ProcessSlot { index, count, key, _lock: lock }),
                Err(LockError::Held { .. }) => {}
                Err(LockError::Io(e)) => {
                    release(&key);
                    return Err(io(&dir.join(name))(e));
                }
            }
        }
        release(&key);
        Err(Error::NoFreeSlot { role: role.to_string(), count })
    }

    /// This process's index, `0..count`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The number of slots.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        held().lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_lowest_first_once_per_role_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProcessSlot::acquire(dir.path(), "writers", 2).unwrap();
        assert_eq!((a.index(), a.count()), (0, 2));
        assert!(dir.path().join(PROCESS_DIR).join("writers-0000.lock").is_file());
        assert!(matches!(ProcessSlot::acquire(dir.path(), "writers", 2), Err(Error::SlotHeld { .. })));
        assert!(matches!(ProcessSlot::acquire(dir.path(), "a/b", 2), Err(Error::InvalidGroup(_))));
        assert!(matches!(ProcessSlot::acquire(dir.path(), "x", 0), Err(Error::Config(_))));
        assert!(matches!(ProcessSlot::acquire(dir.path(), "x", 1025), Err(Error::Config(_))));
        // Another open file description of the same slot file is refused
        // like another process would be.
        let slots = DirStorage::open_path(&dir.path().join(PROCESS_DIR)).unwrap();
        let _other = WriterLock::acquire_named(&slots, "readers-0000.lock").unwrap();
        let e = ProcessSlot::acquire(dir.path(), "readers", 1).unwrap_err();
        assert!(matches!(e, Error::NoFreeSlot { count: 1, .. }), "{e}");
        assert_eq!(e.to_string(), "all 1 `readers` process slots are held by live processes");
        drop(a);
        assert_eq!(ProcessSlot::acquire(dir.path(), "writers", 2).unwrap().index(), 0);
    }
}

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

use comet_core::error::IoOp;
use comet_core::state::offsets::validate_group;

use comet_linux::{DirStorage, LockError, WriterLock};

use crate::error::{Error, Result};

/// Directory under the data root that holds the slot files.
pub const PROCESS_DIR: &str = "processes";

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
    pub fn acquire(root: &Path, role: &str, count: u32) -> Result<ProcessSlot> {
        validate_group(role).map_err(Error::InvalidGroup)?;
        if role.contains('/') || role.contains("..") {
            return Err(Error::InvalidGroup(comet_core::NameError::ForbiddenByte { byte: b'/', at: 0 }));
        }
        if count == 0 || count > 1024 {
            return Err(Error::Config(comet_core::error::ConfigError {
                field: "concurrency.process_count",
                value: u64::from(count),
                min: 1,
                max: 1024,
            }));
        }
        let dir = root.join(PROCESS_DIR);
        fs::create_dir_all(&dir).map_err(|e| Error::io(IoOp::Open, &dir, e))?;
        let canon = fs::canonicalize(&dir).map_err(|e| Error::io(IoOp::Open, &dir, e))?;
        let key = (canon, role.to_string());
        {
            let mut h = held().lock().unwrap_or_else(|p| p.into_inner());
            if !h.insert(key.clone()) {
                return Err(Error::SlotHeld { role: role.to_string() });
            }
        }
        let slots = match DirStorage::open_path(&dir) {
            Ok(d) => d,
            Err(e) => {
                held().lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                return Err(Error::io(IoOp::Open, &dir, e));
            }
        };
        for index in 0..count {
            let name = format!("{role}-{index:04}.lock");
            match WriterLock::acquire_named(&slots, &name) {
                Ok(lock) => {
                    tracing::debug!(role, index, count, "acquired process slot");
                    return Ok(ProcessSlot { index, count, key, _lock: lock });
                }
                Err(LockError::Held { .. }) => {}
                Err(LockError::Io(e)) => {
                    held().lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    return Err(Error::io(IoOp::Open, dir.join(name), e));
                }
            }
        }
        held().lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
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

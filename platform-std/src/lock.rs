//! `writer.lock`: one writer per shard, enforced with `flock`.
//!
//! The lock is held on an open file description for as long as the writer
//! lives; the kernel drops it when the process dies, so a killed writer never
//! leaves a stale lock and PID reuse cannot fake one. The holder writes its
//! pid into the file so that a second writer's error can name it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

/// File name of the per-shard writer lock.
pub const WRITER_LOCK: &str = "writer.lock";

/// A held exclusive lock; released on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

/// Outcome of [`FileLock::try_acquire`].
pub(crate) enum Acquire {
    Held(FileLock),
    /// Another open file description holds it; the pid it recorded, if any.
    Busy(Option<u32>),
}

impl FileLock {
    /// Tries to take the lock at `path` without blocking.
    pub(crate) fn try_acquire(path: &Path) -> io::Result<Acquire> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(Acquire::Busy(read_pid(&mut file))),
            Err(e) => return Err(e.into()),
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Acquire::Held(FileLock { _file: file }))
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

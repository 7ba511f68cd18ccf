//! `writer.lock`: one writer per shard, enforced with `flock`.
//!
//! The writer takes `flock(LOCK_EX | LOCK_NB)` on `shard-NNNN/writer.lock`
//! and keeps the descriptor open for as long as it writes; dropping the
//! lock unlocks it explicitly (a child being spawned may hold a copy of the
//! descriptor for a moment), and the kernel drops it when the process
//! dies, so a killed
//! writer never leaves a stale lock. The holder then writes its pid as
//! decimal ASCII followed by `\n` (the format the std crate `comet` uses
//! too), so a second writer — in this process or any other, linking either
//! crate — fails fast with [`LockError::Held`] naming
//! the holder. The pid is informational only: liveness is the kernel lock.
//! A writer that loses a race reads the pid a moment after the winner took
//! the lock, before the winner wrote it: the loser then waits briefly
//! (up to [`PID_WAIT`]) for it to appear, so the error names the holder.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

use crate::storage::DirStorage;

/// File name of the per-shard writer lock.
pub const WRITER_LOCK: &str = "writer.lock";

/// How long a refused writer waits for the holder's pid to appear.
pub const PID_WAIT: Duration = Duration::from_millis(250);

/// A held writer lock; released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    fd: OwnedFd,
}

impl Drop for WriterLock {
    /// Unlocks before the descriptor closes. Closing alone is not enough:
    /// a child that another thread is spawning at that moment holds a copy
    /// of the descriptor until it runs `exec`, and the lock belongs to the
    /// open file description both copies share, so a writer that closed
    /// and at once reopened the shard would find it "held" by itself.
    fn drop(&mut self) {
        let _ = flock(&self.fd, FlockOperation::Unlock);
    }
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another open file description holds it; the pid the holder wrote,
    /// if it could be read.
    Held {
        /// The holder's pid.
        pid: Option<u32>,
    },
    /// Opening or locking the file failed.
    Io(io::Error),
}

impl WriterLock {
    /// Takes the writer lock of the shard directory `dir` without blocking.
    pub fn acquire(dir: &DirStorage) -> Result<WriterLock, LockError> {
        WriterLock::acquire_named(dir, WRITER_LOCK)
    }

    /// Takes the lock file `name` of `dir` (created if missing) without
    /// blocking, the same way (process slots use it too).
    pub fn acquire_named(dir: &DirStorage, name: &str) -> Result<WriterLock, LockError> {
        let fd = dir.open_raw(name, true, true).map_err(LockError::Io)?;
        match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let start = Instant::now();
                let mut pid = read_pid(&fd);
                while pid.is_none() && start.elapsed() < PID_WAIT {
                    std::thread::sleep(Duration::from_millis(2));
                    pid = read_pid(&fd);
                }
                return Err(LockError::Held { pid });
            }
            Err(e) => return Err(LockError::Io(e.into())),
        }
        let mut text = [0u8; 12];
        let n = format_pid(std::process::id(), &mut text);
        let write = rustix::fs::ftruncate(&fd, 0).and_then(|()| rustix::io::pwrite(&fd, &text[..n], 0));
        match write {
            Ok(w) if w == n => {}
            // The pid is informational; a failed write leaves the lock held.
            _ => {}
        }
        Ok(WriterLock { fd })
    }
}

/// Writes `pid` as decimal ASCII plus `\n` into `out`; returns the length.
fn format_pid(pid: u32, out: &mut [u8; 12]) -> usize {
    let mut digits = [0u8; 10];
    let mut v = pid;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out[..len].copy_from_slice(&digits[i..]);
    out[len] = b'\n';
    len + 1
}

/// Reads the pid the holder wrote (`None` if absent or not a number).
fn read_pid(fd: &OwnedFd) -> Option<u32> {
    let mut buf = [0u8; 32];
    let n = rustix::io::pread(fd, &mut buf[..], 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_text() {
        let mut out = [0u8; 12];
        let n = format_pid(0, &mut out);
        assert_eq!(&out[..n], b"0\n");
        let n = format_pid(4_294_967_295, &mut out);
        assert_eq!(&out[..n], b"4294967295\n");
    }

    #[test]
    fn a_second_lock_fails_fast_naming_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirStorage::open_path(tmp.path()).unwrap();
        let held = WriterLock::acquire(&dir).unwrap();
        match WriterLock::acquire(&dir) {
            Err(LockError::Held { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(held);
        let again = WriterLock::acquire(&dir);
        assert!(again.is_ok(), "released on drop");
    }

    #[test]
    fn a_descriptor_copy_elsewhere_does_not_keep_a_dropped_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirStorage::open_path(tmp.path()).unwrap();
        let held = WriterLock::acquire(&dir).unwrap();
        // What a child being spawned holds until its exec: a copy of the
        // descriptor, sharing the open file description and its lock.
        let child_copy = held.fd.try_clone().unwrap();
        drop(held);
        assert!(WriterLock::acquire(&dir).is_ok(), "unlocked on drop, not only closed");
        drop(child_copy);
    }

    #[test]
    fn garbage_in_the_lock_file_is_no_pid() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(WRITER_LOCK), b"\xff\xfe not a pid").unwrap();
        let dir = DirStorage::open_path(tmp.path()).unwrap();
        let fd = dir.open_raw(WRITER_LOCK, true, false).unwrap();
        assert_eq!(read_pid(&fd), None);
    }
}

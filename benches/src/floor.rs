//! The floors appends are judged against (docs/DESIGN.md §8): moving the same
//! bytes into the page cache with bare `write(2)` calls of the sizes comet
//! itself issues, and `write` + `fdatasync` for durable appends.
//!
//! [`WriteFloor`] mirrors comet's buffered writer exactly, minus everything
//! else: a batch that fits the free buffer space is only counted; when it
//! does not fit, the pending bytes are written first (one `write`); a batch
//! larger than the whole buffer is written through in buffer-sized
//! `write`s. No copy into a user buffer, no header encoding, no lock, no
//! clock — only the system calls and the kernel's copy.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;

use crate::data::STORED_LEN;

/// A bare file written like comet's segment.
#[derive(Debug)]
pub struct WriteFloor {
    dir: tempfile::TempDir,
    file: File,
    path: PathBuf,
    /// Bytes standing in for encoded entries (one buffer's worth).
    chunk: Vec<u8>,
    buf_size: usize,
    pending: usize,
    written: u64,
    reset_at: u64,
    durable: bool,
}

impl WriteFloor {
    /// A floor for buffered appends through a `buf_size`-byte buffer,
    /// starting a new file (outside the measured time, see
    /// [`needs_reset`](Self::needs_reset)) every `reset_at` bytes.
    pub fn buffered(buf_size: usize, reset_at: u64) -> WriteFloor {
        WriteFloor::new(buf_size, reset_at, false)
    }

    /// A floor for durable appends: every batch is one `write` plus
    /// `fdatasync`.
    pub fn durable(reset_at: u64) -> WriteFloor {
        WriteFloor::new(4 << 20, reset_at, true)
    }

    fn new(buf_size: usize, reset_at: u64, durable: bool) -> WriteFloor {
        let dir = crate::mode::scratch_dir("floor");
        let path = dir.path().join("floor.bin");
        let file = create(&path);
        let chunk = (0..buf_size).map(|i| u8::try_from(i % STORED_LEN).unwrap_or(0)).collect();
        WriteFloor { dir, file, path, chunk, buf_size, pending: 0, written: 0, reset_at, durable }
    }

    /// Accounts one append of `bytes` stored bytes, issuing the `write`s
    /// (and `fdatasync`) comet would issue for it.
    pub fn append(&mut self, bytes: usize) {
        if self.durable {
            self.write(bytes);
            self.file.sync_data().unwrap_or_else(|e| panic!("fdatasync: {e}"));
            return;
        }
        if self.pending + bytes > self.buf_size && self.pending > 0 {
            self.write(self.pending);
            self.pending = 0;
        }
        if bytes > self.buf_size {
            let mut left = bytes;
            while left > 0 {
                let n = left.min(self.buf_size);
                self.write(n);
                left -= n;
            }
        } else {
            self.pending += bytes;
        }
    }

    fn write(&mut self, n: usize) {
        let mut left = n;
        while left > 0 {
            let k = left.min(self.chunk.len());
            self.file.write_all(&self.chunk[..k]).unwrap_or_else(|e| panic!("write: {e}"));
            left -= k;
        }
        self.written += n as u64;
    }

    /// True once `reset_at` bytes went to the current file.
    pub fn needs_reset(&self) -> bool {
        self.written >= self.reset_at
    }

    /// Replaces the file by an empty one (freeing its page cache, as the
    /// comet rigs do with their directories).
    pub fn reset(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.file = create(&self.path);
        self.pending = 0;
        self.written = 0;
    }

    /// The scratch directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

fn create(path: &std::path::Path) -> File {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
}

//! The core's `Storage` trait over a directory of the local file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use comet_core::storage::{OpenMode, Storage, StorageFile};

/// A shard directory.
#[derive(Debug, Clone)]
pub(crate) struct DirStorage {
    path: PathBuf,
}

impl DirStorage {
    pub(crate) fn new(path: impl Into<PathBuf>) -> DirStorage {
        DirStorage { path: path.into() }
    }
}

/// A file of a [`DirStorage`]; clones share the descriptor (so a sync can
/// run outside the engine lock).
#[derive(Debug, Clone)]
pub(crate) struct DirFile(Arc<File>);

impl StorageFile for DirFile {
    type Error = io::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = bufs.len().min(slices.len());
        for (s, b) in slices.iter_mut().zip(bufs) {
            *s = IoSlice::new(b);
        }
        rustix::io::pwritev(&*self.0, &slices[..n], offset).map_err(io::Error::from)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for DirStorage {
    type Error = io::Error;
    type File = DirFile;

    fn open(&self, name: &str, mode: OpenMode) -> io::Result<DirFile> {
        let mut o = OpenOptions::new();
        o.read(true).mode(0o644);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                o.write(true);
            }
            OpenMode::Create => {
                o.write(true).create(true);
            }
            OpenMode::CreateNew => {
                o.write(true).create_new(true);
            }
            OpenMode::Truncate => {
                o.write(true).create(true).truncate(true);
            }
        }
        o.open(self.path.join(name)).map(|f| DirFile(Arc::new(f)))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path.join(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path.join(from), self.path.join(to))
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> io::Result<()> {
        for e in fs::read_dir(&self.path)? {
            let e = e?;
            if let Some(name) = e.file_name().to_str() {
                visit(name);
            }
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        sync_dir(&self.path)
    }
}

/// fsyncs a directory, making its entries durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

//! [`MemDir`]: an in-memory directory with separate live and durable images.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use super::Rng;
use crate::storage::{ErrorKind, OpenMode, Storage, StorageError, StorageFile};

/// The error type of [`MemDir`] and the wrappers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemError {
    /// Error class.
    pub kind: ErrorKind,
    /// What happened.
    pub what: &'static str,
}

impl MemError {
    pub(crate) const fn new(kind: ErrorKind, what: &'static str) -> MemError {
        MemError { kind, what }
    }
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.what)
    }
}

impl core::error::Error for MemError {}

impl StorageError for MemError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
    fn from_kind(kind: ErrorKind) -> Self {
        MemError::new(kind, "error")
    }
}

const CRASHED: MemError = MemError::new(ErrorKind::Other, "simulated power loss");

#[derive(Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Fs {
    live: BTreeMap<String, Rc<RefCell<Inode>>>,
    durable: BTreeMap<String, Rc<RefCell<Inode>>>,
    syncs: u64,
    mutations: u64,
    crash_at_sync: Option<u64>,
    crash_at_mutation: Option<u64>,
    crashed: bool,
}

impl Fs {
    /// Both images, copied, with shared inodes (a name in both maps, or a
    /// renamed file) still shared; counters and crash points reset.
    fn deep_copy(&self) -> Fs {
        type Node = Rc<RefCell<Inode>>;
        let mut copies: Vec<(Node, Node)> = Vec::new();
        let mut copy = |node: &Rc<RefCell<Inode>>| {
            if let Some((_, new)) = copies.iter().find(|(old, _)| Rc::ptr_eq(old, node)) {
                return new.clone();
            }
            let n = node.borrow();
            let new = Rc::new(RefCell::new(Inode { live: n.live.clone(), durable: n.durable.clone() }));
            copies.push((node.clone(), new.clone()));
            new
        };
        let mut out = Fs::default();
        for (name, node) in &self.live {
            out.live.insert(name.clone(), copy(node));
        }
        for (name, node) in &self.durable {
            out.durable.insert(name.clone(), copy(node));
        }
        out
    }

    /// Counts a mutation; fails once the simulated power loss happened.
    fn mutate(&mut self) -> Result<(), MemError> {
        if self.crashed {
            return Err(CRASHED);
        }
        self.mutations += 1;
        if self.crash_at_mutation == Some(self.mutations) {
            self.crashed = true;
            return Err(CRASHED);
        }
        Ok(())
    }

    /// Counts a sync (also a mutation); fails at the configured crash point.
    fn sync(&mut self) -> Result<(), MemError> {
        self.mutate()?;
        self.syncs += 1;
        if self.crash_at_sync == Some(self.syncs) {
            self.crashed = true;
            return Err(CRASHED);
        }
        Ok(())
    }
}

/// Which image a simulated crash keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Power loss: only what was synced (file data by `sync`, names by
    /// `sync_dir`).
    Durable,
    /// Power loss with torn writes: durable data plus, for files that only
    /// grew since their last sync, a random prefix of the unsynced bytes,
    /// sometimes with its end zero-filled (size updated before the data, as
    /// delayed allocation can leave it).
    Torn {
        /// Seed for the random choices.
        seed: u64,
    },
    /// Process crash: everything written reached the page cache and survives
    /// (what was not synced is still not durable).
    Process,
}

/// An in-memory directory. Cloning gives another handle to the same
/// directory.
#[derive(Debug, Clone, Default)]
pub struct MemDir {
    fs: Rc<RefCell<Fs>>,
}

impl MemDir {
    /// An empty directory.
    pub fn new() -> MemDir {
        MemDir::default()
    }

    /// Simulates power loss at the `n`-th sync (1-based; file or directory
    /// sync): that sync does not happen and every later operation fails.
    pub fn crash_at_sync(&self, n: u64) {
        self.fs.borrow_mut().crash_at_sync = Some(n);
    }

    /// Simulates power loss at the `n`-th mutation (1-based; writes,
    /// truncations, syncs, creations, renames, removals).
    pub fn crash_at_mutation(&self, n: u64) {
        self.fs.borrow_mut().crash_at_mutation = Some(n);
    }

    /// True once the simulated power loss happened.
    pub fn crashed(&self) -> bool {
        self.fs.borrow().crashed
    }

    /// Syncs performed so far.
    pub fn sync_count(&self) -> u64 {
        self.fs.borrow().syncs
    }

    /// Mutations performed so far.
    pub fn mutation_count(&self) -> u64 {
        self.fs.borrow().mutations
    }

    /// A new, independent directory holding what survives a crash now.
    ///
    /// For [`CrashMode::Process`] the new directory keeps both images: the
    /// page cache survives a process crash, but what was never synced is
    /// still not durable, so a later power loss can take it.
    pub fn crash_image(&self, mode: CrashMode) -> MemDir {
        let fs = self.fs.borrow();
        if mode == CrashMode::Process {
            return MemDir { fs: Rc::new(RefCell::new(fs.deep_copy())) };
        }
        let mut rng = Rng::new(match mode {
            CrashMode::Torn { seed } => seed,
            _ => 0,
        });
        let mut out = Fs::default();
        for (name, inode) in &fs.durable {
            let inode = inode.borrow();
            let data = match mode {
                CrashMode::Torn { .. } => torn(&inode, &mut rng),
                _ => inode.durable.clone(),
            };
            let node = Rc::new(RefCell::new(Inode { live: data.clone(), durable: data }));
            out.live.insert(name.clone(), node.clone());
            out.durable.insert(name.clone(), node);
        }
        MemDir { fs: Rc::new(RefCell::new(out)) }
    }

    /// The live contents of `name`.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.fs.borrow().live.get(name).map(|i| i.borrow().live.clone())
    }

    /// Replaces the contents of `name` (creating it), live and durable,
    /// without counting a mutation.
    pub fn set_file_bytes(&self, name: &str, bytes: &[u8]) {
        let mut fs = self.fs.borrow_mut();
        let node = Rc::new(RefCell::new(Inode { live: bytes.to_vec(), durable: bytes.to_vec() }));
        fs.live.insert(name.to_string(), node.clone());
        fs.durable.insert(name.to_string(), node);
    }

    /// XORs `mask` into the byte at `offset` of `name`, live and durable.
    /// Returns false if there is no such byte.
    pub fn corrupt(&self, name: &str, offset: u64, mask: u8) -> bool {
        let fs = self.fs.borrow();
        let Some(node) = fs.live.get(name) else {
            return false;
        };
        let mut node = node.borrow_mut();
        let Ok(at) = usize::try_from(offset) else {
            return false;
        };
        let node = &mut *node;
        let mut hit = false;
        for img in [&mut node.live, &mut node.durable] {
            if let Some(b) = img.get_mut(at) {
                *b ^= mask;
                hit = true;
            }
        }
        hit
    }

    /// Removes `name` from both images without counting a mutation.
    pub fn delete(&self, name: &str) {
        let mut fs = self.fs.borrow_mut();
        fs.live.remove(name);
        fs.durable.remove(name);
    }

    /// Names of the live files, sorted.
    pub fn names(&self) -> Vec<String> {
        self.fs.borrow().live.keys().cloned().collect()
    }
}

fn torn(inode: &Inode, rng: &mut Rng) -> Vec<u8> {
    let mut data = inode.durable.clone();
    let grew = inode.live.len() > data.len() && inode.live.starts_with(&data);
    if grew {
        let extra = &inode.live[data.len()..];
        let keep = rng.index(extra.len() + 1);
        let start = data.len();
        data.extend_from_slice(&extra[..keep]);
        if rng.chance(1, 3) {
            let z = rng.index(keep + 1);
            let end = data.len();
            data[(end - z).max(start)..].fill(0);
        }
    }
    data
}

/// A file of a [`MemDir`].
#[derive(Debug, Clone)]
pub struct MemFile {
    node: Rc<RefCell<Inode>>,
    fs: Rc<RefCell<Fs>>,
    writable: bool,
}

const READ_ONLY: MemError = MemError::new(ErrorKind::PermissionDenied, "file opened read-only");

impl StorageFile for MemFile {
    type Error = MemError;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        let node = self.node.borrow();
        let Ok(at) = usize::try_from(offset) else {
            return Ok(0);
        };
        let src = node.live.get(at..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, MemError> {
        self.write_vectored_at(offset, &[buf])
    }

    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<usize, MemError> {
        if !self.writable {
            return Err(READ_ONLY);
        }
        self.fs.borrow_mut().mutate()?;
        let mut node = self.node.borrow_mut();
        let at = usize::try_from(offset).map_err(|_| MemError::new(ErrorKind::InvalidInput, "offset"))?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let end = at + total;
        if node.live.len() < end {
            node.live.resize(end, 0);
        }
        let mut pos = at;
        for b in bufs {
            node.live[pos..pos + b.len()].copy_from_slice(b);
            pos += b.len();
        }
        Ok(total)
    }

    fn len(&self) -> Result<u64, MemError> {
        Ok(self.node.borrow().live.len() as u64)
    }

    fn set_len(&self, len: u64) -> Result<(), MemError> {
        if !self.writable {
            return Err(READ_ONLY);
        }
        self.fs.borrow_mut().mutate()?;
        let len = usize::try_from(len).map_err(|_| MemError::new(ErrorKind::InvalidInput, "length"))?;
        self.node.borrow_mut().live.resize(len, 0);
        Ok(())
    }

    fn sync(&self) -> Result<(), MemError> {
        self.fs.borrow_mut().sync()?;
        let mut node = self.node.borrow_mut();
        node.durable = node.live.clone();
        Ok(())
    }
}

impl Storage for MemDir {
    type Error = MemError;
    type File = MemFile;

    fn open(&self, name: &str, mode: OpenMode) -> Result<MemFile, MemError> {
        let mut fs = self.fs.borrow_mut();
        let existing = fs.live.get(name).cloned();
        let node = match (mode, existing) {
            (OpenMode::Read | OpenMode::ReadWrite, None) => {
                return Err(MemError::new(ErrorKind::NotFound, "no such file"));
            }
            (OpenMode::CreateNew, Some(_)) => {
                return Err(MemError::new(ErrorKind::AlreadyExists, "file exists"));
            }
            (OpenMode::Truncate, Some(node)) => {
                fs.mutate()?;
                node.borrow_mut().live.clear();
                node
            }
            (_, Some(node)) => node,
            (_, None) => {
                fs.mutate()?;
                let node = Rc::new(RefCell::new(Inode::default()));
                fs.live.insert(name.to_string(), node.clone());
                node
            }
        };
        Ok(MemFile { node, fs: self.fs.clone(), writable: mode != OpenMode::Read })
    }

    fn remove(&self, name: &str) -> Result<(), MemError> {
        let mut fs = self.fs.borrow_mut();
        if !fs.live.contains_key(name) {
            return Err(MemError::new(ErrorKind::NotFound, "no such file"));
        }
        fs.mutate()?;
        fs.live.remove(name);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), MemError> {
        let mut fs = self.fs.borrow_mut();
        if !fs.live.contains_key(from) {
            return Err(MemError::new(ErrorKind::NotFound, "no such file"));
        }
        fs.mutate()?;
        if let Some(node) = fs.live.remove(from) {
            fs.live.insert(to.to_string(), node);
        }
        Ok(())
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> Result<(), MemError> {
        let names: Vec<String> = self.fs.borrow().live.keys().cloned().collect();
        for n in &names {
            visit(n);
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), MemError> {
        let mut fs = self.fs.borrow_mut();
        fs.sync()?;
        fs.durable = fs.live.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{read_exact_at, write_all_at};

    fn read_all(d: &MemDir, name: &str) -> Option<Vec<u8>> {
        let f = d.open(name, OpenMode::Read).ok()?;
        let mut buf = alloc::vec![0; f.len().ok()? as usize];
        read_exact_at(&f, 0, &mut buf).ok()?;
        Some(buf)
    }

    #[test]
    fn read_write_roundtrip() {
        let d = MemDir::new();
        let f = d.open("a", OpenMode::CreateNew).unwrap();
        write_all_at(&f, 0, &[b"hello ", b"world"]).unwrap();
        write_all_at(&f, 20, &[b"!"]).unwrap();
        assert_eq!(f.len().unwrap(), 21);
        let data = read_all(&d, "a").unwrap();
        assert_eq!(&data[..11], b"hello world");
        assert_eq!(&data[11..20], &[0; 9]);
        assert!(matches!(d.open("a", OpenMode::CreateNew), Err(e) if e.kind == ErrorKind::AlreadyExists));
        assert!(matches!(d.open("b", OpenMode::Read), Err(e) if e.kind == ErrorKind::NotFound));
        let ro = d.open("a", OpenMode::Read).unwrap();
        assert!(ro.write_at(0, b"x").is_err());
        f.set_len(5).unwrap();
        assert_eq!(read_all(&d, "a").unwrap(), b"hello");
    }

    #[test]
    fn unsynced_data_and_names_vanish_on_power_loss() {
        let d = MemDir::new();
        let f = d.open("a", OpenMode::CreateNew).unwrap();
        f.write_at(0, b"one").unwrap();
        f.sync().unwrap();
        // data synced, but the name is not durable yet
        assert!(d.crash_image(CrashMode::Durable).file_bytes("a").is_none());
        d.sync_dir().unwrap();
        f.write_at(3, b"two").unwrap();
        let img = d.crash_image(CrashMode::Durable);
        assert_eq!(img.file_bytes("a").unwrap(), b"one");
        assert_eq!(d.crash_image(CrashMode::Process).file_bytes("a").unwrap(), b"onetwo");
    }

    #[test]
    fn rename_needs_dir_sync() {
        let d = MemDir::new();
        let old = d.open("index", OpenMode::CreateNew).unwrap();
        old.write_at(0, b"v1").unwrap();
        old.sync().unwrap();
        d.sync_dir().unwrap();
        let tmp = d.open("index.tmp", OpenMode::CreateNew).unwrap();
        tmp.write_at(0, b"v2").unwrap();
        tmp.sync().unwrap();
        d.rename("index.tmp", "index").unwrap();
        assert_eq!(d.crash_image(CrashMode::Durable).file_bytes("index").unwrap(), b"v1");
        d.sync_dir().unwrap();
        let img = d.crash_image(CrashMode::Durable);
        assert_eq!(img.file_bytes("index").unwrap(), b"v2");
        assert!(img.file_bytes("index.tmp").is_none());
    }

    #[test]
    fn process_crash_image_keeps_unsynced_data_volatile() {
        let d = MemDir::new();
        let f = d.open("a", OpenMode::CreateNew).unwrap();
        f.write_at(0, b"synced").unwrap();
        f.sync().unwrap();
        d.sync_dir().unwrap();
        f.write_at(6, b"+cache").unwrap();
        d.rename("a", "b").unwrap(); // not yet durable
        let img = d.crash_image(CrashMode::Process);
        assert_eq!(img.file_bytes("b").unwrap(), b"synced+cache");
        assert!(img.file_bytes("a").is_none());
        let later = img.crash_image(CrashMode::Durable);
        assert_eq!(later.file_bytes("a").unwrap(), b"synced");
        assert!(later.file_bytes("b").is_none());
        // The two images are independent of the original.
        f.write_at(0, b"X").unwrap();
        assert_eq!(img.file_bytes("b").unwrap(), b"synced+cache");
    }

    #[test]
    fn crash_at_sync_freezes_the_disk() {
        let d = MemDir::new();
        d.crash_at_sync(2);
        let f = d.open("a", OpenMode::CreateNew).unwrap();
        f.write_at(0, b"abc").unwrap();
        f.sync().unwrap();
        d.sync_dir().unwrap_err();
        assert!(d.crashed());
        assert!(f.write_at(3, b"d").is_err());
        assert!(d.crash_image(CrashMode::Durable).file_bytes("a").is_none(), "dir sync never happened");
        assert_eq!(d.crash_image(CrashMode::Process).file_bytes("a").unwrap(), b"abc");
    }

    #[test]
    fn crash_at_mutation_counts_every_mutation() {
        let d = MemDir::new();
        d.crash_at_mutation(3);
        let f = d.open("a", OpenMode::CreateNew).unwrap(); // 1
        f.write_at(0, b"x").unwrap(); // 2
        assert!(f.write_at(1, b"y").is_err()); // 3: crash
        assert_eq!(d.mutation_count(), 3);
        assert_eq!(d.file_bytes("a").unwrap(), b"x");
    }

    #[test]
    fn torn_images_keep_durable_prefix() {
        for seed in 0..50 {
            let d = MemDir::new();
            let f = d.open("a", OpenMode::CreateNew).unwrap();
            f.write_at(0, b"durable").unwrap();
            f.sync().unwrap();
            d.sync_dir().unwrap();
            f.write_at(7, b"-unsynced-tail").unwrap();
            let img = d.crash_image(CrashMode::Torn { seed }).file_bytes("a").unwrap();
            assert!(img.starts_with(b"durable"));
            assert!(img.len() <= 21);
        }
    }

    #[test]
    fn corrupt_and_delete_helpers() {
        let d = MemDir::new();
        d.set_file_bytes("a", b"abc");
        assert!(d.corrupt("a", 1, 0xFF));
        assert!(!d.corrupt("a", 9, 1));
        assert_eq!(d.file_bytes("a").unwrap(), [b'a', !b'b', b'c']);
        d.delete("a");
        assert!(d.names().is_empty());
    }
}

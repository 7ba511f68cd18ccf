//! Fault-injecting wrappers around any [`Storage`].

use alloc::rc::Rc;
use core::cell::RefCell;

use super::Rng;
use crate::storage::{ErrorKind, OpenMode, Storage, StorageError, StorageFile};

#[derive(Debug)]
struct FaultState {
    mutations: u64,
    fail_at: Option<u64>,
    sticky: bool,
    failing: bool,
    kind: ErrorKind,
    partial_writes: bool,
    failures: u64,
}

/// The control handle of a [`FailingStorage`]: when to fail, with what.
#[derive(Debug, Clone)]
pub struct Faults(Rc<RefCell<FaultState>>);

impl Default for Faults {
    fn default() -> Self {
        Faults(Rc::new(RefCell::new(FaultState {
            mutations: 0,
            fail_at: None,
            sticky: true,
            failing: false,
            kind: ErrorKind::StorageFull,
            partial_writes: true,
            failures: 0,
        })))
    }
}

impl Faults {
    /// Fails the `n`-th mutation from now (1-based) with `kind`, and — like
    /// a full disk — every mutation after it until [`heal`](Faults::heal).
    pub fn fail_at(&self, n: u64, kind: ErrorKind) {
        let mut s = self.0.borrow_mut();
        s.fail_at = Some(s.mutations + n);
        s.kind = kind;
        s.sticky = true;
    }

    /// Fails only the `n`-th mutation from now (a transient EIO).
    pub fn fail_once_at(&self, n: u64, kind: ErrorKind) {
        self.fail_at(n, kind);
        self.0.borrow_mut().sticky = false;
    }

    /// Whether a failing write first writes half of its bytes (default true).
    pub fn partial_writes(&self, on: bool) {
        self.0.borrow_mut().partial_writes = on;
    }

    /// Stops failing ("space returns").
    pub fn heal(&self) {
        let mut s = self.0.borrow_mut();
        s.fail_at = None;
        s.failing = false;
    }

    /// Mutations seen so far.
    pub fn mutations(&self) -> u64 {
        self.0.borrow().mutations
    }

    /// Failures injected so far.
    pub fn failures(&self) -> u64 {
        self.0.borrow().failures
    }

    /// Counts a mutation; returns the error to inject, if any.
    fn check(&self) -> Option<ErrorKind> {
        let mut s = self.0.borrow_mut();
        s.mutations += 1;
        if s.fail_at == Some(s.mutations) {
            s.failing = true;
        }
        if s.failing {
            s.failures += 1;
            if !s.sticky {
                s.failing = false;
                s.fail_at = None;
            }
            return Some(s.kind);
        }
        None
    }
}

fn injected<E: StorageError>(kind: ErrorKind) -> E {
    E::from_kind(kind)
}

/// Fails the N-th mutation (write, truncate, sync, create, rename, remove,
/// directory sync) of the wrapped storage, as a full disk or a failing
/// device would. Reads always work.
#[derive(Debug, Clone)]
pub struct FailingStorage<S> {
    inner: S,
    faults: Faults,
}

impl<S> FailingStorage<S> {
    /// Wraps `inner`; control it through [`faults`](FailingStorage::faults).
    pub fn new(inner: S) -> Self {
        FailingStorage { inner, faults: Faults::default() }
    }

    /// The control handle.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

/// A file of a [`FailingStorage`].
#[derive(Debug, Clone)]
pub struct FailingFile<F> {
    inner: F,
    faults: Faults,
}

impl<F: StorageFile> StorageFile for FailingFile<F> {
    type Error = F::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, F::Error> {
        self.inner.read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, F::Error> {
        self.write_vectored_at(offset, &[buf])
    }

    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<usize, F::Error> {
        if let Some(kind) = self.faults.check() {
            if self.faults.0.borrow().partial_writes
                && let Some(first) = bufs.iter().find(|b| b.len() > 1)
            {
                // Ignore the result: the failure is what the caller sees.
                let _ = self.inner.write_at(offset, &first[..first.len() / 2]);
            }
            return Err(injected(kind));
        }
        self.inner.write_vectored_at(offset, bufs)
    }

    fn len(&self) -> Result<u64, F::Error> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<(), F::Error> {
        match self.faults.check() {
            Some(kind) => Err(injected(kind)),
            None => self.inner.set_len(len),
        }
    }

    fn sync(&self) -> Result<(), F::Error> {
        match self.faults.check() {
            Some(kind) => Err(injected(kind)),
            None => self.inner.sync(),
        }
    }
}

impl<S: Storage> Storage for FailingStorage<S> {
    type Error = S::Error;
    type File = FailingFile<S::File>;

    fn open(&self, name: &str, mode: OpenMode) -> Result<Self::File, S::Error> {
        if matches!(mode, OpenMode::Create | OpenMode::CreateNew | OpenMode::Truncate)
            && let Some(kind) = self.faults.check()
        {
            return Err(injected(kind));
        }
        Ok(FailingFile { inner: self.inner.open(name, mode)?, faults: self.faults.clone() })
    }

    fn remove(&self, name: &str) -> Result<(), S::Error> {
        match self.faults.check() {
            Some(kind) => Err(injected(kind)),
            None => self.inner.remove(name),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), S::Error> {
        match self.faults.check() {
            Some(kind) => Err(injected(kind)),
            None => self.inner.rename(from, to),
        }
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> Result<(), S::Error> {
        self.inner.list(visit)
    }

    fn sync_dir(&self) -> Result<(), S::Error> {
        match self.faults.check() {
            Some(kind) => Err(injected(kind)),
            None => self.inner.sync_dir(),
        }
    }
}

/// Transfers at most `max` bytes per read or write call (raft-engine's
/// `ObfuscatedFileSystem`): breaks any caller that assumes full transfers.
#[derive(Debug, Clone)]
pub struct ShortIo<S> {
    inner: S,
    max: usize,
}

impl<S> ShortIo<S> {
    /// Wraps `inner`, moving at most `max` (at least 1) bytes per call.
    pub fn new(inner: S, max: usize) -> Self {
        ShortIo { inner, max: max.max(1) }
    }
}

/// A file of a [`ShortIo`].
#[derive(Debug, Clone)]
pub struct ShortFile<F> {
    inner: F,
    max: usize,
}

impl<F: StorageFile> StorageFile for ShortFile<F> {
    type Error = F::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, F::Error> {
        let n = buf.len().min(self.max);
        self.inner.read_at(offset, &mut buf[..n])
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, F::Error> {
        let n = buf.len().min(self.max);
        self.inner.write_at(offset, &buf[..n])
    }

    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<usize, F::Error> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write_at(offset, b),
            None => Ok(0),
        }
    }

    fn len(&self) -> Result<u64, F::Error> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<(), F::Error> {
        self.inner.set_len(len)
    }

    fn sync(&self) -> Result<(), F::Error> {
        self.inner.sync()
    }
}

impl<S: Storage> Storage for ShortIo<S> {
    type Error = S::Error;
    type File = ShortFile<S::File>;

    fn open(&self, name: &str, mode: OpenMode) -> Result<Self::File, S::Error> {
        Ok(ShortFile { inner: self.inner.open(name, mode)?, max: self.max })
    }
    fn remove(&self, name: &str) -> Result<(), S::Error> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), S::Error> {
        self.inner.rename(from, to)
    }
    fn list(&self, visit: &mut dyn FnMut(&str)) -> Result<(), S::Error> {
        self.inner.list(visit)
    }
    fn sync_dir(&self) -> Result<(), S::Error> {
        self.inner.sync_dir()
    }
}

/// Flips one random bit in a read result with probability `num/den` per
/// read call, seeded (smoltcp's `FaultInjector`). Writes pass through.
#[derive(Debug, Clone)]
pub struct BitFlips<S> {
    inner: S,
    rng: Rc<RefCell<Rng>>,
    num: u64,
    den: u64,
}

impl<S> BitFlips<S> {
    /// Wraps `inner`, flipping a bit in `num` of every `den` reads.
    pub fn new(inner: S, seed: u64, num: u64, den: u64) -> Self {
        BitFlips { inner, rng: Rc::new(RefCell::new(Rng::new(seed))), num, den: den.max(1) }
    }
}

/// A file of a [`BitFlips`].
#[derive(Debug, Clone)]
pub struct FlipFile<F> {
    inner: F,
    rng: Rc<RefCell<Rng>>,
    num: u64,
    den: u64,
}

impl<F: StorageFile> StorageFile for FlipFile<F> {
    type Error = F::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, F::Error> {
        let n = self.inner.read_at(offset, buf)?;
        let mut rng = self.rng.borrow_mut();
        if n > 0 && rng.chance(self.num, self.den) {
            let at = rng.index(n);
            buf[at] ^= 1 << rng.below(8);
        }
        Ok(n)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, F::Error> {
        self.inner.write_at(offset, buf)
    }
    fn write_vectored_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<usize, F::Error> {
        self.inner.write_vectored_at(offset, bufs)
    }
    fn len(&self) -> Result<u64, F::Error> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> Result<(), F::Error> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> Result<(), F::Error> {
        self.inner.sync()
    }
}

impl<S: Storage> Storage for BitFlips<S> {
    type Error = S::Error;
    type File = FlipFile<S::File>;

    fn open(&self, name: &str, mode: OpenMode) -> Result<Self::File, S::Error> {
        Ok(FlipFile { inner: self.inner.open(name, mode)?, rng: self.rng.clone(), num: self.num, den: self.den })
    }
    fn remove(&self, name: &str) -> Result<(), S::Error> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), S::Error> {
        self.inner.rename(from, to)
    }
    fn list(&self, visit: &mut dyn FnMut(&str)) -> Result<(), S::Error> {
        self.inner.list(visit)
    }
    fn sync_dir(&self) -> Result<(), S::Error> {
        self.inner.sync_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::MemDir;
    use crate::storage::{read_exact_at, write_all_at};

    #[test]
    fn fails_nth_mutation_until_healed() {
        let s = FailingStorage::new(MemDir::new());
        let faults = s.faults();
        let f = s.open("a", OpenMode::CreateNew).unwrap(); // 1
        faults.fail_at(2, ErrorKind::StorageFull);
        f.write_at(0, b"abcd").unwrap(); // 2nd from the fail_at call? no: 1st
        let err = f.write_at(4, b"efgh").unwrap_err(); // 2nd: fails, writes "ef"
        assert_eq!(err.kind(), ErrorKind::StorageFull);
        assert_eq!(s.inner().file_bytes("a").unwrap(), b"abcdef");
        assert!(f.sync().is_err(), "sticky until healed");
        faults.heal();
        f.sync().unwrap();
        assert_eq!(faults.failures(), 2);
    }

    #[test]
    fn transient_failure_happens_once() {
        let s = FailingStorage::new(MemDir::new());
        let f = s.open("a", OpenMode::CreateNew).unwrap();
        s.faults().fail_once_at(1, ErrorKind::Other);
        assert_eq!(f.sync().unwrap_err().kind(), ErrorKind::Other);
        f.sync().unwrap();
    }

    #[test]
    fn short_io_still_transfers_everything_through_helpers() {
        let s = ShortIo::new(MemDir::new(), 1);
        let f = s.open("a", OpenMode::CreateNew).unwrap();
        assert_eq!(f.write_at(0, b"xyz").unwrap(), 1);
        write_all_at(&f, 0, &[b"hello", b" ", b"world"]).unwrap();
        let mut buf = [0u8; 11];
        assert_eq!(f.read_at(0, &mut buf).unwrap(), 1);
        assert_eq!(read_exact_at(&f, 0, &mut buf).unwrap(), 11);
        assert_eq!(&buf, b"hello world");
    }

    #[test]
    fn bit_flips_change_reads_not_data() {
        let d = MemDir::new();
        d.set_file_bytes("a", &[0u8; 64]);
        let s = BitFlips::new(d.clone(), 7, 1, 1);
        let f = s.open("a", OpenMode::Read).unwrap();
        let mut buf = [0u8; 64];
        f.read_at(0, &mut buf).unwrap();
        assert_eq!(buf.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        assert_eq!(d.file_bytes("a").unwrap(), [0u8; 64]);
    }
}

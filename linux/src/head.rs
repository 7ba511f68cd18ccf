//! The engine's head store over a shard's shared `comet.state` mapping:
//! the durable head published with the core's seqlock
//! (`comet_core::platform::shm`), so readers in other processes (either platform)
//! see a consistent head.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use comet_core::platform::shm;
use comet_core::platform::state::{HeadStore, STATE_LINE};
use comet_core::{Counter, DurableHead};

use crate::map::SharedWords;

impl SharedWords {
    /// Adds `v` to counter `c` of this `comet.state` mapping (stores it,
    /// for a gauge: `shm::add_counter`); does nothing on a read-only
    /// mapping (only a shard's writer and repairs write the counters).
    pub fn add_counter(&self, c: Counter, v: u64) {
        if let Some(words) = self.writable() {
            shm::add_counter(words, c, v);
        }
    }
}

/// Seqlock retries when loading the head (a writer holds it for a few
/// stores, so this is ample).
const HEAD_SPINS: u32 = 1000;

/// The durable head published into the shared `comet.state` mapping with
/// the core's seqlock, so readers in other processes (either crate) see a
/// consistent head.
#[derive(Debug)]
pub struct MappedHead {
    words: Arc<SharedWords>,
    fd: Arc<OwnedFd>,
}

impl MappedHead {
    /// The head store over `words`, a writable mapping of `comet.state`
    /// (see [`map_state_write`](crate::map_state_write)), and `fd`, its
    /// descriptor (for `fdatasync`).
    pub fn new(words: Arc<SharedWords>, fd: Arc<OwnedFd>) -> MappedHead {
        MappedHead { words, fd }
    }
}

impl HeadStore for MappedHead {
    type Error = io::Error;

    fn load(&self) -> io::Result<[u8; STATE_LINE]> {
        Ok(shm::load_head_line(self.words.words(), HEAD_SPINS))
    }

    fn store(&mut self, head: &DurableHead) -> io::Result<()> {
        let words = self.words.writable().ok_or_else(|| io::Error::other("comet.state is mapped read-only"))?;
        shm::store_head(words, head);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        // fdatasync also writes back pages dirtied through the mapping.
        Ok(rustix::fs::fdatasync(&*self.fd)?)
    }
}

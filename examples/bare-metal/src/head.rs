//! [`StateHead`]: the engine's durable head in the storage's fixed 1 KiB
//! `comet.state` region.

use comet_core::DurableHead;
use comet_core::platform::state::{HeadStore, STATE_LINE};

use crate::storage::{RamError, RamStorage};

/// A [`HeadStore`] over the `comet.state` region of a [`RamStorage`].
///
/// It writes the head line (line 0, layout in
/// [`DurableHead`]) whole, with the seqlock sequence advanced by two per
/// store, as `comet-core`'s `FileHeadStore` does over a file; the metric
/// lines stay zero. The same bytes are what the core's verify reads as the
/// file `comet.state`. Single-threaded, so no reader can see a half-written
/// line. The region is RAM kept over a reset, so a store is durable at once
/// and [`sync`](HeadStore::sync) has nothing to do.
#[derive(Debug)]
pub struct StateHead<'s, 'a> {
    storage: &'s RamStorage<'a>,
    seq: u64,
}

impl<'s, 'a> StateHead<'s, 'a> {
    /// The head store of `storage`, continuing the sequence already in its
    /// head line (an odd one, left by an interrupted store, rounds up).
    pub fn new(storage: &'s RamStorage<'a>) -> StateHead<'s, 'a> {
        let seq = storage.state_seq();
        StateHead { storage, seq: seq.wrapping_add(seq & 1) }
    }
}

impl HeadStore for StateHead<'_, '_> {
    type Error = RamError;

    fn load(&self) -> Result<[u8; STATE_LINE], RamError> {
        Ok(self.storage.state_line())
    }

    fn store(&mut self, head: &DurableHead) -> Result<(), RamError> {
        self.seq = self.seq.wrapping_add(2);
        self.storage.set_state_line(&head.encode(self.seq));
        Ok(())
    }

    fn sync(&self) -> Result<(), RamError> {
        Ok(())
    }
}

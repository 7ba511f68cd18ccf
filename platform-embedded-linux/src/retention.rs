//! Retention, run by [`Log::tick`](crate::Log::tick) (or on demand with
//! [`Log::run_retention`]): the core's pass (`comet_core::platform::retention::
//! run_pass`) over the open shards, which deletes with
//! `Shard::delete_oldest` (manifest before unlink: a crash in between
//! leaves an orphan the next open removes).
//!
//! Whole sealed segments only, oldest first, never the active one. With
//! `protect_unconsumed` (default) a segment some consumer group of the
//! shard has not acked is kept; `max_total_size` with `hard_cap` deletes it
//! anyway, counts it (`forced_deletions`) and moves the groups that lost
//! entries to the first surviving entry so their reads do not fail; the
//! report says how many groups moved and how many unread entries they lost
//! (`RetentionReport::lifted`). The
//! pass works in a scratch reserved at open, so one that deletes nothing
//! does not allocate.

use comet_core::ShardId;
use comet_core::platform::retention::{LowWater, RetentionShards, run_pass};
use comet_core::platform::shard::ReadBuf;
use comet_core::platform::shm::low_water;
use comet_linux::{DirStorage, FsFile};

use crate::compress::SharedCompressor;
use crate::log::Log;
use crate::shard::{Engine, OpenShard};
use comet_linux::Error;
use comet_linux::MappedHead;

use comet_core::{Lifted, RetentionReport};

/// The open shards as the core's pass sees them.
struct Shards<'a> {
    shards: &'a mut [Box<OpenShard>],
    reads: &'a mut ReadBuf<FsFile>,
    read_of: Option<ShardId>,
}

impl RetentionShards for Shards<'_> {
    type Storage = DirStorage;
    type Head = MappedHead;
    type Compressor = SharedCompressor;
    type Error = Error;

    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn with_engine<R>(&mut self, i: usize, f: impl FnOnce(&mut Engine) -> R) -> Result<Option<R>, Error> {
        let s = &mut self.shards[i];
        let r = f(&mut s.engine);
        if self.read_of == Some(s.id) {
            // A kept read handle would pin a deleted file's space.
            self.reads.forget_below(s.engine.first_entry());
        }
        s.drain_counters();
        Ok(Some(r))
    }

    fn low_water(&mut self, i: usize) -> Result<LowWater, Error> {
        let s = &self.shards[i];
        low_water(s.offsets.words(), std::thread::yield_now).map_err(|source| Error::Offsets { shard: s.id, source })
    }

    fn lift_groups(&mut self, i: usize, first: u64, now_ns: u64) -> Result<Lifted, Error> {
        let mut lifted = Lifted::default();
        self.shards[i].offsets()?.lift_below(first, now_ns, |_, lost| {
            lifted.groups += 1;
            lifted.entries += lost;
        });
        Ok(lifted)
    }

    /// The report's `offsets_unreadable` says so; `group_offset` on the
    /// shard returns the error itself.
    fn offsets_unreadable(&mut self, _i: usize, _error: Error) {}

    fn engine_error(&self, i: usize, source: comet_core::Error<std::io::Error>) -> Error {
        let s = &self.shards[i];
        Error::from_core(s.id, s.dir.path(), source)
    }
}

impl Log {
    /// Runs one retention pass now over every open shard (`tick` calls this
    /// every `retention.cleanup_interval`).
    pub fn run_retention(&mut self, now: u64) -> Result<RetentionReport, Error> {
        let mut shards = Shards { shards: &mut self.shards, reads: &mut self.reads, read_of: self.read_of };
        run_pass(&mut shards, &self.cfg.retention, now, &mut self.scratch)
    }
}

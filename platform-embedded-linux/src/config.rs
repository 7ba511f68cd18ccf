//! [`EmbeddedConfig`]: the memory budget and the core settings that apply,
//! fixed at open and validated with typed errors.
//!
//! The engine's fields keep their flat names here; they are the core's
//! [`EngineSettings`] (gathered by [`EmbeddedConfig::engine_settings`],
//! which also supplies their checks), and `retention` is the core's
//! [`RetentionConfig`] (D-47).

use core::time::Duration;

use comet_core::platform::config::{check_millis, check_range};
use comet_core::platform::index::TABLE_RECORD;
use comet_core::platform::shard::EngineConfig;
use comet_core::platform::wire::{HEADER_LEN, raw_frame_len};
use comet_core::{ConfigError, EngineSettings, RetentionConfig};

/// Most shards one [`Log`](crate::Log) may hold open (the size of its
/// fixed shard table).
pub const MAX_SHARDS: usize = 64;

/// The log's settings. Every buffer they size is allocated at open; none
/// grows afterwards. Construct with [`EmbeddedConfig::default`] and adjust
/// fields; [`Log::open`](crate::Log::open) validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Most shards open at once (`1..=64`, default 4).
    pub max_shards: u16,
    /// Shards opened by `Log::open` (ids `0..shard_count`) and spread over by
    /// `Log::pick_shard` (`1..=max_shards`, default 1).
    pub shard_count: u16,
    /// Write buffer per shard (default 64 KiB; 4 KiB..=64 MiB). It must hold
    /// one maximal entry: `max_entry_size + 24 <= write_buffer_bytes`
    /// (header plus the raw-frame wrapping of a payload that starts with the
    /// zstd magic).
    pub write_buffer_bytes: u32,
    /// The read buffer, one per log (default 64 KiB; at least the stored
    /// size of a maximal entry, so every entry is readable): a chunk that
    /// fits is read whole with one `pread` and checked once, then served
    /// from here; a larger chunk streams through it (lower
    /// `boundary_interval` for large entries).
    pub read_buffer_bytes: u32,
    /// Checkpoint chunks the active segment may hold (default 1024,
    /// `2..=1_000_000`); the segment rotates when it is full. Sets the
    /// engine's `max_chunks`: 8 bytes each, preallocated per shard.
    pub checkpoint_capacity: u32,
    /// Entries per checkpoint chunk (default 100).
    pub boundary_interval: u32,
    /// Sealed segments a shard may hold (default 1024, `2..=1_000_000`):
    /// their manifest records (72 bytes each) are reserved at open, so
    /// with the default 4 MiB segments a shard holds up to 4 GiB in a
    /// fixed 72 KiB. The append whose rotation would seal one more fails
    /// with a `Capacity` error (`what: "sealed segments"`), and opening a
    /// shard that has more fails the same way: let retention
    /// (`retention.max_shard_size`, `max_total_size`, `max_age`) delete
    /// old segments before the shard gets there.
    pub max_segments: u32,
    /// Rotate segments before they grow past this (default 4 MiB: small
    /// segments make retention on SD cards fine-grained).
    pub max_file_size: u64,
    /// Largest payload `append` accepts (default 32 KiB).
    pub max_entry_size: u32,
    /// Compress payloads at least this long when the frame is smaller
    /// (`ruzstd`, fastest level); `None` never compresses and allocates no
    /// compressor (default `None`: see the README for the ratio it buys).
    pub min_compress_size: Option<u32>,
    /// How often `tick` makes appended entries durable and visible
    /// (default 1 s; 1 ms..=1 h).
    pub flush_interval: Duration,
    /// Sync before every `append` returns (default false).
    pub durable_appends: bool,
    /// Retention limits, run by `tick` every `cleanup_interval` (the core's
    /// type and defaults, `max_age` = 7 days, except `cleanup_interval` =
    /// 1 min).
    pub retention: RetentionConfig,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        let retention =
            RetentionConfig { cleanup_interval: Some(Duration::from_secs(60)), ..RetentionConfig::default() };
        EmbeddedConfig {
            max_shards: 4,
            shard_count: 1,
            write_buffer_bytes: 64 << 10,
            read_buffer_bytes: 64 << 10,
            checkpoint_capacity: 1024,
            boundary_interval: 100,
            max_segments: 1024,
            max_file_size: 4 << 20,
            max_entry_size: 32 << 10,
            min_compress_size: None,
            flush_interval: Duration::from_secs(1),
            durable_appends: false,
            retention,
        }
    }
}

/// What the configured budget reserves on the heap, in bytes: an upper
/// bound of the log's heap high-water mark, checked against a counting
/// allocator by `tests/budget.rs` (also for a 3 GB shard).
///
/// The one thing not counted: the lists of chunks recorded as lost (4
/// bytes per lost chunk, only after damage was found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapBudget {
    /// Per open shard: write buffer, checkpoint table, chunk-start table,
    /// shard state, the manifest's records (`max_segments`, reserved at
    /// open) and the retention pass's view of them.
    pub per_shard: usize,
    /// Per log: read buffer, a sealed segment's chunk table
    /// (`checkpoint_capacity` records), decoder window and tables, the
    /// compressor's buffers (if enabled; compressing allocates nothing),
    /// and what opening one shard needs while it runs (its directory
    /// listing, its `index.bin` and a 64 KiB recovery scan buffer).
    pub shared: usize,
}

impl HeapBudget {
    /// The total for `shards` open shards.
    pub fn total(&self, shards: usize) -> usize {
        self.shared + self.per_shard * shards
    }
}

impl EmbeddedConfig {
    /// The core's engine settings among these fields (`boundary_interval`,
    /// `max_file_size`, `max_entry_size`, `write_buffer_bytes`, and
    /// `min_compress_size` with `None` as `u32::MAX`, a threshold no entry
    /// reaches).
    pub fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            boundary_interval: self.boundary_interval,
            max_file_size: self.max_file_size,
            max_entry_size: self.max_entry_size,
            write_buffer_size: self.write_buffer_bytes,
            min_compress_size: self.min_compress_size.unwrap_or(u32::MAX),
        }
    }

    /// Checks every field; the first bad one is reported by name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("max_shards", u64::from(self.max_shards), 1, MAX_SHARDS as u64)?;
        check_range("shard_count", u64::from(self.shard_count), 1, u64::from(self.max_shards))?;
        check_range("checkpoint_capacity", u64::from(self.checkpoint_capacity), 2, 1_000_000)?;
        check_range("max_segments", u64::from(self.max_segments), 2, 1_000_000)?;
        // The engine's fields report their names in the core's (and
        // `comet`'s) tree, e.g. `storage.write_buffer_size`.
        self.engine_settings().validate()?;
        check_millis("storage.flush_interval_ms", self.flush_interval, 1, 3_600_000)?;
        self.retention.validate()?;
        let entry_room = (raw_frame_len(self.max_entry_size as usize) + HEADER_LEN) as u64;
        if entry_room > u64::from(self.write_buffer_bytes) {
            return Err(ConfigError {
                field: "max_entry_size (+24 must fit write_buffer_bytes)",
                value: u64::from(self.max_entry_size),
                min: 1,
                max: u64::from(self.write_buffer_bytes).saturating_sub(24),
            });
        }
        check_range(
            "read_buffer_bytes",
            u64::from(self.read_buffer_bytes),
            raw_frame_len(self.max_entry_size as usize) as u64,
            64 << 20,
        )?;
        Ok(())
    }

    /// The engine settings for each shard.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        self.validate()?;
        Ok(EngineConfig::bounded(&self.engine_settings(), self.checkpoint_capacity, self.max_segments))
    }

    /// Largest window the decoder accepts: what our frames use, or a
    /// maximal entry (a single-segment frame's window is its content).
    pub fn decoder_window(&self) -> usize {
        (self.max_entry_size as usize).max(crate::compress::COMPRESS_WINDOW)
    }

    /// The heap this configuration reserves (see [`HeapBudget`]). Measured
    /// against a counting allocator in the crate's tests and example.
    pub fn heap_budget(&self) -> HeapBudget {
        // The engine's own bounds (write buffer, chunk starts, checkpoint
        // table, manifest records; and what opening a shard needs while
        // it runs) are the core's figures for these settings.
        let engine = EngineConfig::bounded(&self.engine_settings(), self.checkpoint_capacity, self.max_segments);
        // Shard state, its Box, the Arc'd mapping handles, the empty
        // manifest and directory handles.
        let fixed = 4 << 10;
        // Retention copies the records it plans over into a scratch grown
        // shard by shard (twice while it is reallocated).
        let retention = 2 * comet_core::platform::retention::Scratch::bytes_per_shard(self.max_segments);
        let per_shard = engine.shard_heap_bytes() + fixed + retention;
        let opening = engine.open_heap_bytes();
        // ruzstd's decoder keeps its window (up to twice, while draining)
        // plus entropy tables and a block scratch.
        // One zstd dictionary at a time (frames that name one), bounded by
        // the largest dictionary this crate reads.
        let decoder = 2 * self.decoder_window() + (256 << 10) + crate::compress::ZstdDecompressor::dict_heap_bytes();
        // The encoder's hash table and one block's literal and sequence
        // scratch, all allocated at open (compressing allocates nothing).
        let compressor = if self.min_compress_size.is_some() {
            crate::compress::ZstdCompressor::heap_bytes(self.max_entry_size as usize)
        } else {
            0
        };
        // The read buffer and a sealed segment's chunk table.
        let reads = self.read_buffer_bytes as usize + self.checkpoint_capacity as usize * TABLE_RECORD;
        HeapBudget { per_shard, shared: reads + decoder + compressor + opening + (16 << 10) }
    }
}

#[cfg(test)]
mod tests;

//! The configuration tree, its defaults, presets and validation.
//!
//! Sections follow the Go package (compression, indexing, storage,
//! concurrency, retention, log) with its defaults (reference §12), minus the
//! fields that did nothing there. [`Config::validate`] rejects zero and
//! absurd values with a [`ConfigError`] naming the field; nothing is
//! silently replaced by a default.
//!
//! The tree is built around the core's two parts (D-47): the engine's
//! settings, spread over `compression`, `indexing` and `storage` as in Go
//! and gathered by [`Config::engine`] into an [`EngineSettings`], and
//! [`RetentionConfig`], the core's type as it is. Their defaults and
//! checks are the core's; this module adds, defaults and checks the
//! settings only this crate uses: the zstd level, the flush interval,
//! durable appends, concurrency and logging.

use core::time::Duration;

use comet_core::ShardId;
use comet_core::platform::config::{check_millis, check_range};
pub use comet_core::{EngineSettings, RetentionConfig};

use crate::ConfigError;

/// Compression settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionConfig {
    /// Payloads at least this long are compressed when that makes them
    /// smaller (default 4096; 0 tries every payload).
    pub min_compress_size: u32,
    /// zstd level, `1..=22` (default 3). Frames compressed with a shard
    /// dictionary use level 1 for levels 1 to 3 (the same ratio on short
    /// entries, faster; docs/DECISIONS.md D-56), the level itself from 4.
    pub level: i32,
    /// Per-shard zstd dictionaries (default off): once `dict_sample_bytes`
    /// of payloads of at least `dict_min_size` bytes were appended to a
    /// shard, the writer trains a dictionary on them, stores it in the
    /// shard directory (`dict-<id>.zdict`, docs/FORMAT.md) and compresses
    /// later payloads of at least `dict_min_size` bytes with it when that
    /// makes them smaller. [`Client::train_dictionary`](crate::Client::train_dictionary)
    /// trains one on demand.
    pub dictionary: bool,
    /// Payloads at least this long are compressed with the shard's
    /// dictionary, when it has one (default 64; `1..=min_compress_size`
    /// is useful, larger values are allowed).
    pub dict_min_size: u32,
    /// Sample bytes collected before training (default 256 KiB;
    /// 4 KiB..=64 MiB). About a hundred times `dict_max_size` trains the
    /// best dictionaries; a tenth of that already pays for short lines.
    pub dict_sample_bytes: u32,
    /// Largest dictionary trained (default 16 KiB; 1 KiB..=1 MiB).
    pub dict_max_size: u32,
}

/// Checkpoint settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexingConfig {
    /// Entries per checkpoint chunk (default 100): a lookup hops over at
    /// most `boundary_interval - 1` entries, and `verify` reports damage at
    /// this granularity.
    pub boundary_interval: u32,
}

/// Segment and write-path settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConfig {
    /// Rotate to a new segment before it would grow past this (default
    /// 256 MiB; 1 KiB..=2 GiB). A single larger entry gets a segment alone.
    pub max_file_size: u64,
    /// Largest payload `append` accepts, and the bound every scanner uses
    /// (default 16 MiB; up to 1 GiB).
    pub max_entry_size: u32,
    /// Write buffer per shard (default 64 KiB, as the Go package; 4 KiB..=64 MiB).
    pub write_buffer_size: u32,
    /// Periodic flush + sync, which makes appended entries durable and
    /// visible (default 1 s; 1 ms..=1 h).
    pub flush_interval: Duration,
    /// Sync before every `append` returns (default false).
    pub durable_appends: bool,
}

/// Multi-process settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// This process's index, `0..process_count`.
    pub process_id: u32,
    /// Processes sharing the directory (default 1). Process `i` writes the
    /// shards with `shard % process_count == i`.
    pub process_count: u32,
    /// Shards that `pick_shard` spreads keys over (default 16).
    pub shard_count: u32,
}

impl ConcurrencyConfig {
    /// The process that writes `shard`: `shard % process_count` (0 with a
    /// single process), the core's [`shard_member`](comet_core::shard_member).
    pub fn owner(&self, shard: ShardId) -> u32 {
        comet_core::shard_member(shard, self.process_count)
    }

    /// Whether this process writes `shard` (every append asks: a single
    /// process answers without a division).
    pub fn owns(&self, shard: ShardId) -> bool {
        self.process_count <= 1 || self.owner(shard) == self.process_id
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Informational messages (default).
    Info,
    /// Debug output (the `comet` tool turns it on with `COMET_DEBUG=1`;
    /// a library leaves the choice to the application's subscriber).
    Debug,
}

/// Logging settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Verbosity.
    pub level: LogLevel,
}

/// The whole configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Compression.
    pub compression: CompressionConfig,
    /// Checkpoints.
    pub indexing: IndexingConfig,
    /// Segments and the write path.
    pub storage: StorageConfig,
    /// Multi-process deployment.
    pub concurrency: ConcurrencyConfig,
    /// Retention.
    pub retention: RetentionConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        let e = EngineSettings::default();
        Config {
            compression: CompressionConfig {
                min_compress_size: e.min_compress_size,
                level: 3,
                dictionary: false,
                dict_min_size: 64,
                dict_sample_bytes: 256 << 10,
                dict_max_size: 16 << 10,
            },
            indexing: IndexingConfig { boundary_interval: e.boundary_interval },
            storage: StorageConfig {
                max_file_size: e.max_file_size,
                max_entry_size: e.max_entry_size,
                write_buffer_size: e.write_buffer_size,
                flush_interval: Duration::from_secs(1),
                durable_appends: false,
            },
            concurrency: ConcurrencyConfig { process_id: 0, process_count: 1, shard_count: 16 },
            retention: RetentionConfig::default(),
            log: LogConfig { level: LogLevel::Info },
        }
    }
}

impl Config {
    /// Smaller payloads compressed harder: `min_compress_size = 512`,
    /// level 9.
    pub fn high_compression() -> Config {
        let mut c = Config::default();
        c.compression.min_compress_size = 512;
        c.compression.level = 9;
        c
    }

    /// Fewer checkpoints, bigger buffers, compression only for large
    /// payloads.
    pub fn high_throughput() -> Config {
        let mut c = Config::default();
        c.indexing.boundary_interval = 1000;
        c.compression.min_compress_size = 1 << 20;
        c.storage.write_buffer_size = 4 << 20;
        c
    }

    /// Process `process_id` of `process_count` sharing one directory.
    pub fn multi_process(process_id: u32, process_count: u32) -> Config {
        let mut c = Config::default();
        c.concurrency.process_id = process_id;
        c.concurrency.process_count = process_count;
        c
    }

    /// The engine's settings in this tree (`indexing.boundary_interval`,
    /// `storage.max_file_size`, `storage.max_entry_size`,
    /// `storage.write_buffer_size`, `compression.min_compress_size`, or
    /// `compression.dict_min_size` when that is smaller and dictionaries are
    /// on: the engine offers every such payload to the compressor, which
    /// compresses the short ones only with a dictionary).
    pub fn engine(&self) -> EngineSettings {
        let c = &self.compression;
        EngineSettings {
            boundary_interval: self.indexing.boundary_interval,
            max_file_size: self.storage.max_file_size,
            max_entry_size: self.storage.max_entry_size,
            write_buffer_size: self.storage.write_buffer_size,
            min_compress_size: if c.dictionary {
                c.min_compress_size.min(c.dict_min_size)
            } else {
                c.min_compress_size
            },
        }
    }

    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let level = self.compression.level;
        check_range("compression.level", u64::from(level.unsigned_abs()), 1, 22)?;
        if level < 1 {
            return Err(ConfigError { field: "compression.level", value: 0, min: 1, max: 22 });
        }
        self.engine().validate()?;
        let c = &self.compression;
        check_range("compression.dict_sample_bytes", u64::from(c.dict_sample_bytes), 4 << 10, 64 << 20)?;
        check_range("compression.dict_max_size", u64::from(c.dict_max_size), 1 << 10, 1 << 20)?;
        check_millis("storage.flush_interval_ms", self.storage.flush_interval, 1, 3_600_000)?;
        let p = &self.concurrency;
        check_range("concurrency.process_count", u64::from(p.process_count), 1, 1024)?;
        check_range("concurrency.process_id", u64::from(p.process_id), 0, u64::from(p.process_count) - 1)?;
        check_range("concurrency.shard_count", u64::from(p.shard_count), 1, 10_000)?;
        self.retention.validate()
    }
}

#[cfg(test)]
mod tests;

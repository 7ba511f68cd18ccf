//! The configuration tree, its defaults, presets and validation.
//!
//! Sections follow the Go package (compression, indexing, storage,
//! concurrency, retention, log) with its defaults (reference §12), minus the
//! fields that did nothing there. [`Config::validate`] rejects zero and
//! absurd values with a [`ConfigError`] naming the field; nothing is
//! silently replaced by a default.

use core::time::Duration;

use crate::error::ConfigError;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Compression settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionConfig {
    /// Payloads at least this long are compressed when that makes them
    /// smaller (default 4096; 0 tries every payload).
    pub min_compress_size: u32,
    /// zstd level, `1..=22` (default 3). `comet-embedded`'s `ruzstd`
    /// compresses at its fastest level whatever this says.
    pub level: i32,
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

/// Retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Delete sealed segments whose newest entry is older than this
    /// (default 7 days; `None` disables).
    pub max_age: Option<Duration>,
    /// Per-shard byte limit (`None` = off).
    pub max_shard_size: Option<u64>,
    /// Byte limit over all shards (`None` = off).
    pub max_total_size: Option<u64>,
    /// When true, `max_total_size` deletes even segments that a consumer
    /// group has not acked (the loss is counted and logged).
    pub hard_cap: bool,
    /// Never delete below this many sealed segments per shard (default 0).
    pub min_files_to_keep: u32,
    /// Keep segments with entries some known group has not acked
    /// (default true).
    pub protect_unconsumed: bool,
    /// How often the background pass runs (default 1 h; `None` = never in
    /// the background, `run_retention_now` still works).
    pub cleanup_interval: Option<Duration>,
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
        Config {
            compression: CompressionConfig { min_compress_size: 4096, level: 3 },
            indexing: IndexingConfig { boundary_interval: 100 },
            storage: StorageConfig {
                max_file_size: 256 * MIB,
                max_entry_size: 16 << 20,
                write_buffer_size: 64 << 10,
                flush_interval: Duration::from_secs(1),
                durable_appends: false,
            },
            concurrency: ConcurrencyConfig { process_id: 0, process_count: 1, shard_count: 16 },
            retention: RetentionConfig {
                max_age: Some(Duration::from_secs(7 * 24 * 3600)),
                max_shard_size: None,
                max_total_size: None,
                hard_cap: false,
                min_files_to_keep: 0,
                protect_unconsumed: true,
                cleanup_interval: Some(Duration::from_secs(3600)),
            },
            log: LogConfig { level: LogLevel::Info },
        }
    }
}

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max { Err(ConfigError { field, value, min, max }) } else { Ok(()) }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.compression;
        range("compression.level", u64::from(c.level.unsigned_abs()), 1, 22)?;
        if c.level < 1 {
            return Err(ConfigError { field: "compression.level", value: 0, min: 1, max: 22 });
        }
        range("indexing.boundary_interval", u64::from(self.indexing.boundary_interval), 1, 1_000_000)?;
        let s = &self.storage;
        range("storage.max_file_size", s.max_file_size, KIB, 2 * GIB)?;
        range("storage.max_entry_size", u64::from(s.max_entry_size), 1, u64::from(crate::wire::ENTRY_SIZE_LIMIT))?;
        range("storage.write_buffer_size", u64::from(s.write_buffer_size), 4 * KIB, 64 * MIB)?;
        range("storage.flush_interval_ms", millis(s.flush_interval), 1, 3_600_000)?;
        let p = &self.concurrency;
        range("concurrency.process_count", u64::from(p.process_count), 1, 1024)?;
        range("concurrency.process_id", u64::from(p.process_id), 0, u64::from(p.process_count) - 1)?;
        range("concurrency.shard_count", u64::from(p.shard_count), 1, 10_000)?;
        let r = &self.retention;
        if let Some(age) = r.max_age {
            range("retention.max_age_ms", millis(age), 1, u64::MAX)?;
        }
        if let Some(n) = r.max_shard_size {
            range("retention.max_shard_size", n, 1, u64::MAX)?;
        }
        if let Some(n) = r.max_total_size {
            range("retention.max_total_size", n, 1, u64::MAX)?;
        }
        if r.hard_cap && r.max_total_size.is_none() {
            return Err(ConfigError { field: "retention.hard_cap (needs max_total_size)", value: 1, min: 0, max: 0 });
        }
        range("retention.min_files_to_keep", u64::from(r.min_files_to_keep), 0, 1_000_000)?;
        if let Some(i) = r.cleanup_interval {
            range("retention.cleanup_interval_ms", millis(i), 1, 30 * 24 * 3_600_000)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_presets_are_valid() {
        for c in [Config::default(), Config::high_compression(), Config::high_throughput(), Config::multi_process(2, 4)]
        {
            c.validate().unwrap();
        }
        let d = Config::default();
        assert_eq!(d.storage.max_file_size, 256 * MIB);
        assert_eq!(d.compression.min_compress_size, 4096);
        assert_eq!(d.indexing.boundary_interval, 100);
        assert_eq!(d.storage.flush_interval, Duration::from_secs(1));
        assert!(d.retention.protect_unconsumed);
    }

    #[test]
    fn zero_and_absurd_values_are_rejected_by_name() {
        let cases: [(&str, fn(&mut Config)); 12] = [
            ("indexing.boundary_interval", |c| c.indexing.boundary_interval = 0),
            ("storage.max_file_size", |c| c.storage.max_file_size = 0),
            ("storage.max_file_size", |c| c.storage.max_file_size = 3 * GIB),
            ("storage.max_entry_size", |c| c.storage.max_entry_size = 0),
            ("storage.max_entry_size", |c| c.storage.max_entry_size = 2 * GIB as u32),
            ("storage.write_buffer_size", |c| c.storage.write_buffer_size = 10),
            ("storage.flush_interval_ms", |c| c.storage.flush_interval = Duration::ZERO),
            ("concurrency.process_count", |c| c.concurrency.process_count = 0),
            ("concurrency.process_id", |c| c.concurrency.process_id = 1),
            ("concurrency.shard_count", |c| c.concurrency.shard_count = 10_001),
            ("compression.level", |c| c.compression.level = 0),
            ("retention.max_shard_size", |c| c.retention.max_shard_size = Some(0)),
        ];
        for (field, break_it) in cases {
            let mut c = Config::default();
            break_it(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
        let mut c = Config::default();
        c.retention.hard_cap = true;
        assert!(c.validate().is_err(), "hard cap without a total size");
    }
}

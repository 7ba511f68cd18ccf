//! The core's settings: the engine's ([`EngineSettings`]) and retention's
//! ([`RetentionConfig`]), with their defaults and validation.
//!
//! Defaults are the Go package's (reference §12). Validation rejects zero
//! and absurd values with a [`ConfigError`] naming the field by its path in
//! the Go configuration tree (`storage.max_file_size`), which `comet`'s
//! `Config` keeps; nothing is silently replaced by a default.
//!
//! Settings only a platform uses live with that platform (D-47): `comet`'s
//! `Config` adds the flush interval, durable appends, the zstd level,
//! concurrency and logging around these two parts; `comet-embedded`'s
//! `EmbeddedConfig` adds its memory budget and flush interval.

use core::time::Duration;

use crate::error::ConfigError;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The engine's settings, as a user states them: what
/// [`EngineConfig`](crate::shard::EngineConfig) is derived from
/// ([`EngineConfig::from_settings`](crate::shard::EngineConfig::from_settings)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// Entries per checkpoint chunk (default 100; `1..=1_000_000`;
    /// `indexing.boundary_interval`): a lookup hops over at most
    /// `boundary_interval - 1` entries, and `verify` reports damage at this
    /// granularity.
    pub boundary_interval: u32,
    /// Rotate to a new segment before it would grow past this (default
    /// 256 MiB; 1 KiB..=2 GiB; `storage.max_file_size`). A single larger
    /// entry gets a segment alone.
    pub max_file_size: u64,
    /// Largest payload `append` accepts (default 16 MiB; up to 1 GiB;
    /// `storage.max_entry_size`).
    pub max_entry_size: u32,
    /// Write buffer per shard (default 64 KiB, as the Go package;
    /// 4 KiB..=64 MiB; `storage.write_buffer_size`).
    pub write_buffer_size: u32,
    /// Payloads at least this long are compressed when that makes them
    /// smaller (default 4096; 0 tries every payload;
    /// `compression.min_compress_size`).
    pub min_compress_size: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            boundary_interval: 100,
            max_file_size: 256 * MIB,
            max_entry_size: 16 << 20,
            write_buffer_size: 64 << 10,
            min_compress_size: 4096,
        }
    }
}

impl EngineSettings {
    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("indexing.boundary_interval", u64::from(self.boundary_interval), 1, 1_000_000)?;
        check_range("storage.max_file_size", self.max_file_size, KIB, 2 * GIB)?;
        check_range(
            "storage.max_entry_size",
            u64::from(self.max_entry_size),
            1,
            u64::from(crate::wire::ENTRY_SIZE_LIMIT),
        )?;
        check_range("storage.write_buffer_size", u64::from(self.write_buffer_size), 4 * KIB, 64 * MIB)
    }
}

/// Retention settings: the same type on every platform.
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

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_shard_size: None,
            max_total_size: None,
            hard_cap: false,
            min_files_to_keep: 0,
            protect_unconsumed: true,
            cleanup_interval: Some(Duration::from_secs(3600)),
        }
    }
}

impl RetentionConfig {
    /// Checks every field; the first bad one is reported (as
    /// `retention.<field>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(age) = self.max_age {
            check_millis("retention.max_age_ms", age, 1, u64::MAX)?;
        }
        if let Some(n) = self.max_shard_size {
            check_range("retention.max_shard_size", n, 1, u64::MAX)?;
        }
        if let Some(n) = self.max_total_size {
            check_range("retention.max_total_size", n, 1, u64::MAX)?;
        }
        if self.hard_cap && self.max_total_size.is_none() {
            return Err(ConfigError { field: "retention.hard_cap (needs max_total_size)", value: 1, min: 0, max: 0 });
        }
        check_range("retention.min_files_to_keep", u64::from(self.min_files_to_keep), 0, 1_000_000)?;
        if let Some(i) = self.cleanup_interval {
            check_millis("retention.cleanup_interval_ms", i, 1, 30 * 24 * 3_600_000)?;
        }
        Ok(())
    }
}

/// `Err` naming `field` unless `min <= value <= max` (for the platforms'
/// own settings as well).
pub fn check_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max { Err(ConfigError { field, value, min, max }) } else { Ok(()) }
}

/// [`check_range`] over a duration in whole milliseconds. A duration past
/// `u64::MAX` ms counts as `u64::MAX`, which is exact for every check: it
/// is above every finite bound and inside an unbounded one.
pub fn check_millis(field: &'static str, value: Duration, min: u64, max: u64) -> Result<(), ConfigError> {
    let ms = value.as_secs().saturating_mul(1000).saturating_add(u64::from(value.subsec_millis()));
    check_range(field, ms, min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        EngineSettings::default().validate().unwrap();
        RetentionConfig::default().validate().unwrap();
        let d = EngineSettings::default();
        assert_eq!(d.max_file_size, 256 * MIB);
        assert_eq!(d.min_compress_size, 4096);
        assert_eq!(d.boundary_interval, 100);
        assert!(RetentionConfig::default().protect_unconsumed);
    }

    #[test]
    fn zero_and_absurd_values_are_rejected_by_name() {
        let cases: [(&str, fn(&mut EngineSettings)); 6] = [
            ("indexing.boundary_interval", |c| c.boundary_interval = 0),
            ("storage.max_file_size", |c| c.max_file_size = 0),
            ("storage.max_file_size", |c| c.max_file_size = 3 * GIB),
            ("storage.max_entry_size", |c| c.max_entry_size = 0),
            ("storage.max_entry_size", |c| c.max_entry_size = 2 * GIB as u32),
            ("storage.write_buffer_size", |c| c.write_buffer_size = 10),
        ];
        for (field, break_it) in cases {
            let mut c = EngineSettings::default();
            break_it(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
        let cases: [(&str, fn(&mut RetentionConfig)); 4] = [
            ("retention.max_age_ms", |c| c.max_age = Some(Duration::from_micros(999))),
            ("retention.max_shard_size", |c| c.max_shard_size = Some(0)),
            ("retention.max_total_size", |c| c.max_total_size = Some(0)),
            ("retention.cleanup_interval_ms", |c| c.cleanup_interval = Some(Duration::from_secs(31 * 24 * 3600))),
        ];
        for (field, break_it) in cases {
            let mut c = RetentionConfig::default();
            break_it(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
        let c = RetentionConfig { hard_cap: true, ..RetentionConfig::default() };
        assert!(c.validate().is_err(), "hard cap without a total size");
    }

    #[test]
    fn durations_past_u64_millis_are_above_every_bound() {
        assert!(check_millis("x", Duration::MAX, 1, u64::MAX).is_ok());
        assert_eq!(check_millis("x", Duration::MAX, 1, 3_600_000).unwrap_err().value, u64::MAX);
        assert_eq!(check_millis("x", Duration::from_millis(1500), 1, 1000).unwrap_err().value, 1500);
    }
}

//! Compatibility with the Go package, in one place: every format rule that
//! exists only because the Go package wrote it.
//!
//! | module | Go file |
//! |---|---|
//! | (here) | segment names `log-<16-digit sequence>.comet` |
//! | `index` | the Go `index.bin` (magic `TMOC`), decoded for import |
//! | `offsets` | the legacy `offsets.bin`, migrated on open |
//! | `import` | importing a Go-written shard directory (feature `alloc`) |
//!
//! Not here, because they are live rules rather than compatibility: the
//! FNV-1a key hash that picks a shard (`wire`, the same function as the Go
//! package so keys route identically), and version 1 of `offsets.state`
//! (the Go layout that `state::offsets` still reads and upgrades in place).

#[cfg(feature = "alloc")]
mod import;
#[cfg(feature = "alloc")]
mod index;
mod offsets;

#[cfg(feature = "alloc")]
pub use import::{GO_INDEX_KEPT, ImportProblem, ImportReport, ImportedSegment, import_go_shard, is_go_shard};
#[cfg(feature = "alloc")]
pub use index::{GO_INDEX_MAGIC, GoFile, GoIndex};
pub use offsets::{LEGACY_OFFSETS_FILE, parse_legacy_offsets};

/// Parses a Go-written segment name (`log-<16 digits>.comet`), returning its
/// sequence number.
pub fn parse_go_segment_file_name(name: &str) -> Option<u64> {
    crate::naming::segment_digits(name, 16)
}

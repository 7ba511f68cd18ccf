//! The engine's internals, for the platform crates (`comet-linux`, `comet`,
//! `comet-embedded`), the CLI, tests, benches and fuzzers.
//!
//! A user of comet needs only the crate root (ids, errors, configuration,
//! metrics, stream naming, reports). What a platform needs to run the
//! engine over its own I/O lives here, one submodule per concern, each a
//! list of re-exports from the private module that defines and documents
//! it:
//!
//! | submodule | holds |
//! |---|---|
//! | [`storage`] | the `Storage`/`StorageFile` traits a platform implements |
//! | [`wire`] | entry framing and the zstd frame rules; the `Compressor` trait; `FrameEncoder`, a zstd encoder that allocates only when built (feature `alloc`) |
//! | [`naming`] | segment, chunk-table and shard-directory file names |
//! | [`index`] | the manifest (`index.bin`) and chunk tables (`.idx`) |
//! | [`state`] | byte layouts of `comet.state` and `offsets.state` |
//! | `shm` (64-bit atomics) | the shared-memory protocols over those two files |
//! | [`segment`] | scanning a segment (recovery, verification) |
//! | [`read`] | the read path: locating, checking and walking chunks |
//! | [`shard`] | the shard engine |
//! | [`check`] | the read-only whole-shard check |
//! | `slots` (feature `std`) | `ShardSlots`, per-shard objects found without a lock |
//! | [`consume`] | what a platform implements to run the `process` loop and `Entries` over its readers |
//! | [`retention`] | the retention policy and its pass |
//! | [`go`] | compatibility with the Go package: its files and the import |
//! | [`num`] | checked narrowing of in-segment offsets |
//! | [`config`] | the range checks platforms apply to their own settings |
//! | `group` (64-bit atomics) | consumer-group rules: resume point, lag, capped ack, ack ranges |
//!
//! These paths follow the engine; they are not a stable API for users.

/// The storage traits a platform implements (see the crate's `storage`
/// module for the contract).
pub mod storage {
    pub use crate::storage::{ErrorKind, OpenMode, Storage, StorageError, StorageFile, read_exact_at, write_all_at};
}

/// Entry framing, zstd frame rules, the compression traits and (feature
/// `alloc`) the zstd frame encoder.
pub mod wire {
    #[cfg(feature = "alloc")]
    pub use crate::wire::FrameEncoder;
    pub use crate::wire::{
        Compressor, Decompressor, ENTRY_SIZE_LIMIT, EntryStatus, HEADER_LEN, NoCompression, RawFrameDecoder,
        STORED_LIMIT, StoredPayload, ZSTD_MAGIC, classify_entry, encode_payload, frame_content_size, frame_dict_id,
        is_frame, raw_frame_len, write_raw_frame,
    };
    pub use crate::wire::{
        DICT_FILE_MAGIC, DICT_FILE_VERSION, DICT_HEADER_LEN, DICT_ID_MAX, DICT_ID_MIN, DICT_MAX_BYTES, DictFile,
        ZDICT_MAGIC, encode_dict_header, parse_dict_file, set_dict_id,
    };
}

/// A shard's zstd dictionary files on storage and retention's rule for
/// them (format: [`wire::parse_dict_file`]).
#[cfg(feature = "alloc")]
pub mod dict {
    pub use crate::dict::{
        DICT_TMP, DictInfo, SAMPLE_MAX, Samples, find_dict, install_dict, list_dicts, load_dict, load_dict_within,
        newest_dict, next_dict_id, refused_dict, removable_dicts, retire_dicts, write_dict,
    };
}

/// File names inside a shard directory and of shard directories.
pub mod naming {
    pub use crate::naming::{
        FileName, chunk_table_file_name, dict_file_name, parse_chunk_table_file_name, parse_dict_file_name,
        parse_segment_file_name, parse_shard_dir_name, segment_file_name, shard_dir_name,
    };
}

/// The manifest (`index.bin`) and the chunk tables (`<segment>.idx`).
#[cfg(feature = "alloc")]
pub mod index {
    pub use crate::index::table::{
        TABLE_HEADER, TABLE_MAGIC, TABLE_RECORD, TABLE_VERSION, parse_table_header, table_header,
    };
    pub use crate::index::{
        ChunkRec, MANIFEST_FILE, MANIFEST_MAGIC, MANIFEST_TMP, MANIFEST_VERSION, MANIFEST_VERSION_1, Manifest,
        SegmentMeta, Table, encode_parts,
    };
}

/// Byte layouts of `comet.state` (durable head, counters) and, as the
/// [`offsets`](state::offsets) module, of `offsets.state`.
pub mod state {
    #[cfg(feature = "alloc")]
    pub use crate::state::FileHeadStore;
    pub use crate::state::offsets;
    pub use crate::state::{
        HEAD_LINE, HeadStore, IDENTITY_LEN, MAX_HEAD_INTERVAL, SEQ_OFFSET, STATE_FILE, STATE_LINE, STATE_MAGIC,
        STATE_SIZE, STATE_VERSION, state_image,
    };
}

/// The shared-memory protocols over `comet.state` (seqlock head, counters)
/// and `offsets.state` (compare-and-swap group slots); defined beside their
/// layouts in the crate's `state` module. Needs 64-bit atomics.
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub mod shm {
    pub use crate::state::shm::{
        GroupOffset, GroupSlot, OFFSETS_WORDS, OffsetsTable, STATE_WORDS, add_counter, clear_counters, head_seq,
        load_counter, load_head, load_head_line, low_water, store_head,
    };
}

/// Scanning a segment's framing: recovery and verification.
#[cfg(feature = "alloc")]
pub mod segment {
    pub use crate::segment::{ChunkMark, ChunkState, Scanner, seal};
}

/// The read path: where an entry is, checking a chunk once, walking it.
#[cfg(feature = "alloc")]
pub mod read {
    pub use crate::read::{
        ActiveChunks, ActiveTable, CheckedChunks, ChunkEntries, ChunkFault, ChunkPos, EntryView, MARK_STRIDE, Probe,
        ScannedTable, Sealed, SealedChunks, check_chunk, check_chunk_marking, check_streaming, chunk_in, load_chunk,
        locate_sealed, marks_per_chunk, payload_into, read_table_records, readable_from, scan_table, sealed_table,
        seek_time,
    };
    #[cfg(all(target_has_atomic = "64", target_endian = "little"))]
    pub use crate::read::{Found, MappedReader, Mapper};
}

/// The shard engine: numbering, buffer, sync, rotation, recovery, repair.
#[cfg(feature = "alloc")]
pub mod shard {
    pub use crate::shard::{
        Deleted, EngineConfig, EntryRef, MAX_SEGMENT_BYTES, ReadBuf, Shard, SyncTicket, create_shard_files,
        load_manifest, write_manifest_file,
    };
}

/// The read-only whole-shard check behind `verify`.
#[cfg(feature = "alloc")]
pub mod check {
    pub use crate::check::{check_shard, is_comet_file};
}

/// The traits a platform implements to run the core's consumer loop
/// ([`process`](consume::process)) and range iteration over its readers.
#[cfg(feature = "alloc")]
pub mod consume {
    pub use crate::consume::{BatchRead, GroupSource, Identified, Mapping, process};
}

/// A threaded platform's per-shard objects by id, found without a lock.
#[cfg(feature = "std")]
pub mod slots {
    pub use crate::slots::ShardSlots;
}

/// The pure retention policy and the pass that applies it.
pub mod retention {
    pub use crate::retention::{
        LowWater, SegmentInfo, ShardLimits, TotalCandidate, TotalPlan, acked_prefix, plan_by_config, plan_shard,
        plan_total,
    };
    #[cfg(feature = "alloc")]
    pub use crate::retention::{RetentionShards, Scratch, ShardOutcome, run_pass};
}

/// Compatibility with the Go package: its segment names, `index.bin`,
/// legacy `offsets.bin`, and the import of a Go-written shard.
pub mod go {
    #[cfg(feature = "alloc")]
    pub use crate::go::{GO_INDEX_KEPT, GO_INDEX_MAGIC, GoFile, GoIndex, import_go_shard, is_go_shard};
    pub use crate::go::{LEGACY_OFFSETS_FILE, parse_go_segment_file_name, parse_legacy_offsets};
}

/// Checked narrowing of in-segment offsets and chunk indices to `u32`.
pub mod num {
    pub use crate::num::{at32, index32, len32, offset32};
}

/// The range checks behind every configuration field, for a platform's own
/// settings (they name the field in the error).
pub mod config {
    pub use crate::config::{check_millis, check_range};
}

/// Consumer-group rules over `offsets.state`: where a group resumes, its
/// lag, the capped cumulative ack through a cached slot, the ack-range
/// rule, a multi-shard ack grouped by shard. Needs 64-bit atomics.
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub mod group {
    #[cfg(feature = "alloc")]
    pub use crate::group::ack_highs;
    pub use crate::group::{
        ACK_COUNT_DELAY_NS, ACK_INLINE, AckRangeError, GroupLink, check_ack_range, lag, resume_point,
    };
}

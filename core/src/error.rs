//! Errors, written by hand as in redb: small `Copy` leaf errors that carry
//! data, wrapped by [`Error`], which is generic over the storage error.

use crate::naming::FileName;
use crate::wire::WireError;

/// A name (stream, group, file) that fails validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than allowed.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The name contains a forbidden byte (NUL, a control byte, `/`, `\`).
    ForbiddenByte {
        /// The byte.
        byte: u8,
        /// Its position.
        at: usize,
    },
    /// The name contains `..`.
    DotDot,
    /// A stream name without a `:<shard>` suffix.
    MissingShard,
    /// The shard part is not decimal digits of the accepted width
    /// (`:shard:` + 1..=4 digits, or exactly 4 digits).
    BadShardDigits,
    /// The shard id is above 9999.
    ShardOutOfRange {
        /// The parsed value.
        value: u64,
    },
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            NameError::Empty => f.write_str("name is empty"),
            NameError::TooLong { len, max } => {
                write!(f, "name is {len} bytes, at most {max} allowed")
            }
            NameError::ForbiddenByte { byte, at } => {
                write!(f, "forbidden byte {byte:#04x} at position {at}")
            }
            NameError::DotDot => f.write_str("name contains `..`"),
            NameError::MissingShard => f.write_str("stream name has no `:<shard>` suffix"),
            NameError::BadShardDigits => {
                f.write_str("shard id must be `:shard:` and 1-4 decimal digits, or exactly 4 decimal digits")
            }
            NameError::ShardOutOfRange { value } => write!(f, "shard id {value} is above 9999"),
        }
    }
}

impl core::error::Error for NameError {}

/// A configuration value outside its allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `storage.max_file_size`.
    pub field: &'static str,
    /// The rejected value.
    pub value: u64,
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "config {} = {} is outside {}..={}", self.field, self.value, self.min, self.max)
    }
}

impl core::error::Error for ConfigError {}

/// Which kind of file a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A segment, named by its base entry.
    Segment {
        /// First entry number of the segment.
        base: u64,
    },
    /// A segment's chunk table (`log-<base>.chunks`).
    ChunkTable {
        /// First entry number of the segment.
        base: u64,
    },
    /// `index.bin`.
    Manifest,
    /// `comet.state`.
    State,
    /// `offsets.state`.
    Offsets,
    /// A zstd dictionary file (`dict-<id>.zdict`).
    Dict {
        /// The dictionary id its name gives.
        id: u32,
    },
}

impl core::fmt::Display for FileKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileKind::Segment { base } => write!(f, "{}", crate::naming::segment_file_name(*base)),
            FileKind::ChunkTable { base } => write!(f, "{}", crate::naming::chunk_table_file_name(*base)),
            FileKind::Manifest => f.write_str("index.bin"),
            FileKind::State => f.write_str("comet.state"),
            FileKind::Offsets => f.write_str("offsets.state"),
            FileKind::Dict { id } => write!(f, "{}", crate::naming::dict_file_name(*id)),
        }
    }
}

/// Damage found in a file: where, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// The damaged file.
    pub file: FileKind,
    /// Byte offset of the damage within the file.
    pub offset: u64,
    /// What is wrong.
    pub error: WireError,
}

impl core::fmt::Display for Corruption {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} at byte {}: {}", self.file, self.offset, self.error)
    }
}

impl core::error::Error for Corruption {}

/// A chunk of entries whose bytes fail their check: the CRC-32 on record
/// (chunk table, durable head) or the entry framing inside the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkDamage {
    /// Base entry of the segment (its file is `log-<base>.comet`).
    pub segment: u64,
    /// The chunk's index in the segment.
    pub chunk: u32,
    /// First entry of the chunk.
    pub first: u64,
    /// One past its last entry.
    pub end: u64,
    /// Byte offset in the segment where the problem shows (the chunk's
    /// start for a checksum mismatch).
    pub offset: u64,
    /// What is wrong.
    pub error: WireError,
}

impl core::fmt::Display for ChunkDamage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "entries {}..{} (chunk {} of {}) are damaged at byte {}: {}",
            self.first,
            self.end,
            self.chunk,
            crate::naming::segment_file_name(self.segment),
            self.offset,
            self.error
        )
    }
}

impl core::error::Error for ChunkDamage {}

/// The storage operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Opening or creating a file.
    Open,
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// Truncating or extending.
    SetLen,
    /// Flushing a file to stable storage.
    Sync,
    /// Flushing a directory to stable storage.
    SyncDir,
    /// Removing a file.
    Remove,
    /// Renaming a file.
    Rename,
    /// Listing a directory.
    List,
    /// Querying a file's length.
    Len,
}

/// Prints the operation as a word or two, as messages use it: `open`,
/// `read`, `write`, `resize`, `sync`, `sync directory`, `remove`,
/// `rename`, `list`, `stat`.
impl core::fmt::Display for IoOp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            IoOp::Open => "open",
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::SetLen => "resize",
            IoOp::Sync => "sync",
            IoOp::SyncDir => "sync directory",
            IoOp::Remove => "remove",
            IoOp::Rename => "rename",
            IoOp::List => "list",
            IoOp::Len => "stat",
        })
    }
}

/// Errors of the shard engine and the codecs, generic over the storage
/// error type `E`.
///
/// `Display` never repeats the text of the error [`source`] returns
/// (the storage error, the [`Corruption`], [`ConfigError`] or
/// [`NameError`]), so chain printers (`anyhow`, `eyre`, or walking
/// [`source`] and joining with `": "`) show each message once.
///
/// Not `#[non_exhaustive]`, on purpose: each platform converts it variant
/// by variant into its own error type, so a new variant fails to compile
/// until every platform says what it becomes, instead of reaching a
/// catch-all arm that would stringify it.
///
/// [`source`]: core::error::Error::source
#[derive(Debug)]
pub enum Error<E> {
    /// A storage operation failed.
    Storage {
        /// The operation.
        op: IoOp,
        /// The file it was applied to (empty for directory operations).
        file: FileName,
        /// The storage's error.
        source: E,
    },
    /// A file holds bytes that fail validation.
    Corrupt(Corruption),
    /// An entry is larger than the configured maximum entry size.
    EntryTooLarge {
        /// Its length in bytes.
        len: u64,
        /// The maximum in bytes.
        max: u32,
    },
    /// An invalid configuration value.
    Config(ConfigError),
    /// An invalid name.
    Name(NameError),
    /// A previous `sync` failed; data handed to the OS may not be on disk.
    /// The shard refuses writes until it is reopened, which recovers from
    /// what is actually on disk.
    Poisoned,
    /// A fixed-capacity buffer is too small for the request (embedded
    /// budgets).
    Capacity {
        /// What ran out, e.g. `"write buffer"`.
        what: &'static str,
        /// Bytes or items needed.
        needed: u64,
        /// Bytes or items available.
        available: u64,
    },
    /// A batch whose stored size does not fit in one segment (a batch never
    /// spans segments, and segments stay below 4 GiB).
    BatchTooLarge {
        /// Stored bytes the batch needs, at most.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The directory holds a shard written by the Go package (`index.bin`
    /// starting with `TMOC`, 16-digit segment names); import it first.
    ForeignFormat,
    /// The bytes of the requested entry's chunk fail their checksum or
    /// framing: nothing of the chunk is returned.
    Damaged(ChunkDamage),
    /// The requested entry lies in a range recorded as lost (a missing or
    /// set-aside segment, or chunks repair or recovery set aside).
    Lost {
        /// The entry requested.
        entry: u64,
        /// First entry of the lost range.
        start: u64,
        /// One past its last entry.
        end: u64,
    },
    /// The requested entry is not readable: below the first retained entry
    /// or at or beyond the durable end.
    EntryUnavailable {
        /// The entry requested.
        entry: u64,
        /// First retained entry.
        first: u64,
        /// One past the last durable entry.
        end: u64,
    },
}

impl<E> Error<E> {
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    pub(crate) fn storage(op: IoOp, file: &str, source: E) -> Self {
        Error::Storage { op, file: FileName::lossy(file), source }
    }

    /// Converts the storage error type.
    pub fn map_storage<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Storage { op, file, source } => Error::Storage { op, file, source: f(source) },
            Error::Corrupt(c) => Error::Corrupt(c),
            Error::EntryTooLarge { len, max } => Error::EntryTooLarge { len, max },
            Error::Config(c) => Error::Config(c),
            Error::Name(n) => Error::Name(n),
            Error::Poisoned => Error::Poisoned,
            Error::Capacity { what, needed, available } => Error::Capacity { what, needed, available },
            Error::EntryUnavailable { entry, first, end } => Error::EntryUnavailable { entry, first, end },
            Error::Damaged(d) => Error::Damaged(d),
            Error::Lost { entry, start, end } => Error::Lost { entry, start, end },
            Error::BatchTooLarge { bytes, max } => Error::BatchTooLarge { bytes, max },
            Error::ForeignFormat => Error::ForeignFormat,
        }
    }
}

impl<E> From<Corruption> for Error<E> {
    fn from(c: Corruption) -> Self {
        Error::Corrupt(c)
    }
}

impl<E> From<ConfigError> for Error<E> {
    fn from(c: ConfigError) -> Self {
        Error::Config(c)
    }
}

impl<E> From<NameError> for Error<E> {
    fn from(n: NameError) -> Self {
        Error::Name(n)
    }
}

impl<E: core::fmt::Display> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            // The source (storage error, corruption, config or name error)
            // is left to `source()`: chains print it once.
            Error::Storage { op, file, .. } if file.is_empty() => op.fmt(f),
            Error::Storage { op, file, .. } => write!(f, "{op} {file}"),
            Error::Corrupt(_) => f.write_str("corrupt file"),
            Error::EntryTooLarge { len, max } => write!(f, "entry of {len} bytes exceeds the maximum entry size {max}"),
            Error::Config(_) => f.write_str("invalid configuration"),
            Error::Name(_) => f.write_str("invalid name"),
            Error::Poisoned => f.write_str("an earlier sync failed; reopen the shard to recover"),
            Error::Capacity { what, needed, available } => {
                write!(f, "{what} too small: need {needed}, have {available}")
            }
            Error::EntryUnavailable { entry, first, end } => {
                write!(f, "entry {entry} is not readable (retained and durable: {first}..{end})")
            }
            Error::Damaged(d) => d.fmt(f),
            Error::Lost { entry, start, end } => write!(f, "entry {entry} lies in lost range {start}..{end}"),
            Error::BatchTooLarge { bytes, max } => {
                write!(f, "batch of up to {bytes} stored bytes exceeds the per-segment limit {max}")
            }
            Error::ForeignFormat => f.write_str("shard was written by the Go comet package; run `comet import` first"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Storage { source, .. } => Some(source),
            Error::Corrupt(c) => Some(c),
            Error::Config(c) => Some(c),
            Error::Name(n) => Some(n),
            _ => None,
        }
    }
}

//! The crate's error type: typed, carrying data, never a string.

use std::io;
use std::path::PathBuf;

use comet_core::{ConfigError, IoOp, NameError, OffsetsError, ShardId, WireError};

/// The shard engine's error over this crate's storage.
pub type EngineError = comet_core::Error<io::Error>;

/// Everything that can go wrong in `comet-embedded`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An invalid [`EmbeddedConfig`](crate::EmbeddedConfig) value.
    Config(ConfigError),
    /// The shard engine failed (storage error, corruption, poisoned shard,
    /// an entry above the maximum size, an unavailable entry, ...).
    Engine {
        /// The shard.
        shard: ShardId,
        /// What the engine reported.
        source: EngineError,
    },
    /// A directory-level operation of this crate failed (creating the data
    /// or a shard directory, mapping a state file).
    Io {
        /// What was being done.
        op: Op,
        /// The shard, if the operation concerned one.
        shard: Option<ShardId>,
        /// The OS error.
        source: io::Error,
    },
    /// A system call of [`verify`](crate::verify) or
    /// [`repair`](crate::repair) on a file or directory failed.
    File {
        /// The operation.
        op: IoOp,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another writer holds the shard's `writer.lock`.
    Locked {
        /// The shard.
        shard: ShardId,
        /// The pid the holder wrote into the lock file, if readable.
        pid: Option<u32>,
    },
    /// The shard is not open in this log.
    ShardNotOpen(ShardId),
    /// Opening another shard would exceed `max_shards`.
    TooManyShards {
        /// The configured maximum.
        max: u16,
    },
    /// A consumer-group operation on `offsets.state` failed (invalid group
    /// name, a full table, a damaged header).
    Offsets {
        /// The shard.
        shard: ShardId,
        /// What went wrong.
        source: OffsetsError,
    },
    /// An invalid consumer-group name.
    Group(NameError),
    /// A stored zstd frame could not be decoded (or its content does not fit
    /// the caller's buffer: [`WireError::OutputTooSmall`]).
    Decompress {
        /// The shard.
        shard: ShardId,
        /// The entry.
        entry: u64,
        /// What the decoder reported.
        error: WireError,
    },
    /// A compressed entry names a zstd dictionary the shard directory does
    /// not hold (`dict-<id>.zdict` missing). A damaged dictionary file is
    /// [`Error::Engine`] with `Corrupt` naming it.
    MissingDictionary {
        /// The shard.
        shard: ShardId,
        /// The entry.
        entry: u64,
        /// The dictionary id its frame names.
        id: u32,
    },
    /// The caller's buffer is too small for the entry's payload.
    BufferTooSmall {
        /// Bytes the payload needs.
        needed: u64,
        /// Bytes the buffer has.
        available: u64,
    },
}

/// Directory-level operations reported by [`Error::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Creating or opening the data directory.
    OpenRoot,
    /// Creating or opening a shard directory.
    OpenShardDir,
    /// Syncing a directory.
    SyncDir,
    /// Opening, sizing or mapping `comet.state`.
    MapState,
    /// Opening, sizing or mapping `offsets.state`.
    MapOffsets,
    /// Taking the writer lock.
    Lock,
    /// Starting the helper thread.
    SpawnHelper,
}

impl core::fmt::Display for Op {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Op::OpenRoot => "open the data directory",
            Op::OpenShardDir => "open the shard directory",
            Op::SyncDir => "sync a directory",
            Op::MapState => "map comet.state",
            Op::MapOffsets => "map offsets.state",
            Op::Lock => "take writer.lock",
            Op::SpawnHelper => "start the helper thread",
        })
    }
}

/// `Display` never repeats the text of the error `source()` returns (the
/// engine's, the OS's, the decoder's ...), so chain printers (`anyhow`,
/// `eyre`, or walking `source()` and joining with `": "`) show each
/// message once.
impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Config(_) => f.write_str("invalid configuration"),
            Error::Engine { shard, .. } => write!(f, "shard {shard}"),
            Error::Io { op, shard, .. } => match shard {
                Some(s) => write!(f, "{op} (shard {s})"),
                None => write!(f, "{op}"),
            },
            Error::File { op, path, .. } => write!(f, "{op} {}", path.display()),
            Error::Locked { shard, pid } => match pid {
                Some(pid) => write!(f, "shard {shard} is locked by another writer (pid {pid})"),
                None => write!(f, "shard {shard} is locked by another writer (pid unknown)"),
            },
            Error::ShardNotOpen(s) => write!(f, "shard {s} is not open in this log"),
            Error::TooManyShards { max } => write!(f, "at most {max} shards may be open"),
            Error::Offsets { shard, .. } => write!(f, "shard {shard} offsets.state"),
            Error::Group(_) => f.write_str("invalid consumer group name"),
            Error::Decompress { shard, entry, .. } => write!(f, "shard {shard} entry {entry}: cannot decompress"),
            Error::MissingDictionary { shard, entry, id } => {
                write!(f, "shard {shard} entry {entry}: zstd dictionary {id} is missing")
            }
            Error::BufferTooSmall { needed, available } => {
                write!(f, "buffer too small: the entry needs {needed} bytes, the buffer has {available}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(c) => Some(c),
            Error::Engine { source, .. } => Some(source),
            Error::Io { source, .. } | Error::File { source, .. } => Some(source),
            Error::Offsets { source, .. } => Some(source),
            Error::Group(n) => Some(n),
            Error::Decompress { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl Error {
    /// Converts an error of the shared Linux layer's directory walks
    /// ([`verify`](crate::verify), [`repair`](crate::repair)), variant by
    /// variant.
    pub(crate) fn from_dir(e: comet_linux::DirError) -> Error {
        use comet_linux::DirError as D;
        match e {
            D::Io { op, path, source } => Error::File { op, path, source },
            D::Locked { shard, pid } => Error::Locked { shard, pid },
            D::Engine { shard, source, .. } => Error::Engine { shard, source },
            D::Config(c) => Error::Config(c),
        }
    }
}

impl From<ConfigError> for Error {
    fn from(c: ConfigError) -> Self {
        Error::Config(c)
    }
}

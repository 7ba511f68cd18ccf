//! The error type of both Linux platforms (`comet` and `comet-embedded`
//! re-export it): one enum, every variant carries data, so the same failure
//! reads the same whichever crate met it. A variant only one platform can
//! raise says so.
//!
//! # Messages and sources
//!
//! Each message is printed once in an error chain (the usual Rust rule):
//! when [`source`](std::error::Error::source) returns an underlying error
//! — the OS error of [`Error::Io`], the decoder's error of
//! [`Error::Decompress`], a handler's error of [`Error::Handler`] —
//! `Display` does not repeat its text. The checked values a variant
//! carries ([`Corruption`], [`ChunkDamage`], [`NameError`],
//! [`ConfigError`], [`OffsetsError`]) are part of the message instead and
//! are not returned as sources. So `{e}` alone says what failed and where
//! (`open /data/shard-0001/comet.state`); print the whole chain, e.g. with
//! [`Error::chain`] or `anyhow`'s `{:#}`, to see why
//! (`...: Permission denied (os error 13)`).

use std::io;
use std::path::PathBuf;

use comet_core::platform::naming::FileName;
use comet_core::{ChunkDamage, ConfigError, Corruption, FileKind, IoOp, NameError, OffsetsError, ShardId};

/// Everything that can go wrong in `comet` or `comet-embedded`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    Io {
        /// The operation.
        op: IoOp,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A file holds bytes that fail validation.
    Corrupt {
        /// The shard.
        shard: ShardId,
        /// What and where.
        corruption: Corruption,
    },
    /// An invalid stream name.
    InvalidStream(NameError),
    /// An invalid consumer group name (1..=47 bytes, no NUL).
    InvalidGroup(NameError),
    /// An invalid configuration value.
    Config(ConfigError),
    /// An entry larger than `storage.max_entry_size`.
    EntryTooLarge {
        /// Its length.
        len: u64,
        /// The maximum.
        max: u32,
    },
    /// A batch too large for one segment.
    BatchTooLarge {
        /// Its stored size bound.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// Another writer holds the shard's `writer.lock`.
    Locked {
        /// The shard.
        shard: ShardId,
        /// The holder's pid, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// The shard belongs to another process of a multi-process deployment
    /// (`comet`).
    NotOwned {
        /// The shard.
        shard: ShardId,
        /// The owning process index.
        owner: u32,
        /// This process's index.
        process: u32,
    },
    /// This process already holds a slot of this role in this directory.
    SlotHeld {
        /// The role.
        role: String,
    },
    /// Every process slot of the role is held by a live process.
    NoFreeSlot {
        /// The role.
        role: String,
        /// The number of slots.
        count: u32,
    },
    /// The client was closed (`comet`).
    Closed,
    /// The client was opened read-only (`comet`).
    ReadOnly,
    /// A sync of this shard failed earlier; reopen the client to recover.
    Poisoned {
        /// The shard.
        shard: ShardId,
    },
    /// The entry's chunk fails its checksum or framing: nothing of it is
    /// returned (run `comet repair` to record the chunk as lost).
    Damaged {
        /// The shard.
        shard: ShardId,
        /// Which entries, where and what.
        damage: ChunkDamage,
    },
    /// The entry lies in a range recorded as lost (a missing or set-aside
    /// segment, or chunks recovery or repair set aside). A consumer stops
    /// here until its offset is moved past the range.
    Lost {
        /// The shard.
        shard: ShardId,
        /// The entry.
        entry: u64,
        /// First entry of the lost range.
        start: u64,
        /// One past its last entry.
        end: u64,
    },
    /// The entry is not readable: below the first retained entry or not yet
    /// durable.
    Unavailable {
        /// The shard.
        shard: ShardId,
        /// The entry.
        entry: u64,
        /// First retained entry.
        first: u64,
        /// One past the last durable entry.
        end: u64,
    },
    /// The shard was written by the Go package and must be imported.
    ForeignFormat {
        /// The shard.
        shard: ShardId,
    },
    /// The consumer-offset table refused an operation.
    Offsets {
        /// The shard.
        shard: ShardId,
        /// Why.
        source: OffsetsError,
    },
    /// `ack_range` would leave a hole: offsets are cumulative.
    AckGap {
        /// The shard.
        shard: ShardId,
        /// The group's offset.
        offset: u64,
        /// The range's start.
        start: u64,
    },
    /// A `process` handler failed on a batch every time and the poison
    /// policy said stop (`comet`).
    Handler {
        /// Handler calls made.
        attempts: u32,
        /// The last error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A limit of the format or of the engine's fixed state is too small for
    /// what the shard holds (e.g. a segment file larger than the format
    /// allows, more segment files than a listing holds).
    Capacity {
        /// The shard.
        shard: ShardId,
        /// What ran out.
        what: &'static str,
        /// Bytes or items needed.
        needed: u64,
        /// Bytes or items available.
        available: u64,
    },
    /// A compressed entry failed to decompress.
    Decompress {
        /// The shard.
        shard: ShardId,
        /// The entry.
        entry: u64,
        /// The decoder's message.
        source: io::Error,
    },
    /// A compressed entry names a zstd dictionary the shard directory does
    /// not hold (`dict-<id>.zdict` missing). A damaged dictionary file is
    /// [`Error::Corrupt`] naming it.
    MissingDictionary {
        /// The shard.
        shard: ShardId,
        /// The entry.
        entry: u64,
        /// The dictionary id its frame names.
        id: u32,
    },
    /// Training or loading a zstd dictionary failed (too few or too
    /// uniform samples, a dictionary zstd refuses; `comet`).
    DictionaryTraining {
        /// The shard.
        shard: ShardId,
        /// zstd's error.
        source: io::Error,
    },
    /// A background thread could not be started.
    Spawn {
        /// The thread's name.
        thread: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The shard is not open in this log (`comet-embedded`).
    ShardNotOpen(ShardId),
    /// Opening another shard would exceed `max_shards` (`comet-embedded`).
    TooManyShards {
        /// The configured maximum.
        max: u16,
    },
    /// The caller's buffer is too small for the entry's payload
    /// (`comet-embedded`).
    BufferTooSmall {
        /// Bytes the payload needs.
        needed: u64,
        /// Bytes the buffer has.
        available: u64,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The OS error is the source: not repeated here.
            Error::Io { op, path, .. } => write!(f, "{op} {}", path.display()),
            Error::Corrupt { shard, corruption } => {
                write!(f, "shard {shard}: corrupt {corruption}")
            }
            Error::InvalidStream(e @ (NameError::MissingShard | NameError::BadShardDigits)) => write!(
                f,
                "invalid stream name: {e}; a stream name ends with its shard number, which alone selects \
                 the shard (`events:shard:0007`, shards 0 to 9999): name one, or let \
                 `Client::pick_shard_stream(prefix, key)` pick it"
            ),
            Error::InvalidStream(e) => write!(f, "invalid stream name: {e}"),
            Error::InvalidGroup(e) => write!(f, "invalid consumer group name: {e}"),
            Error::Config(e) => e.fmt(f),
            Error::EntryTooLarge { len, max } => {
                write!(f, "entry of {len} bytes exceeds storage.max_entry_size ({max})")
            }
            Error::BatchTooLarge { bytes, max } => {
                write!(f, "batch of up to {bytes} bytes does not fit in one segment ({max})")
            }
            Error::Locked { shard, pid: Some(pid) } => {
                write!(f, "shard {shard} is locked by another writer (pid {pid})")
            }
            Error::Locked { shard, pid: None } => {
                write!(f, "shard {shard} is locked by another writer")
            }
            Error::SlotHeld { role } => write!(f, "this process already holds a `{role}` slot here"),
            Error::NoFreeSlot { role, count } => {
                write!(f, "all {count} `{role}` process slots are held by live processes")
            }
            Error::NotOwned { shard, owner, process } => {
                write!(f, "shard {shard} is owned by process {owner}, this is process {process}")
            }
            Error::Closed => f.write_str("the client is closed"),
            Error::ReadOnly => f.write_str("the client was opened read-only"),
            Error::Poisoned { shard } => {
                write!(f, "shard {shard}: an earlier sync failed; reopen to recover")
            }
            Error::Damaged { shard, damage } => write!(f, "shard {shard}: {damage}"),
            Error::Lost { shard, entry, start, end } => {
                write!(f, "shard {shard}: entry {entry} lies in lost range {start}..{end}")
            }
            Error::Unavailable { shard, entry, first, end } => {
                write!(f, "shard {shard}: entry {entry} is not readable (retained and durable: {first}..{end})")
            }
            Error::ForeignFormat { shard } => {
                write!(f, "shard {shard} was written by the Go comet package; run `comet import` first")
            }
            Error::Offsets { shard, source } => write!(f, "shard {shard}: {source}"),
            Error::AckGap { shard, offset, start } => {
                write!(f, "shard {shard}: ack from {start} would leave a gap after offset {offset}")
            }
            // The handler's error is the source.
            Error::Handler { attempts, .. } => {
                let times = if *attempts == 1 { "time" } else { "times" };
                write!(f, "handler failed {attempts} {times}")
            }
            // The decoder's error is the source.
            Error::Capacity { shard, what, needed, available } => {
                write!(f, "shard {shard}: {what} too small: need {needed}, have {available}")
            }
            Error::Decompress { shard, entry, .. } => {
                write!(f, "shard {shard}: entry {entry} fails to decompress")
            }
            Error::MissingDictionary { shard, entry, id } => {
                write!(f, "shard {shard}: entry {entry} needs zstd dictionary {id}, which is missing")
            }
            Error::DictionaryTraining { shard, .. } => write!(f, "shard {shard}: zstd dictionary training failed"),
            Error::Spawn { thread, .. } => write!(f, "start thread {thread}"),
            Error::ShardNotOpen(s) => write!(f, "shard {s} is not open in this log"),
            Error::TooManyShards { max } => write!(f, "at most {max} shards may be open"),
            Error::BufferTooSmall { needed, available } => {
                write!(f, "buffer too small: the entry needs {needed} bytes, the buffer has {available}")
            }
        }
    }
}

impl std::error::Error for Error {
    /// The underlying error: the OS error of [`Error::Io`], the decoder's
    /// of [`Error::Decompress`], the handler's of [`Error::Handler`].
    /// Values printed in the message (corruption, damage, names, config,
    /// offsets) are not sources.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. }
            | Error::Decompress { source, .. }
            | Error::DictionaryTraining { source, .. }
            | Error::Spawn { source, .. } => Some(source),
            Error::Handler { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// Displays an error followed by each of its sources, joined by `": "`:
/// `open /data/shard-0001: Permission denied (os error 13)`. A source whose
/// text the message already holds (an error type that repeats its source)
/// is not printed again.
///
/// ```
/// use std::io;
/// use comet_linux::Error;
///
/// let e = Error::io(comet_core::IoOp::Open, "/data", io::Error::from(io::ErrorKind::NotFound));
/// assert_eq!(e.to_string(), "open /data");
/// assert_eq!(e.chain().to_string(), "open /data: entity not found");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut next = self.0.source();
        while let Some(e) = next {
            let s = e.to_string();
            if !s.is_empty() && !text.contains(&s) {
                text.push_str(": ");
                text.push_str(&s);
            }
            next = e.source();
        }
        f.write_str(&text)
    }
}

impl Error {
    /// The message with every source's, joined by `": "` (see
    /// [`ErrorChain`]): what an application prints when it shows one line.
    pub fn chain(&self) -> ErrorChain<'_> {
        ErrorChain(self)
    }

    /// An I/O error on `path`.
    pub fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }

    /// Converts a core error raised for `shard` in directory `dir` (a
    /// storage error names its file in `dir`).
    pub fn from_core(shard: ShardId, dir: &std::path::Path, e: comet_core::Error<io::Error>) -> Error {
        use comet_core::Error as E;
        match e {
            E::Storage { op, file, source } => Error::Io { op, path: join(dir, &file), source },
            E::Corrupt(corruption) => Error::Corrupt { shard, corruption },
            E::EntryTooLarge { len, max } => Error::EntryTooLarge { len, max },
            E::Config(c) => Error::Config(c),
            E::Name(n) => Error::InvalidStream(n),
            E::Poisoned => Error::Poisoned { shard },
            E::EntryUnavailable { entry, first, end } => Error::Unavailable { shard, entry, first, end },
            E::Damaged(damage) => Error::Damaged { shard, damage },
            E::Lost { entry, start, end } => Error::Lost { shard, entry, start, end },
            E::BatchTooLarge { bytes, max } => Error::BatchTooLarge { bytes, max },
            E::ForeignFormat => Error::ForeignFormat { shard },
            E::Capacity { what, needed, available } => Error::Capacity { shard, what, needed, available },
        }
    }

    /// An error opening or mapping a state file (`comet.state`,
    /// `offsets.state`) of `shard` in directory `dir`: one of the wrong size
    /// is [`Error::Corrupt`] (the shard's writer sets it aside and recovers,
    /// `repair` salvages it), anything else an I/O error naming the file.
    pub fn state_file(shard: ShardId, dir: &std::path::Path, file: FileKind, e: io::Error) -> Error {
        match crate::WrongSize::of(&e) {
            Some(w) => Error::Corrupt { shard, corruption: w.corruption(file) },
            None => Error::io(IoOp::Open, dir.join(file.to_string()), e),
        }
    }

    /// True for errors caused by the caller's input rather than the system.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidStream(_)
                | Error::InvalidGroup(_)
                | Error::Config(_)
                | Error::EntryTooLarge { .. }
                | Error::BatchTooLarge { .. }
                | Error::NotOwned { .. }
        )
    }
}

fn join(dir: &std::path::Path, file: &FileName) -> PathBuf {
    if file.is_empty() { dir.to_path_buf() } else { dir.join(file.as_str()) }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_capacity_error_stays_typed() {
        let shard = ShardId::new(3).unwrap();
        let core = comet_core::Error::<io::Error>::Capacity { what: "segment files", needed: 9, available: 8 };
        let e = Error::from_core(shard, std::path::Path::new("/data/shard-0003"), core);
        assert!(
            matches!(e, Error::Capacity { shard: s, what: "segment files", needed: 9, available: 8 } if s == shard),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "shard 0003: segment files too small: need 9, have 8");
        assert!(std::error::Error::source(&e).is_none());
    }
}

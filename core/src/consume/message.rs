//! Entries read back: a [`Message`] holds its payload borrowed from a
//! platform's segment mapping (kept alive by an `Arc`) or owned (a
//! decompressed entry); a [`LentBatch`] lends many payloads from the
//! mappings it holds once each.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use super::{Identified, MessageId};

/// A platform's read-only mapping of segment bytes, which messages borrow
/// their payloads from.
pub trait Mapping {
    /// The mapped bytes.
    fn bytes(&self) -> &[u8];
}

#[derive(Debug)]
enum Payload<T> {
    Mapped { map: Arc<T>, start: usize, len: usize },
    Owned(Vec<u8>),
}

// By hand: a clone shares the mapping, so `T` need not be `Clone`.
impl<T> Clone for Payload<T> {
    fn clone(&self) -> Self {
        match self {
            Payload::Mapped { map, start, len } => Payload::Mapped { map: map.clone(), start: *start, len: *len },
            Payload::Owned(v) => Payload::Owned(v.clone()),
        }
    }
}

/// One entry read back: id, timestamp and payload, borrowed from the
/// mapping `T` of its segment or owned.
#[derive(Debug)]
pub struct Message<T> {
    /// Shard and entry number.
    pub id: MessageId,
    /// Append timestamp, ns since the Unix epoch (see
    /// `time`, feature `std`).
    pub timestamp: u64,
    payload: Payload<T>,
}

impl<T> Clone for Message<T> {
    fn clone(&self) -> Self {
        Message { id: self.id, timestamp: self.timestamp, payload: self.payload.clone() }
    }
}

impl<T: Mapping> Message<T> {
    /// A message whose payload is `range` of `map` (zero-copy: the message
    /// keeps the mapping alive). A range past the mapping reads as empty.
    pub fn mapped(id: MessageId, timestamp: u64, map: Arc<T>, range: Range<usize>) -> Message<T> {
        let len = range.end.saturating_sub(range.start);
        Message { id, timestamp, payload: Payload::Mapped { map, start: range.start, len } }
    }

    /// A message owning its payload (a decompressed entry).
    pub fn owned(id: MessageId, timestamp: u64, data: Vec<u8>) -> Message<T> {
        Message { id, timestamp, payload: Payload::Owned(data) }
    }

    /// The append timestamp as a [`SystemTime`](std::time::SystemTime):
    /// the writer's wall clock when the entry was appended, or the time the
    /// caller gave the append (never earlier than the entry before it in
    /// the shard).
    #[cfg(feature = "std")]
    pub fn time(&self) -> std::time::SystemTime {
        crate::metrics::system_time(self.timestamp)
    }

    /// The payload as appended (decompressed if it was stored compressed).
    pub fn data(&self) -> &[u8] {
        match &self.payload {
            Payload::Mapped { map, start, len } => map.bytes().get(*start..*start + *len).unwrap_or_default(),
            Payload::Owned(v) => v,
        }
    }

    /// True if the payload is borrowed from the mapping (no copy was made).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.payload, Payload::Mapped { .. })
    }

    /// The payload as an owned vector.
    pub fn into_vec(self) -> Vec<u8> {
        match self.payload {
            Payload::Owned(v) => v,
            Payload::Mapped { .. } => self.data().to_vec(),
        }
    }
}

impl<T: Mapping> AsRef<[u8]> for Message<T> {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl<T> Identified for Message<T> {
    fn id(&self) -> MessageId {
        self.id
    }
}

/// Entries of one shard whose payloads are lent from the segment mappings
/// `T`. The batch holds each mapping once (per run of entries in it), so
/// building it makes no reference-count update per entry; its
/// [`LentEntry`]s borrow from it. Reuse one batch across reads: its tables
/// are kept.
#[derive(Debug)]
pub struct LentBatch<T> {
    maps: Vec<Arc<T>>,
    /// Payloads of compressed entries, as they were decompressed.
    owned: Vec<Vec<u8>>,
    entries: Vec<Lent>,
}

impl<T> Default for LentBatch<T> {
    fn default() -> Self {
        LentBatch { maps: Vec::new(), owned: Vec::new(), entries: Vec::new() }
    }
}

#[derive(Debug, Clone)]
enum Place {
    /// Index into `maps` and the byte range in that mapping.
    Mapped(usize, Range<usize>),
    /// Index into `owned`.
    Owned(usize),
}

#[derive(Debug, Clone)]
struct Lent {
    id: MessageId,
    timestamp: u64,
    place: Place,
}

/// One entry of a [`LentBatch`]: id, timestamp and the payload, borrowed
/// from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LentEntry<'a> {
    /// Shard and entry number.
    pub id: MessageId,
    /// Append timestamp, ns since the Unix epoch (as [`Message::timestamp`]).
    pub timestamp: u64,
    /// The payload as appended (decompressed if it was stored compressed).
    pub data: &'a [u8],
}

impl<T: Mapping> LentBatch<T> {
    /// An empty batch.
    pub fn new() -> LentBatch<T> {
        LentBatch::default()
    }

    /// Empties the batch (releasing its mappings and decompressed
    /// payloads), keeping its tables' capacity.
    pub fn clear(&mut self) {
        self.maps.clear();
        self.owned.clear();
        self.entries.clear();
    }

    /// Adds an entry whose payload is `range` of `map`, holding `map` unless
    /// the previous entry's mapping is the same one.
    pub fn push_mapped(&mut self, id: MessageId, timestamp: u64, map: &Arc<T>, range: Range<usize>) {
        if !self.maps.last().is_some_and(|m| Arc::ptr_eq(m, map)) {
            self.maps.push(map.clone());
        }
        let place = Place::Mapped(self.maps.len() - 1, range);
        self.entries.push(Lent { id, timestamp, place });
    }

    /// Adds an entry owning its payload (a decompressed entry).
    pub fn push_owned(&mut self, id: MessageId, timestamp: u64, data: Vec<u8>) {
        self.owned.push(data);
        self.entries.push(Lent { id, timestamp, place: Place::Owned(self.owned.len() - 1) });
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the batch holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Mappings the batch holds (at most one per run of entries from one
    /// mapping).
    pub fn mappings(&self) -> usize {
        self.maps.len()
    }

    fn entry(&self, e: &Lent) -> LentEntry<'_> {
        let data = match &e.place {
            Place::Mapped(m, r) => self.maps.get(*m).and_then(|m| m.bytes().get(r.clone())).unwrap_or_default(),
            Place::Owned(i) => self.owned.get(*i).map_or(&[][..], Vec::as_slice),
        };
        LentEntry { id: e.id, timestamp: e.timestamp, data }
    }

    /// The `i`-th entry (in entry order).
    pub fn get(&self, i: usize) -> Option<LentEntry<'_>> {
        self.entries.get(i).map(|e| self.entry(e))
    }

    /// The entries, in entry order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = LentEntry<'_>> + '_ {
        self.entries.iter().map(|e| self.entry(e))
    }

    /// The id of the last (highest) entry: acking everything up to it acks
    /// the batch.
    pub fn last_id(&self) -> Option<MessageId> {
        self.entries.last().map(|e| e.id)
    }
}

//! A shard's zstd dictionaries on storage: written durably before any frame
//! uses them, loaded and checked by readers, listed for verify, and the
//! rule that says when retention may delete one. The file format is
//! [`crate::wire`]'s (`parse_dict_file`); names are
//! [`dict_file_name`](crate::naming::dict_file_name).
//!
//! # The retention rule
//!
//! A writer compresses with one dictionary at a time, always its newest,
//! and writes a new dictionary file (temp, sync, rename, directory sync)
//! before the first frame that uses it, recording `first_entry`, the
//! writer's next entry number at that moment. So every entry compressed
//! with dictionary `k` was numbered before the next dictionary existed:
//! its number is below the `first_entry` of every later dictionary. A
//! crash cannot break this: entries lost in it are renumbered by the next
//! writer, which compresses with the newest dictionary, never an older one.
//!
//! Hence: dictionary `k` may be deleted once a later dictionary exists and
//! the oldest retained entry is at or past that later dictionary's
//! `first_entry`. The newest dictionary is never deleted; neither is a file
//! that does not parse (verify reports it), nor one whose successor does
//! not parse.

use alloc::vec::Vec;

use crate::error::{Corruption, Error, FileKind, IoOp};
use crate::naming::{dict_file_name, parse_dict_file_name};
use crate::storage::{Context, ErrorKind, OpenMode, Storage, StorageError, StorageFile, read_exact_at, write_all_at};
use crate::wire::{
    DICT_HEADER_LEN, DICT_ID_MAX, DICT_ID_MIN, DICT_MAX_BYTES, WireError, encode_dict_header, parse_dict_file,
    set_dict_id,
};

/// The temporary name a dictionary file is written under before its rename.
pub const DICT_TMP: &str = "dict.tmp";

/// A dictionary file's id and the first entry it may have compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictInfo {
    /// The dictionary id.
    pub id: u32,
    /// The first entry number the writer may have compressed with it.
    pub first_entry: u64,
}

fn corrupt<E>(id: u32, offset: u64, error: WireError) -> Error<E> {
    Error::Corrupt(Corruption { file: FileKind::Dict { id }, offset, error })
}

/// The error for dictionary `id` whose file checks out (header, CRC, ids)
/// but whose zstd tables the decoder refuses: the dictionary file is
/// corrupt at the start of its zstd part. Every reader reports this, not a
/// failure of the frame that named it.
pub fn refused_dict<E>(id: u32) -> Error<E> {
    corrupt(id, DICT_HEADER_LEN as u64, WireError::InvalidField { offset: 0 })
}

/// Writes `dict` (a zstd dictionary whose id is set) as the shard's
/// dictionary file, durably: temp file, sync, rename, directory sync. Call
/// it before any frame uses the dictionary. Returns its id.
pub fn write_dict<S: Storage>(storage: &S, first_entry: u64, dict: &[u8]) -> Result<DictInfo, Error<S::Error>> {
    let header = encode_dict_header(first_entry, dict).map_err(|e| corrupt(0, 0, e))?;
    let info = parse_dict_header_id(&header);
    let name = dict_file_name(info);
    let tmp = storage.open(DICT_TMP, OpenMode::Truncate).ctx(IoOp::Open, DICT_TMP)?;
    write_all_at(&tmp, 0, &[&header, dict]).ctx(IoOp::Write, DICT_TMP)?;
    tmp.sync().ctx(IoOp::Sync, DICT_TMP)?;
    drop(tmp);
    storage.rename(DICT_TMP, &name).ctx(IoOp::Rename, &name)?;
    storage.sync_dir().ctx(IoOp::SyncDir, "")?;
    Ok(DictInfo { id: info, first_entry })
}

fn parse_dict_header_id(header: &[u8; DICT_HEADER_LEN]) -> u32 {
    u32::from_le_bytes([header[8], header[9], header[10], header[11]])
}

/// Loads dictionary `id` into `buf` (the whole file) and checks it: CRC,
/// the zstd dictionary's id equal to the header's and to `id`. The
/// dictionary bytes are then `buf[DICT_HEADER_LEN..]`. A missing file is
/// [`Error::Storage`] with the storage's not-found error; a damaged one
/// [`Error::Corrupt`] naming [`FileKind::Dict`].
pub fn load_dict<S: Storage>(storage: &S, id: u32, buf: &mut Vec<u8>) -> Result<DictInfo, Error<S::Error>> {
    load_dict_within(storage, id, DICT_MAX_BYTES, buf)
}

/// [`load_dict`] for a reader that holds dictionaries of at most
/// `max_bytes` (below the format's [`DICT_MAX_BYTES`]): a file whose size
/// says the dictionary is larger is [`Error::Capacity`], refused by that
/// size before anything is read.
pub fn load_dict_within<S: Storage>(
    storage: &S,
    id: u32,
    max_bytes: u32,
    buf: &mut Vec<u8>,
) -> Result<DictInfo, Error<S::Error>> {
    let name = dict_file_name(id);
    let f = storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
    let len = f.len().ctx(IoOp::Len, &name)?;
    let max = (DICT_HEADER_LEN as u64) + u64::from(DICT_MAX_BYTES);
    let Some(len) = usize::try_from(len).ok().filter(|&l| l as u64 <= max) else {
        return Err(corrupt(id, 12, WireError::TooLarge { len, max }));
    };
    let dict_len = len.saturating_sub(DICT_HEADER_LEN) as u64;
    if dict_len > u64::from(max_bytes) {
        return Err(Error::Capacity {
            what: "dictionary bytes this reader holds",
            needed: dict_len,
            available: u64::from(max_bytes),
        });
    }
    buf.clear();
    buf.resize(len, 0);
    let n = read_exact_at(&f, 0, buf).ctx(IoOp::Read, &name)?;
    buf.truncate(n);
    let parsed = parse_dict_file(buf).map_err(|e| corrupt(id, 0, e))?;
    if parsed.id != id {
        return Err(corrupt(id, 8, WireError::InvalidField { offset: 8 }));
    }
    Ok(DictInfo { id, first_entry: parsed.first_entry })
}

/// [`load_dict_within`] for a reader that met a frame naming dictionary
/// `id`: `Ok(None)` if the directory holds no such file (the frame's
/// dictionary is missing, which the reader reports for the entry), the
/// dictionary's info once it is loaded and checked, any other failure as
/// `load_dict_within` reports it.
pub fn find_dict<S: Storage>(
    storage: &S,
    id: u32,
    max_bytes: u32,
    buf: &mut Vec<u8>,
) -> Result<Option<DictInfo>, Error<S::Error>> {
    match load_dict_within(storage, id, max_bytes, buf) {
        Ok(info) => Ok(Some(info)),
        Err(Error::Storage { op: IoOp::Open, source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The ids of the dictionary files in the directory, ascending.
pub fn list_dicts<S: Storage>(storage: &S) -> Result<Vec<u32>, Error<S::Error>> {
    let mut ids = Vec::new();
    storage
        .list(&mut |name| {
            if let Some(id) = parse_dict_file_name(name) {
                ids.push(id);
            }
        })
        .ctx(IoOp::List, "")?;
    ids.sort_unstable();
    Ok(ids)
}

/// The id a new dictionary of the shard takes: one past the highest id on
/// storage, and at least [`DICT_ID_MIN`]; `None` once [`DICT_ID_MAX`] is
/// taken (ids are never reused: a reader maps a frame's id to one file).
pub fn next_dict_id<S: Storage>(storage: &S) -> Result<Option<u32>, Error<S::Error>> {
    Ok(match list_dicts(storage)?.last() {
        None => Some(DICT_ID_MIN),
        Some(&last) => (last < DICT_ID_MAX).then(|| last.max(DICT_ID_MIN - 1) + 1),
    })
}

/// The dictionary a writer compresses with when it opens: the shard's
/// newest, never an older one (the retention rule above depends on it),
/// loaded and checked into `buf` (its zstd bytes are
/// `buf[DICT_HEADER_LEN..]`). `Ok(None)`: the shard has none. A newest
/// dictionary that does not load is returned as its error; the writer then
/// trains a new one, which takes the next id, rather than fall back.
pub fn newest_dict<S: Storage>(storage: &S, buf: &mut Vec<u8>) -> Result<Option<u32>, Error<S::Error>> {
    let Some(&id) = list_dicts(storage)?.last() else { return Ok(None) };
    load_dict(storage, id, buf).map(|_| Some(id))
}

/// Stores a newly trained zstd dictionary as the shard's next one: gives
/// `dict` the next id ([`next_dict_id`]; `Capacity` once the ids are used
/// up) and writes its file durably ([`write_dict`]) with `first_entry`, the
/// writer's next entry, before any frame uses it. Returns the id. A `dict`
/// that is not a zstd dictionary is refused (`Corrupt`), nothing written.
pub fn install_dict<S: Storage>(storage: &S, first_entry: u64, dict: &mut [u8]) -> Result<u32, Error<S::Error>> {
    let Some(id) = next_dict_id(storage)? else {
        return Err(Error::Capacity { what: "dictionary ids", needed: 1, available: 0 });
    };
    set_dict_id(dict, id).map_err(|e| corrupt(0, 0, e))?;
    write_dict(storage, first_entry, dict).map(|info| info.id)
}

/// Longest payload kept as a training sample: dictionaries pay for short
/// entries; long ones compress well alone.
pub const SAMPLE_MAX: usize = 16 << 10;

/// Training samples for a shard's next dictionary: payloads of
/// `min..=`[`SAMPLE_MAX`] bytes, concatenated, with their sizes, until
/// `target` bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    bytes: Vec<u8>,
    sizes: Vec<usize>,
    min: usize,
    target: usize,
}

impl Samples {
    /// An empty set keeping payloads of at least `min` bytes, up to
    /// `target` bytes in all.
    pub fn new(min: usize, target: usize) -> Samples {
        Samples { bytes: Vec::new(), sizes: Vec::new(), min, target }
    }

    /// Keeps `payload` if its size qualifies and the target is not reached.
    pub fn offer(&mut self, payload: &[u8]) {
        if (self.min..=SAMPLE_MAX).contains(&payload.len()) && !self.is_full() {
            self.bytes.extend_from_slice(payload);
            self.sizes.push(payload.len());
        }
    }

    /// Whether the target is reached (training may start).
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= self.target
    }

    /// Hands the samples over and starts again, empty, with the same sizes.
    pub fn take(&mut self) -> Samples {
        core::mem::replace(self, Samples::new(self.min, self.target))
    }

    /// Samples for an on-demand training: payloads of the shard's newest
    /// durable entries (reading backwards from the durable end, 256
    /// entries at a time) offered until the target is reached. Entries
    /// that do not read (damaged, lost) are skipped: a sample is only a
    /// sample. Only the bounds' error is returned.
    pub fn from_newest<R>(reader: &mut R, min: usize, target: usize) -> Result<Samples, R::Error>
    where
        R: crate::consume::BatchRead,
        R::Message: AsRef<[u8]>,
    {
        let (first, end) = reader.bounds()?;
        let mut s = Samples::new(min, target);
        let mut hi = end;
        let mut batch = Vec::new();
        while hi > first && !s.is_full() {
            let lo = hi.saturating_sub(256).max(first);
            for entry in lo..hi {
                batch.clear();
                if reader.read_batch(entry, 1, &mut batch).is_ok() {
                    batch.iter().for_each(|m| s.offer(m.as_ref()));
                }
            }
            hi = lo;
        }
        Ok(s)
    }

    /// The samples, in the order they were kept (what a trainer reads).
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = 0;
        self.sizes.iter().map(move |&n| {
            let part = self.bytes.get(at..at + n).unwrap_or_default();
            at += n;
            part
        })
    }
}

/// The dictionaries retention may delete (see the module's rule): `dicts`
/// are the files that parse, in ascending id order; `oldest_retained` is
/// the first entry the shard keeps.
pub fn removable_dicts(dicts: &[DictInfo], oldest_retained: u64) -> impl Iterator<Item = u32> + '_ {
    dicts.windows(2).filter(move |w| w[0].id < w[1].id && oldest_retained >= w[1].first_entry).map(|w| w[0].id)
}

/// Deletes the dictionaries [`removable_dicts`] allows, given the first
/// entry the shard keeps. Files that do not parse are kept (and a file
/// that does not parse stops the rule for its predecessor: its
/// `first_entry` is unknown). Returns how many were deleted.
pub fn retire_dicts<S: Storage>(storage: &S, oldest_retained: u64) -> Result<usize, Error<S::Error>> {
    let ids = list_dicts(storage)?;
    if ids.len() < 2 {
        return Ok(0);
    }
    let mut buf = Vec::new();
    let mut infos = Vec::with_capacity(ids.len());
    for id in ids {
        match load_dict(storage, id, &mut buf) {
            Ok(info) => infos.push(info),
            Err(Error::Corrupt(_)) => {
                // Unknown first_entry: nothing before it may go.
                infos.clear();
            }
            Err(e) => return Err(e),
        }
    }
    let doomed: Vec<u32> = removable_dicts(&infos, oldest_retained).collect();
    for &id in &doomed {
        let name = dict_file_name(id);
        storage.remove(&name).ctx(IoOp::Remove, &name)?;
    }
    if !doomed.is_empty() {
        storage.sync_dir().ctx(IoOp::SyncDir, "")?;
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::MemDir;
    use crate::wire::ZDICT_MAGIC;
    use std::vec;

    fn zdict(id: u32) -> Vec<u8> {
        let mut d = ZDICT_MAGIC.to_vec();
        d.extend_from_slice(&id.to_le_bytes());
        d.extend_from_slice(&[9u8; 64]);
        d
    }

    #[test]
    fn write_load_list() {
        let dir = MemDir::new();
        let a = write_dict(&dir, 0, &zdict(DICT_ID_MIN)).unwrap();
        let b = write_dict(&dir, 500, &zdict(DICT_ID_MIN + 1)).unwrap();
        assert_eq!(list_dicts(&dir).unwrap(), vec![a.id, b.id]);
        let mut buf = Vec::new();
        assert_eq!(load_dict(&dir, b.id, &mut buf).unwrap(), b);
        assert_eq!(&buf[DICT_HEADER_LEN..], &zdict(DICT_ID_MIN + 1)[..]);
        assert!(matches!(load_dict(&dir, 40_000, &mut buf), Err(Error::Storage { op: IoOp::Open, .. })));
        // A reader holding smaller dictionaries refuses it by its size.
        let len = zdict(b.id).len() as u64;
        let small = u32::try_from(len - 1).unwrap();
        buf.clear();
        assert!(matches!(
            load_dict_within(&dir, b.id, small, &mut buf),
            Err(Error::Capacity { needed, available, .. }) if needed == len && available == len - 1
        ));
        assert!(buf.is_empty(), "nothing was read");
        assert_eq!(load_dict_within(&dir, b.id, small + 1, &mut buf).unwrap(), b);
        // A reader's look-up: present, missing, or refused as above.
        assert_eq!(find_dict(&dir, b.id, DICT_MAX_BYTES, &mut buf).unwrap(), Some(b));
        assert_eq!(find_dict(&dir, 40_000, DICT_MAX_BYTES, &mut buf).unwrap(), None);
        assert!(matches!(find_dict(&dir, b.id, small, &mut buf), Err(Error::Capacity { .. })));
    }

    #[test]
    fn a_new_dictionary_takes_the_next_id_and_none_past_the_last() {
        let dir = MemDir::new();
        assert_eq!(next_dict_id(&dir).unwrap(), Some(DICT_ID_MIN));
        write_dict(&dir, 0, &zdict(DICT_ID_MIN)).unwrap();
        write_dict(&dir, 9, &zdict(DICT_ID_MIN + 7)).unwrap();
        assert_eq!(next_dict_id(&dir).unwrap(), Some(DICT_ID_MIN + 8), "past the highest, gaps not refilled");
        write_dict(&dir, 10, &zdict(DICT_ID_MAX)).unwrap();
        assert_eq!(next_dict_id(&dir).unwrap(), None, "the id space is used up");
    }

    #[test]
    fn samples_keep_qualifying_payloads_up_to_the_target() {
        let mut s = Samples::new(4, 10);
        for p in [&b"abc"[..], b"defg", b"hijkl", b"mnopqr"] {
            s.offer(p);
        }
        assert!(s.is_full(), "9 bytes kept, then 6 more reach 10");
        s.offer(b"never kept now");
        s.offer(&[7u8; SAMPLE_MAX + 1]);
        assert_eq!(s.parts().collect::<Vec<_>>(), [&b"defg"[..], b"hijkl", b"mnopqr"]);
        let taken = s.take();
        assert_eq!(taken.parts().count(), 3);
        assert!(!s.is_full() && s.parts().count() == 0, "collecting again");
        s.offer(&[1u8; SAMPLE_MAX]);
        assert_eq!(s.parts().next().map(<[u8]>::len), Some(SAMPLE_MAX));
    }

    /// Entries `first..end`, each payload its number in 8 decimal
    /// digits; `bad` does not read.
    struct Numbers {
        first: u64,
        end: u64,
        bad: u64,
    }

    impl crate::consume::BatchRead for Numbers {
        type Message = Vec<u8>;
        type Error = ();

        fn bounds(&mut self) -> Result<(u64, u64), ()> {
            Ok((self.first, self.end))
        }

        fn read_batch(&mut self, from: u64, max: usize, out: &mut Vec<Vec<u8>>) -> Result<usize, ()> {
            let to = self.end.min(from + max as u64);
            for e in from..to {
                if e == self.bad {
                    return Err(());
                }
                out.push(alloc::format!("{e:08}").into_bytes());
            }
            Ok((to - from) as usize)
        }
    }

    #[test]
    fn on_demand_samples_come_from_the_newest_entries_skipping_unreadable_ones() {
        let mut r = Numbers { first: 100, end: 1000, bad: 995 };
        let s = Samples::from_newest(&mut r, 8, 80).unwrap();
        let parts: Vec<&[u8]> = s.parts().collect();
        let want: Vec<Vec<u8>> = (744..754u64).map(|e| alloc::format!("{e:08}").into_bytes()).collect();
        assert_eq!(parts.len(), 10);
        assert!(s.is_full());
        assert!(parts.iter().all(|p| p.len() == 8));
        // The newest batch of 256 (744..1000) is read first, oldest entry first.
        assert_eq!(parts, want.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // Too short to qualify: nothing kept, every retained entry tried.
        let s = Samples::from_newest(&mut r, 9, 80).unwrap();
        assert_eq!((s.parts().count(), s.is_full()), (0, false));
        // A skipped entry is not a sample; the rest still are.
        let mut r = Numbers { first: 0, end: 3, bad: 1 };
        let s = Samples::from_newest(&mut r, 1, 1 << 20).unwrap();
        assert_eq!(s.parts().collect::<Vec<_>>(), [&b"00000000"[..], b"00000002"]);
    }

    #[test]
    fn a_writer_installs_the_next_id_and_resumes_the_newest_only() {
        let dir = MemDir::new();
        let mut buf = Vec::new();
        assert_eq!(newest_dict(&dir, &mut buf).unwrap(), None);
        // a trainer's dictionary carries a random id: it gets the next one
        let mut d = zdict(DICT_ID_MIN + 99);
        assert_eq!(install_dict(&dir, 40, &mut d).unwrap(), DICT_ID_MIN);
        assert_eq!(load_dict(&dir, DICT_ID_MIN, &mut buf).unwrap(), DictInfo { id: DICT_ID_MIN, first_entry: 40 });
        let mut d = zdict(7);
        assert_eq!(install_dict(&dir, 90, &mut d).unwrap(), DICT_ID_MIN + 1);
        assert_eq!(newest_dict(&dir, &mut buf).unwrap(), Some(DICT_ID_MIN + 1));
        assert_eq!(&buf[DICT_HEADER_LEN..], &d[..]);
        // not a zstd dictionary: refused, nothing written
        assert!(matches!(install_dict(&dir, 95, &mut [0u8; 16]), Err(Error::Corrupt(_))));
        assert_eq!(list_dicts(&dir).unwrap().len(), 2);
        // a damaged newest is an error, not a fall-back to the older one
        assert!(dir.corrupt(&dict_file_name(DICT_ID_MIN + 1), DICT_HEADER_LEN as u64 + 9, 0x10));
        assert!(matches!(newest_dict(&dir, &mut buf), Err(Error::Corrupt(_))));
        write_dict(&dir, 10, &zdict(DICT_ID_MAX)).unwrap();
        assert!(matches!(install_dict(&dir, 99, &mut zdict(1)), Err(Error::Capacity { .. })));
    }

    #[test]
    fn rule_keeps_a_dictionary_while_retained_entries_may_use_it() {
        let d = [
            DictInfo { id: DICT_ID_MIN, first_entry: 0 },
            DictInfo { id: DICT_ID_MIN + 1, first_entry: 100 },
            DictInfo { id: DICT_ID_MIN + 2, first_entry: 250 },
        ];
        assert_eq!(removable_dicts(&d, 99).count(), 0);
        assert_eq!(removable_dicts(&d, 100).collect::<Vec<_>>(), vec![DICT_ID_MIN]);
        assert_eq!(removable_dicts(&d, 1000).collect::<Vec<_>>(), vec![DICT_ID_MIN, DICT_ID_MIN + 1]);
        // the newest is never removable
        assert_eq!(removable_dicts(&d[2..], u64::MAX).count(), 0);
    }

    #[test]
    fn retire_deletes_by_the_rule_and_keeps_damaged_files() {
        let dir = MemDir::new();
        write_dict(&dir, 0, &zdict(DICT_ID_MIN)).unwrap();
        write_dict(&dir, 100, &zdict(DICT_ID_MIN + 1)).unwrap();
        write_dict(&dir, 200, &zdict(DICT_ID_MIN + 2)).unwrap();
        assert_eq!(retire_dicts(&dir, 50).unwrap(), 0);
        // damage the middle one: the first loses its successor's bound
        let name = dict_file_name(DICT_ID_MIN + 1);
        let f = dir.open(&name, OpenMode::ReadWrite).unwrap();
        write_all_at(&f, 40, &[&[0xFF]]).unwrap();
        assert_eq!(retire_dicts(&dir, 150).unwrap(), 0);
        assert_eq!(retire_dicts(&dir, 10_000).unwrap(), 0, "the damaged one and its predecessor stay");
        assert_eq!(list_dicts(&dir).unwrap().len(), 3);
        dir.remove(&name).unwrap();
        assert_eq!(retire_dicts(&dir, 150).unwrap(), 0, "150 < 200");
        assert_eq!(retire_dicts(&dir, 200).unwrap(), 1);
        assert_eq!(list_dicts(&dir).unwrap(), vec![DICT_ID_MIN + 2]);
    }
}

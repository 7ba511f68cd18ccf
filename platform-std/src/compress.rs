//! zstd through the `zstd` crate: the core's compressor (with the shard's
//! dictionary, when it has one), training, and decompression of any valid
//! frame (including frames written by other encoders, e.g. the Go
//! package's, and frames that name one of the shard's dictionaries).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{self, Read};
use std::path::Path;

use comet_core::platform::dict::{Samples, find_dict, refused_dict};
use comet_core::platform::wire::{Compressor, DICT_HEADER_LEN, DICT_MAX_BYTES, frame_content_size, frame_dict_id};
use comet_linux::DirStorage;

use crate::config::CompressionConfig;

/// The level dictionary frames are written at for `compression.level`
/// `level` (D-56): levels 1 to 3 all write at level 1, higher levels as
/// given. On short entries with a dictionary, levels 2 and 3 find no
/// better matches than level 1 (3.76x and 3.85x against 3.88x on the
/// benches' JSON lines) and level 3 costs 30-75 % more per frame, which
/// is most of an append's time (BENCHMARKS.md, *Dictionary appends*).
pub(crate) fn dict_level(level: i32) -> i32 {
    if (1..=3).contains(&level) { 1 } else { level }
}

/// The shard's compressor: plain zstd at a fixed level for payloads of at
/// least `min_compress_size`, and, once the shard has a dictionary, zstd
/// with it (at [`dict_level`]) for payloads of at least `dict_min_size`.
/// Before that, with dictionaries on, it keeps short payloads as training
/// samples.
pub(crate) struct Zstd {
    inner: Option<zstd::bulk::Compressor<'static>>,
    level: i32,
    plain_min: usize,
    dict_min: usize,
    /// The dictionary in use: its id and a context that has it loaded.
    dict: Option<(u32, zstd::bulk::Compressor<'static>)>,
    /// Training samples, while collecting.
    samples: Option<Samples>,
    dict_max: usize,
}

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zstd").field("dict", &self.dict.as_ref().map(|d| d.0)).finish_non_exhaustive()
    }
}

impl Zstd {
    /// A compressor for the `compression` settings (dictionaries start
    /// absent: see [`Zstd::use_dict`]).
    pub(crate) fn new(c: &CompressionConfig) -> Zstd {
        Zstd {
            // A context that fails to initialise just means "store raw".
            inner: zstd::bulk::Compressor::new(c.level).ok(),
            level: c.level,
            plain_min: c.min_compress_size as usize,
            dict_min: if c.dictionary { c.dict_min_size as usize } else { usize::MAX },
            dict: None,
            samples: c.dictionary.then(|| Samples::new(c.dict_min_size as usize, c.dict_sample_bytes as usize)),
            dict_max: c.dict_max_size as usize,
        }
    }

    /// Compresses with dictionary `id` (`dict`: the zstd dictionary bytes,
    /// already stored durably) from now on; stops collecting samples.
    pub(crate) fn use_dict(&mut self, id: u32, dict: &[u8]) -> io::Result<()> {
        let c = zstd::bulk::Compressor::with_dictionary(dict_level(self.level), dict)?;
        self.dict = Some((id, c));
        self.samples = None;
        Ok(())
    }

    /// The samples and the dictionary size to train, once enough samples
    /// were collected (they are handed over: collecting starts again, in
    /// case training fails).
    pub(crate) fn take_samples_if_ready(&mut self) -> Option<(Samples, usize)> {
        let s = self.samples.as_mut().filter(|s| s.is_full())?;
        Some((s.take(), self.dict_max))
    }
}

impl Compressor for Zstd {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        if src.len() >= self.dict_min {
            if let Some((_, c)) = self.dict.as_mut() {
                return c.compress_to_buffer(src, dst).ok();
            }
            if let Some(s) = self.samples.as_mut() {
                s.offer(src);
            }
        }
        if src.len() < self.plain_min {
            return None;
        }
        self.inner.as_mut()?.compress_to_buffer(src, dst).ok()
    }
}

/// Trains a zstd dictionary of at most `max_size` bytes on `samples`. Its
/// id is random: the writer sets the shard's next id before storing it.
pub(crate) fn train(samples: &Samples, max_size: usize) -> io::Result<Vec<u8>> {
    let parts: Vec<&[u8]> = samples.parts().collect();
    zstd::dict::from_samples(&parts, max_size)
}

/// Why a frame could not be decompressed.
#[derive(Debug)]
pub(crate) enum UnzstdError {
    /// The frame is damaged or larger than allowed (the decoder's error).
    Frame(io::Error),
    /// The frame names a dictionary the shard does not have.
    MissingDict(u32),
    /// Loading the dictionary failed (damaged file: `Corrupt`; I/O).
    Dict(comet_core::Error<io::Error>),
    /// The shard directory could not be opened to load a dictionary.
    DirIo(io::Error),
}

/// A zstd decompression context kept across entries (a reader holds one):
/// creating one per entry costs more than decompressing a short line.
/// Created on first use.
#[derive(Default)]
pub(crate) struct Unzstd {
    ctx: Option<zstd::bulk::Decompressor<'static>>,
    /// Contexts with one of the shard's dictionaries loaded, by id (each
    /// file is read and checked once while it stays here), at most
    /// [`DICT_CONTEXTS`] of them.
    dicts: HashMap<u32, Option<zstd::bulk::Decompressor<'static>>>,
}

/// Dictionary contexts a reader keeps: a shard uses its newest dictionary
/// and keeps older ones only while retained entries name them, so a few
/// cover sequential and random reads; frames naming more ids (a directory
/// built to make readers hold a megabyte-sized dictionary per id) reload
/// instead of growing the reader's memory.
pub(crate) const DICT_CONTEXTS: usize = 4;

impl std::fmt::Debug for Unzstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unzstd").field("ready", &self.ctx.is_some()).finish()
    }
}

impl Unzstd {
    /// [`decompress`] with this context; a frame that names a dictionary
    /// is decoded with the shard's `dict-<id>.zdict` from `dir`.
    pub(crate) fn decompress(&mut self, dir: &Path, frame: &[u8], max: usize) -> Result<Vec<u8>, UnzstdError> {
        let Some(id) =
            frame_dict_id(frame).map_err(|e| UnzstdError::Frame(io::Error::new(io::ErrorKind::InvalidData, e)))?
        else {
            return decompress_in(&mut self.ctx, frame, max).map_err(UnzstdError::Frame);
        };
        if self.dicts.len() >= DICT_CONTEXTS && !self.dicts.contains_key(&id) {
            // The lowest id: the oldest, retention's next to go.
            if let Some(old) = self.dicts.keys().copied().min() {
                self.dicts.remove(&old);
            }
        }
        let ctx = match self.dicts.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let storage = DirStorage::open_path(dir).map_err(UnzstdError::DirIo)?;
                let mut buf = Vec::new();
                if find_dict(&storage, id, DICT_MAX_BYTES, &mut buf).map_err(UnzstdError::Dict)?.is_none() {
                    return Err(UnzstdError::MissingDict(id));
                }
                let d = zstd::bulk::Decompressor::with_dictionary(buf.get(DICT_HEADER_LEN..).unwrap_or_default())
                    .map_err(|_| UnzstdError::Dict(refused_dict(id)))?;
                v.insert(Some(d))
            }
        };
        decompress_in(ctx, frame, max).map_err(UnzstdError::Frame)
    }
}

/// Decompresses one zstd frame with `ctx` (created on first use),
/// refusing content larger than `max` bytes.
fn decompress_in(ctx: &mut Option<zstd::bulk::Decompressor<'static>>, frame: &[u8], max: usize) -> io::Result<Vec<u8>> {
    let declared = frame_content_size(frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    match declared {
        Some(n) if n > max as u64 => {
            Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame declares {n} bytes, limit {max}")))
        }
        Some(n) => {
            if ctx.is_none() {
                *ctx = Some(zstd::bulk::Decompressor::new()?);
            }
            let capacity = usize::try_from(n).unwrap_or(max);
            let out = match ctx.as_mut() {
                Some(d) => d.decompress(frame, capacity)?,
                None => zstd::bulk::decompress(frame, capacity)?,
            };
            if out.len() as u64 != n {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "frame content size mismatch"));
            }
            Ok(out)
        }
        None => {
            let mut out = Vec::new();
            let dec = zstd::stream::read::Decoder::new(frame)?;
            dec.take(max as u64 + 1).read_to_end(&mut out)?;
            if out.len() > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame exceeds {max} bytes")));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests;

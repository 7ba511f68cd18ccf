//! zstd in pure Rust: the core's [`Compressor`] and [`Decompressor`]
//! without a C toolchain.
//!
//! * Compression is the core's small encoder
//!   ([`FrameEncoder`](comet_core::platform::wire::FrameEncoder), in
//!   `core/src/wire/encoder.rs`: greedy matching, Huffman literals, FSE
//!   sequences; about zstd's fastest level); the configured core
//!   `compression.level` does not apply here. Frames it writes are
//!   ordinary single-segment zstd frames (content size, no checksum) that
//!   the std crate's `zstd` reads, and this crate's decoder (`ruzstd`)
//!   reads the std crate's frames.
//! * The writer never produces ambiguous payloads: the core's
//!   `encode_payload` decides raw vs frame and wraps raw payloads that
//!   start with the zstd magic.
//! * The compressor allocates its buffers once, when it is built, and
//!   compressing allocates nothing (`ruzstd`'s `FrameCompressor` allocated
//!   about 72 times and 167 KB per frame, and its API offers no way to
//!   reuse those buffers). `tests/no_alloc.rs` proves it for appends.
//! * The decoder's window is capped ([`ZstdDecompressor::new`]), so a frame
//!   that declares a huge window is rejected instead of allocating.

use std::sync::{Arc, Mutex, PoisonError};

use comet_core::ShardId;
use comet_core::WireError;
use comet_core::platform::dict::{find_dict, refused_dict};
use comet_core::platform::storage::Storage;
use comet_core::platform::wire::DICT_HEADER_LEN;
use comet_core::platform::wire::{Compressor, Decompressor, FrameEncoder};
use ruzstd::decoding::{Dictionary, FrameDecoder};

/// The largest zstd dictionary this crate reads (the std crate trains
/// 16 KiB ones by default; the format allows 1 MiB). A larger one is a
/// typed error (`Capacity`), so the heap budget stays bounded.
pub const DICT_READ_MAX: usize = DICT_READ_BYTES as usize;
const DICT_READ_BYTES: u32 = 64 << 10;

/// The window floor of the decoder: frames written by earlier versions of
/// this crate (through `ruzstd`'s `FrameCompressor`) declare this window.
/// Frames written now are single-segment: their window is the entry.
pub const COMPRESS_WINDOW: usize = 128 * 1024;

/// The compressor: the core's [`FrameEncoder`], whose buffers (a hash table of
/// positions, literal and sequence scratch for one block) are sized for
/// `max_input` bytes when it is built and reused by every frame, which is
/// written straight into the caller's buffer. Shards of one log share one
/// through [`SharedCompressor`], so its memory is paid once.
pub struct ZstdCompressor {
    encoder: FrameEncoder,
    max_input: usize,
}

impl core::fmt::Debug for ZstdCompressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ZstdCompressor").field("max_input", &self.max_input).finish_non_exhaustive()
    }
}

impl ZstdCompressor {
    /// A compressor for payloads of up to `max_input` bytes (larger ones
    /// are not compressed: `compress` returns `None`).
    pub fn new(max_input: usize) -> ZstdCompressor {
        ZstdCompressor { encoder: FrameEncoder::new(max_input), max_input }
    }

    /// The heap a compressor for `max_input` bytes holds (all of it
    /// allocated by [`ZstdCompressor::new`]; compressing allocates nothing).
    pub fn heap_bytes(max_input: usize) -> usize {
        core::mem::size_of::<ZstdCompressor>() + FrameEncoder::heap_bytes(max_input)
    }
}

impl Compressor for ZstdCompressor {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        self.encoder.compress(src, dst)
    }
}

/// One [`ZstdCompressor`] shared by the shards of a log (they append one at
/// a time, so the lock is never contended within a log).
#[derive(Debug, Clone)]
pub struct SharedCompressor(Option<Arc<Mutex<ZstdCompressor>>>);

impl SharedCompressor {
    /// A shared compressor for payloads up to `max_input` bytes, or one
    /// that never compresses (`None`: nothing is allocated).
    pub fn new(max_input: Option<usize>) -> SharedCompressor {
        SharedCompressor(max_input.map(|m| Arc::new(Mutex::new(ZstdCompressor::new(m)))))
    }
}

impl Compressor for SharedCompressor {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        let inner = self.0.as_ref()?;
        let mut c = inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.compress(src, dst)
    }
}

/// The `ruzstd` frame decoder, reused across reads (its buffers are
/// allocated by the first frame and kept).
pub struct ZstdDecompressor {
    dec: FrameDecoder,
    max_window: u64,
    /// The one dictionary `dec` holds: which shard's, which id. Dictionary
    /// ids are per shard, so a frame of another shard, or another id,
    /// reloads.
    dict: Option<(ShardId, u32)>,
}

/// Why a dictionary could not be made ready.
#[derive(Debug)]
pub(crate) enum DictLoadError {
    /// The shard has no such dictionary file.
    Missing,
    /// The file is damaged, too large for this crate, or unreadable.
    Engine(comet_core::Error<std::io::Error>),
}

impl core::fmt::Debug for ZstdDecompressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ZstdDecompressor").finish_non_exhaustive()
    }
}

impl ZstdDecompressor {
    /// A decoder that rejects frames declaring a window above `max_window`
    /// bytes (this bounds its memory).
    pub fn new(max_window: u64) -> ZstdDecompressor {
        let mut dec = FrameDecoder::new();
        dec.set_max_window_size(max_window);
        ZstdDecompressor { dec, max_window, dict: None }
    }

    /// The heap a loaded dictionary may hold beyond the decoder: the file
    /// read once ([`DICT_READ_MAX`] + header) and `ruzstd`'s copy of its
    /// content and entropy tables.
    pub fn dict_heap_bytes() -> usize {
        2 * DICT_READ_MAX + DICT_HEADER_LEN + (64 << 10)
    }

    /// Makes dictionary `id` of `shard` (stored in `storage`) the one the
    /// decoder holds: loaded from `dict-<id>.zdict`, checked (CRC, ids) and
    /// decoded once; switching to another one rebuilds the decoder (it
    /// allocates then, like opening).
    pub(crate) fn ensure_dict<S>(&mut self, shard: ShardId, id: u32, storage: &S) -> Result<(), DictLoadError>
    where
        S: Storage<Error = std::io::Error>,
    {
        if self.dict == Some((shard, id)) {
            return Ok(());
        }
        let corrupt = || DictLoadError::Engine(refused_dict(id));
        // The budget counts one dictionary of at most DICT_READ_MAX bytes:
        // a larger one is refused by its file's size before it is read.
        let mut buf = Vec::new();
        if find_dict(storage, id, DICT_READ_BYTES, &mut buf).map_err(DictLoadError::Engine)?.is_none() {
            return Err(DictLoadError::Missing);
        }
        let raw = buf.get(DICT_HEADER_LEN..).unwrap_or_default();
        let dict = Dictionary::decode_dict(raw).map_err(|_| corrupt())?;
        if self.dict.is_some() {
            // Drop the previous dictionary (ruzstd keeps every one added).
            self.dec = FrameDecoder::new();
            self.dec.set_max_window_size(self.max_window);
            self.dict = None;
        }
        self.dec.add_dict(dict).map_err(|_| corrupt())?;
        self.dict = Some((shard, id));
        Ok(())
    }

    /// Decodes a small frame once so the decoder's buffers exist before
    /// the first real read (used at open, so reads do not allocate).
    pub fn warm_up(&mut self) {
        let mut frame = [0u8; 32];
        if let Ok(n) = comet_core::platform::wire::write_raw_frame(b"warm", &mut frame) {
            let mut out = [0u8; 4];
            let _ = self.decompress(&frame[..n], &mut out);
        }
    }
}

impl Decompressor for ZstdDecompressor {
    fn decompress(&mut self, frame: &[u8], dst: &mut [u8]) -> Result<usize, WireError> {
        if let Some(size) = comet_core::platform::wire::frame_content_size(frame)?
            && size > dst.len() as u64
        {
            return Err(WireError::OutputTooSmall { needed: size });
        }
        match self.dec.decode_all(frame, dst) {
            Ok(n) => Ok(n),
            Err(ruzstd::decoding::errors::FrameDecoderError::TargetTooSmall) => {
                Err(WireError::OutputTooSmall { needed: dst.len() as u64 + 1 })
            }
            Err(_) => Err(WireError::InvalidField { offset: 0 }),
        }
    }
}

#[cfg(test)]
mod tests;

//! zstd through pure-Rust `ruzstd`: the core's [`Compressor`] and
//! [`Decompressor`] without a C toolchain.
//!
//! * `ruzstd` compresses at its fastest level only (roughly zstd level 1);
//!   the configured core `compression.level` does not apply here. Frames it
//!   writes are ordinary zstd frames (128 KiB window, no checksum) that the
//!   std crate's `zstd` reads, and this decoder reads the std crate's frames.
//! * The writer never produces ambiguous payloads: the core's
//!   `encode_payload` decides raw vs frame and wraps raw payloads that
//!   start with the zstd magic.
//! * The compressor's matcher (window and hash tables) and its input and
//!   output buffers are allocated once and reused; each call still
//!   allocates transient scratch inside `ruzstd` (about 130 KiB for the
//!   block output plus entropy tables, freed before it returns), which is
//!   why compressed appends are outside the zero-allocation guarantee (see
//!   the crate docs).
//! * The decoder's window is capped ([`ZstdDecompressor::new`]), so a frame
//!   that declares a huge window is rejected instead of allocating.

use std::sync::{Arc, Mutex, PoisonError};

use comet_core::WireError;
use comet_core::platform::wire::{Compressor, Decompressor, ZSTD_MAGIC};
use ruzstd::decoding::FrameDecoder;
use ruzstd::encoding::{CompressionLevel, FrameCompressor, MatchGeneratorDriver};
use std::io::Cursor;

/// An owned output buffer with a limit; on overflow it keeps accepting (so
/// `ruzstd` never sees a write error, which it would `unwrap`) but
/// remembers that the frame did not fit.
#[derive(Default)]
struct Drain {
    buf: Vec<u8>,
    limit: usize,
    overflow: bool,
}

impl std::io::Write for Drain {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if !self.overflow && self.buf.len() + data.len() <= self.limit {
            self.buf.extend_from_slice(data);
        } else {
            self.overflow = true;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Window of the frames this compressor writes (the `ruzstd` default).
pub const COMPRESS_WINDOW: usize = 128 * 1024;

type Frames = FrameCompressor<Cursor<Vec<u8>>, Drain, MatchGeneratorDriver>;

/// The fastest-level `ruzstd` compressor. It keeps one `FrameCompressor`
/// (so the matcher's window and tables are allocated once) with owned
/// input and output buffers of `max_input` bytes; payloads are copied in
/// and frames out. Shards of one log share one through
/// [`SharedCompressor`], so its memory is paid once.
pub struct ZstdCompressor {
    frames: Frames,
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
        let mut frames = Frames::new(CompressionLevel::Fastest);
        frames.set_source(Cursor::new(Vec::with_capacity(max_input)));
        frames.set_drain(Drain { buf: Vec::with_capacity(max_input), limit: 0, overflow: false });
        ZstdCompressor { frames, max_input }
    }
}

impl Compressor for ZstdCompressor {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        if src.len() > self.max_input {
            return None;
        }
        let mut input = self.frames.take_source().unwrap_or_default();
        input.get_mut().clear();
        input.get_mut().extend_from_slice(src);
        input.set_position(0);
        let mut out = self.frames.take_drain().unwrap_or_default();
        out.buf.clear();
        out.limit = dst.len().min(self.max_input);
        out.overflow = false;
        self.frames.set_source(input);
        self.frames.set_drain(out);
        self.frames.compress();
        let out = self.frames.drain()?;
        let n = out.buf.len();
        if out.overflow || !out.buf.starts_with(&ZSTD_MAGIC) {
            return None;
        }
        dst.get_mut(..n)?.copy_from_slice(&out.buf);
        Some(n)
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
        ZstdDecompressor { dec }
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

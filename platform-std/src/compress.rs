//! zstd through the `zstd` crate: the core's compressor, and decompression
//! of any valid frame (including frames written by other encoders, e.g. the
//! Go package's).

use std::io::{self, Read};

use comet_core::platform::wire::{Compressor, frame_content_size};

/// A zstd compressor at a fixed level.
pub(crate) struct Zstd {
    inner: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zstd").finish_non_exhaustive()
    }
}

impl Zstd {
    pub(crate) fn new(level: i32) -> Zstd {
        // A context that fails to initialise just means "store raw".
        Zstd { inner: zstd::bulk::Compressor::new(level).ok() }
    }
}

impl Compressor for Zstd {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        self.inner.as_mut()?.compress_to_buffer(src, dst).ok()
    }
}

/// A zstd decompression context kept across entries (a reader holds one):
/// creating one per entry costs more than decompressing a short line.
/// Created on first use.
#[derive(Default)]
pub(crate) struct Unzstd {
    ctx: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for Unzstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unzstd").field("ready", &self.ctx.is_some()).finish()
    }
}

impl Unzstd {
    /// [`decompress`] with this context.
    pub(crate) fn decompress(&mut self, frame: &[u8], max: usize) -> io::Result<Vec<u8>> {
        decompress_in(&mut self.ctx, frame, max)
    }
}

/// Decompresses one zstd frame, refusing content larger than `max` bytes.
#[cfg(test)]
pub(crate) fn decompress(frame: &[u8], max: usize) -> io::Result<Vec<u8>> {
    decompress_in(&mut None, frame, max)
}

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
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use comet_core::platform::wire::{StoredPayload, ZSTD_MAGIC, encode_payload, raw_frame_len, write_raw_frame};

    #[test]
    fn compresses_when_smaller_and_roundtrips() {
        let mut z = Zstd::new(3);
        let payload = br#"{"level":"info","msg":"request served","path":"/api/v1/items","status":200}"#.repeat(60);
        let mut dst = vec![0u8; payload.len()];
        let StoredPayload::Frame(n) = encode_payload(&payload, 4096, &mut z, &mut dst).unwrap() else {
            panic!("not compressed")
        };
        assert!(n < payload.len() / 4);
        assert_eq!(decompress(&dst[..n], payload.len()).unwrap(), payload);
        assert!(decompress(&dst[..n], payload.len() - 1).is_err(), "limit enforced");
    }

    #[test]
    fn incompressible_payloads_stay_raw() {
        let mut z = Zstd::new(3);
        let payload = comet_core::sim::noise(8192, 0x1234_5678);
        let mut dst = vec![0u8; payload.len()];
        assert_eq!(encode_payload(&payload, 0, &mut z, &mut dst).unwrap(), StoredPayload::Raw);
    }

    #[test]
    fn raw_block_frames_decode_with_real_zstd() {
        let mut p = ZSTD_MAGIC.to_vec();
        p.extend_from_slice(&[7u8; 300_000]);
        let mut frame = vec![0u8; raw_frame_len(p.len())];
        write_raw_frame(&p, &mut frame).unwrap();
        assert_eq!(decompress(&frame, p.len()).unwrap(), p);
    }

    #[test]
    fn frames_without_a_content_size_are_bounded() {
        let data = vec![1u8; 10_000];
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &data).unwrap();
        let frame = enc.finish().unwrap();
        assert_eq!(frame_content_size(&frame).unwrap(), None);
        assert_eq!(decompress(&frame, 10_000).unwrap(), data);
        assert!(decompress(&frame, 9_999).is_err());
        assert!(decompress(&frame[..frame.len() - 3], 10_000).is_err());
    }

    #[test]
    fn one_context_decodes_many_frames_and_survives_bad_ones() {
        let mut z = Zstd::new(3);
        let mut u = Unzstd::default();
        for i in 0..50usize {
            let payload = format!("line {i} of a log, repeated. ").repeat(20 + i).into_bytes();
            let mut dst = vec![0u8; payload.len()];
            let StoredPayload::Frame(n) = encode_payload(&payload, 64, &mut z, &mut dst).unwrap() else {
                panic!("not compressed")
            };
            assert_eq!(u.decompress(&dst[..n], payload.len()).unwrap(), payload);
            // a damaged frame fails and leaves the context usable
            let mut bad = dst[..n].to_vec();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x5A;
            bad.truncate(n - 1);
            assert!(u.decompress(&bad, payload.len()).is_err());
            assert!(u.decompress(&dst[..n], payload.len() - 1).is_err(), "limit enforced");
        }
    }
}

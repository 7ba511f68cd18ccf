//! The zstd frame rules of the entry format.
//!
//! * A stored payload that starts with [`ZSTD_MAGIC`] is a zstd frame.
//! * The writer compresses a payload when it is at least
//!   `min_compress_size` bytes long *and* the frame is smaller.
//! * A raw payload that itself starts with the magic is never stored raw: it
//!   is stored compressed or, when that does not pay, wrapped by
//!   [`write_raw_frame`] in a frame of raw blocks (9 bytes plus 3 per
//!   128 KiB of payload), which every zstd decoder reads back unchanged.
//!
//! The core does not compress by itself: platforms plug in a
//! [`Compressor`] (`zstd` in `comet`, `ruzstd` in `comet-embedded`).

use super::WireError;
use super::le;

/// The zstd frame magic number as stored: `28 B5 2F FD` (0xFD2FB528 LE).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Largest raw block zstd allows.
const MAX_BLOCK: usize = 128 * 1024;
/// Magic, descriptor, 4-byte content size.
const RAW_FRAME_HEADER: usize = 4 + 1 + 4;
/// Frame header descriptor: FCS field 4 bytes (flag 2), single segment, no
/// checksum, no dictionary.
const RAW_FRAME_DESCRIPTOR: u8 = 0b1010_0000;

/// True if `payload` starts with the zstd magic, i.e. is stored as a frame.
pub fn is_frame(payload: &[u8]) -> bool {
    payload.starts_with(&ZSTD_MAGIC)
}

/// Compresses payloads into zstd frames.
pub trait Compressor {
    /// Compresses `src` into `dst` as one complete zstd frame and returns its
    /// length, or `None` if the frame does not fit in `dst` or compression
    /// failed. A returned frame must start with [`ZSTD_MAGIC`]; anything else
    /// is ignored and the payload is stored uncompressed.
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize>;
}

/// A compressor that never compresses (payloads that start with the zstd
/// magic are still wrapped in raw frames).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCompression;

impl Compressor for NoCompression {
    fn compress(&mut self, _src: &[u8], _dst: &mut [u8]) -> Option<usize> {
        None
    }
}

impl<C: Compressor + ?Sized> Compressor for &mut C {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        (**self).compress(src, dst)
    }
}

/// Decompresses zstd frames.
pub trait Decompressor {
    /// Decompresses one complete frame into `dst` and returns the number of
    /// bytes written; fails if the frame is damaged or its content does not
    /// fit in `dst`.
    fn decompress(&mut self, frame: &[u8], dst: &mut [u8]) -> Result<usize, WireError>;
}

/// Bytes [`write_raw_frame`] produces for a payload of `len` bytes.
pub const fn raw_frame_len(len: usize) -> usize {
    let blocks = if len == 0 { 1 } else { len.div_ceil(MAX_BLOCK) };
    RAW_FRAME_HEADER + 3 * blocks + len
}

/// The largest payload any configuration accepts: `storage.max_entry_size`
/// is at most this (1 GiB).
pub const ENTRY_SIZE_LIMIT: u32 = 1 << 30;

/// The largest stored length (header excluded) that scanners, recovery,
/// chunk checks and readers accept, whatever their own configuration: a
/// maximal payload wrapped in a raw frame. An entry written under a larger
/// `max_entry_size` than the reader's is valid data, never damage; a
/// platform that cannot hold it says so with a typed error at the read.
#[allow(clippy::cast_possible_truncation)] // 1 GiB and its frame overhead: far below 4 GiB
pub const STORED_LIMIT: u32 = raw_frame_len(ENTRY_SIZE_LIMIT as usize) as u32;

/// Writes `payload` into `dst` as a zstd frame of raw (stored) blocks and
/// returns the frame length. Fails if `dst` is too small or the payload is
/// 4 GiB or longer.
pub fn write_raw_frame(payload: &[u8], dst: &mut [u8]) -> Result<usize, WireError> {
    let need = raw_frame_len(payload.len());
    let size = u32::try_from(payload.len())
        .map_err(|_| WireError::TooLarge { len: payload.len() as u64, max: u64::from(u32::MAX) })?;
    let Some(out) = dst.get_mut(..need) else {
        return Err(WireError::OutputTooSmall { needed: need as u64 });
    };
    out[..4].copy_from_slice(&ZSTD_MAGIC);
    out[4] = RAW_FRAME_DESCRIPTOR;
    out[5..9].copy_from_slice(&size.to_le_bytes());
    let mut at = RAW_FRAME_HEADER;
    let mut chunks = payload.chunks(MAX_BLOCK).peekable();
    if payload.is_empty() {
        out[at..at + 3].copy_from_slice(&1u32.to_le_bytes()[..3]);
        return Ok(need);
    }
    while let Some(chunk) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        // Block_Size (21 bits) << 3 | Block_Type raw (0) << 1 | Last_Block.
        #[allow(clippy::cast_possible_truncation)]
        let bh = ((chunk.len() as u32) << 3) | last;
        out[at..at + 3].copy_from_slice(&bh.to_le_bytes()[..3]);
        at += 3;
        out[at..at + chunk.len()].copy_from_slice(chunk);
        at += chunk.len();
    }
    Ok(need)
}

/// The parsed frame header: where blocks start and the declared content size.
struct FrameHeader {
    blocks_at: usize,
    content_size: Option<u64>,
    checksum: bool,
    /// The Dictionary_ID field; 0 or absent means "no dictionary".
    dict_id: Option<u32>,
}

fn parse_frame_header(frame: &[u8]) -> Result<FrameHeader, WireError> {
    if frame.len() < 5 {
        return Err(WireError::Truncated { needed: 5, available: frame.len() as u64 });
    }
    if !is_frame(frame) {
        return Err(WireError::BadMagic);
    }
    let fhd = frame[4];
    if fhd & 0b0000_1000 != 0 {
        return Err(WireError::InvalidField { offset: 4 });
    }
    let single_segment = fhd & 0b0010_0000 != 0;
    let fcs_flag = fhd >> 6;
    let dict_len = [0usize, 1, 2, 4][usize::from(fhd & 0b11)];
    let fcs_len = match (fcs_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let dict_at = 5 + usize::from(!single_segment);
    let dict_id = match dict_len {
        0 => None,
        1 => frame.get(dict_at).map(|&b| u32::from(b)),
        2 => le::u16_at(frame, dict_at).map(u32::from),
        _ => le::u32_at(frame, dict_at),
    };
    if dict_len > 0 && dict_id.is_none() {
        return Err(WireError::Truncated { needed: (dict_at + dict_len) as u64, available: frame.len() as u64 });
    }
    let mut at = dict_at + dict_len;
    let content_size = match fcs_len {
        0 => None,
        1 => frame.get(at).map(|&b| u64::from(b)),
        2 => le::u16_at(frame, at).map(|v| u64::from(v) + 256),
        4 => le::u32_at(frame, at).map(u64::from),
        _ => le::u64_at(frame, at),
    };
    if fcs_len > 0 && content_size.is_none() {
        return Err(WireError::Truncated { needed: (at + fcs_len) as u64, available: frame.len() as u64 });
    }
    at += fcs_len;
    if at > frame.len() {
        return Err(WireError::Truncated { needed: at as u64, available: frame.len() as u64 });
    }
    Ok(FrameHeader { blocks_at: at, content_size, checksum: fhd & 0b100 != 0, dict_id: dict_id.filter(|&d| d != 0) })
}

/// The dictionary a frame needs: its header's Dictionary_ID, `None` when
/// the field is absent or 0 (no dictionary). Fails like
/// [`frame_content_size`] on a damaged header.
pub fn frame_dict_id(frame: &[u8]) -> Result<Option<u32>, WireError> {
    parse_frame_header(frame).map(|h| h.dict_id)
}

/// The content size a frame header declares, if it declares one.
pub fn frame_content_size(frame: &[u8]) -> Result<Option<u64>, WireError> {
    parse_frame_header(frame).map(|h| h.content_size)
}

/// Decodes frames made only of raw and RLE blocks — the frames
/// [`write_raw_frame`] produces. Frames with compressed blocks give
/// [`WireError::UnsupportedFrame`]; platforms use a real zstd decoder.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawFrameDecoder;

impl Decompressor for RawFrameDecoder {
    fn decompress(&mut self, frame: &[u8], dst: &mut [u8]) -> Result<usize, WireError> {
        let h = parse_frame_header(frame)?;
        let mut at = h.blocks_at;
        let mut out = 0usize;
        loop {
            let Some(bh) = frame.get(at..at + 3) else {
                return Err(WireError::Truncated { needed: at as u64 + 3, available: frame.len() as u64 });
            };
            let bh = u32::from(bh[0]) | u32::from(bh[1]) << 8 | u32::from(bh[2]) << 16;
            at += 3;
            let last = bh & 1 == 1;
            let size = (bh >> 3) as usize;
            if size > MAX_BLOCK {
                return Err(WireError::TooLarge { len: size as u64, max: MAX_BLOCK as u64 });
            }
            let Some(dst_block) = dst.get_mut(out..out + size) else {
                return Err(WireError::OutputTooSmall { needed: (out + size) as u64 });
            };
            match (bh >> 1) & 0b11 {
                0 => {
                    let Some(src) = frame.get(at..at + size) else {
                        return Err(WireError::Truncated { needed: (at + size) as u64, available: frame.len() as u64 });
                    };
                    dst_block.copy_from_slice(src);
                    at += size;
                }
                1 => {
                    let Some(&b) = frame.get(at) else {
                        return Err(WireError::Truncated { needed: at as u64 + 1, available: frame.len() as u64 });
                    };
                    dst_block.fill(b);
                    at += 1;
                }
                2 => return Err(WireError::UnsupportedFrame),
                _ => {
                    return Err(WireError::InvalidField { offset: crate::num::at32(at - 3) });
                }
            }
            out += size;
            if last {
                break;
            }
        }
        if h.checksum {
            at += 4;
        }
        if at != frame.len() {
            return Err(WireError::InvalidField { offset: crate::num::at32(at.min(frame.len())) });
        }
        if h.content_size.is_some_and(|c| c != out as u64) {
            return Err(WireError::InvalidField { offset: 5 });
        }
        Ok(out)
    }
}

/// How a payload is stored, as decided by [`encode_payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredPayload {
    /// Store the payload bytes unchanged.
    Raw,
    /// Store the first `n` bytes of the output buffer: a zstd frame.
    Frame(usize),
}

/// Decides how to store `payload` and, for frames, writes the frame into
/// `dst`.
///
/// Compresses when `payload.len() >= min_compress_size` and the frame is
/// smaller than the payload. A payload that starts with the zstd magic is
/// always stored as a frame (compressed if that is smaller, else raw
/// blocks); `dst` must then hold at least [`raw_frame_len`] bytes, or
/// [`WireError::OutputTooSmall`] is returned. For other payloads a `dst` too
/// small for a frame just means "store raw".
pub fn encode_payload<C: Compressor + ?Sized>(
    payload: &[u8],
    min_compress_size: usize,
    compressor: &mut C,
    dst: &mut [u8],
) -> Result<StoredPayload, WireError> {
    let magic = is_frame(payload);
    if payload.len() >= min_compress_size || magic {
        // Only frames smaller than the payload (or its raw frame) are worth it.
        let limit = if magic { raw_frame_len(payload.len()) } else { payload.len() };
        let room = dst.len().min(limit.saturating_sub(1));
        if let Some(n) = compressor.compress(payload, &mut dst[..room])
            && n <= room
            && is_frame(&dst[..n])
        {
            return Ok(StoredPayload::Frame(n));
        }
    }
    if magic {
        return write_raw_frame(payload, dst).map(StoredPayload::Frame);
    }
    Ok(StoredPayload::Raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn roundtrip_raw(payload: &[u8]) {
        let mut frame = vec![0u8; raw_frame_len(payload.len())];
        let n = write_raw_frame(payload, &mut frame).unwrap();
        assert_eq!(n, frame.len());
        assert!(is_frame(&frame));
        assert_eq!(frame_content_size(&frame).unwrap(), Some(payload.len() as u64));
        let mut out = vec![0u8; payload.len()];
        assert_eq!(RawFrameDecoder.decompress(&frame, &mut out).unwrap(), payload.len());
        assert_eq!(out, payload);
    }

    #[test]
    fn raw_frames_roundtrip() {
        roundtrip_raw(b"");
        roundtrip_raw(&ZSTD_MAGIC);
        roundtrip_raw(&[0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3]);
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        roundtrip_raw(&big);
        roundtrip_raw(&big[..MAX_BLOCK]);
        roundtrip_raw(&big[..MAX_BLOCK + 1]);
    }

    #[test]
    fn golden_raw_frame() {
        let mut frame = [0u8; 12];
        assert_eq!(write_raw_frame(b"", &mut frame), Ok(12));
        assert_eq!(frame, [0x28, 0xB5, 0x2F, 0xFD, 0xA0, 0, 0, 0, 0, 0x01, 0, 0]);
        let mut frame = [0u8; 14];
        write_raw_frame(b"hi", &mut frame).unwrap();
        assert_eq!(&frame[9..12], &[0x11, 0, 0], "size 2 << 3 | last");
    }

    #[test]
    fn dictionary_ids_are_read_from_the_header() {
        let mut frame = [0u8; 12];
        write_raw_frame(b"", &mut frame).unwrap();
        assert_eq!(frame_dict_id(&frame), Ok(None));
        // single segment, 1-byte FCS, 4-byte dictionary id
        let f = [0x28, 0xB5, 0x2F, 0xFD, 0b0010_0011, 0x01, 0x80, 0, 0, 5, 1, 0, 0];
        assert_eq!(frame_dict_id(&f), Ok(Some(0x8001)));
        assert_eq!(frame_content_size(&f), Ok(Some(5)));
        // 1- and 2-byte ids; id 0 means none
        let f = [0x28, 0xB5, 0x2F, 0xFD, 0b0010_0001, 7, 5];
        assert_eq!(frame_dict_id(&f), Ok(Some(7)));
        let f = [0x28, 0xB5, 0x2F, 0xFD, 0b0010_0010, 0, 0, 5];
        assert_eq!(frame_dict_id(&f), Ok(None));
        // truncated inside the id
        let f = [0x28, 0xB5, 0x2F, 0xFD, 0b0010_0011, 0x01, 0x80];
        assert!(matches!(frame_dict_id(&f), Err(WireError::Truncated { .. })));
    }

    #[test]
    fn raw_frame_needs_room() {
        let mut small = [0u8; 10];
        assert_eq!(write_raw_frame(b"abc", &mut small), Err(WireError::OutputTooSmall { needed: 15 }));
    }

    #[test]
    fn decoder_rejects_damage() {
        let mut frame = vec![0u8; raw_frame_len(5)];
        write_raw_frame(b"hello", &mut frame).unwrap();
        let mut out = [0u8; 5];
        for cut in 0..frame.len() {
            assert!(RawFrameDecoder.decompress(&frame[..cut], &mut out).is_err(), "cut {cut}");
        }
        let mut small = [0u8; 4];
        assert!(matches!(RawFrameDecoder.decompress(&frame, &mut small), Err(WireError::OutputTooSmall { .. })));
        let mut bad = frame.clone();
        bad[4] |= 0b1000; // reserved bit
        assert!(RawFrameDecoder.decompress(&bad, &mut out).is_err());
    }

    /// A compressor that "compresses" by writing a raw frame with one byte cut
    /// off the declared content — good enough to test the decision logic.
    struct Shrinker(usize);
    impl Compressor for Shrinker {
        fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
            let n = src.len().saturating_sub(self.0).max(4);
            if dst.len() < n {
                return None;
            }
            dst[..4].copy_from_slice(&ZSTD_MAGIC);
            Some(n)
        }
    }

    #[test]
    fn compress_only_when_large_enough_and_smaller() {
        let mut dst = vec![0u8; 1 << 16];
        let payload = vec![b'a'; 100];
        assert_eq!(encode_payload(&payload, 101, &mut Shrinker(10), &mut dst), Ok(StoredPayload::Raw));
        assert_eq!(encode_payload(&payload, 100, &mut Shrinker(10), &mut dst), Ok(StoredPayload::Frame(90)));
        // not smaller: stored raw
        assert_eq!(encode_payload(&payload, 0, &mut Shrinker(0), &mut dst), Ok(StoredPayload::Raw));
        assert_eq!(encode_payload(&payload, 0, &mut NoCompression, &mut dst), Ok(StoredPayload::Raw));
    }

    #[test]
    fn magic_payloads_are_never_stored_raw() {
        let mut dst = vec![0u8; 1 << 16];
        let mut payload = ZSTD_MAGIC.to_vec();
        payload.extend_from_slice(b"not really zstd");
        let got = encode_payload(&payload, usize::MAX, &mut NoCompression, &mut dst).unwrap();
        let StoredPayload::Frame(n) = got else { panic!("stored raw") };
        let mut out = vec![0u8; payload.len()];
        RawFrameDecoder.decompress(&dst[..n], &mut out).unwrap();
        assert_eq!(out, payload);
        // too little room for the raw frame is an error, not a raw store
        let mut tiny = [0u8; 8];
        assert!(encode_payload(&payload, usize::MAX, &mut NoCompression, &mut tiny).is_err());
    }
}

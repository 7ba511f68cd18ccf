//! The core's zstd frame encoder: every frame it returns decodes (with
//! `ruzstd`) to exactly its input, and an output buffer too small for the
//! frame yields `None`, never a panic or a write past the buffer.
#![no_main]

use comet_core::platform::wire::{FrameEncoder, frame_content_size, raw_frame_len};
use libfuzzer_sys::fuzz_target;
use ruzstd::decoding::FrameDecoder;

/// Decodes `frame` and asserts it holds exactly `data`.
fn assert_roundtrip(frame: &[u8], data: &[u8]) {
    assert_eq!(frame_content_size(frame), Ok(Some(data.len() as u64)));
    let mut dec = FrameDecoder::new();
    let mut out = vec![0u8; data.len()];
    let n = dec.decode_all(frame, &mut out).expect("the encoder's frames decode");
    assert_eq!(n, data.len());
    assert!(out == data, "decoded other bytes");
}

fuzz_target!(|data: &[u8]| {
    let (ctl, data) = data.split_first().map_or((0, data), |(&c, d)| (c, d));
    // A roomy buffer: a raw frame's room always fits.
    let mut enc = FrameEncoder::new(data.len().max(1));
    let mut dst = vec![0u8; raw_frame_len(data.len())];
    let n = enc.compress(data, &mut dst).expect("a raw frame's room always fits");
    assert!(n <= dst.len());
    assert_roundtrip(&dst[..n], data);
    // The same encoder again (the hash table carries positions of the
    // earlier frame, which must not leak into this one).
    let n2 = enc.compress(data, &mut dst).expect("reusable");
    assert_roundtrip(&dst[..n2], data);
    // A small output limit: a frame or None, never a panic.
    let limit = usize::from(ctl) % (n + 1);
    let mut small = vec![0u8; limit];
    if let Some(m) = enc.compress(data, &mut small) {
        assert!(m <= limit);
        assert_roundtrip(&small[..m], data);
    }
    // Inputs above the encoder's limit are not compressed.
    if !data.is_empty() {
        let mut tiny = FrameEncoder::new(data.len() - 1);
        assert_eq!(tiny.compress(data, &mut dst), None);
    }
});

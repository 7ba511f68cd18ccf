#![allow(clippy::cast_possible_truncation)] // test data generators keep low bits on purpose

use super::*;
use comet_core::platform::wire::{StoredPayload, ZSTD_MAGIC, encode_payload, raw_frame_len};
use comet_core::sim::json_lines;

fn roundtrip(c: &mut ZstdCompressor, d: &mut ZstdDecompressor, data: &[u8]) -> usize {
    let mut frame = vec![0u8; raw_frame_len(data.len())];
    let n = c.compress(data, &mut frame).expect("compressible");
    let mut out = vec![0u8; data.len()];
    assert_eq!(d.decompress(&frame[..n], &mut out).unwrap(), data.len());
    assert_eq!(out, data);
    n
}

#[test]
fn frames_roundtrip_and_the_compressor_is_reusable() {
    let mut c = ZstdCompressor::new(1 << 20);
    let mut d = ZstdDecompressor::new(1 << 20);
    d.warm_up();
    for n in [1, 10, 100, 1000, 3000] {
        roundtrip(&mut c, &mut d, &json_lines(n));
    }
    roundtrip(&mut c, &mut d, &vec![7u8; 300_000]);
}

#[test]
fn damaged_frames_are_errors() {
    let mut c = ZstdCompressor::new(1 << 16);
    let mut d = ZstdDecompressor::new(1 << 20);
    let data = json_lines(50);
    let mut frame = vec![0u8; data.len()];
    let n = c.compress(&data, &mut frame).unwrap();
    let mut out = vec![0u8; data.len()];
    let mut small = vec![0u8; data.len() - 1];
    assert!(d.decompress(&frame[..n], &mut small).is_err());
    for cut in [0, 3, 5, n / 2, n - 1] {
        assert!(d.decompress(&frame[..cut], &mut out).is_err(), "cut {cut}");
    }
    let mut flips = 0;
    for i in (4..n).step_by(7) {
        let mut bad = frame[..n].to_vec();
        bad[i] ^= 0x5A;
        // must not panic; most flips are detected, some decode to junk
        if d.decompress(&bad, &mut out).is_err() {
            flips += 1;
        }
    }
    assert!(flips > 0);
    assert_eq!(d.decompress(&frame[..n], &mut out).unwrap(), data.len());
}

#[test]
fn huge_declared_windows_are_refused() {
    // A frame header declaring a 2 GiB window (descriptor without single
    // segment, window descriptor exponent 21).
    let frame = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xA8, 0x01, 0x00, 0x00];
    let mut d = ZstdDecompressor::new(1 << 20);
    assert!(d.decompress(&frame, &mut [0u8; 64]).is_err());
}

#[test]
fn payloads_with_the_magic_are_never_stored_raw() {
    let mut c = SharedCompressor::new(Some(1 << 16));
    let mut p = ZSTD_MAGIC.to_vec();
    p.extend_from_slice(b"not a frame at all");
    let mut dst = vec![0u8; raw_frame_len(p.len())];
    let got = encode_payload(&p, 0, &mut c, &mut dst).unwrap();
    let StoredPayload::Frame(n) = got else { panic!("stored raw") };
    let mut d = ZstdDecompressor::new(1 << 20);
    let mut out = vec![0u8; p.len()];
    assert_eq!(d.decompress(&dst[..n], &mut out).unwrap(), p.len());
    assert_eq!(out, p);
    let mut off = SharedCompressor::new(None);
    assert_eq!(off.compress(&p, &mut dst), None);
}

/// The ratio `ruzstd`'s fastest level gets on JSON log lines, printed for
/// the comet-embedded section of BENCHMARKS.md (`cargo test -p
/// comet-embedded --release json_ratio -- --nocapture`).
#[test]
fn json_ratio() {
    let mut c = ZstdCompressor::new(1 << 20);
    let mut d = ZstdDecompressor::new(1 << 20);
    let one = json_lines(1);
    for lines in [1usize, 4, 16, 64, 256, 1024] {
        let data = json_lines(lines);
        let mut frame = vec![0u8; raw_frame_len(data.len())];
        let n = c.compress(&data, &mut frame).unwrap_or(data.len());
        if n < data.len() {
            roundtrip(&mut c, &mut d, &data);
        }
        let ratio = data.len() as f64 / n as f64;
        println!("json_ratio: {lines:5} lines/entry, {:7} B raw -> {:7} B stored, ratio {ratio:.2}", data.len(), n);
        if lines >= 16 {
            assert!(ratio > 2.0, "{lines} lines: {ratio}");
        }
    }
    assert!(one.len() > 100);
}

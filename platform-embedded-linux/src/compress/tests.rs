#![allow(clippy::cast_possible_truncation)] // test data generators keep low bits on purpose

use super::*;
use comet_core::platform::wire::{StoredPayload, encode_payload, raw_frame_len};

fn json_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(
            format!(
                "{{\"ts\":\"2025-06-01T12:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\"svc\":\"edge-agent\",\"host\":\"gw-{:03}\",\"msg\":\"sent batch\",\"batch\":{},\"bytes\":{},\"latency_ms\":{}}}\n",
                i / 60 % 60,
                i % 60,
                i * 7 % 1000,
                ["info", "warn", "debug"][i % 3],
                i % 17,
                i,
                1000 + i * 37 % 9000,
                i * 13 % 250
            )
            .as_bytes(),
        );
    }
    out
}

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

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Inputs for every path of the encoder: empty and tiny, one repeated
/// byte (run-length literals), incompressible (raw blocks), bytes above
/// 128 (raw literals), text (Huffman literals, one and four streams),
/// skewed symbol counts (length-limited Huffman codes), 4-byte words
/// (tens of thousands of sequences per block), several blocks with
/// matches across them, and random mixes of literals and copies.
fn shapes() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out: Vec<Vec<u8>> = vec![vec![], vec![7], b"abc".to_vec(), b"abcd".to_vec(), b"abcdabcdabcd".to_vec()];
    out.push(vec![0u8; 5000]);
    out.push(vec![0xEEu8; 200_000]);
    out.push((0..70_000).map(|_| rng.next() as u8).collect());
    out.push((0..3000).map(|i| 128 + (i * 7 % 97) as u8 + (rng.below(4) as u8)).collect());
    for n in [1, 2, 5, 9, 30, 200, 1000, 3000] {
        out.push(json_lines(n));
    }
    let mut skewed = Vec::new();
    let (mut a, mut b) = (1usize, 1usize);
    for sym in 0..22u8 {
        skewed.extend(std::iter::repeat_n(b'a' + sym, a));
        (a, b) = (b, a + b);
    }
    for i in (1..skewed.len()).rev() {
        skewed.swap(i, rng.below(i + 1));
    }
    out.push(skewed);
    let words: Vec<[u8; 4]> = (0..1024).map(|_| (rng.next() as u32).to_le_bytes()).collect();
    out.push((0..70_000).flat_map(|_| words[rng.below(1024)]).collect());
    let mut mixed = json_lines(1500);
    mixed.extend((0..50_000).map(|_| rng.next() as u8));
    mixed.extend(json_lines(1500));
    out.push(mixed);
    for _ in 0..300 {
        let len = rng.below(6000);
        let alphabet = 1 + rng.below(256);
        let mut v: Vec<u8> = Vec::with_capacity(len);
        while v.len() < len {
            if v.len() > 8 && rng.below(3) == 0 {
                let from = rng.below(v.len() - 4);
                let n = (4 + rng.below(40)).min(v.len() - from).min(len - v.len());
                v.extend_from_within(from..from + n);
            } else {
                v.push(rng.below(alphabet) as u8);
            }
        }
        out.push(v);
    }
    out
}

#[test]
fn frames_decode_with_ruzstd_and_the_reference_zstd() {
    let mut c = ZstdCompressor::new(1 << 20);
    let mut d = ZstdDecompressor::new(1 << 20);
    for data in shapes() {
        let mut frame = vec![0u8; raw_frame_len(data.len())];
        let n = c.compress(&data, &mut frame).expect("a raw frame's room always fits");
        let frame = &frame[..n];
        assert_eq!(comet_core::platform::wire::frame_content_size(frame).unwrap(), Some(data.len() as u64));
        let mut out = vec![0u8; data.len()];
        assert_eq!(d.decompress(frame, &mut out).unwrap(), data.len(), "ruzstd, {} bytes", data.len());
        assert!(out == data, "ruzstd decoded other bytes ({} bytes)", data.len());
        let reference = zstd::bulk::decompress(frame, data.len()).expect("reference zstd decodes it");
        assert!(reference == data, "zstd decoded other bytes ({} bytes)", data.len());
    }
}

/// Paths ordinary inputs rarely take, driven directly: a block of more
/// than 0x7F00 sequences (the 3-byte count) and literals that are one
/// byte repeated (run-length literals).
#[test]
fn rare_block_layouts_decode() {
    let mut c = ZstdCompressor::new(1 << 20);
    let e = &mut c.encoder;
    let cases: [(&[u8], u32, usize); 3] = [(b"abcdefgh", 33_000, 3), (&[b'x'; 40], 0, 0), (b"0123456789", 300, 10)];
    for (lits, count, ml) in cases {
        e.lits.clear();
        e.lits.extend_from_slice(lits);
        e.seqs.clear();
        let mut content = lits.to_vec();
        let off = lits.len();
        for i in 0..count {
            let lit = if i == 0 { off as u32 } else { 0 };
            e.seqs.push(encoder::Seq { lit, ml: ml as u32, off: off as u32 + 3 });
            let at = content.len() - off;
            content.extend_from_within(at..at + ml);
        }
        let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0xA0];
        frame.extend_from_slice(&(content.len() as u32).to_le_bytes());
        let mut block = vec![0u8; content.len()];
        let n = e.compressed_block(&mut block).expect("fits");
        frame.extend_from_slice(&(((n as u32) << 3) | (2 << 1) | 1).to_le_bytes()[..3]);
        frame.extend_from_slice(&block[..n]);
        let mut d = ZstdDecompressor::new(1 << 20);
        let mut out = vec![0u8; content.len()];
        assert_eq!(d.decompress(&frame, &mut out).unwrap(), content.len());
        assert!(out == content);
        assert!(zstd::bulk::decompress(&frame, content.len()).unwrap() == content);
    }
}

#[test]
fn a_frame_that_does_not_fit_is_none_not_a_panic() {
    let mut c = ZstdCompressor::new(1 << 16);
    let data = json_lines(100);
    let mut tiny = [0u8; 16];
    assert_eq!(c.compress(&data, &mut tiny), None);
    assert_eq!(c.compress(&vec![1u8; (1 << 16) + 1], &mut [0u8; 1 << 17]), None);
    let mut frame = vec![0u8; data.len()];
    assert!(c.compress(&data, &mut frame).is_some(), "still usable");
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

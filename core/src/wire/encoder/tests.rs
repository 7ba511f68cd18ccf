//! The encoder's frames against two independent decoders: `ruzstd`'s and
//! the reference C zstd.
#![allow(clippy::cast_possible_truncation)] // test data generators keep low bits on purpose

use super::*;
use crate::sim::json_lines;
use crate::wire::{frame_content_size, raw_frame_len};
use std::vec;
use std::vec::Vec;

/// Decodes `frame` with both decoders; both must give back `expected`.
fn decodes_to(frame: &[u8], expected: &[u8]) {
    let mut d = ruzstd::decoding::FrameDecoder::new();
    d.set_max_window_size(1 << 20);
    let mut out = vec![0u8; expected.len()];
    assert_eq!(d.decode_all(frame, &mut out).expect("ruzstd decodes it"), expected.len(), "ruzstd");
    assert!(out == expected, "ruzstd decoded other bytes ({} bytes)", expected.len());
    let reference = zstd::bulk::decompress(frame, expected.len()).expect("reference zstd decodes it");
    assert!(reference == expected, "zstd decoded other bytes ({} bytes)", expected.len());
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
        skewed.extend(core::iter::repeat_n(b'a' + sym, a));
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
    let mut e = FrameEncoder::new(1 << 20);
    for data in shapes() {
        let mut frame = vec![0u8; raw_frame_len(data.len())];
        let n = e.compress(&data, &mut frame).expect("a raw frame's room always fits");
        let frame = &frame[..n];
        assert_eq!(frame_content_size(frame).unwrap(), Some(data.len() as u64));
        decodes_to(frame, &data);
    }
}

#[test]
fn text_compresses() {
    let mut e = FrameEncoder::new(1 << 20);
    let data = json_lines(64);
    let mut frame = vec![0u8; raw_frame_len(data.len())];
    let n = e.compress(&data, &mut frame).unwrap();
    assert!(n * 2 < data.len(), "{} -> {n}", data.len());
    decodes_to(&frame[..n], &data);
}

/// Paths ordinary inputs rarely take, driven directly: a block of more
/// than 0x7F00 sequences (the 3-byte count) and literals that are one
/// byte repeated (run-length literals).
#[test]
fn rare_block_layouts_decode() {
    let mut e = FrameEncoder::new(1 << 20);
    let cases: [(&[u8], u32, usize); 3] = [(b"abcdefgh", 33_000, 3), (&[b'x'; 40], 0, 0), (b"0123456789", 300, 10)];
    for (lits, count, ml) in cases {
        e.lits.clear();
        e.lits.extend_from_slice(lits);
        e.seqs.clear();
        let mut content = lits.to_vec();
        let off = lits.len();
        for i in 0..count {
            let lit = if i == 0 { off as u32 } else { 0 };
            e.seqs.push(Seq { lit, ml: ml as u32, off: off as u32 + 3 });
            let at = content.len() - off;
            content.extend_from_within(at..at + ml);
        }
        let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0xA0];
        frame.extend_from_slice(&(content.len() as u32).to_le_bytes());
        let mut block = vec![0u8; content.len()];
        let n = e.compressed_block(&mut block).expect("fits");
        frame.extend_from_slice(&(((n as u32) << 3) | (2 << 1) | 1).to_le_bytes()[..3]);
        frame.extend_from_slice(&block[..n]);
        decodes_to(&frame, &content);
    }
}

#[test]
fn a_frame_that_does_not_fit_is_none_not_a_panic() {
    let mut e = FrameEncoder::new(1 << 16);
    let data = json_lines(100);
    for room in [0, 1, 4, 5, 8, 16, 100] {
        assert_eq!(e.compress(&data, &mut vec![0u8; room]), None, "{room} bytes");
    }
    assert_eq!(e.compress(&vec![1u8; (1 << 16) + 1], &mut [0u8; 1 << 17]), None, "above max_input");
    let mut frame = vec![0u8; data.len()];
    let n = e.compress(&data, &mut frame).expect("still usable");
    decodes_to(&frame[..n], &data);
}

#[test]
fn it_is_a_compressor_for_encode_payload() {
    use crate::wire::{StoredPayload, encode_payload};
    let mut e = FrameEncoder::new(1 << 16);
    let data = json_lines(20);
    let mut dst = vec![0u8; raw_frame_len(data.len())];
    let StoredPayload::Frame(n) = encode_payload(&data, 0, &mut e, &mut dst).unwrap() else { panic!("stored raw") };
    decodes_to(&dst[..n], &data);
}

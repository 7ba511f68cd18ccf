//! A small zstd frame encoder that allocates only when it is built
//! (feature `alloc`; exported as `platform::wire::FrameEncoder`).
//!
//! `ruzstd` 0.9.1's `FrameCompressor` allocates on every frame (a 130 KiB
//! output buffer, the literal and sequence vectors, new FSE and Huffman
//! tables: about 72 allocations and 167 KB per compressed append, see
//! BENCHMARKS.md), and its API offers no way to hand it reusable buffers.
//! This encoder writes the same kind of standard frames with buffers sized
//! once for the largest input:
//!
//! * a single-segment frame with its content size (the window is the
//!   entry itself, so the decoder's window cap holds), no checksum;
//! * blocks of up to 128 KiB: compressed, or raw where compressing does
//!   not shrink them;
//! * a greedy LZ77 matcher over one hash table of positions (4-byte
//!   matches, the whole frame as window);
//! * literals Huffman-coded (direct weights, symbols up to 128: text),
//!   else run-length or raw;
//! * sequences FSE-coded with tables normalized from the block's own codes
//!   and written into the block (never the predefined tables: `ruzstd`'s
//!   decoder allocates each time it builds those).
//!
//! The output is written straight into the caller's buffer; a frame that
//! does not fit yields `None`. It is codec logic only (no I/O, no locks), so
//! it lives here for every platform; comet-embedded wraps it as its
//! `ZstdCompressor`. Its frames are checked against `ruzstd`'s decoder and
//! the reference C zstd (the tests beside it) and fuzzed
//! (`fuzz/fuzz_targets/zstd_encode.rs`).

// Every narrowing cast here is of a bounded value: lengths and positions
// within one entry (checked to fit a `u32` before matching) or one 128 KiB
// block, table indices below 512, symbols and codes below 256; the bit
// writer keeps the low byte of its accumulator on purpose.
#![allow(clippy::cast_possible_truncation)]

use alloc::vec;
use alloc::vec::Vec;

use super::{Compressor, ZSTD_MAGIC};

/// Shortest match the matcher looks for.
const MIN_MATCH: usize = 4;
/// Largest block content (zstd's `Block_Maximum_Size`).
const MAX_BLOCK: usize = 128 << 10;
/// Longest Huffman code the format allows.
const HUF_MAX_BITS: u32 = 11;
/// Fewer literals than this are stored raw (a table costs more).
const HUF_MIN_LITERALS: usize = 32;

/// Literal-length codes: baseline and extra bits (RFC 8878, 3.1.1.3.2.1.1).
const LL_BASE: [u32; 36] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024,
    2048, 4096, 8192, 16384, 32768, 65536,
];
const LL_BITS: [u32; 36] =
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
/// Match-length codes: baseline (in bytes) and extra bits.
const ML_BASE: [u32; 53] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    33, 34, 35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539,
];
const ML_BITS: [u32; 53] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2,
    3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];
/// Offset codes this encoder can emit (offsets below 2^30).
const OF_CODES: usize = 31;

/// The code of `v` in a baseline table: the last baseline at or below it.
fn code_of(base: &[u32], v: u32) -> usize {
    base.iter().rposition(|&b| b <= v).unwrap_or(0)
}

/// One sequence: `lit` literals, then `ml` bytes copied from `off - 3`
/// bytes back (`off` is zstd's `Offset_Value`; repeat codes unused).
#[derive(Debug, Clone, Copy)]
struct Seq {
    lit: u32,
    ml: u32,
    off: u32,
}

impl Seq {
    /// (code, extra value, extra bits) of the literal length, match length
    /// and offset.
    fn codes(self) -> [(usize, u32, u32); 3] {
        let ll = code_of(&LL_BASE, self.lit);
        let ml = code_of(&ML_BASE, self.ml);
        let of = (31 - self.off.leading_zeros()) as usize;
        [
            (ll, self.lit - LL_BASE[ll], LL_BITS[ll]),
            (ml, self.ml - ML_BASE[ml], ML_BITS[ml]),
            (of, self.off - (1 << of), of as u32),
        ]
    }
}

/// A little-endian bit writer into a byte slice (zstd's bitstreams are
/// written forwards and, for entropy-coded streams, read backwards from
/// the closing 1 bit). Overflow is remembered, not signalled per write.
struct Bits<'a> {
    out: &'a mut [u8],
    pos: usize,
    acc: u64,
    n: u32,
    full: bool,
}

impl<'a> Bits<'a> {
    fn new(out: &'a mut [u8]) -> Bits<'a> {
        Bits { out, pos: 0, acc: 0, n: 0, full: false }
    }

    /// Appends the low `bits` (at most 32) bits of `v`.
    fn add(&mut self, v: u64, bits: u32) {
        debug_assert!(bits <= 32);
        self.acc |= (v & ((1u64 << bits) - 1)) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.byte(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn byte(&mut self, b: u8) {
        match self.out.get_mut(self.pos) {
            Some(slot) => {
                *slot = b;
                self.pos += 1;
            }
            None => self.full = true,
        }
    }

    /// Pads to a byte boundary with zeros; the bytes written so far.
    fn align(&mut self) -> Option<usize> {
        if self.n > 0 {
            self.byte(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
        (!self.full).then_some(self.pos)
    }

    /// Closes a backward-read stream: the end mark, then padding.
    fn close(mut self) -> Option<usize> {
        self.add(1, 1);
        self.align()
    }
}

/// Writes `v` as `len` little-endian bytes at the start of `out`.
fn put_le(out: &mut [u8], v: u64, len: usize) -> Option<()> {
    out.get_mut(..len)?.copy_from_slice(&v.to_le_bytes()[..len]);
    Some(())
}

/// An FSE encoding table for one block (RFC 8878, 4.1; the construction
/// of the reference encoder's `FSE_buildCTable`).
struct Fse {
    log: u32,
    /// Normalized counts; `syms` of them are in use.
    norm: [u32; 53],
    syms: usize,
    states: [u16; 512],
    /// Per symbol: `deltaNbBits` and `deltaFindState`.
    tt: [(u32, i32); 53],
}

impl Fse {
    fn new() -> Fse {
        Fse { log: 5, norm: [0; 53], syms: 0, states: [0; 512], tt: [(0, 0); 53] }
    }

    /// Normalizes `counts` (of `total` symbols, at least one present) to
    /// a table of at most `2^max_log` states and builds it.
    fn build(&mut self, counts: &[u32], total: u32, max_log: u32) {
        let mut counts_ = [0u32; 53];
        counts_[..counts.len()].copy_from_slice(counts);
        // One symbol only: add a second (never coded) so the table is a
        // plain FSE table for every decoder.
        let present = counts.iter().filter(|&&c| c > 0).count();
        let mut total = total;
        if present == 1 {
            let only = counts.iter().position(|&c| c > 0).unwrap_or(0);
            counts_[if only == 0 { 1 } else { only - 1 }] = 1;
            total += 1;
        }
        let syms = counts_.iter().rposition(|&c| c > 0).map_or(1, |s| s + 1);
        let present = present.max(2) as u32;
        let need = 32 - (present - 1).leading_zeros() + 1;
        let log = (32 - total.leading_zeros()).clamp(5, max_log).max(need.min(max_log));
        let size = 1u32 << log;
        let mut sum = 0;
        for (n, &c) in self.norm.iter_mut().zip(&counts_).take(syms) {
            *n = if c == 0 { 0 } else { ((u64::from(c) << log) / u64::from(total)).max(1) as u32 };
            sum += *n;
        }
        self.norm[syms..].fill(0);
        while sum > size {
            let big = (0..syms).max_by_key(|&s| self.norm[s]).unwrap_or(0);
            self.norm[big] -= 1;
            sum -= 1;
        }
        let big = (0..syms).max_by_key(|&s| counts_[s]).unwrap_or(0);
        self.norm[big] += size - sum;
        self.log = log;
        self.syms = syms;
        self.build_table();
    }

    fn build_table(&mut self) {
        let size = 1usize << self.log;
        let mask = size - 1;
        let step = (size >> 1) + (size >> 3) + 3;
        let mut spread = [0u8; 512];
        let mut pos = 0;
        for (s, &c) in self.norm[..self.syms].iter().enumerate() {
            for _ in 0..c {
                spread[pos] = s as u8;
                pos = (pos + step) & mask;
            }
        }
        debug_assert_eq!(pos, 0);
        let mut next = [0u32; 53];
        let mut cumul = 0;
        for (n, &c) in next.iter_mut().zip(&self.norm[..self.syms]) {
            *n = cumul;
            cumul += c;
        }
        for (u, &s) in spread[..size].iter().enumerate() {
            let slot = &mut next[usize::from(s)];
            self.states[*slot as usize] = (size + u) as u16;
            *slot += 1;
        }
        let mut total = 0i32;
        for (s, &c) in self.norm[..self.syms].iter().enumerate() {
            self.tt[s] = match c {
                0 => (0, 0),
                1 => ((self.log << 16) - size as u32, total - 1),
                _ => {
                    let out = self.log - (31 - (c - 1).leading_zeros());
                    ((out << 16).wrapping_sub(c << out), total - c as i32)
                }
            };
            total += c as i32;
        }
    }

    /// Writes the table description (RFC 8878, 4.1.1), byte-aligned.
    fn write_header(&self, bits: &mut Bits<'_>) {
        let size = 1i32 << self.log;
        bits.add(u64::from(self.log - 5), 4);
        let (mut remaining, mut threshold, mut nb) = (size + 1, size, self.log + 1);
        let mut s = 0;
        let mut prev_zero = false;
        while s < self.syms && remaining > 1 {
            if prev_zero {
                let mut start = s;
                while s < self.syms && self.norm[s] == 0 {
                    s += 1;
                }
                if s == self.syms {
                    break;
                }
                while s >= start + 24 {
                    start += 24;
                    bits.add(0xFFFF, 16);
                }
                while s >= start + 3 {
                    start += 3;
                    bits.add(3, 2);
                }
                bits.add((s - start) as u64, 2);
            }
            let c = self.norm[s] as i32;
            s += 1;
            let max = 2 * threshold - 1 - remaining;
            remaining -= c;
            let mut v = c + 1;
            if v >= threshold {
                v += max;
            }
            bits.add(v as u64, if v < max { nb - 1 } else { nb });
            prev_zero = c == 0;
            while remaining < threshold {
                nb -= 1;
                threshold >>= 1;
            }
        }
        let _ = bits.align();
    }

    fn start(&self, s: usize) -> u32 {
        let (d, f) = self.tt[s];
        let nb = (d + (1 << 15)) >> 16;
        let v = (nb << 16).wrapping_sub(d);
        u32::from(self.states[((v >> nb) as i32 + f) as usize])
    }

    fn encode(&self, bits: &mut Bits<'_>, state: &mut u32, s: usize) {
        let (d, f) = self.tt[s];
        let nb = state.wrapping_add(d) >> 16;
        bits.add(u64::from(*state), nb);
        *state = u32::from(self.states[((*state >> nb) as i32 + f) as usize]);
    }
}

/// In-place Huffman code lengths (Moffat and Katajainen): `a` holds
/// weights in ascending order and gets the code lengths (longest first).
fn huffman_lengths(a: &mut [u32]) {
    let n = a.len();
    if n < 2 {
        a.fill(1);
        return;
    }
    a[0] += a[1];
    let (mut root, mut leaf) = (0, 2);
    for next in 1..n - 1 {
        if leaf >= n || a[root] < a[leaf] {
            a[next] = a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] = a[leaf];
            leaf += 1;
        }
        if leaf >= n || (root < next && a[root] < a[leaf]) {
            a[next] += a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] += a[leaf];
            leaf += 1;
        }
    }
    a[n - 2] = 0;
    for next in (0..n.saturating_sub(2)).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    let (mut avail, mut used, mut depth) = (1i64, 0i64, 0u32);
    let (mut root, mut next) = (n as i64 - 2, n as i64 - 1);
    while avail > 0 {
        while root >= 0 && a[root as usize] == depth {
            used += 1;
            root -= 1;
        }
        while avail > used {
            a[next as usize] = depth;
            next -= 1;
            avail -= 1;
        }
        avail = 2 * used;
        depth += 1;
        used = 0;
    }
}

/// A zstd frame encoder about as strong as zstd's fastest level: a hash
/// table of positions, and block scratch for literals and sequences, all
/// sized by [`FrameEncoder::new`] and reused by every frame, so
/// [`compress`](FrameEncoder::compress) allocates nothing.
///
/// Its frames are standard single-segment zstd frames (content size, no
/// checksum) that any zstd decoder reads. It is also a [`Compressor`].
pub struct FrameEncoder {
    table: Vec<u32>,
    hash_log: u32,
    /// Table values below `base` belong to earlier frames.
    base: u32,
    next_base: u32,
    lits: Vec<u8>,
    seqs: Vec<Seq>,
    fse: [Fse; 3],
    max_input: usize,
}

impl core::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameEncoder").field("max_input", &self.max_input).finish_non_exhaustive()
    }
}

impl Compressor for FrameEncoder {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        FrameEncoder::compress(self, src, dst)
    }
}

impl FrameEncoder {
    /// An encoder for inputs of up to `max_input` bytes (larger ones are
    /// not compressed: [`compress`](FrameEncoder::compress) returns
    /// `None`). Allocates [`heap_bytes`](FrameEncoder::heap_bytes)`(max_input)`.
    pub fn new(max_input: usize) -> FrameEncoder {
        let block = max_input.clamp(1, MAX_BLOCK);
        let hash_log = (usize::BITS - max_input.leading_zeros()).clamp(10, 14);
        FrameEncoder {
            table: vec![0; 1 << hash_log],
            hash_log,
            base: 1,
            next_base: 1,
            lits: Vec::with_capacity(block),
            seqs: Vec::with_capacity(block / MIN_MATCH + 1),
            fse: [Fse::new(), Fse::new(), Fse::new()],
            max_input,
        }
    }

    /// Heap bytes an encoder for `max_input` holds (all allocated by
    /// [`FrameEncoder::new`]).
    pub fn heap_bytes(max_input: usize) -> usize {
        let block = max_input.clamp(1, MAX_BLOCK);
        let hash_log = (usize::BITS - max_input.leading_zeros()).clamp(10, 14);
        (4 << hash_log) + block + (block / MIN_MATCH + 1) * core::mem::size_of::<Seq>()
    }

    /// Compresses `src` into one frame in `dst` and returns its length;
    /// `None` if `src` is larger than `max_input` or the frame does not fit
    /// (a `dst` of `raw_frame_len(src.len())` bytes always fits). Never
    /// panics and never allocates.
    pub fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        if src.len() > self.max_input {
            return None;
        }
        let len = u32::try_from(src.len()).ok()?;
        if u64::from(self.next_base) + u64::from(len) >= u64::from(u32::MAX) {
            self.table.fill(0);
            self.next_base = 1;
        }
        self.base = self.next_base;
        self.next_base += len;
        // Magic, single-segment descriptor, content size.
        dst.get_mut(..4)?.copy_from_slice(&ZSTD_MAGIC);
        let mut at = 4;
        let (fhd, fcs, n) = match len {
            0..=255 => (0x20u8, u64::from(len), 1),
            256..=65791 => (0x60, u64::from(len - 256), 2),
            _ => (0xA0, u64::from(len), 4),
        };
        *dst.get_mut(at)? = fhd;
        put_le(dst.get_mut(at + 1..)?, fcs, n)?;
        at += 1 + n;
        if src.is_empty() {
            put_le(dst.get_mut(at..)?, 1, 3)?;
            return Some(at + 3);
        }
        let mut start = 0;
        while start < src.len() {
            let end = (start + MAX_BLOCK).min(src.len());
            at = self.block(src, start, end, dst, at)?;
            start = end;
        }
        Some(at)
    }

    /// Writes the block `src[start..end]` at `dst[at..]`; the new end.
    fn block(&mut self, src: &[u8], start: usize, end: usize, dst: &mut [u8], at: usize) -> Option<usize> {
        let size = end - start;
        let last = u64::from(end == src.len());
        self.find_sequences(src, start, end);
        let body = at + 3;
        let room = dst.len().min(body + size - 1);
        let compressed = match dst.get_mut(body..room) {
            Some(out) => self.compressed_block(out),
            None => None,
        };
        let (kind, n) = match compressed {
            Some(n) => (2, n),
            None => {
                dst.get_mut(body..body + size)?.copy_from_slice(&src[start..end]);
                (0, size)
            }
        };
        put_le(dst.get_mut(at..)?, ((n as u64) << 3) | (kind << 1) | last, 3)?;
        Some(body + n)
    }

    fn hash(&self, src: &[u8], p: usize) -> usize {
        (read32(src, p).wrapping_mul(0x9E37_79B1) >> (32 - self.hash_log)) as usize
    }

    /// Greedy matching of `src[start..end]` into `lits` and `seqs`;
    /// matches may reach back anywhere in the frame.
    fn find_sequences(&mut self, src: &[u8], start: usize, end: usize) {
        self.lits.clear();
        self.seqs.clear();
        let (mut ip, mut anchor) = (start, start);
        while ip + MIN_MATCH <= end {
            let h = self.hash(src, ip);
            let cand = self.table[h];
            self.table[h] = self.base + ip as u32;
            let cp = cand.wrapping_sub(self.base) as usize;
            if cand < self.base || cp >= ip || read32(src, cp) != read32(src, ip) {
                ip += 1 + ((ip - anchor) >> 6);
                continue;
            }
            let mut len = MIN_MATCH
                + src[cp + MIN_MATCH..end].iter().zip(&src[ip + MIN_MATCH..end]).take_while(|(a, b)| a == b).count();
            let (mut ip0, mut cp0) = (ip, cp);
            while ip0 > anchor && cp0 > 0 && src[ip0 - 1] == src[cp0 - 1] {
                ip0 -= 1;
                cp0 -= 1;
                len += 1;
            }
            self.lits.extend_from_slice(&src[anchor..ip0]);
            self.seqs.push(Seq { lit: (ip0 - anchor) as u32, ml: len as u32, off: (ip0 - cp0 + 3) as u32 });
            ip = ip0 + len;
            anchor = ip;
            if ip + MIN_MATCH <= end {
                let h = self.hash(src, ip - 2);
                self.table[h] = self.base + (ip - 2) as u32;
            }
        }
        self.lits.extend_from_slice(&src[anchor..end]);
    }

    /// Literals and sequences sections into `out`; `None` if they do not fit.
    fn compressed_block(&mut self, out: &mut [u8]) -> Option<usize> {
        let n = match self.huffman_literals(out) {
            Some(n) => n,
            None => plain_literals(&self.lits, out)?,
        };
        Some(n + self.sequences(out.get_mut(n..)?)?)
    }

    /// Huffman-coded literals, if they pay and their symbols are at most
    /// 128 (the direct weight encoding).
    fn huffman_literals(&self, out: &mut [u8]) -> Option<usize> {
        let lits = &self.lits[..];
        let n = lits.len();
        if n < HUF_MIN_LITERALS {
            return None;
        }
        let mut counts = [0u32; 256];
        for &b in lits {
            counts[usize::from(b)] += 1;
        }
        let max_sym = counts.iter().rposition(|&c| c > 0)?;
        if max_sym > 128 || counts[max_sym] as usize == n {
            return None;
        }
        let mut leaves = [(0u32, 0u8); 129];
        let mut k = 0;
        for (s, &c) in counts[..=max_sym].iter().enumerate() {
            if c > 0 {
                leaves[k] = (c, s as u8);
                k += 1;
            }
        }
        let leaves = &mut leaves[..k];
        leaves.sort_unstable();
        let mut lens = [0u32; 129];
        loop {
            for (l, leaf) in lens.iter_mut().zip(leaves.iter()) {
                *l = leaf.0;
            }
            huffman_lengths(&mut lens[..k]);
            if lens[0] <= HUF_MAX_BITS {
                break;
            }
            for leaf in leaves.iter_mut() {
                leaf.0 = (leaf.0 >> 1) | 1;
            }
        }
        let max_bits = lens[0];
        let mut weight = [0u32; 129];
        for (leaf, &l) in leaves.iter().zip(&lens) {
            weight[usize::from(leaf.1)] = max_bits + 1 - l;
        }
        // Canonical codes: by weight, then symbol, from the longest.
        let mut codes = [(0u32, 0u32); 129];
        let (mut code, mut cur) = (0u32, 0u32);
        for w in 1..=max_bits {
            for s in 0..=max_sym {
                if weight[s] == w {
                    if cur != w {
                        code >>= w - cur;
                        cur = w;
                    }
                    codes[s] = (code, max_bits + 1 - w);
                    code += 1;
                }
            }
        }
        let single = n <= 1023;
        let (format, head, size_bits) = if single {
            (0u64, 3, 10)
        } else if n < 16384 {
            (2, 4, 14)
        } else {
            (3, 5, 18)
        };
        let mut at = head;
        *out.get_mut(at)? = 127 + max_sym as u8;
        at += 1;
        for pair in weight[..max_sym].chunks(2) {
            let lo = pair.get(1).copied().unwrap_or(0);
            *out.get_mut(at)? = ((pair[0] << 4) | lo) as u8;
            at += 1;
        }
        let stream = |data: &[u8], out: &mut [u8]| -> Option<usize> {
            let mut bits = Bits::new(out);
            for &b in data.iter().rev() {
                let (c, l) = codes[usize::from(b)];
                bits.add(u64::from(c), l);
            }
            bits.close()
        };
        if single {
            at += stream(lits, out.get_mut(at..)?)?;
        } else {
            let jump = at;
            at += 6;
            let seg = n.div_ceil(4);
            for (i, part) in lits.chunks(seg).enumerate() {
                let len = stream(part, out.get_mut(at..)?)?;
                if i < 3 {
                    put_le(out.get_mut(jump + 2 * i..)?, u16::try_from(len).ok()?.into(), 2)?;
                }
                at += len;
            }
        }
        let compressed = (at - head) as u64;
        if at >= n + plain_header_len(n) || compressed >> size_bits != 0 {
            return None;
        }
        let h = 2 | (format << 2) | ((n as u64) << 4) | (compressed << (4 + size_bits));
        put_le(out, h, head)?;
        Some(at)
    }

    /// The sequences section (RFC 8878, 3.1.1.3.2).
    fn sequences(&mut self, out: &mut [u8]) -> Option<usize> {
        let nb = self.seqs.len();
        let at = match nb {
            0..=127 => {
                *out.first_mut()? = nb as u8;
                1
            }
            128..=0x7EFF => {
                put_le(out, (((nb >> 8) + 0x80) | ((nb & 0xFF) << 8)) as u64, 2)?;
                2
            }
            _ => {
                put_le(out, 0xFF | (((nb - 0x7F00) as u64) << 8), 3)?;
                3
            }
        };
        if nb == 0 {
            return Some(at);
        }
        let mut counts = [[0u32; 53]; 3];
        for s in &self.seqs {
            for (k, (code, _, _)) in s.codes().into_iter().enumerate() {
                counts[k][code] += 1;
            }
        }
        let total = nb as u32;
        self.fse[0].build(&counts[0][..36], total, 9);
        self.fse[1].build(&counts[1][..53], total, 9);
        self.fse[2].build(&counts[2][..OF_CODES], total, 8);
        let [ll, ml, of] = &self.fse;
        // Modes: FSE_Compressed for literal lengths, offsets, match lengths.
        *out.get_mut(at)? = 0b1010_1000;
        let mut bits = Bits::new(out.get_mut(at + 1..)?);
        for t in [ll, of, ml] {
            t.write_header(&mut bits);
        }
        let tables = bits.align()?;
        let mut bits = Bits::new(out.get_mut(at + 1 + tables..)?);
        let [l, m, o] = self.seqs[nb - 1].codes();
        let (mut sl, mut sm, mut so) = (ll.start(l.0), ml.start(m.0), of.start(o.0));
        for (_, v, n) in [l, m, o] {
            bits.add(u64::from(v), n);
        }
        for s in self.seqs[..nb - 1].iter().rev() {
            let [l, m, o] = s.codes();
            of.encode(&mut bits, &mut so, o.0);
            ml.encode(&mut bits, &mut sm, m.0);
            ll.encode(&mut bits, &mut sl, l.0);
            for (_, v, n) in [l, m, o] {
                bits.add(u64::from(v), n);
            }
        }
        bits.add(u64::from(sm), ml.log);
        bits.add(u64::from(so), of.log);
        bits.add(u64::from(sl), ll.log);
        Some(at + 1 + tables + bits.close()?)
    }
}

fn read32(src: &[u8], p: usize) -> u32 {
    u32::from_le_bytes([src[p], src[p + 1], src[p + 2], src[p + 3]])
}

fn plain_header_len(n: usize) -> usize {
    match n {
        0..32 => 1,
        32..4096 => 2,
        _ => 3,
    }
}

/// Raw or run-length literals (RFC 8878, 3.1.1.3.1.1).
fn plain_literals(lits: &[u8], out: &mut [u8]) -> Option<usize> {
    let n = lits.len();
    let rle = n > 1 && lits.iter().all(|&b| b == lits[0]);
    let kind = u64::from(rle);
    let head = plain_header_len(n);
    let h = match head {
        1 => kind | ((n as u64) << 3),
        2 => kind | (1 << 2) | ((n as u64) << 4),
        _ => kind | (3 << 2) | ((n as u64) << 4),
    };
    put_le(out, h, head)?;
    if rle {
        *out.get_mut(head)? = lits[0];
        Some(head + 1)
    } else {
        out.get_mut(head..head + n)?.copy_from_slice(lits);
        Some(head + n)
    }
}

#[cfg(test)]
mod tests;

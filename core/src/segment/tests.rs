use super::*;
use crate::sim::MemDir;
use crate::storage::{OpenMode, Storage};
use crate::wire::EntryHeader;
use alloc::vec;

fn entry(ts: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = EntryHeader { len: payload.len() as u32, timestamp: ts }.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn segment(n: usize) -> (Vec<u8>, Vec<u64>) {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for i in 0..n {
        offsets.push(data.len() as u64);
        let payload = vec![i as u8; i % 7 * 5];
        data.extend_from_slice(&entry(100 + i as u64, &payload));
    }
    (data, offsets)
}

fn scan(bytes: &[u8], interval: u32, bufsize: usize) -> (Scanner, ScanEnd) {
    let d = MemDir::new();
    d.set_file_bytes("s", bytes);
    let f = d.open("s", OpenMode::Read).unwrap();
    let mut sc = Scanner::new(0, interval, 1 << 20);
    let mut buf = vec![0u8; bufsize];
    let end = sc.run(&f, bytes.len() as u64, &mut buf).unwrap();
    (sc, end)
}

#[test]
fn crc_continues_from_initial_value() {
    let whole = crc32fast::hash(b"hello world");
    let mut h = crc32fast::Hasher::new_with_initial(crc32fast::hash(b"hello "));
    h.update(b"world");
    assert_eq!(h.finalize(), whole);
}

#[test]
fn clean_scan_counts_everything_with_any_buffer_size() {
    let (data, offsets) = segment(23);
    let reference = scan(&data, 5, 4096).0;
    for bufsize in [12, 13, 17, 64, 1000, 1 << 16] {
        let (sc, end) = scan(&data, 5, bufsize);
        assert_eq!(end, ScanEnd::Clean);
        assert_eq!(sc.entries, 23);
        assert_eq!(sc.pos, data.len() as u64);
        assert_eq!((sc.first_ts, sc.last_ts), (100, 122));
        let chunks = sc.chunks.table(offset32(sc.pos));
        assert_eq!(chunks.len(), 5);
        assert_eq!(chunks[0].end as u64, offsets[5]);
        assert_eq!(chunks, reference.chunks.table(offset32(reference.pos)), "buffer size {bufsize}");
        let (start, end) = (offsets[5] as usize, offsets[10] as usize);
        assert_eq!(chunks[1].crc, crc32fast::hash(&data[start..end]));
    }
}

#[test]
fn torn_tails_are_told_apart() {
    let (data, offsets) = segment(10);
    let last = offsets[9] as usize;
    // cut inside the last header
    let (sc, end) = scan(&data[..last + 5], 4, 64);
    assert_eq!((end, sc.entries, sc.pos), (ScanEnd::TornHeader, 9, last as u64));
    // cut inside the last payload
    let (sc, end) = scan(&data[..data.len() - 1], 4, 64);
    assert_eq!((end, sc.entries), (ScanEnd::TornPayload, 9));
    // zero-filled tail
    let mut z = data.clone();
    z.extend_from_slice(&[0u8; 40]);
    let (sc, end) = scan(&z, 4, 64);
    assert_eq!((end, sc.entries), (ScanEnd::ZeroFill, 10));
    // garbage header: zero timestamp with a length
    let mut g = data[..last].to_vec();
    g.extend_from_slice(&EntryHeader { len: 4, timestamp: 0 }.to_bytes());
    g.extend_from_slice(b"abcd");
    let (sc, end) = scan(&g, 4, 64);
    assert!(matches!(end, ScanEnd::Invalid(_)));
    assert_eq!(sc.entries, 9);
}

#[test]
fn empty_payloads_do_not_end_the_scan() {
    let mut data = entry(1, b"");
    data.extend_from_slice(&entry(2, b"x"));
    data.extend_from_slice(&entry(3, b""));
    let (sc, end) = scan(&data, 100, 64);
    assert_eq!((end, sc.entries), (ScanEnd::Clean, 3));
}

#[test]
fn oversized_length_is_invalid() {
    let data = entry(1, &[7u8; 100]);
    let d = MemDir::new();
    d.set_file_bytes("s", &data);
    let f = d.open("s", OpenMode::Read).unwrap();
    let mut sc = Scanner::new(0, 10, 99);
    let end = sc.run(&f, data.len() as u64, &mut [0u8; 64]).unwrap();
    assert_eq!(end, ScanEnd::Invalid(WireError::TooLarge { len: 100, max: 99 }));
}

#[test]
fn resuming_from_a_table_matches_a_full_scan() {
    let (data, offsets) = segment(17);
    let (full, _) = scan(&data, 4, 64);
    for cut in [0usize, 3, 4, 8, 9, 16] {
        let (first, _) = scan(&data[..offsets[cut] as usize], 4, 64);
        let closed = first.chunks.closed().to_vec();
        let open = first.chunks.open_start().map(|s| (s, first.chunks.head_crcs().0));
        let d = MemDir::new();
        d.set_file_bytes("s", &data);
        let f = d.open("s", OpenMode::Read).unwrap();
        let mut sc = Scanner::new(0, 4, 1 << 20);
        sc.pos = first.pos;
        sc.entries = first.entries;
        sc.chunks = ChunkState::resume(&closed, open);
        assert_eq!(sc.run(&f, data.len() as u64, &mut [0u8; 50]).unwrap(), ScanEnd::Clean);
        assert_eq!(sc.seal().1, full.seal().1, "resumed at entry {cut}");
        assert_eq!(sc.chunks.head_crcs(), full.chunks.head_crcs());
    }
}

#[test]
fn resumed_closed_hash_is_the_fold_of_every_crc_at_any_count() {
    for n in [0u32, 1, 63, 64, 65, 128, 129, 200] {
        let closed: Vec<ChunkRec> =
            (0..n).map(|k| ChunkRec { end: k + 1, crc: k.wrapping_mul(0x9E37_79B9) ^ 7 }).collect();
        let mut h = crc32fast::Hasher::new();
        for c in &closed {
            h.update(&c.crc.to_le_bytes());
        }
        assert_eq!(ChunkState::resume(&closed, None).head_crcs(), (0, h.finalize()), "{n} chunks");
    }
}

#[test]
fn sealing_records_the_table_and_its_checksum() {
    let (data, offsets) = segment(20);
    let (sc, _) = scan(&data, 5, 64);
    let (meta, table) = sc.seal();
    assert_eq!((meta.entries, meta.bytes, meta.chunks), (20, data.len() as u64, 4));
    assert_eq!(table[2].end as u64, offsets[15]);
    let recs: Vec<u8> = table.iter().flat_map(crate::index::ChunkRec::to_bytes).collect();
    assert_eq!(meta.table_crc, crc32fast::hash(&recs));
    meta.check_table(&crate::index::Table::new(&recs)).unwrap();
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// The chunk table, head checksums and entry count computed the plain
    /// way (each chunk hashed from its bytes), for the first `n` entries.
    fn reference(data: &[u8], offsets: &[u64], n: usize, interval: usize) -> (Vec<crate::index::ChunkRec>, (u32, u32)) {
        let end = if n == offsets.len() { data.len() } else { offsets[n] as usize };
        let mut chunks = Vec::new();
        let mut closed = crc32fast::Hasher::new();
        let mut open = 0;
        for k in (0..n).step_by(interval) {
            let a = offsets[k] as usize;
            let b = if k + interval < n { offsets[k + interval] as usize } else { end };
            let crc = crc32fast::hash(&data[a..b]);
            chunks.push(crate::index::ChunkRec { end: b as u32, crc });
            if k + interval <= n {
                closed.update(&crc.to_le_bytes());
            } else {
                open = crc;
            }
        }
        (chunks, (open, closed.finalize()))
    }

    proptest! {
        /// Span hashing gives exactly the per-chunk checksums, whatever the
        /// window size, chunk interval, entry sizes (larger than the window
        /// too) and where the scan is cut (torn tails included).
        #[test]
        fn scanner_checksums_match_a_plain_hash(
            sizes in proptest::collection::vec(0usize..300, 0..60),
            interval in 1u32..9,
            bufsize in 12usize..400,
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut data = Vec::new();
            let mut offsets = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                offsets.push(data.len() as u64);
                data.extend_from_slice(&entry(1 + i as u64, &vec![i as u8 ^ 0x5A; len]));
            }
            let limit = if data.is_empty() { 0 } else { cut.index(data.len() + 1) };
            let (sc, end) = scan(&data[..limit], interval, bufsize);
            let whole = offsets.iter().take_while(|&&o| o < limit as u64).count();
            let n = if whole > 0 && (offsets.get(whole).map_or(data.len(), |&o| o as usize)) > limit { whole - 1 } else { whole };
            prop_assert_eq!(sc.entries, n as u64);
            prop_assert_eq!(end == ScanEnd::Clean, n == sizes.len() || limit == offsets[n] as usize);
            let (chunks, head) = reference(&data, &offsets, n, interval as usize);
            prop_assert_eq!(sc.chunks.table(offset32(sc.pos)), chunks);
            let mut settled = sc.chunks.clone();
            settled.settle(sc.entries, interval, offset32(sc.pos));
            prop_assert_eq!(settled.head_crcs(), head);
        }
    }
}

use super::*;
use alloc::vec;
use proptest::prelude::*;

fn seg(base: u64, entries: u64, interval: u32) -> SegmentMeta {
    SegmentMeta {
        base,
        entries,
        bytes: (entries.div_ceil(u64::from(interval)) * 1000 + 12).max(entries * 12),
        first_ts: 5,
        last_ts: 9,
        chunks: entries.div_ceil(u64::from(interval)) as u32,
        table_crc: 0xABCD_0000 + entries as u32,
        lost: Vec::new(),
    }
}

fn sample() -> Manifest {
    let mut second = seg(260, 100, 100);
    second.lost = vec![0];
    let mut m = Manifest::new(100);
    m.first_entry = 10;
    m.generation = 3;
    m.sealed = vec![seg(10, 250, 100), second, seg(400, 350, 100)];
    m.sealed[2].lost = vec![1, 3];
    m
}

#[test]
fn roundtrip() {
    let m = sample();
    let mut buf = Vec::new();
    m.encode(&mut buf);
    assert_eq!(buf.len(), m.encoded_len());
    assert_eq!(&buf[..4], b"CMTI");
    assert_eq!(Manifest::decode(&buf).unwrap(), m);
}

#[test]
fn every_truncation_and_bit_flip_is_rejected() {
    let mut buf = Vec::new();
    sample().encode(&mut buf);
    for cut in 0..buf.len() {
        assert!(Manifest::decode(&buf[..cut]).is_err(), "cut at {cut}");
    }
    for byte in 0..buf.len() {
        let mut bad = buf.clone();
        bad[byte] ^= 0x10;
        assert!(Manifest::decode(&bad).is_err(), "flip at {byte}");
    }
}

#[test]
fn newer_version_is_a_typed_error() {
    let mut buf = Vec::new();
    sample().encode(&mut buf);
    buf[4] = 3;
    let body = buf.len() - 4;
    let crc = crc32fast::hash(&buf[..body]);
    buf[body..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(Manifest::decode(&buf), Err(WireError::UnsupportedVersion(3)));
}

/// A version 1 manifest as earlier comet builds wrote it: inline
/// `(start offset, crc)` tables and an active snapshot.
fn v1_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"CMTI");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&4u32.to_le_bytes()); // interval
    out.extend_from_slice(&1u32.to_le_bytes()); // flags: snapshot
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&7u64.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // one sealed
    out.extend_from_slice(&0u32.to_le_bytes());
    // sealed: 6 entries, 100 bytes, chunks at 0 and 60
    for (base, entries, bytes, chunks) in
        [(0u64, 6u64, 100u64, vec![(0u32, 11u32), (60, 22)]), (6, 1, 20, vec![(0, 33)])]
    {
        for v in [base, entries, bytes, 1, 2] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for (o, c) in chunks {
            out.extend_from_slice(&o.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn version_1_is_read_with_its_tables_for_migration() {
    let m = Manifest::decode(&v1_bytes()).unwrap();
    assert_eq!(m.sealed.len(), 1, "the snapshot is dropped");
    assert_eq!(m.legacy_tables, vec![vec![ChunkRec { end: 60, crc: 11 }, ChunkRec { end: 100, crc: 22 }]]);
    let recs: Vec<u8> = m.legacy_tables[0].iter().flat_map(ChunkRec::to_bytes).collect();
    m.sealed[0].check_table(&Table::new(&recs)).unwrap();
    let mut again = Vec::new();
    m.encode(&mut again);
    let v2 = Manifest::decode(&again).unwrap();
    assert_eq!((v2.sealed.clone(), v2.legacy_tables.len()), (m.sealed.clone(), 0));
    assert_eq!(Manifest::header_interval(&v1_bytes()), Some(4));
}

#[test]
fn lookup_and_lost_ranges() {
    let m = sample();
    assert!(m.find_sealed(9).is_none());
    assert_eq!(m.find_sealed(10).unwrap().base, 10);
    assert_eq!(m.find_sealed(259).unwrap().base, 10);
    assert_eq!(m.find_sealed(260).unwrap().base, 260);
    assert!(m.find_sealed(360).is_none(), "a gap");
    let s = m.find_sealed(215).unwrap();
    assert_eq!(s.chunk_of(215, 100), Some(2));
    assert_eq!(s.chunk_entries(2, 100), 210..260);
    assert_eq!(m.sealed_end(), 750);
    // chunk 0 of 260.. is lost and runs into the gap 360..400
    assert_eq!(m.lost_range(300, 800), Some(260..400));
    assert_eq!(m.lost_range(380, 800), Some(260..400));
    assert_eq!(m.lost_range(259, 800), None);
    assert_eq!(m.lost_range(550, 800), Some(500..600));
    assert_eq!(m.lost_range(600, 800), None);
    assert_eq!(m.lost_range(710, 800), Some(700..750).map(|r| r.start..800));
    assert_eq!(m.lost_range(760, 800), Some(700..800));
    assert_eq!(m.lost_range(5, 800), None, "retained away");
}

#[test]
fn overlapping_segments_and_bad_lost_lists_are_rejected() {
    let mut m = sample();
    m.sealed[1].base = 200;
    let mut buf = Vec::new();
    m.encode(&mut buf);
    assert!(Manifest::decode(&buf).is_err());
    for lost in [vec![1u32, 1], vec![2, 1], vec![4]] {
        let mut m = sample();
        m.sealed[2].lost = lost.clone();
        m.encode(&mut buf);
        assert!(Manifest::decode(&buf).is_err(), "{lost:?}");
    }
}

fn arb_segment() -> impl Strategy<Value = (u64, u64, u64, u64, u32, Vec<bool>)> {
    (
        0u64..1000,
        0u64..2000,
        0u64..u64::MAX / 4,
        0u64..1000,
        any::<u32>(),
        proptest::collection::vec(any::<bool>(), 0..40),
    )
}

proptest! {
    #[test]
    fn prop_roundtrip(interval in 1u32..300, first in 0u64..1_000_000, generation in any::<u64>(),
                      segs in proptest::collection::vec(arb_segment(), 0..6)) {
        let mut next = first;
        let mut sealed = Vec::new();
        for (gap, entries, ts, dts, crc, lost) in segs {
            let chunks = entries.div_ceil(u64::from(interval)) as u32;
            let s = SegmentMeta {
                base: next + gap,
                entries,
                bytes: entries * 12 + 5,
                first_ts: ts,
                last_ts: ts + dts,
                chunks,
                table_crc: crc,
                lost: lost.iter().enumerate().filter(|(k, l)| **l && (*k as u32) < chunks).map(|(k, _)| k as u32).collect(),
            };
            next = s.end();
            sealed.push(s);
        }
        let mut m = Manifest::new(interval);
        m.first_entry = first;
        m.generation = generation;
        m.sealed = sealed;
        let mut buf = Vec::new();
        m.encode(&mut buf);
        prop_assert_eq!(Manifest::decode(&buf).unwrap(), m);
    }

    #[test]
    fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Manifest::decode(&bytes);
        for v in [1u8, 2] {
            let mut with_magic = b"CMTI".to_vec();
            with_magic.extend_from_slice(&[v, 0, 0, 0]);
            with_magic.extend_from_slice(&bytes);
            let _ = Manifest::decode(&with_magic);
        }
    }
}

use super::*;
use alloc::vec;
use proptest::prelude::*;

fn seg(base: u64, entries: u64, interval: u32) -> SegmentMeta {
    let chunks = (0..entries.div_ceil(u64::from(interval)))
        .map(|k| Chunk { offset: (k * 1000) as u32, crc: k as u32 * 7 })
        .collect::<Vec<_>>();
    SegmentMeta {
        base,
        entries,
        bytes: (entries.div_ceil(u64::from(interval)) * 1000 + 12).max(entries * 12),
        first_ts: 5,
        last_ts: 9,
        chunks,
    }
}

fn sample() -> Manifest {
    Manifest {
        interval: 100,
        first_entry: 10,
        generation: 3,
        sealed: vec![seg(10, 250, 100), seg(260, 100, 100)],
        active: Some(seg(360, 7, 100)),
    }
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
    buf[4] = 2;
    let body = buf.len() - 4;
    let crc = crc32fast::hash(&buf[..body]);
    buf[body..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(Manifest::decode(&buf), Err(WireError::UnsupportedVersion(2)));
}

#[test]
fn lookup() {
    let m = sample();
    assert!(m.find_sealed(9).is_none());
    assert_eq!(m.find_sealed(10).unwrap().base, 10);
    assert_eq!(m.find_sealed(259).unwrap().base, 10);
    assert_eq!(m.find_sealed(260).unwrap().base, 260);
    assert!(m.find_sealed(360).is_none(), "active is not sealed");
    let s = m.find_sealed(215).unwrap();
    assert_eq!(s.chunk_for(215, 100), Some((2, 210, 2000)));
    assert_eq!(s.chunk_range(2), Some((2000, s.bytes)));
    assert_eq!(s.chunk_entries(2, 100), (210, 260));
    assert_eq!(m.sealed_end(), 360);
}

#[test]
fn overlapping_segments_are_rejected() {
    let mut m = sample();
    m.sealed[1].base = 200;
    let mut buf = Vec::new();
    m.encode(&mut buf);
    assert!(Manifest::decode(&buf).is_err());
}

fn arb_segment(interval: u32) -> impl Strategy<Value = (u64, SegmentMeta)> {
    (0u64..1000, 0u64..2000, 0u64..u64::MAX / 4, 0u64..1000).prop_map(move |(gap, entries, ts, dts)| {
        let n = entries.div_ceil(u64::from(interval));
        let chunks: Vec<Chunk> =
            (0..n).map(|k| Chunk { offset: (k * 12 * u64::from(interval)) as u32, crc: (k * 31) as u32 }).collect();
        let bytes = entries * 12 + 5;
        let seg = SegmentMeta { base: 0, entries, bytes, first_ts: ts, last_ts: ts + dts, chunks };
        (gap, seg)
    })
}

proptest! {
    #[test]
    fn prop_roundtrip(interval in 1u32..300, first in 0u64..1_000_000, generation in any::<u64>(),
                      segs in proptest::collection::vec(arb_segment(7), 0..6), active in any::<bool>()) {
        // arb_segment is built for interval 7; rebuild chunk lists for the chosen interval
        let mut next = first;
        let mut sealed = Vec::new();
        for (gap, mut s) in segs {
            s.base = next + gap;
            let n = s.entries.div_ceil(u64::from(interval));
            s.chunks = (0..n).map(|k| Chunk { offset: (k * 12 * u64::from(interval)) as u32, crc: k as u32 }).collect();
            next = s.end();
            sealed.push(s);
        }
        let act = active.then(|| SegmentMeta::empty(next));
        let m = Manifest { interval, first_entry: first, generation, sealed, active: act };
        let mut buf = Vec::new();
        m.encode(&mut buf);
        prop_assert_eq!(Manifest::decode(&buf).unwrap(), m);
    }

    #[test]
    fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Manifest::decode(&bytes);
        let mut with_magic = b"CMTI\x01\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = Manifest::decode(&with_magic);
    }
}

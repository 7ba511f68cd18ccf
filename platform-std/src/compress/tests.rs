#![allow(clippy::cast_possible_truncation)]
use super::*;
use comet_core::platform::wire::{StoredPayload, ZSTD_MAGIC, encode_payload, raw_frame_len, write_raw_frame};

/// Plain zstd at `level` for every payload offered (no dictionary).
fn plain(level: i32) -> CompressionConfig {
    CompressionConfig { min_compress_size: 0, level, ..crate::Config::default().compression }
}

#[test]
fn compresses_when_smaller_and_roundtrips() {
    let mut z = Zstd::new(&plain(3));
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
fn dictionary_frames_use_level_one_below_level_four() {
    assert_eq!([1, 2, 3].map(dict_level), [1, 1, 1]);
    assert_eq!([4, 9, 22].map(dict_level), [4, 9, 22]);
    // the default level is one of those mapped
    assert_eq!(dict_level(crate::Config::default().compression.level), 1);
}

#[test]
fn incompressible_payloads_stay_raw() {
    let mut z = Zstd::new(&plain(3));
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
    let mut z = Zstd::new(&plain(3));
    let mut u = Unzstd::default();
    for i in 0..50usize {
        let payload = format!("line {i} of a log, repeated. ").repeat(20 + i).into_bytes();
        let mut dst = vec![0u8; payload.len()];
        let StoredPayload::Frame(n) = encode_payload(&payload, 64, &mut z, &mut dst).unwrap() else {
            panic!("not compressed")
        };
        assert_eq!(u.decompress(Path::new("no-dictionaries-here"), &dst[..n], payload.len()).unwrap(), payload);
        // a damaged frame fails and leaves the context usable
        let mut bad = dst[..n].to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x5A;
        bad.truncate(n - 1);
        assert!(u.decompress(Path::new("no-dictionaries-here"), &bad, payload.len()).is_err());
        assert!(
            u.decompress(Path::new("no-dictionaries-here"), &dst[..n], payload.len() - 1).is_err(),
            "limit enforced"
        );
    }
}

/// Frames naming more dictionaries than a reader keeps decode all the
/// same, and the reader holds at most DICT_CONTEXTS of them.
#[test]
fn a_reader_keeps_a_bounded_number_of_dictionaries() {
    let lines: Vec<Vec<u8>> = (0..2000u64)
        .map(|i| {
            format!("{{\"level\":\"info\",\"seq\":{i},\"msg\":\"request {} served\"}}", i * 7919 % 1000).into_bytes()
        })
        .collect();
    let mut samples = Samples::new(1, usize::MAX);
    for l in &lines {
        samples.offer(l);
    }
    let trained = train(&samples, 4 << 10).unwrap();
    let t = tempfile::tempdir().unwrap();
    let storage = DirStorage::open_path(t.path()).unwrap();
    let mut u = Unzstd::default();
    for round in 0..2 {
        for k in 0..10u32 {
            let id = comet_core::platform::wire::DICT_ID_MIN + k;
            let mut dict = trained.clone();
            comet_core::platform::wire::set_dict_id(&mut dict, id).unwrap();
            if round == 0 {
                comet_core::platform::dict::write_dict(&storage, 0, &dict).unwrap();
            }
            let line = &lines[k as usize];
            let frame = zstd::bulk::Compressor::with_dictionary(3, &dict).unwrap().compress(line).unwrap();
            assert_eq!(frame_dict_id(&frame).unwrap(), Some(id));
            assert_eq!(&u.decompress(t.path(), &frame, 4096).unwrap(), line);
            assert!(u.dicts.len() <= DICT_CONTEXTS, "{} contexts", u.dicts.len());
        }
    }
}

/// Decompresses one zstd frame, refusing content larger than `max` bytes.
fn decompress(frame: &[u8], max: usize) -> io::Result<Vec<u8>> {
    decompress_in(&mut None, frame, max)
}

//! Entry framing, zstd frame rules and names: parsers never panic, and the
//! writer's encodings round-trip.
#![no_main]

use comet_core::platform::naming::{parse_segment_file_name, parse_shard_dir_name, segment_file_name};
use comet_core::platform::wire::{
    Decompressor, EntryStatus, HEADER_LEN, NoCompression, RawFrameDecoder, StoredPayload, classify_entry,
    encode_payload, frame_content_size, is_frame, raw_frame_len,
};
use comet_core::sim::model::RunLengthCompressor;
use comet_core::{EntryHeader, parse_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ctl, data) = data.split_first().map_or((0, data), |(&c, d)| (c, d));
    // Header parsing and classification with arbitrary limits.
    let remaining = u64::from(ctl) * 17;
    let max = u32::from(ctl) << 4;
    if let Ok(h) = EntryHeader::parse(data) {
        assert_eq!(EntryHeader::parse(&h.to_bytes()), Ok(h));
    }
    match classify_entry(data, remaining, max) {
        EntryStatus::Valid(h) => {
            assert!(h.len <= max && h.total_len() <= remaining && h.timestamp != 0);
            assert!(data.len() >= HEADER_LEN);
        }
        EntryStatus::TornPayload(h) => assert!(h.total_len() > remaining.min(u64::MAX)),
        _ => {}
    }
    // Frame decoding never panics and never writes past its buffer.
    let _ = frame_content_size(data);
    let mut out = vec![0u8; usize::from(ctl) * 64];
    if let Ok(n) = RawFrameDecoder.decompress(data, &mut out) {
        assert!(n <= out.len());
    }
    // Names.
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = parse_stream(s);
        let _ = parse_shard_dir_name(s);
        if let Some(base) = parse_segment_file_name(s) {
            assert_eq!(segment_file_name(base).as_str(), s);
        }
    }
    // Encoding any payload then decoding gives the payload back.
    let min = usize::from(ctl % 80);
    let mut dst = vec![0u8; raw_frame_len(data.len())];
    for stored in [
        encode_payload(data, min, &mut NoCompression, &mut dst),
        encode_payload(data, min, &mut RunLengthCompressor, &mut dst),
    ] {
        let stored = match stored.expect("dst holds a raw frame") {
            StoredPayload::Raw => {
                assert!(!is_frame(data));
                continue;
            }
            StoredPayload::Frame(n) => &dst[..n],
        };
        assert!(is_frame(stored));
        let mut back = vec![0u8; data.len()];
        let n = RawFrameDecoder.decompress(stored, &mut back).expect("our frames decode");
        assert_eq!(&back[..n], data);
    }
});

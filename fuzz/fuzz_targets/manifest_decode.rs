//! `index.bin`: decoding never panics; whatever decodes re-encodes to an
//! equal manifest, and its lookups stay in bounds.
#![no_main]

use comet_core::index::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::decode(data) else {
        return;
    };
    let mut bytes = Vec::new();
    m.encode(&mut bytes);
    assert_eq!(bytes.len(), m.encoded_len());
    assert_eq!(Manifest::decode(&bytes).as_ref(), Ok(&m));
    for seg in m.sealed.iter().chain(m.active.iter()) {
        assert!(seg.validate(m.interval).is_ok());
        for e in [seg.base, seg.end().saturating_sub(1), seg.base / 2 + seg.end() / 2] {
            if let Some((k, first, offset)) = seg.chunk_for(e, m.interval) {
                assert!(first <= e && offset < seg.bytes.max(1));
                let _ = seg.chunk_range(k);
            }
        }
    }
    for e in [m.first_entry, m.sealed_end(), m.sealed_end().saturating_sub(1)] {
        if let Some(seg) = m.find_sealed(e) {
            assert!(seg.contains(e));
        }
    }
});

//! `index.bin`: decoding never panics; whatever decodes re-encodes to an
//! equal manifest, and its lookups stay in bounds.
#![no_main]

use comet_core::platform::index::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::decode(data) else {
        return;
    };
    let mut bytes = Vec::new();
    m.encode(&mut bytes);
    assert_eq!(bytes.len(), m.encoded_len());
    // Version 1 input comes back as version 2 (its inline tables are for
    // migration only and are never encoded).
    let v2 = Manifest { legacy_tables: Vec::new(), ..m.clone() };
    assert_eq!(Manifest::decode(&bytes).as_ref(), Ok(&v2));
    let active = m.sealed_end().saturating_add(7);
    for seg in &m.sealed {
        assert!(seg.validate(m.interval).is_ok());
        for e in [seg.base, seg.end().saturating_sub(1), seg.base / 2 + seg.end() / 2] {
            if let Some(k) = seg.chunk_of(e, m.interval) {
                assert!(k < seg.chunks && seg.chunk_entries(k, m.interval).contains(&e));
                if seg.is_lost(k) {
                    assert!(m.lost_range(e, active).is_some_and(|r| r.contains(&e)));
                }
            }
        }
    }
    for e in [m.first_entry, m.sealed_end().saturating_sub(1), active.saturating_sub(1)] {
        if let Some(r) = m.lost_range(e, active) {
            assert!(
                r.contains(&e)
                    && m.find_sealed(e).is_none_or(|s| s.chunk_of(e, m.interval).is_some_and(|k| s.is_lost(k)))
            );
        }
    }
    for e in [m.first_entry, m.sealed_end(), m.sealed_end().saturating_sub(1)] {
        if let Some(seg) = m.find_sealed(e) {
            assert!(seg.contains(e));
        }
    }
});

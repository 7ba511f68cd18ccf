//! `offsets.state` (header and slots) and the legacy `offsets.bin`:
//! decoding never panics and only valid group names come out.
#![no_main]

use comet_core::platform::go::parse_legacy_offsets;
use comet_core::platform::state::offsets::{
    FILE_SIZE, HEADER_SIZE, SLOT_SIZE, SlotState, SlotView, check_header, validate_group,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Header: judged against both the real length and a correct one.
    let header = &data[..data.len().min(HEADER_SIZE)];
    let _ = check_header(header, data.len() as u64);
    let version = check_header(header, FILE_SIZE as u64).unwrap_or(2);
    for slot in data.get(HEADER_SIZE..).unwrap_or(&[]).chunks(SLOT_SIZE) {
        let Ok(view) = SlotView::parse(slot) else {
            assert!(slot.len() < SLOT_SIZE);
            continue;
        };
        for v in [version, 1, 2] {
            if let SlotState::Named { name, .. } = view.state(v) {
                assert!(!name.is_empty() && name.len() < 48 && !name.contains(&0));
            }
        }
    }
    let _ = parse_legacy_offsets(data, |name, _| {
        assert!(validate_group(name).is_ok(), "{name:?}");
    });
});

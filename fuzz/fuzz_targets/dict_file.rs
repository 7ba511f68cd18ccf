//! The dictionary file (`dict-<id>.zdict`) and frame dictionary ids:
//! parsers never panic, what parses re-encodes to the same bytes, and a
//! file the writer's encoder builds from fuzzed dictionary bytes parses
//! back to them.
#![no_main]

use comet_core::platform::naming::{dict_file_name, parse_dict_file_name};
use comet_core::platform::wire::{DICT_HEADER_LEN, encode_dict_header, frame_dict_id, parse_dict_file, set_dict_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame_dict_id(data);
    if let Ok(name) = core::str::from_utf8(data)
        && let Some(id) = parse_dict_file_name(name)
    {
        assert_eq!(&*dict_file_name(id), name);
    }
    if let Ok(f) = parse_dict_file(data) {
        let h = encode_dict_header(f.first_entry, f.dict).expect("a parsed file re-encodes");
        assert_eq!(&h[..], &data[..DICT_HEADER_LEN]);
        assert_eq!(f.dict.len() + DICT_HEADER_LEN, data.len());
    }
    // Fuzzed bytes as a dictionary body: give them the zstd magic and an id.
    let (first, rest) = data.split_at(data.len().min(8));
    let mut dict = vec![0x37, 0xA4, 0x30, 0xEC, 0, 0, 0, 0];
    dict.extend_from_slice(rest);
    if dict.len() > comet_core::platform::wire::DICT_MAX_BYTES as usize {
        return;
    }
    let id = 32_768 + u32::from(first.first().copied().unwrap_or(0));
    set_dict_id(&mut dict, id).expect("magic and a private id");
    let entry = first.iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
    let mut file = encode_dict_header(entry, &dict).expect("a valid dictionary").to_vec();
    file.extend_from_slice(&dict);
    let parsed = parse_dict_file(&file).expect("the writer's file parses");
    assert_eq!((parsed.id, parsed.first_entry, parsed.dict), (id, entry, &dict[..]));
});

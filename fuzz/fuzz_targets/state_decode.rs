//! `comet.state`'s head line: decoding never panics, a decoded head
//! re-encodes to the same head, and `FileHeadStore` copes with any file.
#![no_main]

use comet_core::DurableHead;
use comet_core::platform::state::{FileHeadStore, HeadStore, STATE_FILE};
use comet_core::platform::storage::{OpenMode, Storage};
use comet_core::sim::MemDir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((head, seq)) = DurableHead::decode(data) {
        assert_eq!(seq % 2, 0);
        assert!(head.end() >= head.base);
        assert_eq!(DurableHead::decode(&head.encode(seq)), Ok((head, seq)));
    }
    let dir = MemDir::new();
    dir.set_file_bytes(STATE_FILE, data);
    let Ok(file) = dir.open(STATE_FILE, OpenMode::ReadWrite) else {
        return;
    };
    let Ok(mut store) = FileHeadStore::new(file) else {
        return;
    };
    let line = store.load().expect("memory reads work");
    let _ = DurableHead::decode(&line);
    let head = DurableHead { base: 7, entries: 1, bytes: 20, ..DurableHead::default() };
    store.store(&head).expect("memory writes work");
    let (back, _) = DurableHead::decode(&store.load().expect("load")).expect("own head decodes");
    assert_eq!(back, head);
});

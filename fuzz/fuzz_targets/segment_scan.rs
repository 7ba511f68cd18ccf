//! The recovery scanner and `verify_segment` over arbitrary segment bytes:
//! no panic, results independent of the read-buffer size, and a scanned
//! prefix always verifies against its own summary.
#![no_main]

use comet_core::segment::{ScanEnd, Scanner, verify_segment};
use comet_core::sim::{MemDir, ShortIo};
use comet_core::storage::{OpenMode, Storage, StorageFile};
use libfuzzer_sys::fuzz_target;

fn scan<F: StorageFile>(file: &F, base: u64, interval: u32, max: u32, limit: u64, buf: usize) -> (Scanner, ScanEnd) {
    let mut sc = Scanner::new(base, interval, max);
    let mut buf = vec![0u8; buf];
    let end = sc.run(file, limit, &mut buf).expect("memory reads work");
    (sc, end)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (ctl, bytes) = data.split_at(4);
    let interval = u32::from(ctl[0] % 16) + 1;
    let max = u32::from(ctl[1]) * 8;
    let buf = 12 + usize::from(ctl[2]);
    let base = u64::from(ctl[3]) << 20;
    let dir = MemDir::new();
    dir.set_file_bytes("seg", bytes);
    let file = dir.open("seg", OpenMode::Read).expect("exists");
    let len = bytes.len() as u64;

    let (a, end) = scan(&file, base, interval, max, len, buf);
    assert!(a.pos <= len && a.entries * 12 <= a.pos);
    assert_eq!(end == ScanEnd::Clean, a.pos == len);
    // Same answer through another buffer size and one-byte reads.
    let short = ShortIo::new(dir.clone(), 1);
    let sfile = short.open("seg", OpenMode::Read).expect("exists");
    let (b, end_b) = scan(&sfile, base, interval, max, len, 12);
    assert_eq!((a.pos, a.entries, a.first_ts, a.last_ts), (b.pos, b.entries, b.first_ts, b.last_ts));
    assert_eq!(end, end_b);
    assert_eq!(a.meta(), b.meta());
    // A shorter limit stops at or before it.
    let limit = len / 2;
    let (c, _) = scan(&file, base, interval, max, limit, buf);
    assert!(c.pos <= limit && c.entries <= a.entries);

    // The scanned prefix verifies against its own summary.
    let meta = a.meta();
    assert!(meta.validate(interval).is_ok() || meta.bytes > u64::from(u32::MAX));
    dir.set_file_bytes("prefix", &bytes[..a.pos as usize]);
    let prefix = dir.open("prefix", OpenMode::Read).expect("exists");
    let mut vbuf = vec![0u8; buf];
    let damage = verify_segment(&prefix, &meta, interval, max, &mut vbuf).expect("reads");
    assert!(damage.is_empty(), "{damage:?}");
    // ... and the whole file too, when the scan reached its end.
    let damage = verify_segment(&file, &meta, interval, max, &mut vbuf).expect("reads");
    assert_eq!(damage.is_empty(), a.pos == len, "{damage:?}");
});

//! The recovery scanner and the read path's chunk checks over arbitrary
//! segment bytes: no panic, results independent of the read-buffer size,
//! and every chunk of a scanned prefix checks out against the table the
//! scan sealed (and its entries walk back exactly).
#![no_main]

use comet_core::ScanEnd;
use comet_core::platform::index::Table;
use comet_core::platform::read::{ChunkEntries, ChunkPos, check_chunk};
use comet_core::platform::segment::Scanner;
use comet_core::platform::storage::{OpenMode, Storage, StorageFile};
use comet_core::sim::{MemDir, ShortIo};
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
    assert_eq!(a.seal(), b.seal());
    // A shorter limit stops at or before it.
    let limit = len / 2;
    let (c, _) = scan(&file, base, interval, max, limit, buf);
    assert!(c.pos <= limit && c.entries <= a.entries);

    // Every chunk of the scanned prefix checks out against the sealed table,
    // and walks back exactly its entries.
    let (meta, table) = a.seal();
    if meta.bytes > u64::from(u32::MAX) {
        return;
    }
    assert!(meta.validate(interval).is_ok());
    let recs: Vec<u8> = table.iter().flat_map(|r| r.to_bytes()).collect();
    let t = Table::new(&recs);
    meta.check_table(&t).expect("the sealed table matches its record");
    let mut walked = 0u64;
    for k in 0..meta.chunks {
        let pos = ChunkPos::sealed(&meta, interval, &t, k).expect("chunk");
        let chunk = &bytes[pos.start as usize..pos.end as usize];
        check_chunk(chunk, &pos, max).expect("checks out");
        let n = ChunkEntries::new(chunk, pos.first).count() as u64;
        assert_eq!(n, u64::from(pos.entries));
        walked += n;
        // A flipped byte fails the chunk.
        if !chunk.is_empty() {
            let mut bad = chunk.to_vec();
            bad[chunk.len() / 2] ^= 1;
            assert!(check_chunk(&bad, &pos, max).is_err());
        }
    }
    assert_eq!(walked, meta.entries);
});

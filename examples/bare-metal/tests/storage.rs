//! `RamStorage` against the `Storage` contract and its own rules: block
//! accounting, the capacity limit, the power-loss model, the state region.
#![allow(clippy::cast_possible_truncation)] // test data and lengths

use comet_bare_metal::{BLOCK_SIZE, MAX_FILES, NAME_MAX, PowerLoss, RamError, RamStorage};
use comet_core::platform::state::{STATE_FILE, STATE_SIZE};
use comet_core::platform::storage::{
    ErrorKind, OpenMode, Storage, StorageError, StorageFile, read_exact_at, write_all_at,
};

/// A region of `blocks` data blocks (and their two map bytes each).
fn region(blocks: usize) -> Vec<u8> {
    vec![0xA5; blocks * (BLOCK_SIZE + 2)]
}

fn read_all(s: &RamStorage<'_>, name: &str) -> Vec<u8> {
    let f = (&s).open(name, OpenMode::Read).unwrap();
    let mut buf = vec![0; f.len().unwrap() as usize];
    assert_eq!(read_exact_at(&f, 0, &mut buf).unwrap(), buf.len());
    buf
}

fn names(s: &RamStorage<'_>) -> Vec<String> {
    let mut out = Vec::new();
    (&s).list(&mut |n| out.push(n.to_string())).unwrap();
    out.sort();
    out
}

#[test]
fn writes_read_back_across_blocks_and_holes_read_as_zero() {
    let mut r = region(8);
    let s = RamStorage::new(&mut r);
    assert_eq!(s.capacity(), 8 * BLOCK_SIZE);
    let f = (&s).open("a", OpenMode::CreateNew).unwrap();
    let data: Vec<u8> = (0..600u32).map(|i| (i * 7 + 3) as u8).collect();
    write_all_at(&f, 100, &[&data[..250], &data[250..]]).unwrap();
    assert_eq!(f.len().unwrap(), 700);
    let back = read_all(&s, "a");
    assert!(back[..100].iter().all(|&b| b == 0), "the hole before offset 100 reads as zero");
    assert_eq!(&back[100..], &data[..]);
    assert_eq!(s.used_bytes(), 3 * BLOCK_SIZE);
    // A short read at the end, and nothing past it.
    let mut buf = [0u8; 64];
    assert_eq!(f.read_at(690, &mut buf).unwrap(), 10);
    assert_eq!(f.read_at(700, &mut buf).unwrap(), 0);
}

#[test]
fn shrinking_frees_blocks_and_regrowing_reads_zeros_not_stale_bytes() {
    let mut r = region(4);
    let s = RamStorage::new(&mut r);
    let f = (&s).open("a", OpenMode::Create).unwrap();
    write_all_at(&f, 0, &[&[0xEE; 600]]).unwrap();
    assert_eq!(s.free_bytes(), BLOCK_SIZE);
    f.set_len(10).unwrap();
    assert_eq!(s.free_bytes(), 3 * BLOCK_SIZE);
    f.set_len(300).unwrap();
    let back = read_all(&s, "a");
    assert_eq!(&back[..10], &[0xEE; 10]);
    assert!(back[10..].iter().all(|&b| b == 0), "bytes past the old length are zero");
}

#[test]
fn full_storage_is_a_typed_error_and_changes_nothing() {
    let mut r = region(4);
    let s = RamStorage::new(&mut r);
    let f = (&s).open("a", OpenMode::Create).unwrap();
    write_all_at(&f, 0, &[&vec![1u8; s.capacity()]]).unwrap();
    assert_eq!(s.free_bytes(), 0);
    let err = f.write_at(s.capacity() as u64, b"x").unwrap_err();
    assert_eq!(err, RamError::Full { needed: 1, free: 0 });
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert_eq!(f.len().unwrap(), s.capacity() as u64, "a failed write leaves the length");
    let g = (&s).open("b", OpenMode::Create).unwrap();
    assert_eq!(g.set_len(1).unwrap_err().kind(), ErrorKind::StorageFull);
    // Writes inside the file still work; removing it gives the space back.
    f.write_at(5, b"ok").unwrap();
    drop(f);
    (&s).remove("a").unwrap();
    assert_eq!(s.free_bytes(), s.capacity());
    g.write_at(0, b"fits now").unwrap();
}

#[test]
fn the_file_table_and_names_have_typed_limits() {
    let mut r = region(4);
    let s = RamStorage::new(&mut r);
    let mut open = Vec::new();
    for i in 0..MAX_FILES {
        open.push((&s).open(&format!("f{i}"), OpenMode::CreateNew).unwrap());
    }
    let err = (&s).open("one-too-many", OpenMode::Create).unwrap_err();
    assert_eq!(err, RamError::TooManyFiles);
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    let long = "x".repeat(NAME_MAX + 1);
    assert_eq!((&s).open(&long, OpenMode::Create).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!((&s).open("f0", OpenMode::CreateNew).unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!((&s).open("nope", OpenMode::Read).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!((&s).remove("nope").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn rename_replaces_and_open_handles_keep_removed_files() {
    let mut r = region(8);
    let s = RamStorage::new(&mut r);
    let old = (&s).open("index.bin", OpenMode::Create).unwrap();
    old.write_at(0, b"old").unwrap();
    let tmp = (&s).open("index.bin.tmp", OpenMode::CreateNew).unwrap();
    tmp.write_at(0, b"new!").unwrap();
    (&s).rename("index.bin.tmp", "index.bin").unwrap();
    assert_eq!(read_all(&s, "index.bin"), b"new!");
    assert_eq!(names(&s), [STATE_FILE, "index.bin"]);
    // The replaced file lives on through its handle, then its block is freed.
    let mut buf = [0u8; 3];
    assert_eq!(old.read_at(0, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"old");
    assert_eq!(s.file_count(), 2);
    drop(old);
    assert_eq!(s.file_count(), 1);
    assert_eq!(s.used_bytes(), BLOCK_SIZE);
    // A handle survives a rename too.
    (&s).rename("index.bin", "other").unwrap();
    tmp.write_at(4, b"+").unwrap();
    assert_eq!(read_all(&s, "other"), b"new!+");
    let ro = (&s).open("other", OpenMode::Read).unwrap();
    assert_eq!(ro.write_at(0, b"x").unwrap_err().kind(), ErrorKind::PermissionDenied);
}

#[test]
fn power_loss_drops_exactly_the_unsynced_tail() {
    let mut r = region(8);
    let s = RamStorage::new(&mut r);
    let f = (&s).open("seg", OpenMode::Create).unwrap();
    f.write_at(0, &[1; 300]).unwrap();
    f.sync().unwrap();
    f.write_at(300, &[2; 400]).unwrap();
    f.write_at(0, &[3; 10]).unwrap(); // inside the synced length: kept
    let never = (&s).open("never-synced", OpenMode::Create).unwrap();
    never.write_at(0, b"gone").unwrap();
    assert_eq!(s.power_loss(PowerLoss::DropUnsynced), Err(RamError::FilesOpen), "handles still open");
    drop((f, never));
    s.power_loss(PowerLoss::DropUnsynced).unwrap();
    let back = read_all(&s, "seg");
    assert_eq!(back.len(), 300);
    assert_eq!(&back[..10], &[3; 10]);
    assert!(back[10..].iter().all(|&b| b == 1));
    assert_eq!(s.file_len("never-synced"), Some(0), "the name survives, its bytes do not");
    assert_eq!(s.used_bytes(), 2 * BLOCK_SIZE, "blocks past the synced length are freed");
}

#[test]
fn power_loss_can_keep_a_torn_prefix_of_the_unsynced_tail() {
    let mut r = region(8);
    let s = RamStorage::new(&mut r);
    let f = (&s).open("seg", OpenMode::Create).unwrap();
    f.write_at(0, &[1; 100]).unwrap();
    f.sync().unwrap();
    f.write_at(100, &[2; 100]).unwrap();
    drop(f);
    s.power_loss(PowerLoss::KeepUnsynced(33)).unwrap();
    assert_eq!(s.file_len("seg"), Some(133));
    // What survived is now all there is: a second loss takes nothing more.
    s.power_loss(PowerLoss::DropUnsynced).unwrap();
    assert_eq!(s.file_len("seg"), Some(133));
    s.power_loss(PowerLoss::KeepUnsynced(usize::MAX)).unwrap();
    assert_eq!(read_all(&s, "seg")[132], 2);
}

#[test]
fn the_state_region_is_a_fixed_kilobyte() {
    let mut r = region(2);
    let s = RamStorage::new(&mut r);
    assert_eq!(names(&s), [STATE_FILE]);
    let f = (&s).open(STATE_FILE, OpenMode::Create).unwrap();
    assert_eq!(f.len().unwrap(), STATE_SIZE as u64);
    assert!(read_all(&s, STATE_FILE).iter().all(|&b| b == 0));
    f.write_at(1000, &[9; 24]).unwrap();
    assert_eq!(read_all(&s, STATE_FILE)[1023], 9);
    f.set_len(STATE_SIZE as u64).unwrap();
    for e in [
        f.write_at(1020, &[0; 5]).unwrap_err(),
        f.set_len(0).unwrap_err(),
        (&s).open(STATE_FILE, OpenMode::Truncate).unwrap_err(),
        (&s).remove(STATE_FILE).unwrap_err(),
        (&s).rename(STATE_FILE, "x").unwrap_err(),
    ] {
        assert_eq!(e, RamError::FixedStateRegion);
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
    assert_eq!((&s).open(STATE_FILE, OpenMode::CreateNew).unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!(s.used_bytes(), 0, "the state region is not counted in the capacity");
}

#[test]
fn corrupt_flips_a_stored_bit() {
    let mut r = region(4);
    let s = RamStorage::new(&mut r);
    let f = (&s).open("a", OpenMode::Create).unwrap();
    f.write_at(0, &[0; 300]).unwrap();
    assert!(s.corrupt("a", 299, 0x10));
    assert!(!s.corrupt("a", 300, 0x10));
    assert!(!s.corrupt("b", 0, 1));
    assert_eq!(read_all(&s, "a")[299], 0x10);
}

use super::*;
use comet_core::platform::storage::{ErrorKind, StorageError, read_exact_at, write_all_at};

fn dir() -> (tempfile::TempDir, DirStorage) {
    let t = tempfile::tempdir().unwrap();
    let d = DirStorage::open_path(t.path()).unwrap();
    (t, d)
}

#[test]
fn open_modes_follow_the_trait_contract() {
    let (_t, d) = dir();
    let kind = |e: io::Error| StorageError::kind(&e);
    assert_eq!(kind(d.open("a", OpenMode::Read).unwrap_err()), ErrorKind::NotFound);
    assert_eq!(kind(d.open("a", OpenMode::ReadWrite).unwrap_err()), ErrorKind::NotFound);
    let f = d.open("a", OpenMode::CreateNew).unwrap();
    write_all_at(&f, 0, &[b"hello"]).unwrap();
    assert_eq!(kind(d.open("a", OpenMode::CreateNew).unwrap_err()), ErrorKind::AlreadyExists);
    assert_eq!(d.open("a", OpenMode::Create).unwrap().len().unwrap(), 5);
    assert_eq!(d.open("a", OpenMode::Truncate).unwrap().len().unwrap(), 0);
}

#[test]
fn names_must_be_plain_file_names() {
    let (_t, d) = dir();
    for bad in ["", ".", "..", "a/b", "../x", "/etc/passwd", "nul\0"] {
        let e = d.open(bad, OpenMode::Create).unwrap_err();
        assert_eq!(StorageError::kind(&e), ErrorKind::InvalidInput, "{bad:?}");
        assert!(d.remove(bad).is_err());
        assert!(d.rename("x", bad).is_err());
    }
}

#[test]
fn positional_io_reads_what_was_written_and_zero_at_eof() {
    let (_t, d) = dir();
    let f = d.open("f", OpenMode::Create).unwrap();
    assert_eq!(f.write_at(3, b"abc").unwrap(), 3);
    assert_eq!(f.len().unwrap(), 6);
    let mut buf = [9u8; 8];
    assert_eq!(read_exact_at(&f, 0, &mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"\0\0\0abc");
    assert_eq!(f.read_at(6, &mut buf).unwrap(), 0, "EOF");
    assert_eq!(f.read_at(100, &mut buf).unwrap(), 0, "past EOF");
    assert_eq!(f.read_at(0, &mut []).unwrap(), 0, "empty buffer");
    assert_eq!(f.write_at(0, &[]).unwrap(), 0);
    f.set_len(2).unwrap();
    assert_eq!(f.len().unwrap(), 2);
    f.set_len(10).unwrap();
    assert_eq!(read_exact_at(&f, 0, &mut buf).unwrap(), 8);
    assert_eq!(&buf[2..8], &[0; 6], "zero-extended");
    f.sync().unwrap();
}

#[test]
fn vectored_writes_take_up_to_eight_buffers_and_write_all_finishes_the_rest() {
    let (_t, d) = dir();
    let f = d.open("v", OpenMode::Create).unwrap();
    let parts: Vec<Vec<u8>> = (0..12u8).map(|i| vec![b'a' + i; usize::from(i) + 1]).collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let first8: usize = parts[..8].iter().map(Vec::len).sum();
    assert_eq!(f.write_vectored_at(0, &refs).unwrap(), first8, "short, as allowed");
    write_all_at(&f, 0, &refs).unwrap();
    let all: Vec<u8> = parts.concat();
    let mut back = vec![0u8; all.len()];
    assert_eq!(read_exact_at(&f, 0, &mut back).unwrap(), all.len());
    assert_eq!(back, all);
    assert_eq!(f.write_vectored_at(0, &[&[], &[]]).unwrap(), 0);
}

#[test]
fn list_rename_remove_and_sync_dir() {
    let (_t, d) = dir();
    d.open("x", OpenMode::Create).unwrap();
    d.open("y", OpenMode::Create).unwrap();
    d.open_subdir("sub", true).unwrap();
    let mut names = Vec::new();
    d.list(&mut |n| names.push(n.to_owned())).unwrap();
    names.sort();
    assert_eq!(names, ["x", "y"], "files only");
    d.rename("x", "y").unwrap();
    let mut names = Vec::new();
    d.list(&mut |n| names.push(n.to_owned())).unwrap();
    assert_eq!(names, ["y"]);
    d.remove("y").unwrap();
    assert_eq!(StorageError::kind(&d.remove("y").unwrap_err()), ErrorKind::NotFound);
    d.sync_dir().unwrap();
    let (_, created) = d.open_subdir("sub", true).unwrap();
    assert!(!created);
}

#[test]
fn fifos_devices_and_directories_are_refused_without_blocking() {
    let (t, d) = dir();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        t.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", t.path().join("zero")).unwrap();
    std::fs::create_dir(t.path().join("sub")).unwrap();
    for (name, what) in [("fifo", "a FIFO"), ("zero", "a character device"), ("sub", "a directory")] {
        for mode in [OpenMode::Read, OpenMode::ReadWrite, OpenMode::Create, OpenMode::Truncate] {
            let e = d.open(name, mode).unwrap_err();
            assert_eq!(StorageError::kind(&e), ErrorKind::InvalidInput, "{name} {mode:?}: {e}");
            assert!(e.to_string().contains(what), "{e}");
        }
        assert!(d.open_raw(name, false, false).is_err());
        assert!(d.open_raw(name, true, true).is_err());
    }
    // the directory entry list skips subdirectories but names the others
    let mut names = Vec::new();
    d.list(&mut |n| names.push(n.to_string())).unwrap();
    names.sort();
    assert_eq!(names, ["fifo", "zero"]);
}

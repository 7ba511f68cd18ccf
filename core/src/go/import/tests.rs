use super::*;
use crate::shard::{RecoveryReport, Shard};
use crate::sim::{CrashMode, MemDir};
use crate::state::FileHeadStore;
use crate::wire::NoCompression;
use alloc::vec;
use std::path::PathBuf;

fn fixture(shard: &str) -> MemDir {
    let dir: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "..", "tests", "fixtures", "go-comet", "small", shard].iter().collect();
    let d = MemDir::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        d.set_file_bytes(&name, &std::fs::read(e.path()).unwrap());
    }
    d
}

fn cfg() -> EngineConfig {
    EngineConfig {
        interval: 100,
        max_entry: 16 << 20,
        max_file_size: 256 << 20,
        buffer_size: 1 << 16,
        min_compress: 4096,
        max_chunks: u32::MAX,
        max_sealed: u32::MAX,
    }
}

type Sim = Shard<MemDir, FileHeadStore<crate::sim::MemFile>, NoCompression>;

fn open(d: &MemDir) -> Result<(Sim, RecoveryReport), Error<crate::sim::MemError>> {
    let head = FileHeadStore::new(d.open(STATE_FILE, OpenMode::Create).unwrap()).unwrap();
    Shard::open(d.clone(), head, NoCompression, cfg())
}

/// Every stored payload, by entry number.
fn stored(s: &Sim) -> Vec<Vec<u8>> {
    (s.first_entry()..s.durable_end())
        .map(|i| {
            let mut v = Vec::new();
            s.read(i, &mut v).unwrap();
            v
        })
        .collect()
}

#[test]
fn go_shards_are_refused_until_imported() {
    let d = fixture("shard-0001");
    assert!(matches!(open(&d), Err(Error::ForeignFormat)));
    assert!(is_go_shard(&d).unwrap());
    let r = import_go_shard(&d, &cfg()).unwrap();
    assert!(!r.already_native);
    assert_eq!(r.end, 600);
    assert_eq!(r.segments.iter().map(|s| (s.base, s.entries)).collect::<Vec<_>>(), [(0, 209), (209, 227), (436, 164)]);
    assert!(r.counters_carried);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(!is_go_shard(&d).unwrap());
    let (mut s, rep) = open(&d).unwrap();
    assert!(!rep.state_reset, "{rep:?}");
    assert_eq!(s.durable_end(), 600);
    assert_eq!(s.next_entry(), 600);
    assert_eq!(stored(&s).len(), 600);
    assert_eq!(s.append(1, &[b"after import"]).unwrap(), 600..601);
    // importing again is a no-op
    assert!(import_go_shard(&d, &cfg()).unwrap().already_native);
}

#[test]
fn a_crash_at_any_point_of_the_import_leaves_a_directory_that_opens_or_imports_again() {
    let reference = {
        let d = fixture("shard-0007");
        import_go_shard(&d, &cfg()).unwrap();
        stored(&open(&d).unwrap().0)
    };
    assert_eq!(reference.len(), 600);
    let total = {
        let d = fixture("shard-0007");
        let before = d.mutation_count();
        import_go_shard(&d, &cfg()).unwrap();
        d.mutation_count() - before
    };
    for n in 1..=total {
        for mode in [CrashMode::Process, CrashMode::Durable] {
            let d = fixture("shard-0007");
            d.crash_at_mutation(d.mutation_count() + n);
            assert!(import_go_shard(&d, &cfg()).is_err(), "crash at mutation {n}");
            let img = d.crash_image(mode);
            let s = match open(&img) {
                Ok((s, _)) => s,
                Err(Error::ForeignFormat) => {
                    import_go_shard(&img, &cfg()).unwrap_or_else(|e| panic!("re-import after crash at {n}: {e:?}"));
                    open(&img).unwrap().0
                }
                Err(e) => panic!("crash at {n} ({mode:?}): {e:?}"),
            };
            assert_eq!(stored(&s), reference, "crash at mutation {n} ({mode:?})");
        }
    }
}

#[test]
fn torn_tail_and_missing_files_import_the_valid_part_and_report_the_rest() {
    // torn last segment
    let d = fixture("shard-0007");
    let name = "log-0000000000000003.comet";
    let bytes = d.file_bytes(name).unwrap();
    d.set_file_bytes(name, &bytes[..bytes.len() - 7]);
    let r = import_go_shard(&d, &cfg()).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, ImportProblem::Truncated { removed, end: ScanEnd::TornPayload, .. } if *removed > 0)),
        "{r:?}"
    );
    assert!(
        r.problems.iter().any(|p| matches!(p, ImportProblem::IndexDisagrees { index_entries: 164, found: 163, .. }))
    );
    let (s, _) = open(&d).unwrap();
    assert_eq!(s.durable_end(), 600, "numbering continues after what Go handed out");
    assert_eq!(s.manifest().sealed_end(), 599);

    // index pointing at a missing middle file
    let d = fixture("shard-0007");
    d.delete("log-0000000000000002.comet");
    let r = import_go_shard(&d, &cfg()).unwrap();
    assert!(r.problems.iter().any(|p| matches!(p, ImportProblem::MissingFile { first: 209, end: 436, .. })), "{r:?}");
    let (s, _) = open(&d).unwrap();
    let mut v = Vec::new();
    assert!(s.read(300, &mut v).is_err());
    s.read(436, &mut v).unwrap();

    // no index at all: numbering from the files
    let d = fixture("shard-0007");
    d.delete(MANIFEST_FILE);
    let r = import_go_shard(&d, &cfg()).unwrap();
    assert_eq!(r.problems, vec![ImportProblem::NoIndex]);
    assert_eq!(r.end, 600);

    // an index that disagrees with the files
    let d = fixture("shard-0007");
    let mut idx = d.file_bytes(MANIFEST_FILE).unwrap();
    let go = GoIndex::decode(&idx).unwrap();
    let first = go.files[1].name.clone();
    // find the second file's StartEntry field and move it backwards
    let pos = idx.windows(first.len()).position(|w| w == first.as_bytes()).unwrap() + first.len();
    idx[pos + 16..pos + 24].copy_from_slice(&100u64.to_le_bytes());
    d.set_file_bytes(MANIFEST_FILE, &idx);
    let r = import_go_shard(&d, &cfg()).unwrap();
    assert!(r.problems.iter().any(|p| matches!(p, ImportProblem::IndexDisagrees { index_start: 100, start: 209, .. })));
    assert_eq!(r.end, 600);
}

#[test]
fn rejected_bytes_are_kept_aside() {
    let d = fixture("shard-0007");
    let name = "log-0000000000000002.comet";
    let mut bytes = d.file_bytes(name).unwrap();
    // the fourth entry's header gets a zero timestamp
    let mut off = 0usize;
    for _ in 0..3 {
        off += 12 + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    }
    bytes[off + 4..off + 12].fill(0);
    let len = bytes.len();
    d.set_file_bytes(name, &bytes);
    let r = import_go_shard(&d, &cfg()).unwrap();
    let removed = r.problems.iter().find_map(|p| match p {
        ImportProblem::Truncated { removed, end: ScanEnd::Invalid(_), .. } => Some(*removed),
        _ => None,
    });
    assert!(removed.is_some(), "{r:?}");
    assert!(d.file_bytes(&alloc::format!("{name}.rejected")).is_some_and(|b| b.len() as u64 == removed.unwrap()));
    assert!(removed.unwrap() < len as u64);
    let _ = vec![0u8; 1];
}

//! Shared helpers for comet's black-box tests.
#![allow(clippy::cast_possible_truncation)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use comet::{Config, ShardId};
/// Runs one test of the current test binary in a child process and kills
/// it (the crash tests' child runner; its own crate, so that
/// `comet-embedded`'s tests use it without depending on this one).
pub use comet_test_child as child;

/// A config with small segments and a short flush interval, for tests.
pub fn small_config() -> Config {
    let mut c = Config::default();
    c.storage.max_file_size = 16 * 1024;
    c.storage.write_buffer_size = 4096;
    c.storage.flush_interval = Duration::from_millis(20);
    c.indexing.boundary_interval = 8;
    c.compression.min_compress_size = 512;
    c
}

/// A deterministic payload for entry `i` of a test: varied sizes, some
/// empty, some starting with the zstd magic, some compressible.
pub fn payload(i: u64) -> Vec<u8> {
    match i % 7 {
        0 => Vec::new(),
        1 => {
            let mut p = vec![0x28, 0xB5, 0x2F, 0xFD];
            p.extend_from_slice(format!("magic-{i}").as_bytes());
            p
        }
        2 => format!(r#"{{"level":"info","entry":{i},"msg":"{}"}}"#, "x".repeat((i % 50) as usize))
            .repeat(30)
            .into_bytes(),
        _ => comet_core::sim::noise((i % 300) as usize, i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
    }
}

/// The shard with id `n` (panics unless `1 <= n <= MAX`).
pub fn sid(n: u32) -> ShardId {
    ShardId::new(n).unwrap_or_else(|| panic!("no shard {n}"))
}

/// Copies a data directory as a process killed right now would leave it
/// (everything written to files; no close). Skips `writer.lock`.
pub fn crash_copy(src: &Path, dst: &Path) {
    copy_tree(src, dst, &|name| name != comet::WRITER_LOCK);
}

/// Copies the directory `src` to `dst` whole, recursively.
pub fn copy_dir(src: &Path, dst: &Path) {
    copy_tree(src, dst, &|_| true);
}

/// Copies `src` to `dst` recursively: every directory, and the files whose
/// name `keep` accepts.
fn copy_tree(src: &Path, dst: &Path, keep: &dyn Fn(&std::ffi::OsStr) -> bool) {
    fs::create_dir_all(dst).expect("create copy dir");
    for e in fs::read_dir(src).expect("read dir") {
        let e = e.expect("dir entry");
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &to, keep);
        } else if keep(&e.file_name()) {
            fs::copy(e.path(), &to).expect("copy file");
        }
    }
}

/// The files of a shard directory, sorted.
pub fn files(shard_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(shard_dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The segment files (`log-<base>.comet`) of a shard directory with their
/// base entries, in entry order.
pub fn segments(shard_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = files(shard_dir)
        .into_iter()
        .filter_map(|f| {
            let base = f.strip_prefix("log-")?.strip_suffix(".comet")?.parse().ok()?;
            Some((base, shard_dir.join(f)))
        })
        .collect();
    v.sort();
    v
}

/// Everything on disk under `root` that a write could change: every path
/// (directories included), and for files their size, modification time and
/// bytes.
pub type Snapshot = std::collections::BTreeMap<std::path::PathBuf, (u64, Option<std::time::SystemTime>, Vec<u8>)>;

/// Takes a [`Snapshot`] of `root`.
pub fn snapshot(root: &Path) -> Snapshot {
    fn walk(p: &Path, out: &mut Snapshot) {
        for e in fs::read_dir(p).expect("read dir") {
            let path = e.expect("dir entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                out.insert(path.clone(), (0, meta.modified().ok(), Vec::new()));
                walk(&path, out);
            } else {
                let bytes = fs::read(&path).expect("read file");
                out.insert(path, (meta.len(), meta.modified().ok(), bytes));
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, &mut out);
    out
}

/// Panics naming the first difference between two snapshots.
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    for (p, b) in before {
        match after.get(p) {
            None => panic!("{what}: {} disappeared", p.display()),
            Some(a) if a.0 != b.0 => panic!("{what}: {} changed size {} -> {}", p.display(), b.0, a.0),
            Some(a) if a.2 != b.2 => panic!("{what}: {} changed its bytes", p.display()),
            Some(a) if a.1 != b.1 => panic!("{what}: {} changed its mtime", p.display()),
            Some(_) => {}
        }
    }
    if let Some(p) = after.keys().find(|p| !before.contains_key(*p)) {
        panic!("{what}: {} was created", p.display());
    }
}

/// A small tmpfs mounted on a fresh temporary directory for one test, so
/// that the test can fill a real file system. Unmounted on drop. Mounting
/// needs root: tests that use it are `#[ignore]`d with that reason and
/// `.ci/run` (which runs as root) runs them with `--ignored`; run without
/// root, they fail rather than pass untested.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes. Panics if that is impossible.
    pub fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "comet-test"])
            .arg(dir.path())
            .status()
            .expect("run mount(8)");
        assert!(status.success(), "mounting a tmpfs failed ({status}): this test must run as root");
        Tmpfs { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `filler` until the file system is full (a write fails with
    /// `ENOSPC`), then gives back `slack` bytes of it (rounded by the file
    /// system to whole pages). Panics on any other error.
    pub fn fill(&self, filler: &str, slack: u64) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.path().join(filler);
        let mut f = fs::File::create(&path).expect("create filler");
        for size in [64 * 1024, 4096, 512, 1] {
            let block = vec![0xA5u8; size];
            loop {
                match f.write(&block) {
                    Ok(n) if n == size => {}
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the file system: {e}"),
                }
            }
        }
        let len = f.metadata().expect("filler metadata").len();
        f.set_len(len.saturating_sub(slack)).expect("shrink filler");
        path
    }
}

impl Tmpfs {
    /// Bytes free on the file system (`statvfs`).
    pub fn free_bytes(&self) -> u64 {
        let st = rustix::fs::statvfs(self.path()).expect("statvfs of the tmpfs");
        st.f_bavail.saturating_mul(st.f_frsize)
    }

    /// Removes a file [`fill`](Tmpfs::fill) wrote and waits until its space
    /// is free again. Another thread of the test binary spawning a process
    /// at the moment the filler was open gives that child a copy of the
    /// descriptor until it runs `exec`, which on a loaded machine can keep
    /// the space allocated for a while; a test that went on at once would
    /// see a full disk that is not its doing. Panics, listing what the file
    /// system holds, if the space does not come back within 20 s.
    pub fn remove_filler(&self, path: &Path) {
        let len = fs::metadata(path).expect("filler metadata").len();
        let before = self.free_bytes();
        fs::remove_file(path).expect("remove filler");
        let want = before + len.saturating_sub(64 * 1024);
        let start = std::time::Instant::now();
        while self.free_bytes() < want {
            if start.elapsed() > std::time::Duration::from_secs(20) {
                panic!(
                    "the filler's {len} bytes are still not free after 20 s ({} free, want {want}); files: {:?}",
                    self.free_bytes(),
                    self.files()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Every file on the file system with its size (for failure messages).
    pub fn files(&self) -> Vec<(std::path::PathBuf, u64)> {
        list_sizes(self.path())
    }
}

fn list_sizes(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) => out.push((e.path(), m.len())),
                Err(_) => {}
            }
        }
    }
    out
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount").arg(self.dir.path()).status().is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file open: detach it anyway.
            let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// JSON log line `i`, 250-450 bytes, like the compression bench's data
/// (the dictionary tests' entries).
pub fn json_line(i: u64) -> Vec<u8> {
    let levels = ["info", "warn", "debug", "error"];
    let paths = ["/api/v1/items", "/api/v1/users/login", "/healthz", "/api/v2/orders/search"];
    let pad = "x".repeat((i * 37 % 150) as usize);
    format!(
        r#"{{"ts":"2026-12-03T20:{:02}:{:02}.{:06}Z","level":"{}","service":"checkout","host":"node-{}","trace_id":"{:016x}","msg":"request served","method":"GET","path":"{}","status":{},"duration_ms":{},"bytes":{},"user_agent":"curl/8.5.0","note":"{}"}}"#,
        i / 60 % 60,
        i % 60,
        i * 7919 % 1_000_000,
        levels[(i % 4) as usize],
        i % 7,
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        paths[(i % 4) as usize],
        [200, 201, 404, 500][(i % 4) as usize],
        i % 250,
        i * 31 % 10_000,
        pad
    )
    .into_bytes()
}

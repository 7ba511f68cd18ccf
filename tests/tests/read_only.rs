//! Reads never write: every read path, through a read-only client and
//! through a read-write client that writes nothing, leaves every file of
//! the data directory byte for byte, size and mtime as it was, and works in
//! a directory the process may not write. Only an ack creates or
//! initialises `offsets.state` (D-16).

#![allow(clippy::cast_possible_truncation)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use comet::{Client, Consumer};
use comet_tests::{assert_unchanged, payload, sid, small_config, snapshot};

/// Shard 1: several segments, group `g` acked half-way. Shard 2: no
/// `offsets.state`. Shard 3: an empty `offsets.state`. Shard 4: a
/// zero-filled (never initialised) `offsets.state`.
fn build(root: &Path) {
    let c = Client::open(root, small_config()).unwrap();
    for shard in 1..=4 {
        for i in 0..300 {
            c.append_shard(sid(shard), &[payload(i)]).unwrap();
        }
    }
    c.sync().unwrap();
    let mut g = Consumer::new(&c, "g").unwrap();
    g.ack_range(sid(1), 0..150).unwrap();
    c.close().unwrap();
    fs::write(root.join("shard-0003/offsets.state"), b"").unwrap();
    fs::write(root.join("shard-0004/offsets.state"), vec![0u8; 65_600]).unwrap();
}

/// Every read path of the public API, checking what they return.
fn read_everything(c: &Client) {
    assert_eq!(c.shards().unwrap(), (1..=4).map(sid).collect::<Vec<_>>());
    let stats = c.stats().unwrap();
    assert_eq!(stats.entries, 1200);
    for shard in (1..=4).map(sid) {
        assert_eq!(c.len(&format!("x:shard:{:04}", shard.get())).unwrap(), 300);
        assert_eq!(c.shard_len(shard).unwrap(), 300);
        assert_eq!(c.durable_len(shard).unwrap(), 300);
        assert!(c.wait_for(shard, 299, Duration::ZERO).unwrap());
        assert_eq!(c.read(&format!("x:shard:{:04}", shard.get()), 7).unwrap().data(), &payload(7)[..]);
        let mut r = c.reader(shard).unwrap();
        assert_eq!(r.bounds().unwrap(), (0, 300));
        for i in 0..300 {
            assert_eq!(r.read(i).unwrap().data(), &payload(i)[..], "shard {} entry {i}", shard.get());
        }
        let mut out = Vec::new();
        assert_eq!(r.read_batch(100, 50, &mut out).unwrap(), 50);
        let ts = r.read(200).unwrap().timestamp;
        assert!(r.seek_time(ts).unwrap() <= 200);
        let st = c.shard_stats(shard).unwrap();
        assert_eq!(st.durable_end, 300);
        let acked = shard == sid(1);
        assert_eq!(st.groups.len(), usize::from(acked), "shard {}", shard.get());
        for group in ["g", "fresh"] {
            let mut con = Consumer::new(c, group).unwrap();
            let at = if acked && group == "g" { 150 } else { 0 };
            assert_eq!(con.offset(shard).unwrap(), at);
            assert_eq!(con.lag(shard).unwrap(), 300 - at);
            assert_eq!(con.groups(shard).unwrap().len(), usize::from(acked));
            let mut out = Vec::new();
            assert_eq!(con.read_shard(shard, 20, &mut out).unwrap(), 20);
            assert_eq!(out[0].id.entry, at);
            let (messages, errors) = con.read(&[shard], 10).into_parts();
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(messages.len(), 10);
            assert_eq!(con.tail(shard, 5, Duration::ZERO).unwrap().len(), 5);
        }
    }
}

#[test]
fn read_paths_change_no_file() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let before = snapshot(dir.path());
    let c = Client::open_read_only(dir.path(), small_config()).unwrap();
    read_everything(&c);
    c.close().unwrap();
    assert_unchanged(&before, &snapshot(dir.path()), "read-only client");
    // a read-write client that only reads writes nothing either
    let c = Client::open(dir.path(), small_config()).unwrap();
    read_everything(&c);
    c.close().unwrap();
    assert_unchanged(&before, &snapshot(dir.path()), "read-write client reading");
}

#[test]
fn only_an_ack_creates_offsets_and_read_only_clients_may_ack() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let c = Client::open_read_only(dir.path(), small_config()).unwrap();
    let mut g = Consumer::new(&c, "late").unwrap();
    for shard in [2, 3, 4] {
        let mut out = Vec::new();
        g.read_shard(sid(shard), 10, &mut out).unwrap();
        g.ack(&[out[9].id]).unwrap();
        assert_eq!(g.offset(sid(shard)).unwrap(), 10);
        let mut other = Consumer::new(&c, "late").unwrap();
        assert_eq!(other.offset(sid(shard)).unwrap(), 10, "seen through a fresh lookup");
        assert_eq!(fs::metadata(dir.path().join(format!("shard-{shard:04}/offsets.state"))).unwrap().len(), 65_600);
    }
    c.close().unwrap();
}

fn set_writable(p: &Path, writable: bool) {
    for e in fs::read_dir(p).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            set_writable(&path, writable);
        } else {
            fs::set_permissions(&path, fs::Permissions::from_mode(if writable { 0o644 } else { 0o444 })).unwrap();
        }
    }
    fs::set_permissions(p, fs::Permissions::from_mode(if writable { 0o755 } else { 0o555 })).unwrap();
}

#[test]
fn reads_work_in_a_directory_the_process_may_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    build(&root);
    set_writable(&root, false);
    // Root (or CAP_DAC_OVERRIDE) ignores permissions: nothing to test then.
    if fs::OpenOptions::new().write(true).open(root.join("shard-0001/comet.state")).is_ok() {
        set_writable(&root, true);
        println!("skipped: this process may write read-only files (running as root), so permissions cannot be tested");
        return;
    }
    let before = snapshot(&root);
    let c = Client::open_read_only(&root, small_config()).unwrap();
    read_everything(&c);
    c.close().unwrap();
    let after = snapshot(&root);
    set_writable(&root, true);
    assert_unchanged(&before, &after, "read-only directory");
}

//! Message ids are unique across data directories (they carry
//! `comet.id`), against a real `nats-server -js`: two directories on one
//! subject prefix, and a directory deleted and created again, lose nothing
//! to deduplication; a damaged `comet.id` stops the forwarder before it
//! sends anything.

mod common;

use std::time::Duration;

use comet_forward::{ForwardError, Forwarder};

use common::*;

/// The messages of `stored` that came from the directory `dir`.
fn from_dir(stored: &[Stored], dir: &std::path::Path) -> Vec<Stored> {
    let id = comet::dir_identity(dir, false).expect("identity").to_string();
    stored.iter().filter(|s| s.dir == id).cloned().collect()
}

#[test]
fn two_directories_on_one_prefix_keep_every_entry() {
    let server = NatsServer::start();
    let (a, b) = (data_dir(), data_dir());
    let (ca, cb) = (writer(a.path()), writer(b.path()));
    append(&ca, &[0, 1], 100);
    append(&cb, &[0, 1], 100);
    for client in [&ca, &cb] {
        let f = spawn(client, config(&server.url(), "site.shared"));
        f.wait_caught_up(client, Duration::from_secs(60));
        let m = f.stop();
        assert_eq!((m.entries_forwarded, m.duplicates), (200, 0), "{m}");
    }
    assert_ne!(comet::dir_identity(a.path(), false).ok(), comet::dir_identity(b.path(), false).ok());
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(stored.len(), 400);
    assert_eq!(assert_exactly_once(a.path(), &from_dir(&stored, a.path()), "site.shared"), 200);
    assert_eq!(assert_exactly_once(b.path(), &from_dir(&stored, b.path()), "site.shared"), 200);
}

#[test]
fn a_directory_created_again_gets_a_new_identity_and_loses_nothing() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 100);
    let f = spawn(&client, config(&server.url(), "site.reset"));
    f.wait_caught_up(&client, Duration::from_secs(60));
    f.stop();
    let first = comet::dir_identity(dir.path(), false).expect("identity");
    client.close().expect("close");

    // A device reset: the directory is deleted and created again; its new
    // entries have the same numbers as the old ones.
    std::fs::remove_dir_all(dir.path()).expect("delete");
    std::fs::create_dir(dir.path()).expect("create");
    let client = writer(dir.path());
    append_raw(&client, 0, &(0..100).map(|i| format!("after the reset {i}").into_bytes()).collect::<Vec<_>>());
    let f = spawn(&client, config(&server.url(), "site.reset"));
    f.wait_caught_up(&client, Duration::from_secs(60));
    let m = f.stop();
    assert_eq!((m.entries_forwarded, m.duplicates), (100, 0), "{m}");
    let second = comet::dir_identity(dir.path(), false).expect("identity");
    assert_ne!(first, second);
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(stored.len(), 200);
    assert_eq!(assert_exactly_once(dir.path(), &from_dir(&stored, dir.path()), "site.reset"), 100);
}

#[test]
fn a_damaged_identity_file_stops_the_forwarder_and_is_kept() {
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    comet::dir_identity(dir.path(), true).expect("identity");
    let path = dir.path().join(comet::IDENTITY_FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[12] ^= 0x40;
    std::fs::write(&path, &bytes).expect("damage");
    let err = Forwarder::new(&client, config("nats://127.0.0.1:1", "site.damaged")).expect_err("damaged id");
    assert!(
        matches!(err, ForwardError::Identity(comet::IdentityError::Damaged { .. })),
        "a damaged comet.id is an error: {err}"
    );
    assert!(err.to_string().contains("comet.id"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "never replaced");
}

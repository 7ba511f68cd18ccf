//! Error messages: each text once in a chain, I/O operations as words, a
//! data directory that is a file named as such.

use std::error::Error as _;
use std::io;

use comet::{Client, Config, Error, IoOp};

/// The Display text of `e` and of each of its sources.
fn chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out
}

/// No level of the chain repeats another's text.
fn assert_each_message_once(levels: &[String]) {
    for (i, a) in levels.iter().enumerate() {
        for b in &levels[i + 1..] {
            assert!(!a.contains(b.as_str()) && !b.contains(a.as_str()), "repeated text in {levels:?}");
        }
    }
}

#[test]
fn an_io_error_chain_prints_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = Client::open(&file, Config::default()).unwrap_err();
    let levels = chain(&e);
    assert_eq!(levels.len(), 2, "{levels:?}");
    assert_each_message_once(&levels);
    assert_eq!(levels[0], format!("open {}", file.display()));
    assert_eq!(levels[1], "not a directory");
    // As anyhow's `{:#}` or the CLI prints it: each text once.
    assert_eq!(e.chain().to_string(), format!("open {}: not a directory", file.display()));

    // An OS error: the same shape, the OS text only in the source.
    let e = Error::Io {
        op: IoOp::Write,
        path: "/data/shard-0001/log.comet".into(),
        source: io::Error::from_raw_os_error(28), // ENOSPC
    };
    let levels = chain(&e);
    assert_each_message_once(&levels);
    assert_eq!(levels[0], "write /data/shard-0001/log.comet");
    assert!(levels[1].contains("No space left on device"), "{levels:?}");
    assert_eq!(e.chain().to_string(), format!("{}: {}", levels[0], levels[1]));
}

#[test]
fn core_error_chains_print_each_message_once() {
    use comet_core::{ConfigError, Error as CoreError};
    let storage: CoreError<io::Error> = CoreError::Storage {
        op: IoOp::Sync,
        file: comet_core::platform::naming::FileName::lossy("comet.state"),
        source: io::Error::from_raw_os_error(5), // EIO
    };
    let levels = chain(&storage);
    assert_eq!(levels[0], "sync comet.state");
    assert!(levels[1].contains("Input/output error"), "{levels:?}");
    assert_each_message_once(&levels);

    let config: CoreError<io::Error> =
        CoreError::Config(ConfigError { field: "storage.max_file_size", value: 0, min: 1, max: 2 });
    let levels = chain(&config);
    assert_each_message_once(&levels);
    assert_eq!(levels[0], "invalid configuration");
    assert!(levels[1].contains("storage.max_file_size"), "{levels:?}");
}

#[test]
fn values_a_message_names_are_not_sources() {
    // The name error is part of the message, so no source repeats it.
    let c = Client::open(tempfile::tempdir().unwrap().path(), Config::default()).unwrap();
    let e = c.append("events", &[b"x"]).unwrap_err();
    assert!(matches!(e, Error::InvalidStream(_)), "{e:?}");
    assert!(e.source().is_none());
    assert!(e.to_string().contains("no `:<shard>` suffix"), "{e}");
    // ... and says what to call instead.
    assert!(e.to_string().contains("`Client::pick_shard_stream(prefix, key)`"), "{e}");
    assert!(e.to_string().contains("events:shard:0007"), "{e}");
    let e = c.append("events:shard:12x", &[b"x"]).unwrap_err();
    assert!(e.to_string().contains("pick_shard_stream"), "{e}");
    assert_eq!(e.chain().to_string(), e.to_string());
}

#[test]
fn io_operations_print_as_words() {
    let words: Vec<String> = [
        IoOp::Open,
        IoOp::Read,
        IoOp::Write,
        IoOp::SetLen,
        IoOp::Sync,
        IoOp::SyncDir,
        IoOp::Remove,
        IoOp::Rename,
        IoOp::List,
        IoOp::Len,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        words,
        ["open", "read", "write", "resize", "sync", "sync directory", "remove", "rename", "list", "stat"]
    );
}

#[test]
fn opening_a_regular_file_as_a_data_directory_says_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, b"").unwrap();
    for e in [
        Client::open(&file, Config::default()).unwrap_err(),
        Client::open_read_only(&file, Config::default()).unwrap_err(),
        Client::open_process(&file, Config::default()).unwrap_err(),
    ] {
        match &e {
            Error::Io { op: IoOp::Open, path, source } => {
                assert_eq!(path, &file);
                assert_eq!(source.kind(), io::ErrorKind::NotADirectory, "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.chain().to_string().ends_with(": not a directory"), "{}", e.chain());
        assert!(!e.chain().to_string().contains("File exists"), "{}", e.chain());
    }
    // The file is untouched.
    assert!(std::fs::metadata(&file).unwrap().is_file());
}

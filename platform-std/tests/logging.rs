//! The library installs no `tracing` subscriber, whatever `COMET_DEBUG` or
//! `config.log.level` say: that is the application's choice.

use comet::config::LogLevel;
use comet::{Client, Config};

#[test]
fn opening_a_client_installs_no_subscriber() {
    // SAFETY: this test binary runs this one test, so no other thread
    // reads the environment while it is changed.
    unsafe { std::env::set_var("COMET_DEBUG", "1") };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.log.level = LogLevel::Debug;
    let c = Client::open(dir.path(), config).unwrap();
    c.append("events:v1:shard:0001", &[b"x"]).unwrap();
    c.close().unwrap();
    Client::open_read_only(dir.path(), config).unwrap();
    assert!(!tracing::dispatcher::has_been_set(), "comet installed a global tracing subscriber");
}

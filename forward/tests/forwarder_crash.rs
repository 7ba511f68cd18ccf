//! A forwarder process killed with SIGKILL at random moments, mid-stream,
//! and restarted each time: every entry ends up in JetStream exactly once.
//!
//! The forwarder runs as a child process: this test binary re-executed
//! with `--exact forwarder_child --ignored`, which reads its settings from
//! the environment. A writer in the test process appends throughout, so
//! every kill lands while entries are in flight.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use comet::{Client, Config};
use comet_forward::{Backoff, ForwardConfig, Forwarder, StreamSetup};

use common::*;

const GROUP: &str = "jetstream";
const PREFIX: &str = "site.crash";
const ENV_DIR: &str = "COMET_FORWARD_CHILD_DIR";
const ENV_URL: &str = "COMET_FORWARD_CHILD_URL";

/// The child: forwards until SIGTERM/SIGINT, then prints its metrics.
#[test]
#[ignore = "run as a child process by forwarder_killed_with_sigkill_delivers_every_entry_once"]
fn forwarder_child() {
    let (Ok(dir), Ok(url)) = (std::env::var(ENV_DIR), std::env::var(ENV_URL)) else {
        return;
    };
    let client = Client::open_read_only(&dir, Config::default()).expect("open read-only");
    let mut config = ForwardConfig::new(GROUP, url, PREFIX);
    config.stream = Some(StreamSetup::new(STREAM));
    config.batch_size = 64;
    config.poll_interval = Duration::from_millis(10);
    config.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(500) };
    let mut forwarder = Forwarder::new(&client, config).expect("forwarder");
    let m = forwarder.run_blocking(comet_forward::shutdown_signal()).expect("run");
    println!("CHILD-METRICS forwarded={} duplicates={}", m.entries_forwarded, m.duplicates);
}

fn spawn_child(dir: &std::path::Path, url: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "forwarder_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_URL, url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the forwarder child")
}

/// A small deterministic generator for kill delays.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn forwarder_killed_with_sigkill_delivers_every_entry_once() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1, 2, 3], 500);

    let writing = Arc::new(AtomicBool::new(true));
    let w = {
        let (client, writing) = (client.clone(), writing.clone());
        std::thread::spawn(move || {
            while writing.load(Ordering::Relaxed) {
                append(&client, &[0, 1, 2, 3], 100);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let seed = std::env::var("COMET_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    eprintln!("kill schedule seed {seed} (COMET_TEST_SEED)");
    let mut rng = Lcg(seed);
    let mut kills = 0;
    for round in 0..6 {
        let mut child = spawn_child(dir.path(), &server.url());
        let before = group_lag(&client, GROUP);
        std::thread::sleep(Duration::from_millis(150 + rng.below(600)));
        child.kill().expect("SIGKILL the forwarder");
        child.wait().expect("reap the forwarder");
        kills += 1;
        let after = group_lag(&client, GROUP);
        eprintln!("round {round}: lag {before} -> {after} at the kill");
    }
    writing.store(false, Ordering::Relaxed);
    w.join().expect("writer thread");

    let mut child = spawn_child(dir.path(), &server.url());
    let caught_up = {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if group_lag(&client, GROUP) == 0 {
                break true;
            }
            if std::time::Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    signal(&child, libc::SIGTERM);
    let stopped = wait_child(&mut child, Duration::from_secs(30));
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(caught_up, "the last forwarder did not catch up (lag {})", group_lag(&client, GROUP));
    assert!(stopped, "the last forwarder did not stop on SIGTERM");
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    assert!(out.contains("CHILD-METRICS "), "the child printed no metrics on a clean stop");

    let metrics_line = out.lines().find_map(|l| l.split_once("CHILD-METRICS ").map(|(_, m)| m.to_string()));
    let total = durable_total(&client);
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(assert_exactly_once(dir.path(), &stored, PREFIX), total);
    eprintln!("{kills} SIGKILLs, {total} entries, each stored once; last child: {metrics_line:?}");
}

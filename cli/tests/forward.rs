//! `comet forward` against a real `nats-server -js`: forwards everything,
//! stops cleanly on SIGINT with its metrics, shows the directory identity
//! in `comet stat`, accepts the largest batch, stops on an error retrying
//! cannot fix, refuses bad arguments without echoing secrets. Needs the
//! binary built with `--features forward` (this test target requires it)
//! and a `nats-server` binary: without one the tests fail
//! (`.ci/nats.sh --install-only` installs Debian's).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use comet::{Client, Config, Consumer, ShardId};

fn nats_server() -> PathBuf {
    std::env::var_os("NATS_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .expect("no nats-server binary: install it with `.ci/nats.sh --install-only` or set NATS_SERVER")
}

/// A `nats-server -js` on a free port; killed on drop.
fn start_server(store: &std::path::Path) -> (Reaped, String) {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let server = Command::new(nats_server())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let server = Reaped(server);
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, format!("nats://127.0.0.1:{port}"))
}

/// Kills the child on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn comet(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_comet"));
    c.args(args).env_remove("COMET_DEBUG").env_remove("COMET_NATS_PASSWORD").env_remove("COMET_NATS_TOKEN");
    c
}

#[test]
fn forward_ships_everything_and_stops_cleanly_on_sigint() {
    let store = tempfile::tempdir().expect("store");
    let (_server, url) = start_server(store.path());

    let dir = tempfile::tempdir().expect("data dir");
    let client = Client::open(dir.path(), Config::default()).expect("open");
    for shard in [0, 2] {
        let entries: Vec<String> = (0..150).map(|i| format!("shard {shard} line {i}")).collect();
        client.append_shard(ShardId::new(shard).expect("id"), &entries).expect("append");
    }
    client.sync().expect("sync");

    let data = dir.path().to_str().expect("utf-8 path");
    let args = [
        "forward",
        data,
        "--group",
        "jetstream",
        "--nats",
        &url,
        "--subject",
        "t.dev",
        "--create-stream",
        "T",
        "--batch",
        "100000",
    ];
    let child = comet(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("comet forward");
    let mut child = Reaped(child);
    let mut consumer = Consumer::new(&client, "jetstream").expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lag: u64 = [0, 2].iter().map(|&s| consumer.lag(ShardId::new(s).expect("id")).expect("lag")).sum();
        if lag == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "comet forward did not catch up (lag {lag})");
        assert!(matches!(child.0.try_wait(), Ok(None)), "comet forward exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill").args(["-INT", &child.0.id().to_string()]).status().expect("kill -INT");
    assert!(killed.success());
    let status = wait_exit(&mut child.0, Duration::from_secs(20)).expect("comet forward stops on SIGINT");
    let mut stderr = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped; forwarded 300 entries"), "{stderr}");

    // `comet stat` shows the identity the forwarder gave the directory.
    let id = comet::dir_identity(dir.path(), false).expect("identity");
    let out = comet(&["stat", data]).output().expect("comet stat");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == format!("identity:    {id}")), "{text}");
}

#[test]
fn forward_stops_on_an_error_retrying_cannot_fix() {
    let store = tempfile::tempdir().expect("store");
    let (_server, url) = start_server(store.path());
    let dir = tempfile::tempdir().expect("data dir");
    let data = dir.path().to_str().expect("utf-8 path");
    let args =
        ["forward", data, "--group", "g", "--nats", &url, "--subject", "p", "--tls-required", "--stats-every", "0"];
    let mut child = Reaped(comet(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("comet forward"));
    let status = wait_exit(&mut child.0, Duration::from_secs(30)).expect("comet forward stops by itself");
    let mut stderr = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("comet: TLS is required but"), "{stderr}");
}

#[test]
fn forward_refuses_bad_arguments_without_echoing_secrets() {
    let dir = tempfile::tempdir().expect("data dir");
    let data = dir.path().to_str().expect("utf-8 path");
    let run = |extra: &[&str]| {
        let mut args = vec!["forward", data, "--group", "g"];
        args.extend_from_slice(extra);
        let out = comet(&args).output().expect("run comet");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--nats", "nats://127.0.0.1:1", "--subject", "a.*"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid subject prefix"), "{err}");
    let (code, err) = run(&["--nats", "nats://u:s3cret@[::1", "--subject", "p"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let (code, err) = run(&["--nats", "nats://127.0.0.1:1", "--subject", "p", "--user", "bob"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("COMET_NATS_PASSWORD"), "{err}");
    let (code, err) = run(&["--nats", "nats://127.0.0.1:1", "--subject", "p", "--stream", "5-3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid stream pattern"), "{err}");
    let (code, err) = run(&["--nats", "nats://127.0.0.1:1", "--subject", "p", "--batch", "100001"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("100001"), "{err}");

    // One `comet: ` prefix, not two.
    let out = comet(&["forward", data, "--group", "", "--nats", "nats://127.0.0.1:1", "--subject", "p"])
        .output()
        .expect("run comet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("comet: invalid consumer group name"), "{err}");
    assert!(!err.contains("comet: comet:"), "{err}");
}

//! `comet forward` against a real `nats-server -js`: forwards everything,
//! stops cleanly on SIGINT with its metrics, refuses bad arguments without
//! echoing secrets. Skipped without a `nats-server` binary unless
//! `COMET_REQUIRE_NATS=1`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use comet::{Client, Config, Consumer, ShardId};

fn nats_server() -> Option<PathBuf> {
    let found = std::env::var_os("NATS_SERVER").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let required = std::env::var("COMET_REQUIRE_NATS").is_ok_and(|v| v == "1");
        assert!(!required, "COMET_REQUIRE_NATS=1 but no nats-server binary");
        eprintln!("SKIP: no nats-server binary");
    }
    found
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
    let Some(binary) = nats_server() else { return };
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let store = tempfile::tempdir().expect("store");
    let server = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let _server = Reaped(server);
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let dir = tempfile::tempdir().expect("data dir");
    let client = Client::open(dir.path(), Config::default()).expect("open");
    for shard in [0, 2] {
        let entries: Vec<String> = (0..150).map(|i| format!("shard {shard} line {i}")).collect();
        client.append_shard(ShardId::new(shard).expect("id"), &entries).expect("append");
    }
    client.sync().expect("sync");

    let url = format!("nats://127.0.0.1:{port}");
    let data = dir.path().to_str().expect("utf-8 path");
    let args = ["forward", data, "--group", "jetstream", "--nats", &url, "--subject", "t.dev", "--create-stream", "T"];
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
}

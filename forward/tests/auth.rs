//! Credentials against a real `nats-server -js` started with a user and
//! password: the right ones forward, wrong ones are retried with backoff,
//! and no password (from the options or the URL) reaches the logs.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comet_forward::{Auth, Backoff, ForwardConfig, Forwarder, StreamSetup};

use common::*;

/// A `tracing` writer that keeps everything written to it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Runs a forwarder on this thread for `for_at_most` or until `done` holds,
/// capturing its `tracing` events.
fn run_captured(
    client: &comet::Client,
    config: ForwardConfig,
    for_at_most: Duration,
    done: impl Fn(&comet_forward::MetricsSnapshot) -> bool + 'static,
) -> (comet_forward::MetricsSnapshot, String) {
    let logs = Captured::default();
    let writer = logs.clone();
    // Everything at TRACE except the NATS client, held at INFO as
    // `log_to_stderr` does: at TRACE it logs its CONNECT line, password
    // included.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,async_nats=info"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut forwarder = Forwarder::new(client, config).expect("forwarder");
    let metrics = forwarder.metrics();
    let m = tracing::subscriber::with_default(subscriber, || {
        forwarder
            .run_blocking(async move {
                let deadline = tokio::time::Instant::now() + for_at_most;
                while !done(&metrics.snapshot()) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .expect("run")
    });
    (m, logs.text())
}

#[test]
fn credentials_authenticate_and_never_reach_the_logs() {
    let Some(server) = NatsServer::start_with(&["--user", "alice", "--pass", "s3cret-pa55"]) else { return };
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1], 50);
    let port = server.port();
    let base = |url: String| {
        let mut c = ForwardConfig::new("jetstream", url, "site.auth");
        c.stream = Some(StreamSetup::new(STREAM));
        c.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200) };
        c
    };

    // Wrong password in the options, then in the URL: refused, retried.
    let mut wrong = base(format!("nats://127.0.0.1:{port}"));
    wrong.auth = Auth::UserPassword { user: "alice".into(), password: "wr0ng-in-0ptions".into() };
    let (m, logs) = run_captured(&client, wrong, Duration::from_millis(800), |_| false);
    assert!(m.connect_failures >= 2 && m.entries_forwarded == 0, "{m:?}");
    assert!(!logs.contains("wr0ng-in-0ptions"), "password in the logs:\n{logs}");
    assert!(logs.contains("cannot connect"), "{logs}");

    let (m, logs) = run_captured(
        &client,
        base(format!("nats://alice:wr0ng-in-url@127.0.0.1:{port}")),
        Duration::from_millis(800),
        |_| false,
    );
    assert!(m.connect_failures >= 2 && m.entries_forwarded == 0, "{m:?}");
    assert!(!logs.contains("wr0ng-in-url"), "password in the logs:\n{logs}");
    assert!(logs.contains("***@127.0.0.1"), "{logs}");

    // The right password forwards everything, and stays out of the logs too.
    let mut right = base(server.url());
    right.auth = Auth::UserPassword { user: "alice".into(), password: "s3cret-pa55".into() };
    let (m, logs) = run_captured(&client, right, Duration::from_secs(30), |m| m.entries_forwarded == 100);
    assert_eq!(m.entries_forwarded, 100, "{m:?}\n{logs}");
    assert!(!logs.contains("s3cret-pa55"), "password in the logs:\n{logs}");

    // So does the right password in the URL (another group: everything
    // comes back as duplicates, which proves it was published).
    let mut in_url = base(format!("nats://alice:s3cret-pa55@127.0.0.1:{port}"));
    in_url.group = "second".into();
    let (m, logs) = run_captured(&client, in_url, Duration::from_secs(30), |m| m.duplicates == 100);
    assert_eq!((m.entries_forwarded, m.duplicates), (0, 100), "{m:?}\n{logs}");
    assert!(!logs.contains("s3cret-pa55"), "password in the logs:\n{logs}");

    let as_alice = async_nats::ConnectOptions::with_user_and_password("alice".into(), "s3cret-pa55".into());
    let stored = stream_contents_with(&server.url(), STREAM, as_alice);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.auth"), 100);
}

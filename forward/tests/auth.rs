//! Credentials and TLS against a real `nats-server -js`: the right
//! credentials forward; refused ones, an invalid nkey seed, and TLS
//! required from a plain server stop the forwarder with a clear error
//! instead of retrying forever; no password (from the options or the URL)
//! reaches the logs or the error.

mod common;

use std::time::Duration;

use comet_forward::{Auth, Backoff, ConfigError, ForwardConfig, ForwardError, Forwarder, MetricsSnapshot, StreamSetup};

use common::*;

/// Runs a forwarder on this thread for `for_at_most` or until `done` holds,
/// capturing its `tracing` events.
fn run_captured(
    client: &comet::Client,
    config: ForwardConfig,
    for_at_most: Duration,
    done: impl Fn(&MetricsSnapshot) -> bool + 'static,
) -> (Result<MetricsSnapshot, ForwardError>, String) {
    let logs = Captured::default();
    let mut forwarder = Forwarder::new(client, config).expect("forwarder");
    let metrics = forwarder.metrics();
    let r = tracing::subscriber::with_default(logs.subscriber(), || {
        forwarder.run_blocking(async move {
            let deadline = tokio::time::Instant::now() + for_at_most;
            while !done(&metrics.snapshot()) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    (r, logs.text())
}

#[test]
fn credentials_authenticate_and_never_reach_the_logs() {
    let server = NatsServer::start_with(&["--user", "alice", "--pass", "s3cret-pa55"]);
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

    // Wrong password in the options, then in the URL: refused, and the
    // forwarder stops (within the 30 s it is given: no retrying forever).
    let mut wrong = base(format!("nats://127.0.0.1:{port}"));
    wrong.auth = Auth::UserPassword { user: "alice".into(), password: "wr0ng-in-0ptions".into() };
    let (r, logs) = run_captured(&client, wrong, Duration::from_secs(30), |_| false);
    let err = r.expect_err("refused credentials stop the forwarder");
    assert!(matches!(err, ForwardError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!logs.contains("wr0ng-in-0ptions") && !err.to_string().contains("wr0ng"), "password leaked:\n{logs}");

    let (r, logs) = run_captured(
        &client,
        base(format!("nats://alice:wr0ng-in-url@127.0.0.1:{port}")),
        Duration::from_secs(30),
        |_| false,
    );
    let err = r.expect_err("refused credentials stop the forwarder");
    assert!(matches!(err, ForwardError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("***@127.0.0.1"), "{err}");
    assert!(!logs.contains("wr0ng-in-url") && !err.to_string().contains("wr0ng"), "password leaked:\n{logs}");
    assert_eq!(group_lag(&client, "jetstream"), 100, "nothing acked");

    // The right password forwards everything, and stays out of the logs too.
    let mut right = base(server.url());
    right.auth = Auth::UserPassword { user: "alice".into(), password: "s3cret-pa55".into() };
    let (m, logs) = run_captured(&client, right, Duration::from_secs(30), |m| m.entries_forwarded == 100);
    let m = m.expect("run");
    assert_eq!(m.entries_forwarded, 100, "{m:?}\n{logs}");
    assert!(!logs.contains("s3cret-pa55"), "password in the logs:\n{logs}");

    // So does the right password in the URL (another group: everything
    // comes back as duplicates, which proves it was published).
    let mut in_url = base(format!("nats://alice:s3cret-pa55@127.0.0.1:{port}"));
    in_url.group = "second".into();
    let (m, logs) = run_captured(&client, in_url, Duration::from_secs(30), |m| m.duplicates == 100);
    let m = m.expect("run");
    assert_eq!((m.entries_forwarded, m.duplicates), (0, 100), "{m:?}\n{logs}");
    assert!(!logs.contains("s3cret-pa55"), "password in the logs:\n{logs}");

    let as_alice = async_nats::ConnectOptions::with_user_and_password("alice".into(), "s3cret-pa55".into());
    let stored = stream_contents_with(&server.url(), STREAM, as_alice);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.auth"), 100);
}

#[test]
fn an_invalid_nkey_seed_is_refused_before_connecting() {
    let dir = data_dir();
    let client = writer(dir.path());
    let mut c = ForwardConfig::new("jetstream", "nats://127.0.0.1:1", "site.nkey");
    c.auth = Auth::NKey("SUnot-a-seed".into());
    let err = Forwarder::new(&client, c).expect_err("invalid seed");
    assert!(matches!(err, ForwardError::Config(ConfigError::InvalidNKeySeed)), "{err}");
    assert!(!err.to_string().contains("not-a-seed"), "the seed is echoed: {err}");
}

#[test]
fn tls_required_against_a_plain_server_stops() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    let mut c = ForwardConfig::new("jetstream", server.url(), "site.tls");
    c.tls.required = true;
    c.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200) };
    let (r, _) = run_captured(&client, c, Duration::from_secs(30), |_| false);
    let err = r.expect_err("no TLS on offer stops the forwarder");
    assert!(matches!(err, ForwardError::TlsUnavailable { .. }), "{err}");
    assert_eq!(group_lag(&client, "jetstream"), 10);
}

#[test]
fn a_publish_permission_the_server_denies_stops() {
    let server = NatsServer::start_with_config(
        "authorization { users = [ { user: pub, password: pub, permissions: { publish: { deny: [\"site.denied.>\"] } } } ] }\n",
    );
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    let mut c = ForwardConfig::new("jetstream", server.url(), "site.denied");
    c.stream = Some(StreamSetup::new(STREAM));
    c.auth = Auth::UserPassword { user: "pub".into(), password: "pub".into() };
    c.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200) };
    let (r, _) = run_captured(&client, c, Duration::from_secs(30), |_| false);
    let err = r.expect_err("a denied publish stops the forwarder");
    assert!(matches!(err, ForwardError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("Permissions Violation"), "{err}");
    assert_eq!(group_lag(&client, "jetstream"), 10, "nothing acked");
}

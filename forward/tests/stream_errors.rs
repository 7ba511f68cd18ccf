//! Stream trouble against a real `nats-server -js`: what retrying cannot
//! fix stops the forwarder with a typed error (replicas above the cluster,
//! no JetStream, subjects overlapping another stream, an existing stream
//! that does not capture the prefix); what it can fix is retried with the
//! backoff while the lag shows the backlog and the failures are counted as
//! stream errors, not publish errors; re-publishes after a restart are
//! counted; a shorter existing duplicate window is warned about.

mod common;

use std::time::Duration;

use async_nats::jetstream::stream;
use comet::ShardId;
use comet_forward::{ForwardError, StreamSetup};

use common::*;

fn create(url: &str, name: &str, subjects: &[&str], duplicate_window: Duration) {
    let config = stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| (*s).to_string()).collect(),
        duplicate_window,
        ..Default::default()
    };
    with_js(url, |js| async move {
        js.create_stream(config).await.expect("create stream");
    });
}

#[test]
fn three_replicas_on_one_server_stop() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    let mut c = config(&server.url(), "site.r3");
    let mut setup = StreamSetup::new(STREAM);
    setup.replicas = 3;
    c.stream = Some(setup);
    let err = spawn(&client, c).ended().expect_err("replicas 3 cannot be had");
    assert!(matches!(err, ForwardError::StreamRefused { code: 10074, .. }), "{err}");
    assert!(err.to_string().contains("replicas"), "{err}");
}

#[test]
fn a_server_without_jetstream_stops() {
    let server = NatsServer::start_without_jetstream();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    let err = spawn(&client, config(&server.url(), "site.nojs")).ended().expect_err("no JetStream");
    assert!(matches!(err, ForwardError::NoJetStream { .. }), "{err}");
    assert_eq!(group_lag(&client, GROUP), 10);
}

#[test]
fn a_stream_overlapping_another_stops() {
    let server = NatsServer::start();
    create(&server.url(), "OTHER", &["site.overlap.>"], Duration::from_secs(120));
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    let err = spawn(&client, config(&server.url(), "site.overlap")).ended().expect_err("overlap");
    assert!(matches!(err, ForwardError::StreamRefused { code: 10065, .. }), "{err}");
}

#[test]
fn an_existing_stream_that_does_not_capture_the_prefix_stops() {
    let server = NatsServer::start();
    create(&server.url(), STREAM, &["elsewhere.>"], Duration::from_secs(120));
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    let err = spawn(&client, config(&server.url(), "site.mismatch")).ended().expect_err("mismatch");
    let ForwardError::StreamMismatch { stream, subjects, prefix } = &err else { panic!("{err}") };
    assert_eq!(
        (stream.as_str(), subjects.as_slice(), prefix.as_str()),
        (STREAM, &["elsewhere.>".to_string()][..], "site.mismatch")
    );
}

#[test]
fn while_the_stream_cannot_be_created_the_lag_shows_the_backlog_and_it_is_retried() {
    // An account allowed one stream, which another one takes.
    let server = NatsServer::start_with_config(
        "accounts { A { jetstream { max_streams: 1 }, users [ { user: a, password: a } ] } }\nno_auth_user: a\n",
    );
    create(&server.url(), "BLOCKER", &["blocker.>"], Duration::from_secs(120));
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1, 2], 100);
    let f = spawn(&client, config(&server.url(), "site.blocked"));
    wait_until(Duration::from_secs(30), "failed stream creations and the backlog in the lag", || {
        let m = f.metrics.snapshot();
        m.stream_errors >= 2 && m.lag == 300
    });
    let m = f.metrics.snapshot();
    assert_eq!(
        (m.publish_errors, m.entries_forwarded),
        (0, 0),
        "a stream that cannot be created is no publish error: {m}"
    );

    // The operator frees the slot: the forwarder creates its stream.
    with_js(&server.url(), |js| async move {
        js.delete_stream("BLOCKER").await.expect("delete");
    });
    f.wait_caught_up(&client, Duration::from_secs(60));
    let m = f.stop();
    assert_eq!((m.entries_forwarded, m.lag), (300, 0), "{m}");
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.blocked"), 300);
}

#[test]
fn re_publishes_after_a_restart_are_counted() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1], 100);
    let f = spawn(&client, config(&server.url(), "site.again"));
    f.wait_caught_up(&client, Duration::from_secs(60));
    assert_eq!(f.stop().republished, 0);

    // As if the forwarder had died after publishing, before acking: the
    // group's offsets are behind what JetStream holds.
    let mut consumer = comet::Consumer::new(&client, GROUP).expect("consumer");
    for shard in [0, 1] {
        consumer.reset_offset(ShardId::new(shard).expect("id"), 40).expect("reset");
    }
    let f = spawn(&client, config(&server.url(), "site.again"));
    f.wait_caught_up(&client, Duration::from_secs(60));
    let m = f.stop();
    // Each shard's last stored entry is 99: entries 40..=99 are re-sent.
    assert_eq!((m.republished, m.duplicates, m.entries_forwarded), (120, 120, 0), "{m}");
    assert!(m.to_string().contains("120 re-published"), "{m}");
}

#[test]
fn a_shorter_existing_duplicate_window_is_warned_about() {
    let server = NatsServer::start();
    create(&server.url(), STREAM, &["site.window.>"], Duration::from_secs(5));
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0], 10);
    let (r, logs) = run_captured(&client, config(&server.url(), "site.window"), Duration::from_secs(30), |m| {
        m.entries_forwarded == 10
    });
    assert_eq!(r.expect("run").entries_forwarded, 10);
    assert!(logs.contains("duplicate window is shorter than asked"), "{logs}");
    assert!(logs.contains("existing=5s") && logs.contains("asked=120s"), "{logs}");
}

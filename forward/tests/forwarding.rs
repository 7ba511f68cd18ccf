//! Forwarding to a real `nats-server -js`: every entry arrives once with
//! its headers, the forwarder resumes where it acked, waits out an
//! unreachable server, and survives a server restart mid-stream.

mod common;

use std::time::Duration;

use comet_forward::{ForwardConfig, ForwardError, Forwarder};

use common::*;

#[test]
fn every_entry_arrives_once_with_its_headers() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1, 7], 400);
    let f = spawn(&client, config(&server.url(), "site.dev1"));
    f.wait_caught_up(&client, Duration::from_secs(60));
    let live = f.metrics.snapshot();
    let m = f.stop();
    assert_eq!(m.entries_forwarded, 1200);
    assert_eq!(m.duplicates, 0);
    assert!(m.bytes_forwarded > 1200 * 10, "{m:?}");
    assert_eq!(m.lag, 0);
    assert!(m.connected && live.connected);
    assert_eq!(m.publish_latency.count, 1200);
    assert!(m.publish_latency.p50 <= m.publish_latency.p99 && m.publish_latency.p99 <= m.publish_latency.max);
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.dev1"), 1200);
    // Per subject, entries are in order after an undisturbed run.
    for shard in [0, 1, 7] {
        let entries: Vec<u64> = stored.iter().filter(|s| s.shard == shard).map(|s| s.entry).collect();
        assert_eq!(entries, (0..400).collect::<Vec<_>>(), "shard {shard}");
    }
}

#[test]
fn a_restarted_forwarder_resumes_where_it_acked() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1], 150);
    let f = spawn(&client, config(&server.url(), "site.dev2"));
    f.wait_caught_up(&client, Duration::from_secs(60));
    assert_eq!(f.stop().entries_forwarded, 300);

    append(&client, &[1, 2], 100);
    let f = spawn(&client, config(&server.url(), "site.dev2"));
    f.wait_caught_up(&client, Duration::from_secs(60));
    let m = f.stop();
    // Only the new entries were published: nothing leaned on dedup.
    assert_eq!((m.entries_forwarded, m.duplicates), (200, 0));
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.dev2"), 500);
}

#[test]
fn only_the_selected_shards_are_forwarded() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1, 2, 3], 20);
    let mut c = config(&server.url(), "site.dev3");
    c.shards = "events:v1:shard:0001,3".parse().expect("pattern");
    let f = spawn(&client, c);
    wait_until(Duration::from_secs(30), "shards 1 and 3 to be forwarded", || {
        f.metrics.snapshot().entries_forwarded == 40
    });
    std::thread::sleep(Duration::from_millis(200));
    let m = f.stop();
    assert_eq!(m.entries_forwarded, 40);
    let stored = stream_contents(&server.url(), STREAM);
    let mut shards: Vec<u32> = stored.iter().map(|s| s.shard).collect();
    shards.dedup();
    assert_eq!(shards, [1, 3]);
}

#[test]
fn an_unreachable_server_is_retried_while_comet_keeps_buffering() {
    available_binary();
    let port = free_port();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 2], 100);
    let f = spawn(&client, config(&format!("nats://127.0.0.1:{port}"), "site.dev4"));
    std::thread::sleep(Duration::from_millis(1500));
    append(&client, &[0, 2], 100);
    let m = f.metrics.snapshot();
    assert!(m.connect_failures >= 2, "{m:?}");
    assert_eq!(m.entries_forwarded, 0);
    assert_eq!(group_lag(&client, GROUP), 400, "nothing is acked while the server is away");
    wait_until(Duration::from_secs(10), "the lag metric to show the backlog", || f.metrics.snapshot().lag == 400);

    let server = NatsServer::start_on(port);
    f.wait_caught_up(&client, Duration::from_secs(60));
    let m = f.stop();
    assert_eq!(m.entries_forwarded, 400);
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.dev4"), 400);
}

#[test]
fn a_server_stopped_and_restarted_mid_stream_loses_and_duplicates_nothing() {
    let mut server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[0, 1, 2], 200);
    let f = spawn(&client, config(&server.url(), "site.dev5"));

    // A writer appends throughout; the server goes away twice meanwhile.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let w = {
        let (client, writing) = (client.clone(), writing.clone());
        std::thread::spawn(move || {
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                append(&client, &[0, 1, 2], 50);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    for _ in 0..2 {
        wait_until(Duration::from_secs(30), "progress before the stop", || f.metrics.snapshot().entries_forwarded > 0);
        std::thread::sleep(Duration::from_millis(300));
        server.stop();
        std::thread::sleep(Duration::from_millis(800));
        let during = f.metrics.snapshot();
        assert!(!during.connected || during.publish_errors > 0, "{during:?}");
        server.resume();
        std::thread::sleep(Duration::from_millis(300));
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    w.join().expect("writer thread");
    f.wait_caught_up(&client, Duration::from_secs(90));
    let m = f.stop();
    assert!(m.reconnects >= 2 && m.disconnects >= 2, "{m:?}");
    let total = durable_total(&client);
    // An entry stored just before the server went down whose PubAck was
    // lost comes back as a duplicate on redelivery: stored once, counted
    // as a duplicate, not as forwarded.
    assert!(m.entries_forwarded <= total && m.entries_forwarded + m.duplicates >= total, "{m:?}");
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.dev5"), total);
    eprintln!("server restarts: {total} entries, {} dropped as duplicates by the server; {m}", m.duplicates);
}

#[test]
fn bad_configs_are_refused_before_connecting() {
    let dir = data_dir();
    let client = writer(dir.path());
    let bad = |c: ForwardConfig| Forwarder::new(&client, c).err();
    assert!(matches!(bad(ForwardConfig::new("", "nats://127.0.0.1:1", "p")), Some(ForwardError::Comet(_))));
    assert!(matches!(bad(ForwardConfig::new("g".repeat(48), "nats://127.0.0.1:1", "p")), Some(ForwardError::Comet(_))));
    assert!(matches!(bad(ForwardConfig::new("g", "nats://127.0.0.1:1", "a.*")), Some(ForwardError::Config(_))));
    assert!(matches!(bad(ForwardConfig::new("g", "nats://[::1", "p")), Some(ForwardError::Config(_))));
    let err = bad(ForwardConfig::new("g", "nats://u:s3cret@[::1", "p")).expect("refused").to_string();
    assert!(!err.contains("s3cret"), "{err}");
}

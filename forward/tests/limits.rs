//! Limits against a real `nats-server -js`: the largest batch forwards
//! without stalling on the client's in-flight limit; sizes are checked as
//! the server counts them (headers included) against `max_payload` and the
//! stream's `max_msg_size`; an entry above either stops only its own shard,
//! before it, leaving no hole; a damaged entry stops its shard too.

mod common;

use std::time::Duration;

use comet::ShardId;
use comet_forward::{ForwardError, MAX_BATCH_SIZE, SizeLimit, StreamSetup};

use common::*;

/// A timestamp with as many digits as every append time until 2286.
const TS_DIGITS_LIKE: u64 = 1_000_000_000_000_000_000;

fn timestamp(client: &comet::Client, shard: u32, entry: u64) -> u64 {
    client.reader(ShardId::new(shard).expect("id")).expect("reader").read(entry).expect("read").timestamp
}

#[test]
fn the_largest_batch_forwards_without_stalling() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    // More than one full batch of the largest size, so that a round holds
    // 100,000 publishes awaiting their PubAcks (the client's default limit
    // is 5,000).
    append(&client, &[0, 1], 55_000);
    let mut c = config(&server.url(), "site.batch");
    c.batch_size = MAX_BATCH_SIZE;
    c.publish_timeout = Duration::from_secs(10);
    let f = spawn(&client, c);
    f.wait_caught_up(&client, Duration::from_secs(300));
    let m = f.stop();
    assert_eq!(m.entries_forwarded, 110_000, "{m}");
    assert_eq!((m.publish_errors, m.republished), (0, 0), "no round stalled: {m}");
    let stored = stream_contents(&server.url(), STREAM);
    assert_eq!(assert_exactly_once(dir.path(), &stored, "site.batch"), 110_000);
}

#[test]
fn an_entry_at_max_payload_passes_and_one_byte_more_stops_only_its_shard() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    let id = comet::dir_identity(dir.path(), true).expect("identity");
    let max_payload: usize = 1024 * 1024; // nats-server's default
    let fits = max_payload - header_block_len(&id, 0, 0, TS_DIGITS_LIKE);
    let over = max_payload - header_block_len(&id, 1, 0, TS_DIGITS_LIKE) + 1;
    append_raw(&client, 0, &[vec![b'a'; fits], b"after the largest".to_vec()]);
    append_raw(&client, 1, &[vec![b'b'; over], b"stays behind".to_vec()]);
    append(&client, &[2], 50);
    for shard in [0, 1] {
        assert_eq!(timestamp(&client, shard, 0).to_string().len(), TS_DIGITS_LIKE.to_string().len());
    }

    let f = spawn(&client, config(&server.url(), "site.limit"));
    wait_until(Duration::from_secs(60), "shards 0 and 2 to be forwarded", || {
        f.metrics.snapshot().entries_forwarded == 52
    });
    wait_until(Duration::from_secs(10), "shard 1 to be stopped", || f.metrics.snapshot().shards_stopped == 1);
    let (forwarder, r) = f.finish();
    let m = r.expect("the other shards keep the forwarder running");
    assert_eq!(m.entries_forwarded, 52, "{m}");
    let stopped: Vec<_> = forwarder.stopped_shards().collect();
    assert_eq!(stopped.len(), 1);
    let (shard, why) = stopped[0];
    assert_eq!(shard.get(), 1);
    let ForwardError::EntryTooLarge { id, bytes, limit, kind } = why else { panic!("{why}") };
    assert_eq!((id.shard.get(), id.entry), (1, 0));
    assert_eq!((*bytes, *limit, *kind), (max_payload as u64 + 1, max_payload as u64, SizeLimit::MaxPayload));
    assert!(why.to_string().contains(&format!("needs {} bytes", max_payload + 1)), "{why}");

    assert_eq!(group_offset(&client, GROUP, 1), 0, "nothing of shard 1 is acked");
    let stored = stream_contents(&server.url(), STREAM);
    assert!(stored.iter().all(|s| s.shard != 1), "nothing of shard 1 is sent");
    let largest = stored.iter().find(|s| (s.shard, s.entry) == (0, 0)).expect("the largest entry is stored");
    assert_eq!(largest.payload.len(), fits);
    assert_eq!(stored.len(), 52);
}

#[test]
fn a_stream_max_msg_size_below_an_entry_stops_its_shard_without_a_hole() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    let id = comet::dir_identity(dir.path(), true).expect("identity");
    const LIMIT: usize = 2000;
    // An operator's stream with a message size limit.
    with_js(&server.url(), |js| async move {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "LIMITED".into(),
            subjects: vec!["site.msgsize.>".into()],
            max_message_size: i32::try_from(LIMIT).expect("fits"),
            ..Default::default()
        })
        .await
        .expect("create stream");
    });
    let small = |i: u64| format!("small {i}").into_bytes();
    let mut entries: Vec<Vec<u8>> = (0..9).map(small).collect();
    entries.push(vec![b'x'; LIMIT - header_block_len(&id, 0, 9, TS_DIGITS_LIKE)]); // entry 9: exactly the limit
    entries.push(vec![b'y'; LIMIT - header_block_len(&id, 0, 10, TS_DIGITS_LIKE) + 1]); // entry 10: one byte over
    entries.extend((11..20).map(small));
    append_raw(&client, 0, &entries);
    append(&client, &[1], 30);

    let mut c = config(&server.url(), "site.msgsize");
    c.stream = None; // the operator's stream
    let f = spawn(&client, c);
    wait_until(Duration::from_secs(60), "shard 0 to stop and shard 1 to be forwarded", || {
        let m = f.metrics.snapshot();
        m.shards_stopped == 1 && m.entries_forwarded == 40
    });
    let (forwarder, r) = f.finish();
    let m = r.expect("shard 1 keeps the forwarder running");
    assert_eq!(m.entries_forwarded, 40, "{m}");
    let stopped: Vec<_> = forwarder.stopped_shards().collect();
    let [(shard, ForwardError::EntryTooLarge { id, bytes, limit, kind })] = stopped.as_slice() else {
        panic!("{stopped:?}")
    };
    assert_eq!(
        (shard.get(), id.entry, *bytes, *limit, *kind),
        (0, 10, LIMIT as u64 + 1, LIMIT as u64, SizeLimit::MaxMsgSize)
    );

    // Shard 0 holds exactly 0..=9: nothing after the entry that does not
    // fit was stored ahead of it, and the group waits at it.
    let stored = stream_contents(&server.url(), "LIMITED");
    let shard0: Vec<u64> = stored.iter().filter(|s| s.shard == 0).map(|s| s.entry).collect();
    assert_eq!(shard0, (0..10).collect::<Vec<_>>());
    assert_eq!(group_offset(&client, GROUP, 0), 10);

    // The server agrees about where the limit is, headers included: the
    // entry at the limit was stored (above), and one byte more is refused
    // when published by another client with the same headers.
    let url = server.url();
    let refused = with_js(&url, |js| async move {
        let id = |v: &str| {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", v);
            h
        };
        let block = "NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n".len();
        let at = js.publish_with_headers("site.msgsize.x", id("x"), vec![0u8; LIMIT - block].into()).await;
        let over = js.publish_with_headers("site.msgsize.y", id("y"), vec![0u8; LIMIT - block + 1].into()).await;
        (at.expect("publish").await.is_ok(), over.expect("publish").await.is_err())
    });
    assert_eq!(refused, (true, true), "the server counts headers against max_msg_size");
}

#[test]
fn an_oversized_entry_on_the_only_shard_ends_the_run() {
    let server = NatsServer::start();
    let dir = data_dir();
    let client = writer(dir.path());
    append(&client, &[3], 5);
    append_raw(&client, 3, &[vec![0u8; 2 * 1024 * 1024]]);
    let mut c = config(&server.url(), "site.only");
    c.stream = Some(StreamSetup::new(STREAM));
    let f = spawn(&client, c);
    let err = f.ended().expect_err("no shard can move");
    let ForwardError::ShardsStopped(stopped) = &err else { panic!("{err}") };
    assert_eq!(stopped.len(), 1);
    assert!(matches!(stopped[0].1, ForwardError::EntryTooLarge { kind: SizeLimit::MaxPayload, .. }), "{err}");
    assert!(err.to_string().contains("shard 3"), "{err}");
    assert_eq!(group_offset(&client, GROUP, 3), 5, "acked up to the oversized entry");
}

#[test]
fn a_damaged_entry_is_neither_forwarded_nor_acked() {
    let server = NatsServer::start();
    let dir = data_dir();
    // Chunks of 4 entries: entry 12's chunk is entries 12..16.
    let client = writer_small_chunks(dir.path());
    let entries: Vec<Vec<u8>> = (0..20).map(|i| format!("entry {i:04} of shard five, intact").into_bytes()).collect();
    append_raw(&client, 5, &entries);
    client.close().expect("close");
    // Flip one payload byte of entry 12 in its segment file.
    let target = b"entry 0012 of shard five, intact";
    let shard_dir = dir.path().join("shard-0005");
    let mut flipped = false;
    for file in std::fs::read_dir(&shard_dir).expect("list") {
        let path = file.expect("entry").path();
        if path.extension().is_none_or(|e| e != "comet") {
            continue;
        }
        let mut bytes = std::fs::read(&path).expect("read segment");
        if let Some(at) = bytes.windows(target.len()).position(|w| w == target) {
            bytes[at + 6] ^= 0x01;
            std::fs::write(&path, &bytes).expect("write segment");
            flipped = true;
        }
    }
    assert!(flipped, "entry 12's payload was not found in a segment file");

    let client = comet::Client::open_read_only(dir.path(), comet::Config::default()).expect("open");
    let f = spawn(&client, config(&server.url(), "site.damaged"));
    let err = f.ended().expect_err("the only shard stops at the damaged entry");
    let ForwardError::ShardsStopped(stopped) = &err else { panic!("{err}") };
    assert!(matches!(stopped.as_slice(), [(s, ForwardError::Damaged { .. })] if s.get() == 5), "{err}");
    assert_eq!(group_offset(&client, GROUP, 5), 12, "acked up to the damaged chunk, not into it");
    let stored = stream_contents(&server.url(), STREAM);
    let entries: Vec<u64> = stored.iter().map(|s| s.entry).collect();
    assert_eq!(entries, (0..12).collect::<Vec<_>>(), "nothing from the damaged entry on is forwarded");
}

#[test]
fn an_entry_that_fails_to_decode_stops_its_shard_before_it() {
    let server = NatsServer::start();
    let dir = data_dir();
    // Chunks of 4 entries: entry 12's chunk is entries 12..16. (Its chunk
    // fails its checksum before the frame is ever decoded.)
    let client = writer_small_chunks(dir.path());
    // Entry 12 begins with the zstd magic, so comet stores it inside a zstd
    // frame of raw blocks and decodes it on every read (docs/FORMAT.md).
    let marker = b"<entry twelve, stored in a raw zstd frame>";
    let mut entries: Vec<Vec<u8>> = (0..12).map(|i| format!("entry {i}").into_bytes()).collect();
    entries.push([&[0x28, 0xB5, 0x2F, 0xFD][..], &marker[..]].concat());
    entries.extend((13..20).map(|i| format!("entry {i}").into_bytes()));
    append_raw(&client, 5, &entries);
    append(&client, &[6], 30);
    client.close().expect("close");
    // Make its block header name the reserved block type: it no longer
    // decodes.
    let mut damaged = false;
    for file in std::fs::read_dir(dir.path().join("shard-0005")).expect("list") {
        let path = file.expect("entry").path();
        let mut bytes = std::fs::read(&path).expect("read");
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            // block header (3 bytes), then the payload's own 4-byte magic
            bytes[at - 4 - 3] |= 0b110;
            std::fs::write(&path, &bytes).expect("write");
            damaged = true;
        }
    }
    assert!(damaged, "entry 12 was not found in a segment file");
    let client = comet::Client::open_read_only(dir.path(), comet::Config::default()).expect("open");

    let f = spawn(&client, config(&server.url(), "site.decode"));
    wait_until(Duration::from_secs(60), "shard 5 to stop and the rest to be forwarded", || {
        let m = f.metrics.snapshot();
        m.shards_stopped == 1 && m.entries_forwarded == 42
    });
    let (forwarder, r) = f.finish();
    let m = r.expect("shard 6 keeps the forwarder running");
    assert_eq!(m.entries_forwarded, 42, "{m}");
    let stopped: Vec<_> = forwarder.stopped_shards().collect();
    assert!(matches!(stopped.as_slice(), [(s, ForwardError::Damaged { .. })] if s.get() == 5), "{stopped:?}");
    assert_eq!(group_offset(&client, GROUP, 5), 12, "acked up to the damaged entry, not past it");
    let stored = stream_contents(&server.url(), STREAM);
    let shard5: Vec<u64> = stored.iter().filter(|s| s.shard == 5).map(|s| s.entry).collect();
    assert_eq!(shard5, (0..12).collect::<Vec<_>>(), "nothing from the damaged entry on is forwarded");
}

use super::*;

#[test]
fn defaults_are_valid() {
    let c = EmbeddedConfig::default();
    c.validate().unwrap();
    let e = c.engine().unwrap();
    assert_eq!(e.max_chunks, 1024);
    assert_eq!(e.buffer_size, 64 << 10);
}

type Case = (&'static str, fn(&mut EmbeddedConfig));

#[test]
fn bad_values_are_rejected_by_name() {
    let cases: [Case; 10] = [
        ("max_shards", |c| c.max_shards = 0),
        ("max_shards", |c| c.max_shards = 65),
        ("shard_count", |c| c.shard_count = 5),
        ("checkpoint_capacity", |c| c.checkpoint_capacity = 1),
        ("storage.write_buffer_size", |c| c.write_buffer_bytes = 100),
        ("storage.flush_interval_ms", |c| {
            c.flush_interval = Duration::ZERO;
        }),
        ("indexing.boundary_interval", |c| c.boundary_interval = 0),
        ("retention.max_shard_size", |c| c.retention.max_shard_size = Some(0)),
        ("read_buffer_bytes", |c| c.read_buffer_bytes = 1000),
        ("max_entry_size (+24 must fit write_buffer_bytes)", |c| {
            c.max_entry_size = 64 << 10;
        }),
    ];
    for (field, break_it) in cases {
        let mut c = EmbeddedConfig::default();
        break_it(&mut c);
        assert_eq!(c.validate().unwrap_err().field, field);
    }
}

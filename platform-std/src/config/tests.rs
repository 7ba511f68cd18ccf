use super::*;

const GIB: u64 = 1 << 30;

#[test]
fn defaults_and_presets_are_valid() {
    for c in [Config::default(), Config::high_compression(), Config::high_throughput(), Config::multi_process(2, 4)] {
        c.validate().unwrap();
    }
    let d = Config::default();
    assert_eq!(d.storage.max_file_size, 256 << 20);
    assert_eq!(d.compression.min_compress_size, 4096);
    assert_eq!(d.compression.level, 3);
    assert_eq!(d.indexing.boundary_interval, 100);
    assert_eq!(d.storage.write_buffer_size, 64 << 10);
    assert_eq!(d.storage.flush_interval, Duration::from_secs(1));
    assert_eq!(d.concurrency, ConcurrencyConfig { process_id: 0, process_count: 1, shard_count: 16 });
    assert_eq!(d.log.level, LogLevel::Info);
    assert_eq!(d.retention.max_age, Some(Duration::from_secs(7 * 24 * 3600)));
    assert!(d.retention.protect_unconsumed);
}

type Case = (&'static str, fn(&mut Config));

#[test]
fn zero_and_absurd_values_are_rejected_by_name() {
    let cases: [Case; 15] = [
        ("indexing.boundary_interval", |c| c.indexing.boundary_interval = 0),
        ("storage.max_file_size", |c| c.storage.max_file_size = 0),
        ("storage.max_file_size", |c| c.storage.max_file_size = 3 * GIB),
        ("storage.max_entry_size", |c| c.storage.max_entry_size = 0),
        ("storage.max_entry_size", |c| c.storage.max_entry_size = 1 << 31),
        ("storage.write_buffer_size", |c| c.storage.write_buffer_size = 10),
        ("storage.flush_interval_ms", |c| c.storage.flush_interval = Duration::ZERO),
        ("concurrency.process_count", |c| c.concurrency.process_count = 0),
        ("concurrency.process_id", |c| c.concurrency.process_id = 1),
        ("concurrency.shard_count", |c| c.concurrency.shard_count = 10_001),
        ("compression.level", |c| c.compression.level = 0),
        ("compression.level", |c| c.compression.level = 23),
        ("compression.dict_sample_bytes", |c| c.compression.dict_sample_bytes = 100),
        ("compression.dict_max_size", |c| c.compression.dict_max_size = 1 << 21),
        ("retention.max_shard_size", |c| c.retention.max_shard_size = Some(0)),
    ];
    for (field, break_it) in cases {
        let mut c = Config::default();
        break_it(&mut c);
        assert_eq!(c.validate().unwrap_err().field, field);
    }
    let mut c = Config::default();
    c.retention.hard_cap = true;
    assert!(c.validate().is_err(), "hard cap without a total size");
}

#[test]
fn engine_gathers_the_engine_fields() {
    let mut c = Config::high_throughput();
    c.storage.max_file_size = 1 << 20;
    c.storage.max_entry_size = 1 << 10;
    let e = c.engine();
    assert_eq!(
        e,
        EngineSettings {
            boundary_interval: 1000,
            max_file_size: 1 << 20,
            max_entry_size: 1 << 10,
            write_buffer_size: 4 << 20,
            min_compress_size: 1 << 20,
        }
    );
}

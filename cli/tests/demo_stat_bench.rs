//! `comet demo`, `comet stat` and `comet bench`.

mod common;

use common::{assert_error, run, s};

/// The number after `label` in `text` (e.g. `entries     120`).
fn number_after(text: &str, label: &str) -> u64 {
    let at = text.find(label).unwrap_or_else(|| panic!("{label:?} not in {text}")) + label.len();
    text[at..].split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("no number: {text}"))
}

#[test]
fn demo_writes_consumes_and_cleans_up_a_temporary_directory() {
    let r = run(["demo", "--entries", "3000"]);
    assert_eq!(r.code, 0, "{r:?}");
    for label in ["dir ", "wrote ", "bytes ", "consumed ", "lag ", "retention ", "files ", "entries "] {
        assert!(r.stdout.lines().any(|l| l.starts_with(label)), "no {label:?} line: {}", r.stdout);
    }
    assert!(r.stdout.contains("wrote      3000 events"), "{}", r.stdout);
    assert!(r.stdout.contains("to 16 shards"), "{}", r.stdout);
    assert!(r.stdout.contains("consumed   3000 events"), "{}", r.stdout);
    assert!(r.stdout.contains("lag        0 entries behind"), "{}", r.stdout);
    let dir = r.stdout.lines().next().unwrap().split_whitespace().nth(1).unwrap().to_string();
    assert!(r.stdout.contains("(temporary, removed on exit)"), "{}", r.stdout);
    assert!(!std::path::Path::new(&dir).exists(), "temporary directory {dir} left behind");
}

#[test]
fn demo_keeps_a_given_directory_which_then_verifies_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let r = run(["demo", "--dir", s(&dir), "--entries", "40000"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(kept)"), "{}", r.stdout);
    // Small segments and a 256 KiB cap per shard: retention deletes acked segments.
    let deleted = number_after(&r.stdout, "deleted ");
    assert!(deleted > 0, "{}", r.stdout);
    let retained = number_after(&r.stdout, "entries    ");
    assert!(retained < 40_000, "{}", r.stdout);

    let v = run(["verify", s(&dir)]);
    assert_eq!(v.code, 0, "{v:?}");

    let st = run(["stat", s(&dir)]);
    assert_eq!(st.code, 0, "{st:?}");
    assert_eq!(number_after(&st.stdout, "shards:"), 16);
    assert_eq!(number_after(&st.stdout, "entries:"), retained);
    assert!(st.stdout.contains("age span:"), "{}", st.stdout);
    assert!(st.stdout.contains("segments_deleted"), "{}", st.stdout);

    let js = run(["stat", "--json", s(&dir)]);
    assert_eq!(js.code, 0, "{js:?}");
    let v: serde_json::Value = serde_json::from_str(js.stdout.trim()).unwrap();
    assert_eq!(v["shards"].as_array().unwrap().len(), 16);
    assert_eq!(v["totals"]["entries"], retained);
    assert_eq!(v["totals"]["counters"]["entries_appended"], 40_000);
    assert!(v["totals"]["counters"]["segments_deleted"].as_u64().unwrap() > 0);
    assert!(v["totals"]["compression_ratio"].as_f64().unwrap() > 1.0);
    assert!(v["totals"]["oldest_ns"].as_u64().unwrap() <= v["totals"]["newest_ns"].as_u64().unwrap());
    let shard0 = &v["shards"][0];
    assert_eq!(shard0["groups"][0]["group"], "demo");
    assert_eq!(shard0["groups"][0]["lag"], 0);

    let g = run(["groups", s(&dir)]);
    assert!(g.stdout.contains("group \"demo\": 16 shards, total lag 0"), "{g:?}");
}

#[test]
fn demo_with_no_events() {
    let r = run(["demo", "--entries", "0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("wrote      0 events"), "{}", r.stdout);
}

#[test]
fn stat_of_an_empty_directory_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(["stat", s(tmp.path())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(number_after(&r.stdout, "shards:"), 0);
    let r = run(["stat", "--json", s(tmp.path())]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["totals"]["entries"], 0);
    assert_error(&run(["stat", s(&tmp.path().join("nope"))]), "no such directory");
    assert_error(&run(["stat", "--json", s(&tmp.path().join("nope"))]), "no such directory");
}

#[test]
fn bench_reports_throughput_and_latency_percentiles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench");
    let r = run(["bench", "--dir", s(&dir), "--entries", "5000", "--size", "64", "--batch", "50", "--shards", "3"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("5000 entries of 64 B in batches of 50 over 3 shards"), "{}", r.stdout);
    for word in ["entries/s", "p50", "p90", "p99", "p99.9", "max", "sync", "read       5000 entries"] {
        assert!(r.stdout.contains(word), "no {word:?}: {}", r.stdout);
    }
    let st = run(["stat", "--json", s(&dir)]);
    let v: serde_json::Value = serde_json::from_str(st.stdout.trim()).unwrap();
    assert_eq!(v["totals"]["entries"], 5000);
    assert_eq!(v["shards"].as_array().unwrap().len(), 3);
    assert_eq!(run(["verify", s(&dir)]).code, 0);
}

#[test]
fn bench_with_a_temporary_directory_and_bad_arguments() {
    let r = run(["bench", "--entries", "1000", "--batch", "7"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("read       1000 entries"), "{}", r.stdout);
    assert_eq!(run(["bench", "--batch", "0"]).code, 2);
    assert_eq!(run(["bench", "--shards", "0"]).code, 2);
    assert_eq!(run(["bench", "--shards", "10001"]).code, 2);
    assert_eq!(run(["bench", "--entries", "-5"]).code, 2);
    assert_eq!(run(["bench", "--size", "16777217"]).code, 2);
    assert_error(&run(["bench", "--dir", "/dev/null/x", "--entries", "1"]), "/dev/null/x");
}

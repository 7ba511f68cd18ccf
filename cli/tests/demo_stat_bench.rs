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
    // What an event looks like: one sample line of each kind, as stored.
    let lines: Vec<&str> = r.stdout.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("events     one of each kind")).expect("samples");
    let samples = &lines[at + 1..at + 5];
    assert!(samples.iter().any(|l| l.contains("\"level\":")), "a log line: {samples:?}");
    assert!(samples.iter().any(|l| l.contains(" value=")), "a metric: {samples:?}");
    assert!(samples.iter().any(|l| l.contains("\"span_id\":")), "a span: {samples:?}");
    assert!(
        samples.iter().any(|l| l.contains("panic in worker") && l.ends_with('…')),
        "a clipped error log: {samples:?}"
    );
    // Retention's figures are labelled as the demo's settings.
    assert!(r.stdout.contains("demo settings: 64.0 KiB segments, 256.0 KiB kept per shard"), "{}", r.stdout);
    assert!(r.stdout.contains("never deletes what a consumer group has not acked\n"), "{}", r.stdout);
    // What to try next: keep the data with --dir.
    assert!(
        r.stdout.contains("next       keep the data with `comet demo --dir DIR`, then look at it:"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("comet stat DIR"), "{}", r.stdout);
    // Not a terminal: no progress bar.
    assert!(r.stderr.is_empty(), "{r:?}");
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
    let gone = 40_000 - retained;
    assert!(
        r.stdout.contains(&format!(
            "of 40000 written (the other {gone} were consumed and acked, then deleted by the demo's cap)"
        )),
        "{}",
        r.stdout
    );
    // The suggested commands name the kept directory and work as printed.
    assert!(r.stdout.contains(&format!("next       look at what the demo left in {}:", dir.display())), "{}", r.stdout);
    let suggested: Vec<Vec<String>> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("comet "))
        .map(|l| l.split("  # ").next().unwrap().split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(suggested.len(), 5, "{}", r.stdout);
    for args in suggested {
        let out = run(&args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?}: {out:?}");
    }

    let v = run(["verify", s(&dir)]);
    assert_eq!(v.code, 0, "{v:?}");

    let st = run(["stat", s(&dir)]);
    assert_eq!(st.code, 0, "{st:?}");
    assert_eq!(number_after(&st.stdout, "shards:"), 16);
    assert_eq!(number_after(&st.stdout, "entries:"), retained);
    assert!(st.stdout.contains("age span:"), "{}", st.stdout);
    // Never forwarded: no identity yet, said as such (not as an error).
    assert!(
        st.stdout.lines().any(|l| l == "identity:    none yet (`comet forward` creates comet.id)"),
        "{}",
        st.stdout
    );
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
    assert!(g.stdout.contains("group \"demo\": acked on 16 of 16 shards, total lag 0"), "{g:?}");
}

#[test]
fn demo_and_bench_count_one_in_the_singular() {
    let r = run(["demo", "--entries", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("wrote      1 event (logs 1, metrics 0, spans 0, large error logs 0) to 1 shard in"),
        "{r:?}"
    );
    assert!(r.stdout.contains("consumed   1 event ("), "{r:?}");
    assert!(r.stdout.contains("as group \"demo\" in 1 batch,"), "{r:?}");
    assert!(r.stdout.contains("lag        0 entries behind across 1 shard\n"), "{r:?}");
    assert!(r.stdout.contains("files      1 shard directory, 1 segment file,"), "{r:?}");
    let r = run(["bench", "--entries", "1", "--batch", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("bench      1 entry of 100 B in batches of 1 over 1 shard in"), "{r:?}");
    assert!(r.stdout.contains("read       1 entry in"), "{r:?}");
    assert!(r.stdout.contains("in 1 segment; compression ratio 1.00"), "{r:?}");
}

#[test]
fn demo_with_no_events() {
    let r = run(["demo", "--entries", "0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("wrote      0 events"), "{}", r.stdout);
}

#[test]
fn stat_of_a_directory_without_comet_data_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A typo'd path (here an empty directory, or /etc) must not look healthy.
    for args in [vec!["stat"], vec!["stat", "--json"], vec!["stat", "--format", "prometheus"], vec!["groups"]] {
        let mut a = args.clone();
        a.push(s(tmp.path()));
        assert_error(&run(&a), "no comet data here (expected shard-NNNN directories)");
        let mut a = args.clone();
        a.push("/etc");
        assert_error(&run(&a), "/etc: no comet data here");
    }
    // Unless the caller says an empty directory is fine.
    let r = run(["stat", "--allow-empty", s(tmp.path())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(number_after(&r.stdout, "shards:"), 0);
    let r = run(["stat", "--json", "--allow-empty", s(tmp.path())]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["totals"]["entries"], 0);
    let r = run(["groups", "--allow-empty", s(tmp.path())]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "no consumer groups\n"), "{r:?}");
    assert_error(&run(["stat", s(&tmp.path().join("nope"))]), "no such directory");
    assert_error(&run(["stat", "--json", s(&tmp.path().join("nope"))]), "no such directory");
    assert_error(&run(["stat", "--json", "--format", "json", s(tmp.path())]), "cannot be used with");
}

#[test]
fn stat_labels_the_counters_only_writer_processes_add_to() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let r = common::run_with_stdin(["append", s(&dir), "x:shard:0003"], b"a\nb\nc\n");
    assert_eq!(r.code, 0, "{r:?}");
    // Another process consumes and acks: the shared offsets move, the
    // writer's counters do not (docs/DECISIONS.md D-21).
    assert_eq!(run(["consume", s(&dir), "--group", "g"]).code, 0);
    let r = run(["stat", s(&dir)]);
    let line = |name: &str| r.stdout.lines().find(|l| l.trim_start().starts_with(name)).unwrap().to_string();
    assert!(line("entries_read ").contains("0 (writer processes only; see `comet groups`"), "{r:?}");
    assert!(line("acks ").contains("0 (writer processes only"), "{r:?}");
    assert!(!line("entries_appended ").contains("writer processes only"), "{r:?}");
    let g = run(["groups", s(&dir)]);
    assert!(g.stdout.contains("group \"g\": acked on 1 of 1 shard, total lag 0"), "{g:?}");
}

#[test]
fn stat_prints_openmetrics_for_a_scrape() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    for (stream, input) in [("x:shard:0003", &b"a\nb\nc\n"[..]), ("x:shard:0010", b"d\n")] {
        assert_eq!(common::run_with_stdin(["append", s(&dir), stream], input).code, 0);
    }
    assert_eq!(run(["consume", s(&dir), "--group", "g", "--count", "1"]).code, 0);
    let r = run(["stat", "--format", "prometheus", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.ends_with("\n# EOF\n"), "{}", r.stdout);
    // What an operator's dashboard needs, one sample each.
    for sample in [
        "comet_shard_entries{shard=\"0003\"} 3\n",
        "comet_shard_entries{shard=\"0010\"} 1\n",
        "comet_shard_segments{shard=\"0003\"} 1\n",
        "comet_group_lag{group=\"g\",shard=\"0003\"} 2\n",
        "comet_group_lag{group=\"g\",shard=\"0010\"} 1\n",
        "comet_entries_appended_total{shard=\"0003\"} 3\n",
        "comet_append_errors_total{shard=\"0003\"} 0\n",
        "comet_sync_errors_total{shard=\"0010\"} 0\n",
    ] {
        assert!(r.stdout.contains(sample), "{sample:?} in\n{}", r.stdout);
    }
    assert!(r.stdout.contains("# TYPE comet_shard_bytes gauge\n"), "{}", r.stdout);
    assert!(r.stdout.contains("# TYPE comet_entries_appended counter\n"), "{}", r.stdout);
    // Every line is a family header, a sample or the final # EOF.
    for line in r.stdout.lines() {
        let ok = line.starts_with("# TYPE comet_")
            || line.starts_with("# HELP comet_")
            || line == "# EOF"
            || (line.starts_with("comet_") && line.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<f64>().is_ok()));
        assert!(ok, "{line:?}");
    }
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

/// `--json-lines` compresses each line alone (about 1.2x); `--dict` adds
/// a trained dictionary per shard, which `stat` then names, and the ratio
/// goes past 3x.
#[test]
fn bench_json_lines_with_and_without_a_dictionary() {
    let tmp = tempfile::tempdir().unwrap();
    let ratio = |out: &str| -> f64 {
        let at = out.find("compression ratio ").unwrap() + "compression ratio ".len();
        out[at..].split_whitespace().next().unwrap().parse().unwrap()
    };
    let plain = tmp.path().join("plain");
    let r = run(["bench", "--dir", s(&plain), "--entries", "3000", "--json-lines"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("JSON lines (zstd each)"), "{}", r.stdout);
    assert!(ratio(&r.stdout) < 2.0, "{}", r.stdout);
    let dict = tmp.path().join("dict");
    let r = run(["bench", "--dir", s(&dict), "--entries", "20000", "--json-lines", "--dict", "--shards", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("JSON lines (zstd + dictionary)"), "{}", r.stdout);
    assert!(ratio(&r.stdout) > 3.0, "{}", r.stdout);
    let st = run(["stat", s(&dict)]);
    assert!(st.stdout.contains("DICT"), "{}", st.stdout);
    let rows: Vec<&str> = st.stdout.lines().filter(|l| l.starts_with("000")).collect();
    assert_eq!(rows.len(), 2, "{}", st.stdout);
    // RATIO, then DICT: a dictionary id (32768 and up), not "-"
    assert!(
        rows.iter().all(|r| r
            .split_whitespace()
            .nth(7)
            .and_then(|d| d.parse::<u32>().ok())
            .is_some_and(|d| d >= 32768)),
        "{}",
        st.stdout
    );
    let st = run(["stat", "--json", s(&dict)]);
    let v: serde_json::Value = serde_json::from_str(st.stdout.trim()).unwrap();
    assert!(v["shards"][1]["dictionary"].as_u64().is_some_and(|d| d >= 32768), "{v}");
    // One dictionary per shard: the priming sync trains it, the bench does
    // not train a second.
    assert_eq!(v["shards"][0]["dictionaries"], 1, "{v}");
    assert_eq!(v["shards"][1]["dictionaries"], 1, "{v}");
    let st = run(["stat", "--json", s(&plain)]);
    let v: serde_json::Value = serde_json::from_str(st.stdout.trim()).unwrap();
    assert!(v["shards"][0]["dictionary"].is_null());
    assert_eq!(run(["verify", s(&dict)]).code, 0);
    assert_eq!(run(["bench", "--dict"]).code, 2, "--dict needs --json-lines");
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

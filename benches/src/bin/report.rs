//! Turns the results of a `cargo bench -p comet-benches` run into the
//! Markdown table of `BENCHMARKS.md`: criterion's median per iteration and
//! per element, the user/system CPU per element from the benches' own
//! `getrusage` totals, the ratio to the floor measured in the same group
//! (the function whose name ends in `_floor`), and the ratio to the
//! DESIGN.md §8 target where one applies (<= 1.00 meets it).
//!
//! ```text
//! cargo run -p comet-benches --bin report [criterion home]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use comet_benches::meter::fmt_ns;

/// One criterion result.
#[derive(Debug, Clone)]
struct Result {
    group: String,
    function: String,
    median_ns: f64,
    elements: f64,
}

/// A DESIGN.md §8 target.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Wall time at most this multiple of the group's floor.
    FloorRatio(f64),
    /// At most this many ns per element (wall).
    NsPerElement(f64),
    /// At most this many ns per iteration (wall).
    NsPerIter(f64),
}

fn target(group: &str, function: &str) -> Option<Target> {
    if function.ends_with("_floor") {
        return None;
    }
    let g = group;
    if g.starts_with("append_single") || g.starts_with("append_batch_") {
        return Some(Target::FloorRatio(1.15));
    }
    if (g.starts_with("durable_")) && function == "comet" {
        return Some(Target::FloorRatio(1.1));
    }
    if g.starts_with("consume_batch_") && function == "comet_read_ack" {
        return Some(Target::NsPerElement(50.0));
    }
    if g == "random_read_5" {
        return Some(Target::NsPerIter(1000.0));
    }
    if g == "ack_single" {
        return Some(Target::NsPerIter(20.0));
    }
    if g == "tail_wake" {
        return Some(Target::NsPerIter(50_000.0));
    }
    if g == "open_clean" {
        return Some(Target::NsPerIter(10e6));
    }
    None
}

/// User-CPU targets per element (ns).
fn cpu_target(group: &str, function: &str) -> Option<f64> {
    match (group, function) {
        ("append_single", f) if f.starts_with("comet") => Some(60.0),
        ("append_batch_100", "comet") => Some(15.0),
        _ => None,
    }
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let at = text.find(key)? + key.len();
    let rest = &text[at..];
    let end =
        rest.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn string_after(text: &str, key: &str) -> Option<String> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn collect(dir: &Path, out: &mut Vec<Result>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            let bench = std::fs::read_to_string(p.join("benchmark.json")).unwrap_or_default();
            let est = std::fs::read_to_string(p.join("estimates.json")).unwrap_or_default();
            let (Some(group), Some(function), Some(median)) = (
                string_after(&bench, "\"group_id\":"),
                string_after(&bench, "\"function_id\":"),
                est.find("\"median\":").and_then(|i| number_after(&est[i..], "\"point_estimate\":")),
            ) else {
                continue;
            };
            let elements = number_after(&bench, "\"Elements\":").unwrap_or(1.0);
            out.push(Result { group, function, median_ns: median, elements });
        } else if p.file_name().is_some_and(|n| n != "base" && n != "report" && n != "comet-cpu") {
            collect(&p, out);
        }
    }
}

/// `id -> (entries, user ns, sys ns)` from the benches' CPU totals.
fn cpu_totals(home: &Path) -> BTreeMap<String, (f64, f64, f64)> {
    let mut m = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(home.join("comet-cpu")) else { return m };
    for e in rd.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() >= 6 {
                let n = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
                m.insert(f[0].to_string(), (n(2), n(4), n(5)));
            }
        }
    }
    m
}

fn main() {
    let home = std::env::args().nth(1).map_or_else(comet_benches::meter::criterion_home, PathBuf::from);
    let mut results = Vec::new();
    collect(&home, &mut results);
    results.sort_by(|a, b| (&a.group, &a.function).cmp(&(&b.group, &b.function)));
    let cpu = cpu_totals(&home);
    let floors: BTreeMap<&str, &Result> =
        results.iter().filter(|r| r.function.ends_with("_floor")).map(|r| (r.group.as_str(), r)).collect();
    println!(
        "| bench | median / iter | per element | user CPU / el. | sys CPU / el. | vs floor | target | vs target |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|");
    for r in &results {
        let id = format!("{}/{}", r.group, r.function);
        let per = r.median_ns / r.elements;
        let (user, sys) = cpu
            .get(&id)
            .filter(|c| c.0 > 0.0)
            .map_or((String::from("–"), String::from("–")), |c| (fmt_ns(c.1 / c.0), fmt_ns(c.2 / c.0)));
        let floor = floors.get(r.group.as_str()).filter(|f| !std::ptr::eq(**f, r));
        let vs_floor = floor.map_or(String::from("–"), |f| format!("{:.2}x", r.median_ns / f.median_ns));
        let mut targets = Vec::new();
        let mut ratios = Vec::new();
        match target(&r.group, &r.function) {
            Some(Target::FloorRatio(x)) => {
                targets.push(format!("<= {x}x floor"));
                if let Some(f) = floor {
                    ratios.push(format!("{:.2}", r.median_ns / f.median_ns / x));
                }
            }
            Some(Target::NsPerElement(t)) => {
                targets.push(format!("<= {} / el.", fmt_ns(t)));
                ratios.push(format!("{:.2}", per / t));
            }
            Some(Target::NsPerIter(t)) => {
                targets.push(format!("<= {}", fmt_ns(t)));
                ratios.push(format!("{:.2}", r.median_ns / t));
            }
            None => {}
        }
        if let Some(t) = cpu_target(&r.group, &r.function) {
            targets.push(format!("user <= {t} ns/el."));
            if let Some(c) = cpu.get(&id).filter(|c| c.0 > 0.0) {
                ratios.push(format!("{:.2} (CPU)", c.1 / c.0 / t));
            }
        }
        let show = |v: Vec<String>| if v.is_empty() { String::from("–") } else { v.join("; ") };
        println!(
            "| `{id}` | {} | {} | {user} | {sys} | {vs_floor} | {} | {} |",
            fmt_ns(r.median_ns),
            fmt_ns(per),
            show(targets),
            show(ratios)
        );
    }
    if let Ok(mem) = std::fs::read_to_string(home.join("comet-memory.txt")) {
        println!("\nMemory (`benches/memory.rs`; target: <= 256 KiB per idle shard):\n\n```text\n{}\n```", mem.trim());
    }
    if let Ok(mp) = std::fs::read_to_string(home.join("comet-multi-process.txt")) {
        println!(
            "\nMulti-process (`benches/multi_process.rs`; target: multi-process append <= 2x single-process):\n\n```text\n{}\n```",
            mp.trim()
        );
    }
}

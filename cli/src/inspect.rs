//! `groups`, `stat`, `verify` and `repair`.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use comet::{Client, Config, Counters, Finding, RecoveryReport, Severity, ShardStats, Stats, VerifyReport};
use comet_core::import::ImportProblem;
use comet_core::segment::ScanEnd;
use comet_core::shard::QuarantineReason;

use crate::CmdResult;
use crate::out::{self, json, require_dir};

fn open(dir: &Path) -> Result<Client, Box<dyn std::error::Error>> {
    require_dir(dir)?;
    Ok(Client::open_read_only(dir, Config::default())?)
}

/// Lists consumer groups: offset and lag per shard.
pub(crate) fn groups(dir: &Path) -> CmdResult {
    let client = open(dir)?;
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let mut rows = Vec::new();
    for shard in client.shards()? {
        let st = client.shard_stats(shard)?;
        for g in st.groups {
            rows.push((g.group, shard, g.offset, g.lag, g.last_ack_ns));
        }
    }
    if rows.is_empty() {
        writeln!(w, "no consumer groups")?;
    } else {
        rows.sort();
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
        writeln!(w, "{:<width$}  SHARD  {:>12}  {:>12}  LAST ACK", "GROUP", "OFFSET", "LAG")?;
        for (group, shard, offset, lag, last) in &rows {
            writeln!(w, "{group:<width$}  {shard}   {offset:>12}  {lag:>12}  {}", out::time(*last))?;
        }
        let mut names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        names.dedup();
        for name in names {
            let lag: u64 = rows.iter().filter(|r| r.0 == name).map(|r| r.3).sum();
            let shards = rows.iter().filter(|r| r.0 == name).count();
            writeln!(w, "group {name:?}: {shards} shards, total lag {lag}")?;
        }
    }
    w.flush()?;
    Ok(0)
}

/// Timestamp of the first retained entry of a shard (0 if none).
fn oldest(client: &Client, st: &ShardStats) -> u64 {
    if st.first_entry >= st.durable_end {
        return 0;
    }
    client.reader(st.shard).and_then(|mut r| r.read(st.first_entry)).map_or(st.oldest_ns, |m| m.timestamp)
}

fn counters_json(c: &Counters) -> String {
    let fields: Vec<String> = c.iter().map(|(name, v)| format!("{}:{v}", json(name))).collect();
    format!("{{{}}}", fields.join(","))
}

/// Shards, segments, entries, bytes, age span and metrics.
pub(crate) fn stat(dir: &Path, as_json: bool) -> CmdResult {
    let client = open(dir)?;
    let stats: Stats = client.stats()?;
    let oldest: Vec<u64> = stats.shards.iter().map(|s| oldest(&client, s)).collect();
    let first_ts = oldest.iter().copied().filter(|&t| t > 0).min().unwrap_or(0);
    let last_ts = stats.shards.iter().map(|s| s.newest_ns).max().unwrap_or(0);
    let segments: u64 = stats.shards.iter().map(|s| s.segments).sum();
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    if as_json {
        let mut s = format!("{{\"dir\":{},\"shards\":[", json(&dir.display().to_string()));
        for (i, (st, old)) in stats.shards.iter().zip(&oldest).enumerate() {
            if i > 0 {
                s.push(',');
            }
            let groups: Vec<String> = st
                .groups
                .iter()
                .map(|g| {
                    format!(
                        "{{\"group\":{},\"offset\":{},\"lag\":{},\"last_ack_ns\":{}}}",
                        json(&g.group),
                        g.offset,
                        g.lag,
                        g.last_ack_ns
                    )
                })
                .collect();
            let _ = write!(
                s,
                "{{\"shard\":{},\"first_entry\":{},\"durable_end\":{},\"entries\":{},\"segments\":{},\"bytes\":{},\
                 \"oldest_ns\":{old},\"newest_ns\":{},\"compression_ratio\":{:.4},\"counters\":{},\"groups\":[{}]}}",
                st.shard.get(),
                st.first_entry,
                st.durable_end,
                st.durable_end - st.first_entry,
                st.segments,
                st.bytes,
                st.newest_ns,
                st.compression_ratio,
                counters_json(&st.counters),
                groups.join(",")
            );
        }
        let _ = write!(
            s,
            "],\"totals\":{{\"shards\":{},\"segments\":{segments},\"entries\":{},\"bytes\":{},\"oldest_ns\":{first_ts},\
             \"newest_ns\":{last_ts},\"compression_ratio\":{:.4},\"counters\":{}}}}}",
            stats.shards.len(),
            stats.entries,
            stats.bytes,
            stats.compression_ratio,
            counters_json(&stats.counters)
        );
        writeln!(w, "{s}")?;
        w.flush()?;
        return Ok(0);
    }
    writeln!(w, "dir:         {}", dir.display())?;
    writeln!(
        w,
        "identity:    {}",
        comet::dir_identity(dir, false).map_or_else(|e| e.to_string(), |id| id.to_string())
    )?;
    writeln!(w, "shards:      {}", stats.shards.len())?;
    writeln!(w, "segments:    {segments}")?;
    writeln!(w, "entries:     {}", stats.entries)?;
    writeln!(w, "bytes:       {} ({})", stats.bytes, out::bytes(stats.bytes))?;
    writeln!(w, "compression: {:.2}x (raw / stored payload bytes)", stats.compression_ratio)?;
    let span = if first_ts > 0 && last_ts >= first_ts { out::nanos(last_ts - first_ts) } else { "-".into() };
    writeln!(w, "age span:    {} .. {} ({span})", out::time(first_ts), out::time(last_ts))?;
    if !stats.shards.is_empty() {
        writeln!(
            w,
            "\nSHARD  {:>12}  {:>12}  {:>12}  SEGMENTS  {:>12}  RATIO  GROUPS  OLDEST                    NEWEST",
            "FIRST", "END", "ENTRIES", "BYTES"
        )?;
        for (st, old) in stats.shards.iter().zip(&oldest) {
            writeln!(
                w,
                "{}   {:>12}  {:>12}  {:>12}  {:>8}  {:>12}  {:>5.2}  {:>6}  {:<24}  {}",
                st.shard,
                st.first_entry,
                st.durable_end,
                st.durable_end - st.first_entry,
                st.segments,
                st.bytes,
                st.compression_ratio,
                st.groups.len(),
                out::time(*old),
                out::time(st.newest_ns)
            )?;
        }
        writeln!(w, "\nmetrics (all shards):")?;
        for (name, v) in stats.counters.iter() {
            if name.ends_with("_ns") {
                writeln!(w, "  {name:<22} {}", out::time(v))?;
            } else {
                writeln!(w, "  {name:<22} {v}")?;
            }
        }
    }
    w.flush()?;
    Ok(0)
}

fn finding_json(f: &Finding) -> String {
    let severity = if f.severity == Severity::Damage { "damage" } else { "note" };
    let segment = f.segment.map_or("null".into(), |b| json(&format!("log-{b:020}.comet")));
    let entries = f.entries.as_ref().map_or("null".into(), |r| format!("[{},{}]", r.start, r.end));
    format!(
        "{{\"shard\":{},\"severity\":\"{severity}\",\"kind\":\"{}\",\"segment\":{segment},\"entries\":{entries},\
         \"message\":{}}}",
        f.shard.get(),
        f.problem.name(),
        json(&f.problem.to_string())
    )
}

fn verify_json(r: &VerifyReport) -> String {
    let shards: Vec<String> = r
        .shards
        .iter()
        .map(|s| {
            format!(
                "{{\"shard\":{},\"segments\":{},\"entries\":{},\"bytes\":{},\"first_entry\":{},\"durable_end\":{},\
                 \"groups\":{}}}",
                s.shard.get(),
                s.segments,
                s.entries,
                s.bytes,
                s.first_entry,
                s.durable_end,
                s.groups
            )
        })
        .collect();
    let findings: Vec<String> = r.findings.iter().map(finding_json).collect();
    format!(
        "{{\"ok\":{},\"damage\":{},\"notes\":{},\"shards\":[{}],\"findings\":[{}]}}",
        r.is_ok(),
        r.damage().count(),
        r.notes().count(),
        shards.join(","),
        findings.join(",")
    )
}

/// Prints a verification report as text; returns the exit code.
fn print_verify(w: &mut impl Write, r: &VerifyReport) -> io::Result<u8> {
    for s in &r.shards {
        writeln!(
            w,
            "shard {}: {} segments, {} entries ({} bytes) checked, entries {}..{}, {} groups",
            s.shard, s.segments, s.entries, s.bytes, s.first_entry, s.durable_end, s.groups
        )?;
    }
    for f in &r.findings {
        let tag = if f.severity == Severity::Damage { "DAMAGE" } else { "note  " };
        writeln!(w, "{tag} {f}")?;
    }
    let (damage, notes) = (r.damage().count(), r.notes().count());
    let entries: u64 = r.shards.iter().map(|s| s.entries).sum();
    if damage == 0 {
        writeln!(w, "verify: ok: {} shards, {entries} entries checked, {notes} notes", r.shards.len())?;
        Ok(0)
    } else {
        writeln!(w, "verify: DAMAGED: {damage} problems, {notes} notes in {} shards", r.shards.len())?;
        Ok(1)
    }
}

/// Checks everything, read-only.
pub(crate) fn verify(dir: &Path, as_json: bool) -> CmdResult {
    require_dir(dir)?;
    let report = comet::verify(dir)?;
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let code = if as_json {
        writeln!(w, "{}", verify_json(&report))?;
        u8::from(!report.is_ok())
    } else {
        print_verify(&mut w, &report)?
    };
    w.flush()?;
    Ok(code)
}

fn scan_end(end: &ScanEnd) -> String {
    match end {
        ScanEnd::Clean => "clean end".into(),
        ScanEnd::ZeroFill => "zero fill".into(),
        ScanEnd::TornHeader => "torn header".into(),
        ScanEnd::TornPayload => "torn payload".into(),
        ScanEnd::Invalid(e) => format!("invalid header: {e}"),
    }
}

/// What recovery did to one shard, one line per action.
fn recovery_actions(r: &RecoveryReport) -> Vec<String> {
    let mut out = Vec::new();
    match (&r.manifest_error, r.rebuilt_manifest) {
        (Some(e), _) => out
            .push(format!("rebuilt index.bin from the segment files (it was corrupt: {e}; kept as index.bin.corrupt)")),
        (None, true) => out.push("rebuilt the missing index.bin from the segment files".into()),
        _ => {}
    }
    if r.state_reset {
        out.push("reset the invalid durable head in comet.state".into());
    }
    for t in &r.torn {
        out.push(format!(
            "truncated log-{:020}.comet at byte {} (removed {} bytes: {})",
            t.base,
            t.offset,
            t.removed,
            scan_end(&t.end)
        ));
    }
    for q in &r.quarantined {
        let why = match q.reason {
            QuarantineReason::Length { expected, actual } => format!("{actual} bytes, expected {expected}"),
            QuarantineReason::Checksum => "synced bytes fail their checksum".into(),
            QuarantineReason::Overlap => "overlaps another segment".into(),
        };
        out.push(format!("quarantined log-{:020}.comet ({why})", q.base));
    }
    for m in &r.missing {
        out.push(format!("recorded entries {}..{} as lost", m.start, m.end));
    }
    if r.orphans_removed > 0 {
        out.push(format!("removed {} orphan segments left by an interrupted retention pass", r.orphans_removed));
    }
    out
}

/// Quarantines damaged segments, runs recovery on every shard, verifies.
pub(crate) fn repair(dir: &Path) -> CmdResult {
    require_dir(dir)?;
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    for q in comet::quarantine_damaged(dir)? {
        let name = q.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let entries = q.finding.entries.as_ref().map_or(String::new(), |r| format!(" entries {}..{}:", r.start, r.end));
        writeln!(
            w,
            "shard {}: quarantined log-{:020}.comet as {name} ({}{entries} {})",
            q.shard,
            q.base,
            q.finding.problem.name(),
            q.finding.problem
        )?;
    }
    let mut config = Config::default();
    config.retention.cleanup_interval = None;
    let client = Client::open(dir, config)?;
    let mut failed = Vec::new();
    for shard in client.shards()? {
        match client.recover_shard(shard) {
            Ok(r) => {
                let actions = recovery_actions(&r);
                if actions.is_empty() {
                    writeln!(w, "shard {shard}: ok")?;
                }
                for a in actions {
                    writeln!(w, "shard {shard}: {a}")?;
                }
            }
            Err(e) => failed.push(format!("shard {shard}: {e}")),
        }
    }
    client.close()?;
    let report = comet::verify(dir)?;
    let code = print_verify(&mut w, &report)?;
    w.flush()?;
    if failed.is_empty() { Ok(code) } else { Err(format!("repair incomplete: {}", failed.join("; ")).into()) }
}

fn import_problem(p: &ImportProblem) -> String {
    match p {
        ImportProblem::NoIndex => "no Go index: numbering assumed contiguous from the first file".into(),
        ImportProblem::IndexUnreadable(e) => format!("Go index unreadable ({e}); treated as missing"),
        ImportProblem::MissingFile { name, first, end } => {
            format!("{name} is listed but missing: entries {first}..{end} are lost")
        }
        ImportProblem::IndexDisagrees { name, index_start, index_entries, start, found } => format!(
            "{name}: the index says {index_entries} entries from {index_start}, the file holds {found} from {start}"
        ),
        ImportProblem::Truncated { name, offset, removed, end } => {
            format!("{name}: cut {removed} bytes at byte {offset} ({})", scan_end(end))
        }
        other => format!("{other:?}"),
    }
}

/// Imports Go-written shards in place.
pub(crate) fn import(dir: &Path) -> CmdResult {
    require_dir(dir)?;
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let shards = comet::import_go(dir, &Config::default())?;
    if shards.is_empty() {
        writeln!(w, "no shards in {}", dir.display())?;
    }
    for s in shards {
        let r = &s.report;
        if r.already_native {
            writeln!(w, "shard {}: already in comet format", s.shard)?;
            continue;
        }
        let first = r.segments.first().map_or(r.end, |g| g.base);
        writeln!(
            w,
            "shard {}: imported {} segments, entries {first}..{} (numbering continues at {})",
            s.shard,
            r.segments.len(),
            r.end,
            r.end
        )?;
        for p in &r.problems {
            writeln!(w, "shard {}: {}", s.shard, import_problem(p))?;
        }
        for (group, offset) in &s.groups {
            writeln!(w, "shard {}: group {group:?} at entry {offset}", s.shard)?;
        }
    }
    w.flush()?;
    Ok(0)
}

//! `groups`, `stat`, `verify` and `repair`.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use comet::{Client, Config, Counters, Finding, RecoveryReport, Severity, ShardCheck, ShardStats, Stats, VerifyReport};
use comet_core::{ImportProblem, QuarantineReason, ScanEnd};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::out::{self, count as n_of, printable, require_dir};
use crate::{CmdResult, StatFormat};

/// The error for a directory that holds no shard: an operator who typed
/// the wrong path must not get a green result.
fn no_data(dir: &Path) -> Box<dyn std::error::Error> {
    format!(
        "{}: no comet data here (expected shard-NNNN directories); pass --allow-empty if an empty directory is fine",
        dir.display()
    )
    .into()
}

/// Opens `dir` read-only; fails on a directory without shards unless
/// `allow_empty`.
fn open(dir: &Path, allow_empty: bool) -> Result<Client, Box<dyn std::error::Error>> {
    require_dir(dir)?;
    let client = Client::open_read_only(dir, Config::default())?;
    if !allow_empty && client.shards()?.is_empty() {
        return Err(no_data(dir));
    }
    Ok(client)
}

/// Warns on stderr about shards whose consumer offsets could not be read
/// (the other shards' figures are still printed).
fn warn_groups(stats: &Stats) {
    for st in &stats.shards {
        if let Some(e) = &st.groups_error {
            eprintln!("comet: warning: {}; run `comet repair`", out::line_safe(e));
        }
    }
}

/// One group's position on one shard, as `groups` prints it.
#[derive(Serialize)]
struct GroupShard {
    shard: u32,
    /// The next entry the group reads (the first retained one if it never
    /// acked here).
    offset: u64,
    lag: u64,
    /// False if the group never acked on this shard.
    acked: bool,
    /// Unix ns of the last ack (0 if never).
    last_ack_ns: u64,
}

/// One group over every shard.
#[derive(Serialize)]
struct GroupJson<'a> {
    group: &'a str,
    total_lag: u64,
    shards_acked: usize,
    shards: Vec<GroupShard>,
}

#[derive(Serialize)]
struct GroupsJson<'a> {
    dir: String,
    groups: Vec<GroupJson<'a>>,
}

/// Every group's position on every shard of `stats`.
fn group_rows(stats: &Stats) -> Vec<GroupJson<'_>> {
    stats
        .group_names()
        .into_iter()
        .map(|name| {
            let shards: Vec<GroupShard> = stats
                .shards
                .iter()
                .map(|st| {
                    let slot = st.groups.iter().find(|g| g.group == name);
                    GroupShard {
                        shard: st.shard.get(),
                        offset: st.group_offset(name),
                        lag: st.group_lag(name),
                        acked: slot.is_some(),
                        last_ack_ns: slot.map_or(0, |g| g.last_ack_ns),
                    }
                })
                .collect();
            GroupJson {
                group: name,
                total_lag: shards.iter().map(|s| s.lag).sum(),
                shards_acked: shards.iter().filter(|s| s.acked).count(),
                shards,
            }
        })
        .collect()
}

/// Lists consumer groups: offset and lag on every shard.
pub(crate) fn groups(dir: &Path, as_json: bool, allow_empty: bool) -> CmdResult {
    let client = open(dir, allow_empty)?;
    let stats = client.stats()?;
    warn_groups(&stats);
    let groups = group_rows(&stats);
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    if as_json {
        out::json_line(&mut w, &GroupsJson { dir: dir.display().to_string(), groups })?;
    } else if groups.is_empty() {
        writeln!(w, "no consumer groups")?;
    } else {
        // Names read back from old files may hold any byte: print them escaped.
        let names: Vec<String> = groups.iter().map(|g| printable(g.group)).collect();
        let width = names.iter().map(String::len).max().unwrap_or(5).max(5);
        writeln!(w, "{:<width$}  SHARD  {:>12}  {:>12}  LAST ACK", "GROUP", "OFFSET", "LAG")?;
        for (g, name) in groups.iter().zip(&names) {
            for s in &g.shards {
                let last = if s.acked { out::time(s.last_ack_ns) } else { "never".into() };
                writeln!(w, "{name:<width$}  {:04}   {:>12}  {:>12}  {last}", s.shard, s.offset, s.lag)?;
            }
        }
        for (g, name) in groups.iter().zip(&names) {
            writeln!(
                w,
                "group \"{name}\": acked on {} of {}, total lag {}",
                g.shards_acked,
                n_of(g.shards.len() as u64, "shard", "shards"),
                g.total_lag
            )?;
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

/// Counters as a JSON object, in the order of `comet.state`.
struct CountersJson<'a>(&'a Counters);

impl Serialize for CountersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, v) in self.0.iter() {
            map.serialize_entry(name, &v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct StatGroupJson<'a> {
    group: &'a str,
    offset: u64,
    lag: u64,
    last_ack_ns: u64,
}

#[derive(Serialize)]
struct StatShardJson<'a> {
    shard: u32,
    first_entry: u64,
    durable_end: u64,
    entries: u64,
    segments: u64,
    bytes: u64,
    oldest_ns: u64,
    newest_ns: u64,
    compression_ratio: out::Ratio4,
    /// The newest zstd dictionary in the shard directory (the one its
    /// writer compresses with), if any.
    dictionary: Option<u32>,
    dictionaries: usize,
    counters: CountersJson<'a>,
    groups: Vec<StatGroupJson<'a>>,
}

#[derive(Serialize)]
struct StatTotalsJson<'a> {
    shards: usize,
    segments: u64,
    entries: u64,
    bytes: u64,
    oldest_ns: u64,
    newest_ns: u64,
    compression_ratio: out::Ratio4,
    counters: CountersJson<'a>,
}

#[derive(Serialize)]
struct StatJson<'a> {
    dir: String,
    shards: Vec<StatShardJson<'a>>,
    totals: StatTotalsJson<'a>,
}

/// Counters that only the shard's writer process adds to (docs/DECISIONS.md
/// D-21): reads and acks in other processes never write `comet.state`.
const WRITER_PROCESS_ONLY: [&str; 2] = ["entries_read", "acks"];

/// Shards, segments, entries, bytes, age span and metrics.
pub(crate) fn stat(dir: &Path, format: StatFormat, allow_empty: bool) -> CmdResult {
    let client = open(dir, allow_empty)?;
    let stats: Stats = client.stats()?;
    warn_groups(&stats);
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    if format == StatFormat::Prometheus {
        w.write_all(stats.to_openmetrics().as_bytes())?;
        w.flush()?;
        return Ok(0);
    }
    let oldest: Vec<u64> = stats.shards.iter().map(|s| oldest(&client, s)).collect();
    let first_ts = oldest.iter().copied().filter(|&t| t > 0).min().unwrap_or(0);
    let last_ts = stats.shards.iter().map(|s| s.newest_ns).max().unwrap_or(0);
    let segments: u64 = stats.shards.iter().map(|s| s.segments).sum();
    if format == StatFormat::Json {
        let shards = stats
            .shards
            .iter()
            .zip(&oldest)
            .map(|(st, &old)| StatShardJson {
                shard: st.shard.get(),
                first_entry: st.first_entry,
                durable_end: st.durable_end,
                entries: st.durable_end - st.first_entry,
                segments: st.segments,
                bytes: st.bytes,
                oldest_ns: old,
                newest_ns: st.newest_ns,
                compression_ratio: out::Ratio4(st.compression_ratio),
                dictionary: st.dictionaries.last().copied(),
                dictionaries: st.dictionaries.len(),
                counters: CountersJson(&st.counters),
                groups: st
                    .groups
                    .iter()
                    .map(|g| StatGroupJson {
                        group: &g.group,
                        offset: g.offset,
                        lag: g.lag,
                        last_ack_ns: g.last_ack_ns,
                    })
                    .collect(),
            })
            .collect();
        let totals = StatTotalsJson {
            shards: stats.shards.len(),
            segments,
            entries: stats.entries,
            bytes: stats.bytes,
            oldest_ns: first_ts,
            newest_ns: last_ts,
            compression_ratio: out::Ratio4(stats.compression_ratio),
            counters: CountersJson(&stats.counters),
        };
        out::json_line(&mut w, &StatJson { dir: dir.display().to_string(), shards, totals })?;
        w.flush()?;
        return Ok(0);
    }
    writeln!(w, "dir:         {}", dir.display())?;
    writeln!(
        w,
        "identity:    {}",
        match comet::dir_identity(dir, false) {
            Ok(id) => id.to_string(),
            // Only `comet forward` needs one; it creates it on first use.
            Err(comet::IdentityError::Missing { .. }) => "none yet (`comet forward` creates comet.id)".to_string(),
            Err(e) => comet::ErrorChain(&e).to_string(),
        }
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
            "\nSHARD  {:>12}  {:>12}  {:>12}  SEGMENTS  {:>12}  RATIO  {:>10}  GROUPS  OLDEST                    NEWEST",
            "FIRST", "END", "ENTRIES", "BYTES", "DICT"
        )?;
        for (st, old) in stats.shards.iter().zip(&oldest) {
            let dict = st.dictionaries.last().map_or_else(|| "-".to_string(), u32::to_string);
            writeln!(
                w,
                "{}   {:>12}  {:>12}  {:>12}  {:>8}  {:>12}  {:>5.2}  {dict:>10}  {:>6}  {:<24}  {}",
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
            } else if WRITER_PROCESS_ONLY.contains(&name) {
                writeln!(w, "  {name:<22} {v} (writer processes only; see `comet groups` for every consumer)")?;
            } else {
                writeln!(w, "  {name:<22} {v}")?;
            }
        }
    }
    w.flush()?;
    Ok(0)
}

#[derive(Serialize)]
struct FindingJson {
    shard: u32,
    severity: &'static str,
    kind: &'static str,
    segment: Option<String>,
    entries: Option<[u64; 2]>,
    message: String,
}

impl From<&Finding> for FindingJson {
    fn from(f: &Finding) -> FindingJson {
        FindingJson {
            shard: f.shard.get(),
            severity: if f.finding.severity == Severity::Damage { "damage" } else { "note" },
            kind: f.finding.problem.name(),
            segment: f.finding.segment.map(|b| format!("log-{b:020}.comet")),
            entries: f.finding.entries.as_ref().map(|r| [r.start, r.end]),
            message: f.finding.problem.to_string(),
        }
    }
}

#[derive(Serialize)]
struct VerifyShardJson {
    shard: u32,
    segments: u64,
    entries: u64,
    bytes: u64,
    first_entry: u64,
    durable_end: u64,
    groups: u64,
}

#[derive(Serialize)]
struct VerifyJson {
    ok: bool,
    damage: usize,
    notes: usize,
    shards: Vec<VerifyShardJson>,
    findings: Vec<FindingJson>,
}

fn verify_json(r: &VerifyReport) -> VerifyJson {
    VerifyJson {
        ok: r.is_ok(),
        damage: r.damage().count(),
        notes: r.notes().count(),
        shards: r
            .shards
            .iter()
            .map(|&ShardCheck { shard, ref check }| VerifyShardJson {
                shard: shard.get(),
                segments: check.segments,
                entries: check.entries,
                bytes: check.bytes,
                first_entry: check.first_entry,
                durable_end: check.durable_end,
                groups: check.groups,
            })
            .collect(),
        findings: r.findings.iter().map(FindingJson::from).collect(),
    }
}

/// Prints a verification report as text; returns the exit code.
fn print_verify(w: &mut impl Write, r: &VerifyReport) -> io::Result<u8> {
    for ShardCheck { shard, check: c } in &r.shards {
        writeln!(
            w,
            "shard {shard}: {}, {} ({}) checked, entries {}..{}, {}",
            n_of(c.segments, "segment", "segments"),
            n_of(c.entries, "entry", "entries"),
            n_of(c.bytes, "byte", "bytes"),
            c.first_entry,
            c.durable_end,
            n_of(c.groups, "group", "groups")
        )?;
    }
    for f in &r.findings {
        let tag = if f.finding.severity == Severity::Damage { "DAMAGE" } else { "note  " };
        writeln!(w, "{tag} {}", out::line_safe(&f.to_string()))?;
    }
    let (damage, notes) = (r.damage().count() as u64, r.notes().count() as u64);
    let entries: u64 = r.shards.iter().map(|s| s.check.entries).sum();
    let shards = n_of(r.shards.len() as u64, "shard", "shards");
    let notes = n_of(notes, "note", "notes");
    if damage == 0 {
        writeln!(w, "verify: ok: {shards}, {} checked, {notes}", n_of(entries, "entry", "entries"))?;
        Ok(0)
    } else {
        writeln!(w, "verify: DAMAGED: {}, {notes} in {shards}", n_of(damage, "problem", "problems"))?;
        Ok(1)
    }
}

/// Checks everything, read-only.
pub(crate) fn verify(dir: &Path, as_json: bool, allow_empty: bool) -> CmdResult {
    require_dir(dir)?;
    let report = comet::verify(dir)?;
    if report.shards.is_empty() && report.findings.is_empty() && !allow_empty {
        return Err(no_data(dir));
    }
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let code = if as_json {
        out::json_line(&mut w, &verify_json(&report))?;
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
            "truncated log-{:020}.comet at byte {} (removed {}: {})",
            t.base,
            t.offset,
            n_of(t.removed, "byte", "bytes"),
            scan_end(&t.end)
        ));
    }
    for q in &r.quarantined {
        let (what, why) = match q.reason {
            QuarantineReason::Unverifiable => {
                ("quarantined", "its chunk table is gone and its bytes do not match the manifest")
            }
            QuarantineReason::Checksum => ("quarantined", "synced bytes fail their checksum"),
            QuarantineReason::Overlap => ("quarantined", "overlaps another segment"),
            QuarantineReason::Stray => ("set aside", "no manifest record or durable head accounts for it"),
        };
        out.push(format!("{what} log-{:020}.comet ({why})", q.base));
    }
    for (base, chunk) in &r.lost_chunks {
        out.push(format!("recorded chunk {chunk} of log-{base:020}.comet as lost (it fails its checksum)"));
    }
    for m in &r.missing {
        out.push(format!("recorded entries {}..{} as lost", m.start, m.end));
    }
    if r.orphans_removed > 0 {
        out.push(format!(
            "removed {} left by an interrupted retention pass",
            n_of(r.orphans_removed, "orphan segment", "orphan segments")
        ));
    }
    out
}

/// Repairs every shard (recovery, damaged chunks recorded as lost, chunk
/// tables rewritten, offsets salvaged), then verifies.
pub(crate) fn repair(dir: &Path) -> CmdResult {
    open(dir, false)?;
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let repaired = comet::repair(dir);
    let mut failed = Vec::new();
    match &repaired {
        Ok(shards) => {
            for s in shards {
                let mut actions = recovery_actions(&s.recovery);
                actions.extend(repair_actions(s));
                if actions.is_empty() {
                    writeln!(w, "shard {}: ok", s.shard)?;
                }
                for a in actions {
                    writeln!(w, "shard {}: {}", s.shard, out::line_safe(&a))?;
                }
            }
        }
        Err(e) => failed.push(e.chain().to_string()),
    }
    let report = comet::verify(dir)?;
    let code = print_verify(&mut w, &report)?;
    w.flush()?;
    if failed.is_empty() { Ok(code) } else { Err(format!("repair incomplete: {}", failed.join("; ")).into()) }
}

/// What a repair did beyond recovery, one line per action.
fn repair_actions(s: &comet::ShardRepair) -> Vec<String> {
    let mut out = Vec::new();
    let r = &s.repair;
    for (base, chunk) in &r.lost_chunks {
        out.push(format!("recorded chunk {chunk} of log-{base:020}.comet as lost (it fails its checksum)"));
    }
    if r.tables_rebuilt > 0 {
        out.push(format!("rewrote {} from the segments", n_of(r.tables_rebuilt, "chunk table", "chunk tables")));
    }
    for base in &r.tails_set_aside {
        out.push(format!("moved bytes past the recorded end of log-{base:020}.comet to log-{base:020}.comet.tail"));
    }
    for base in &r.set_aside {
        out.push(format!("quarantined log-{base:020}.comet (no chunk of it can be vouched for)"));
    }
    if r.sealed_active {
        out.push("sealed the active segment (new entries go to a fresh one)".into());
    }
    if let Some((kept, dropped)) = s.offsets.replaced {
        out.push(format!(
            "replaced the damaged offsets.state (kept as offsets.state.corrupt): {} kept, {} dropped",
            n_of(kept as u64, "group", "groups"),
            n_of(dropped as u64, "slot", "slots")
        ));
    }
    if s.offsets.healed > 0 {
        out.push(format!(
            "set {} that failed their checks to the safe value",
            n_of(s.offsets.healed as u64, "group offset", "group offsets")
        ));
    }
    if s.offsets.migrated > 0 {
        out.push(format!("merged {} from offsets.bin", n_of(s.offsets.migrated as u64, "group", "groups")));
    }
    out
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
            "shard {}: imported {}, entries {first}..{} (numbering continues at {})",
            s.shard,
            n_of(r.segments.len() as u64, "segment", "segments"),
            r.end,
            r.end
        )?;
        for p in &r.problems {
            writeln!(w, "shard {}: {}", s.shard, import_problem(p))?;
        }
        for (group, offset) in &s.groups {
            writeln!(w, "shard {}: group \"{}\" at entry {offset}", s.shard, printable(group))?;
        }
    }
    w.flush()?;
    Ok(0)
}

//! Resident memory from `/proc/self/status`.

/// Memory figures of this process, in KiB (0 if unavailable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Resident set (`VmRSS`).
    pub rss: u64,
    /// Peak resident set (`VmHWM`).
    pub hwm: u64,
    /// Anonymous resident memory (`RssAnon`: heap, stacks).
    pub anon: u64,
    /// File-backed resident memory (`RssFile`: binary, mapped files).
    pub file: u64,
    /// Shared-memory resident memory (`RssShmem`).
    pub shmem: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads `/proc/self/status`.
pub fn status() -> Status {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let n = value.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match key {
            "VmRSS" => s.rss = n,
            "VmHWM" => s.hwm = n,
            "RssAnon" => s.anon = n,
            "RssFile" => s.file = n,
            "RssShmem" => s.shmem = n,
            "Threads" => s.threads = n,
            _ => {}
        }
    }
    s
}

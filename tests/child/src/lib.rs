//! Runs the current test binary again in a child process, to kill it with
//! `SIGKILL` mid-write: the crash tests of `comet-embedded`
//! (`tests/crash.rs`, `tests/integrity.rs`) and of `comet-tests`
//! (`tests/interop.rs`, `tests/crash_kill.rs`, `tests/multi_process.rs`)
//! use it.
//!
//! The child reads what to do from environment variables and reports
//! progress on stdout. In a libtest binary it is an `#[ignore]`d test of
//! the same binary, run with `NAME --exact --ignored --nocapture
//! --test-threads=1` ([`ChildTest::new`]); a `harness = false` binary is
//! run with no arguments and its `main` picks the child's part from the
//! environment ([`ChildTest::binary`]). Natively the binary runs itself; a binary
//! cross-built for another architecture goes through the emulator named in
//! `COMET_TEST_RUNNER` (as `.ci/cross.sh` sets it). A child that cannot
//! start fails the test: a crash test that crashed nothing must not pass.
//!
//! The child's stdout (and stderr, unless it is inherited) is read by
//! threads of their own from the start, so the child never blocks on a full pipe and is killed while it
//! works, not while it waits for the parent to read.
//!
//! [`heap`] is the memory tests' counting allocator.

pub mod heap;

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The environment variable naming the emulator (with its arguments,
/// separated by spaces) that runs a cross-built test binary.
pub const RUNNER_ENV: &str = "COMET_TEST_RUNNER";

/// A child to start: [`ChildTest::new`] or [`ChildTest::binary`], then
/// [`ChildTest::env`], and [`ChildTest::spawn`].
#[derive(Debug, Clone)]
pub struct ChildTest {
    /// The libtest test to run, or `None` for the whole binary.
    test: Option<String>,
    envs: Vec<(OsString, OsString)>,
    inherit_stderr: bool,
}

impl ChildTest {
    /// The `#[ignore]`d test `test` (its full name, as `--exact` matches
    /// it) of the current test binary.
    pub fn new(test: &str) -> ChildTest {
        ChildTest { test: Some(test.to_owned()), envs: Vec::new(), inherit_stderr: false }
    }

    /// The current test binary with no arguments: for a `harness = false`
    /// test whose `main` runs the child's part when the environment says
    /// so.
    pub fn binary() -> ChildTest {
        ChildTest { test: None, envs: Vec::new(), inherit_stderr: false }
    }

    /// Lets the child write to the test's own stderr (its panics show as
    /// they happen) instead of collecting it into [`Killed::stderr`].
    pub fn inherit_stderr(mut self) -> ChildTest {
        self.inherit_stderr = true;
        self
    }

    /// Sets the environment variable `key` to `value` in the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ChildTest {
        self.envs.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Starts the child. Panics if it cannot be started (with a hint for
    /// a cross-built binary without [`RUNNER_ENV`]).
    pub fn spawn(self) -> Running {
        let exe = std::env::current_exe().expect("the test binary's path");
        let runner = std::env::var(RUNNER_ENV).unwrap_or_default();
        let mut words = runner.split_whitespace();
        let mut cmd = match words.next() {
            Some(emulator) => {
                let mut c = Command::new(emulator);
                c.args(words).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        if let Some(test) = &self.test {
            cmd.arg(test).args(["--exact", "--ignored", "--nocapture", "--test-threads=1"]);
        }
        let stderr = if self.inherit_stderr { Stdio::inherit() } else { Stdio::piped() };
        cmd.envs(self.envs).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            // e.g. ENOEXEC: a cross-built binary without COMET_TEST_RUNNER
            panic!(
                "cannot re-run the test binary {} (runner {runner:?}) for {:?}: {e}; for a cross target set \
                 {RUNNER_ENV} to its emulator, as .ci/cross.sh does",
                exe.display(),
                self.test.as_deref().unwrap_or("main")
            )
        });
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let stderr = child.stderr.take();
        let (tx, lines) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        });
        Running { child, lines, threads: Some((stdout, stderr)) }
    }
}

/// A running child test. Dropping it kills and reaps the child (a parent
/// test that fails half-way leaves no child writing on).
#[derive(Debug)]
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The threads reading stdout (into `lines`) and stderr.
    threads: Option<(JoinHandle<()>, JoinHandle<String>)>,
}

impl Running {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the child printed on stdout, waiting for it; `None`
    /// once its stdout is closed (it exited).
    pub fn line(&self) -> Option<String> {
        self.lines.recv().ok()
    }

    /// [`line`](Running::line), waiting at most `timeout`.
    pub fn line_within(&self, timeout: Duration) -> Result<String, RecvTimeoutError> {
        self.lines.recv_timeout(timeout)
    }

    /// The next line the child printed on stdout if there is one already.
    pub fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// How the child ended, if it exited (on its own: it was not killed
    /// yet).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for the child")
    }

    /// Kills the child with `SIGKILL` (if it still runs), reaps it, and
    /// returns how it ended, every line it printed on stdout that was not
    /// read yet, and its stderr.
    pub fn kill(mut self) -> Killed {
        self.child.kill().expect("SIGKILL the child");
        let status = self.child.wait().expect("reap the child");
        let (stdout, stderr) = self.threads.take().expect("the reader threads run until kill");
        // Both pipes close with the child: the threads end.
        stdout.join().expect("the stdout reader");
        let stderr = stderr.join().expect("the stderr reader");
        Killed { status, rest: self.lines.try_iter().collect(), stderr }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.threads.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a child test ended after [`Running::kill`].
#[derive(Debug)]
pub struct Killed {
    /// Its exit status.
    pub status: ExitStatus,
    /// The lines it printed on stdout that were not read before the kill.
    pub rest: Vec<String>,
    /// Everything it printed on stderr (nothing if it was inherited).
    pub stderr: String,
}

impl Killed {
    /// True if the `SIGKILL` ended it (it had not exited on its own).
    pub fn by_sigkill(&self) -> bool {
        self.status.signal() == Some(9)
    }
}

//! Child processes that never outlive their owner.
//!
//! Normal teardown (drop, also while a test panics) sends SIGTERM, waits up to [`GRACE`], then SIGKILL,
//! and reaps the child. Drop does not run when the owning process is itself killed (SIGKILL, a test
//! timeout), so owned children are also guarded by a [`Watchdog`]: a tiny `sh` whose stdin is a pipe
//! held open only by the owning process. The kernel closes that pipe whenever the owner exits, however
//! it exits; the watchdog then reads EOF, terminates the guarded children and removes their directory.
//! (PR_SET_PDEATHSIG would need `unsafe` `pre_exec`, which the workspace forbids, and it fires when the
//! spawning *thread* exits, which in a tokio runtime is not the owner's lifetime.)

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustix::process::{Pid, Signal, kill_process};

/// How long a child gets between SIGTERM and SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(3);

/// Reads pids to guard, one per line, until EOF (the owner is gone); then TERM, up to 3 s, KILL, and
/// removes the directory `$1` (if not empty). Zombies count as alive for `kill -0`, so with an init that
/// does not reap the loop simply runs its 3 s.
const WATCHDOG_SCRIPT: &str = r#"
pids=
while read -r pid; do pids="$pids $pid"; done
if [ -n "$pids" ]; then
  kill -TERM $pids 2>/dev/null
  i=0
  while [ "$i" -lt 30 ]; do
    alive=
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
    i=$((i + 1))
  done
  kill -KILL $pids 2>/dev/null
fi
[ -n "$1" ] && rm -rf -- "$1"
exit 0
"#;

/// Kills the guarded processes and removes a directory when the owning process exits without cleaning
/// up. Dropping the watchdog (or a normal teardown) disarms it; disarm it *before* reaping the guarded
/// processes, or it could signal whatever process gets their pid next.
pub(crate) struct Watchdog {
    sh: Child,
}

impl Watchdog {
    /// Starts a watchdog that will remove `dir` (if given) after killing the guarded processes.
    pub(crate) fn spawn(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
        // std creates the pipe with O_CLOEXEC, so no other child inherits the write end and keeps the
        // watchdog from seeing EOF; only this process holds it (the Child's stdin).
        let sh = Command::new("/bin/sh")
            .args(["-c", WATCHDOG_SCRIPT, "cloudjob-testenv-watchdog", &dir])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the watchdog (/bin/sh)")?;
        Ok(Self { sh })
    }

    /// Adds a process to kill when the owner dies.
    pub(crate) fn guard(&mut self, pid: u32) -> anyhow::Result<()> {
        let stdin = self
            .sh
            .stdin
            .as_mut()
            .context("the watchdog has no stdin")?;
        writeln!(stdin, "{pid}").context("handing a pid to the watchdog")?;
        stdin.flush().context("handing a pid to the watchdog")
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SIGKILL: the shell must not run its cleanup, the owner is alive and tears down itself.
        let _ = self.sh.kill();
        let _ = self.sh.wait();
    }
}

/// Whether a child is tied to its owner (tests) or meant to outlive it (`cloudjob-testenv up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// Dies with the owner: stopped on drop, and by a [`Watchdog`] if the owner dies without dropping.
    Owned,
    /// Keeps running after the owner exits, in its own process group so that the terminal's Ctrl-C
    /// does not reach it. Still stopped on drop unless [`Supervised::detach`] was called.
    Detached,
}

pub(crate) struct Supervised {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// Set once the child has been reaped (or handed off by `detach`), so stop is idempotent.
    done: bool,
}

impl Supervised {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        lifetime: Lifetime,
    ) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        if lifetime == Lifetime::Detached {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name,
            child,
            log: log.to_path_buf(),
            done: false,
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the child has exited (it is reaped then).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.done {
            return None;
        }
        self.child.try_wait().ok().flatten()
    }

    /// The last `max_bytes` of the log, for error messages.
    pub(crate) fn log_tail(&self, max_bytes: u64) -> String {
        log_tail(&self.log, max_bytes)
    }

    /// SIGTERM, then SIGKILL after [`GRACE`], and reap. Idempotent.
    pub(crate) fn stop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let pid = self.pid();
        let child = &mut self.child;
        if !terminate(pid, GRACE, || child.try_wait().ok().flatten().is_some()) {
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the child, which must not have been reaped yet (so its pid is still its own).
    pub(crate) fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        anyhow::ensure!(!self.done, "{} has already been stopped", self.name);
        let pid = i32::try_from(self.pid())
            .ok()
            .and_then(Pid::from_raw)
            .context("a child's pid")?;
        kill_process(pid, signal).with_context(|| format!("signalling {}", self.name))
    }

    /// SIGKILL at once, as a crash would, and reap. Idempotent.
    pub(crate) fn kill(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        // An error means it has already exited; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Leaves the child running after this value and its owner are gone (`cloudjob-testenv up`).
    pub(crate) fn detach(mut self) {
        self.done = true;
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `pid` is a live process. Zombies count as gone: an orphaned child whose new parent does not
/// reap it stays in /proc as `Z` but runs nothing and holds no port.
pub fn process_is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Format: `pid (comm) state ...`; comm may contain spaces and parentheses, so split at the last ')'.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some(state) => state != "Z" && state != "X",
        None => true,
    }
}

/// SIGTERM, then SIGKILL after `grace`, for a process that is not our child (`cloudjob-testenv down`).
/// Returns whether it is gone.
pub(crate) fn terminate_foreign(pid: u32, grace: Duration) -> bool {
    terminate(pid, grace, || !process_is_running(pid))
}

/// Stops process `pid`: SIGTERM, then SIGKILL if `has_exited` does not say so within `grace`; returns
/// whether it has exited (waiting up to 2 s more after SIGKILL). Nothing is signalled once `has_exited`
/// says so, so for a child of ours, whose pid cannot be reused before it is reaped, pass a check that
/// reaps it (`Child::try_wait`): then only the process we started is ever signalled.
pub fn terminate(pid: u32, grace: Duration, mut has_exited: impl FnMut() -> bool) -> bool {
    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    if has_exited() {
        return true;
    }
    // An error means the process is already gone, which the wait below sees.
    let _ = kill_process(raw, Signal::TERM);
    if exits_within(grace, &mut has_exited) {
        return true;
    }
    tracing::warn!(pid, "did not stop within {grace:?} of SIGTERM; killing");
    let _ = kill_process(raw, Signal::KILL);
    exits_within(Duration::from_secs(2), &mut has_exited)
}

fn exits_within(limit: Duration, has_exited: &mut impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if has_exited() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn log_tail(path: &Path, max_bytes: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

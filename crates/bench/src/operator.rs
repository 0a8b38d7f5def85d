//! The operator binary under test: built with cargo, and measured through /proc (it runs as a child
//! process, see [`crate::setup`], so its memory and CPU are its own).

use std::path::PathBuf;

use anyhow::{Context as _, bail};

/// Where cargo puts build output for this workspace: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(cloudjob_testkit::repo_root()?.join("target")),
    }
}

/// Builds the operator binary with cargo (a no-op when it is up to date) and returns its path.
/// `release` picks the profile: the benchmark measures the release build; the smoke test, which checks
/// correctness only, uses the debug build the other tests already have.
pub async fn build_operator(release: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command.current_dir(cloudjob_testkit::repo_root()?).args([
        "build",
        "-p",
        "cloudjob-operator",
        "--bin",
        "cloudjob-operator",
    ]);
    if release {
        command.arg("--release");
    }
    // Inherited output: a first build takes minutes, and its progress shows.
    let status = command
        .status()
        .await
        .context("cannot run cargo to build the operator (or pass --operator-bin)")?;
    if !status.success() {
        bail!("building the operator failed ({status})");
    }
    let bin = target_dir()?
        .join(if release { "release" } else { "debug" })
        .join("cloudjob-operator");
    if !bin.is_file() {
        bail!("cargo built the operator but {} is missing", bin.display());
    }
    Ok(bin)
}

/// What /proc says about a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessUsage {
    /// VmHWM: the peak resident set size, in MiB.
    pub peak_rss_mib: f64,
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
}

impl ProcessUsage {
    pub fn of(pid: u32) -> anyhow::Result<ProcessUsage> {
        let process = procfs::process::Process::new(i32::try_from(pid)?)
            .with_context(|| format!("no process {pid}"))?;
        let status = process
            .status()
            .with_context(|| format!("cannot read /proc/{pid}/status"))?;
        let stat = process
            .stat()
            .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
        let peak_kib = status.vmhwm.context("no VmHWM in /proc/PID/status")?;
        Ok(ProcessUsage {
            peak_rss_mib: peak_kib as f64 / 1024.0,
            cpu_seconds: (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_usage_is_readable() {
        let usage = ProcessUsage::of(std::process::id()).expect("own /proc");
        assert!(usage.peak_rss_mib > 0.0);
    }
}

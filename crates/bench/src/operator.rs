//! The operator under test: a child process of the benchmark, so its memory and CPU can be read from /proc
//! without the simulator's or the benchmark's own counted in.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, bail};
use cloudjob_testenv::{free_port, wait_for};

/// Where cargo puts build output for this workspace: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root (this crate lives in `crates/bench`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the operator binary with cargo (a no-op when it is up to date) and returns its path.
/// `release` picks the profile: the benchmark measures the release build; the smoke test, which checks
/// correctness only, uses the debug build the other tests already have.
pub async fn build_operator(release: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command.current_dir(workspace_root()).args([
        "build",
        "-p",
        "cloudjob-operator",
        "--bin",
        "cloudjob-operator",
    ]);
    if release {
        command.arg("--release");
    }
    let status = command
        .status()
        .await
        .context("cannot run cargo to build the operator (or pass --operator-bin)")?;
    if !status.success() {
        bail!("building the operator failed ({status})");
    }
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("cloudjob-operator");
    if !bin.is_file() {
        bail!("cargo built the operator but {} is missing", bin.display());
    }
    Ok(bin)
}

/// A running operator. Killed when dropped.
pub struct OperatorProcess {
    child: tokio::process::Child,
    pid: u32,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `bin run` with `args` against the cluster of `kubeconfig`, logging to `log`, and waits until
    /// it answers /readyz.
    pub async fn start(
        bin: &Path,
        kubeconfig: &Path,
        args: &[String],
        log: PathBuf,
    ) -> anyhow::Result<OperatorProcess> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let metrics_port = free_port();
        let child = tokio::process::Command::new(bin)
            .arg("run")
            .arg("--listen-address")
            .arg(format!("127.0.0.1:{metrics_port}"))
            // The simulators are on 127.0.0.1, outside the default endpoint allow-list.
            .args(["--allowed-endpoints", "127.0.0.1"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            // Issue 6 measures the operator as deployed: warnings only, no per-poll logging cost.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the operator exited at once")?;
        let operator = OperatorProcess {
            child,
            pid,
            metrics_port,
            log,
        };
        let url = format!("http://127.0.0.1:{metrics_port}/readyz");
        wait_for(Duration::from_secs(60), "the operator's /readyz", || {
            let url = url.clone();
            async move {
                let response = reqwest::get(&url).await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await
        .with_context(|| format!("operator not ready; log: {}", operator.log.display()))?;
        Ok(operator)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Peak RSS and CPU seconds so far, from /proc.
    pub fn usage(&self) -> anyhow::Result<ProcessUsage> {
        ProcessUsage::of(self.pid)
    }

    /// The Prometheus text of /metrics.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        Ok(reqwest::get(&url).await?.error_for_status()?.text().await?)
    }

    /// SIGTERM, as a rolling update does, then SIGKILL if it has not exited within 10 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            // The child may have exited already; then there is nothing to signal.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
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
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("cannot read /proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        Ok(ProcessUsage {
            peak_rss_mib: parse_vm_hwm_kib(&status)? / 1024.0,
            cpu_seconds: parse_cpu_ticks(&stat)? / ticks,
        })
    }
}

fn parse_vm_hwm_kib(status: &str) -> anyhow::Result<f64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/PID/status")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("VmHWM without a value")?;
    Ok(kib.parse()?)
}

/// utime + stime in clock ticks. The command name (field 2) may contain spaces and parentheses, so the
/// fields are counted from the last `)`: there, field 3 (state) is the first.
fn parse_cpu_ticks(stat: &str) -> anyhow::Result<f64> {
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Sums the samples of a Prometheus counter over all its label sets (`name` or `name_total`).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let metric = series.split('{').next().unwrap_or(series);
        if let (true, Ok(v)) = (metric == name, value.parse::<f64>()) {
            sum += v;
            found = true;
        }
    }
    found.then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let status =
            "Name:\tcloudjob-op\nVmPeak:\t  100 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 10000 kB\n";
        assert_eq!(parse_vm_hwm_kib(status).ok(), Some(20480.0));
        let stat =
            "1234 (odd) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat).ok(), Some(300.0));
        assert!(parse_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn own_process_usage_is_readable() {
        let usage = ProcessUsage::of(std::process::id()).expect("own /proc");
        assert!(usage.peak_rss_mib > 0.0);
    }

    #[test]
    fn counters_sum_over_labels() {
        let text = "# HELP x\ncloudjob_cloud_requests_total{service=\"ims\",result=\"success\"} 10\n\
                    cloudjob_cloud_requests_total{service=\"evs\",result=\"success\"} 5\n\
                    cloudjob_status_patches_total 3\n";
        assert_eq!(
            metric_sum(text, "cloudjob_cloud_requests_total"),
            Some(15.0)
        );
        assert_eq!(metric_sum(text, "cloudjob_status_patches_total"), Some(3.0));
        assert_eq!(metric_sum(text, "missing"), None);
    }
}

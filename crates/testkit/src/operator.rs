//! The operator under test, in process or as a child process of the real binary.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cloudjob_operator::Config;
use cloudjob_testenv::free_port;

use crate::Metrics;

/// How long the operator may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process gets between SIGTERM and SIGKILL in [`Operator::stop`].
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start the operator binary.
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    pub binary: PathBuf,
    /// Its cluster (`KUBECONFIG`).
    pub kubeconfig: PathBuf,
    /// Arguments after `run --listen-address 127.0.0.1:PORT`.
    pub args: Vec<String>,
    /// `RUST_LOG`.
    pub rust_log: String,
    /// Where stdout and stderr are appended; `None`: a temporary file, removed with the [`Operator`].
    pub log: Option<PathBuf>,
}

impl ProcessOptions {
    /// `binary run` against the cluster of `kubeconfig`, debug logging of the operator's own code.
    pub fn new(binary: impl Into<PathBuf>, kubeconfig: impl Into<PathBuf>) -> ProcessOptions {
        ProcessOptions {
            binary: binary.into(),
            kubeconfig: kubeconfig.into(),
            // The simulator and the tests' own servers are on 127.0.0.1, outside the default allow-list.
            args: vec!["--allowed-endpoints".into(), "127.0.0.1".into()],
            rust_log: "info,cloudjob_operator=debug,kube=warn".into(),
            log: None,
        }
    }

    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> ProcessOptions {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }
}

enum Running {
    /// `cloudjob_operator::run` on a tokio task of this process.
    Task(tokio::task::JoinHandle<anyhow::Result<()>>),
    /// The binary. Only this value reaps it, so while it is here its pid is ours to signal.
    Process(Child),
    Stopped,
}

/// A running operator, ready (its `/readyz` answered). Stopped when dropped: the task aborted, the process
/// killed.
pub struct Operator {
    running: Running,
    metrics_address: SocketAddr,
    log: Option<PathBuf>,
    _log_dir: Option<tempfile::TempDir>,
}

impl Operator {
    /// Runs `cloudjob_operator::run(client, config)` on a task of this process. Without a listen address
    /// in `config` one on a free port of 127.0.0.1 is used (readiness and metrics need it). Its logs go
    /// to this process's tracing subscriber.
    pub async fn in_process(client: kube::Client, mut config: Config) -> anyhow::Result<Operator> {
        let address = *config
            .listen_address
            .get_or_insert_with(|| SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())));
        let task = tokio::spawn(cloudjob_operator::run(client, config));
        let mut operator = Operator {
            running: Running::Task(task),
            metrics_address: local(address),
            log: None,
            _log_dir: None,
        };
        operator.wait_ready().await?;
        Ok(operator)
    }

    /// Starts `binary run --listen-address 127.0.0.1:PORT ARGS...` as a child process.
    pub async fn process(options: ProcessOptions) -> anyhow::Result<Operator> {
        let (log, log_dir) = match options.log {
            Some(log) => (log, None),
            None => {
                let dir = tempfile::tempdir().context("a directory for the operator's log")?;
                (dir.path().join("operator.log"), Some(dir))
            }
        };
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let child = Command::new(&options.binary)
            .arg("run")
            .arg("--listen-address")
            .arg(address.to_string())
            .args(&options.args)
            .env("KUBECONFIG", &options.kubeconfig)
            .env("RUST_LOG", &options.rust_log)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", options.binary.display()))?;
        let mut operator = Operator {
            running: Running::Process(child),
            metrics_address: address,
            log: Some(log),
            _log_dir: log_dir,
        };
        operator.wait_ready().await?;
        Ok(operator)
    }

    /// Waits until `/readyz` answers 200, failing at once if the operator stops first.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.metrics_address);
        let started = Instant::now();
        let mut attempts = tokio::time::interval(Duration::from_millis(100));
        loop {
            attempts.tick().await;
            if let Some(ended) = self.ended().await {
                bail!(
                    "the operator stopped at startup: {ended}{}",
                    self.log_hint()
                );
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the operator did not answer {url} within {READY_TIMEOUT:?}{}",
                    self.log_hint()
                );
            }
        }
    }

    /// How the operator ended, if it has.
    async fn ended(&mut self) -> Option<String> {
        match &mut self.running {
            Running::Task(task) if task.is_finished() => {
                let Running::Task(task) = std::mem::replace(&mut self.running, Running::Stopped)
                else {
                    unreachable!("matched above")
                };
                Some(match task.await {
                    Ok(Ok(())) => "it returned".into(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => format!("its task failed: {e}"),
                })
            }
            Running::Process(child) => child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| format!("it exited ({status})")),
            Running::Task(_) => None,
            Running::Stopped => Some("it was stopped".into()),
        }
    }

    /// The process id, for a running process.
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process(child) => Some(child.id()),
            _ => None,
        }
    }

    /// The process's resident memory (VmRSS) in KiB, for a running process.
    pub fn resident_kib(&self) -> Option<u64> {
        let pid = i32::try_from(self.pid()?).ok()?;
        procfs::process::Process::new(pid)
            .ok()?
            .status()
            .ok()?
            .vmrss
    }

    /// The process's peak resident memory so far (VmHWM) in KiB, for a running process.
    pub fn peak_resident_kib(&self) -> Option<u64> {
        let pid = i32::try_from(self.pid()?).ok()?;
        procfs::process::Process::new(pid)
            .ok()?
            .status()
            .ok()?
            .vmhwm
    }

    /// The last 60 lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return "(in process: the operator logs to this process's tracing subscriber)".into();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The process's log lines at WARN or ERROR, for failure messages about recovery.
    pub fn log_warnings(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn log_hint(&self) -> String {
        match &self.log {
            Some(log) => format!("; its log ({}):\n{}", log.display(), self.log_tail()),
            None => String::new(),
        }
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn metrics_address(&self) -> SocketAddr {
        self.metrics_address
    }

    /// A scrape of `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let url = format!("http://{}/metrics", self.metrics_address);
        let text = reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("scraping {url}"))?
            .text()
            .await?;
        Metrics::parse(&text)
    }

    /// Stops the operator as a rolling update does: the task is aborted; the process gets SIGTERM, and
    /// SIGKILL if it has not exited 10 s later.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Task(task) => {
                task.abort();
                let _ = task.await;
            }
            Running::Process(mut child) => {
                tokio::task::spawn_blocking(move || {
                    let pid = child.id();
                    let exited = cloudjob_testenv::terminate(pid, STOP_GRACE, || {
                        child.try_wait().ok().flatten().is_some()
                    });
                    if !exited {
                        let _ = child.wait();
                    }
                })
                .await?;
            }
            Running::Stopped => {}
        }
        Ok(())
    }

    /// SIGKILL, as when a node dies: nothing is released gracefully. For a task, an abort.
    pub async fn kill(&mut self) {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Task(task) => {
                task.abort();
                let _ = task.await;
            }
            Running::Process(mut child) => {
                // std signals only a child it has not reaped yet.
                let _ = child.kill();
                let _ = tokio::task::spawn_blocking(move || child.wait()).await;
            }
            Running::Stopped => {}
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Task(task) => task.abort(),
            Running::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::Stopped => {}
        }
    }
}

/// Where to reach a listen address from this machine (`0.0.0.0` listens on 127.0.0.1 too).
fn local(address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, address.port()))
    } else {
        address
    }
}

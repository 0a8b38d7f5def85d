//! Bookkeeping for a control plane that outlives the process that started it (`cloudjob-testenv up`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::process::{GRACE, process_is_running, terminate_foreign};

/// The name recorded for the background `cloudjob-testenv run --node` process of `up --node`.
pub const NODE_RUNNER: &str = "cloudjob-testenv";

/// How long `down` lets the node runner finish after SIGTERM. Its SIGTERM handler tears the node down
/// (pods, containerd, kubelet, the host state) and then stops its control plane; killing it midway would
/// orphan etcd and kube-apiserver and leave the host half restored, so this is far above the few seconds
/// the teardown takes.
const NODE_RUNNER_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// File name of the state inside the control plane's directory.
pub const STATE_FILE: &str = "state.json";

/// A detached control plane, as recorded in `DIR/state.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedState {
    pub server_url: String,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    /// In start order: etcd, kube-apiserver.
    pub processes: Vec<DetachedProcess>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedProcess {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
}

impl DetachedState {
    /// Reads `dir/state.json`; `Ok(None)` if there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).context("serializing the state")?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Whether the recorded process is still the one we started: the pid is alive and runs the same
    /// program (a pid can be reused after a reboot or a long time).
    pub fn is_running(process: &DetachedProcess) -> bool {
        process_is_running(process.pid) && runs_program(process.pid, &process.name)
    }

    /// Whether every recorded process is running.
    pub fn all_running(&self) -> bool {
        !self.processes.is_empty() && self.processes.iter().all(Self::is_running)
    }

    /// Stops the processes (kube-apiserver first; SIGTERM, then SIGKILL after 3 s, or after
    /// [`NODE_RUNNER_GRACE`] for the node runner) and removes the directory.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut survivors = Vec::new();
        for process in self.processes.iter().rev() {
            let grace = if process.name == NODE_RUNNER {
                NODE_RUNNER_GRACE
            } else {
                GRACE
            };
            if Self::is_running(process) && !terminate_foreign(process.pid, grace) {
                survivors.push(format!("{} (pid {})", process.name, process.pid));
            }
        }
        if !survivors.is_empty() {
            bail!("could not stop {}", survivors.join(", "));
        }
        remove_dir(&self.dir)
    }
}

/// Whether `/proc/PID/cmdline`'s program is `name` (the stable names are symlinks, so compare the
/// program's file name, which is `name` or `name-VERSION`).
fn runs_program(pid: u32, name: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let program = String::from_utf8_lossy(program);
    Path::new(program.as_ref())
        .file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|file| file == name || file.starts_with(&format!("{name}-")))
}

/// Removes a control plane directory, refusing anything that does not look like one.
pub fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    // A typo in --dir must not delete someone's home directory.
    if !dir.join("pki").is_dir() && !dir.join(STATE_FILE).is_file() {
        bail!(
            "{} does not look like a cloudjob-testenv directory (no pki/ or {STATE_FILE}); not removing it",
            dir.display()
        );
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

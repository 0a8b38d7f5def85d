//! A real Kubernetes node on this machine: containerd + kubelet, with kube-scheduler and
//! kube-controller-manager next to the control plane, so that Deployments get real pods.
//!
//! A node changes host-wide state (a bridge, iptables/nftables tables, sysctls, cgroups, mounts, files in
//! /var and /run), so only one runs at a time, and everything it changes is put back afterwards. Both
//! are the job of the *keeper*: a tiny `sh` that takes a host-wide lock (flock) before the node starts,
//! holds it while the node runs, and runs the node's generated `teardown.sh` when the owning process
//! closes its stdin, which the kernel does however the owner ends (drop, panic, SIGKILL). The lock is
//! released only when the keeper exits, i.e. after the host has been restored, so the next node never
//! starts on a half-cleaned host. See ../shared/reference/node.md for the recipe this follows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Node as K8sNode;
use kube::Api;
use serde::Serialize;
use tokio::time::Instant;

use crate::binaries::{build_script_output, repo_root};
use crate::control_plane::{ControlPlane, ControlPlaneOptions, write_private};
use crate::process::{Lifetime, Supervised};
use crate::util::free_port;

/// The node's name in the API.
pub const NODE_NAME: &str = "cloudjob-node";
/// The CNI bridge the node creates (and deletes).
pub const BRIDGE: &str = "cjnode0";
/// The bridge's address: the node's IP, kube-apiserver's address, and where anything that pods must
/// reach (the jobs API simulator) listens.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// Pod addresses come from this /24.
const SUBNET: &str = "10.213.0.0/24";
/// Host-wide: the lock and the last teardown's log. Kept across runs (it is the lock).
pub const HOST_STATE_DIR: &str = "/run/cloudjob-testenv-node";
/// How long a node waits for another one (in this or another process) to finish.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long the node gets to register and become Ready, and containerd to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The sysctls kubelet (and the CNI bridge plugin, for forwarding) set; recorded and restored.
const SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
];
/// Host paths a node may create outside its own directory; those that did not exist before are removed.
const HOST_PATHS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/run/netns",
    "/var/lib/cni",
    "/etc/cni",
    "/opt/cni",
    "/opt/containerd",
    "/var/lib/containerd",
    "/etc/kubernetes",
    "/usr/libexec/kubernetes",
    "/run/kubernetes",
];
/// Commands a node needs, with the Debian package that has them (tools/node/setup.sh installs them).
const COMMANDS: &[&str] = &[
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "ip",
    "nft",
    "iptables-save",
    "flock",
    "umount",
];

/// Why a node cannot run on this machine (not root, no apt-get for the missing packages). Tests skip on
/// it, except under CI (`CI=true`), where it is a failure.
#[derive(Debug)]
pub struct NodeUnavailable(pub String);

impl std::fmt::Display for NodeUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a local kubelet node cannot run here: {}", self.0)
    }
}

impl std::error::Error for NodeUnavailable {}

/// The node's binaries and images, as `tools/control-plane/build.sh --node` leaves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeBinaries {
    pub kubelet: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kube_controller_manager: PathBuf,
    /// Helm 4 (`helm4`), next to the control plane's Helm 3.
    pub helm4: PathBuf,
    /// docker-archive of the sandbox image, named as containerd's `sandbox_image`.
    pub pause_image: PathBuf,
    pub pause_image_name: String,
}

/// Installs the node's Debian packages if missing (tools/node/setup.sh) and builds kubelet, kube-scheduler,
/// kube-controller-manager and the pause image if not cached (build.sh --node). Runs once per process.
/// Fails with [`NodeUnavailable`] when the machine cannot run a node at all.
pub fn prepare_node() -> anyhow::Result<NodeBinaries> {
    static PREPARED: OnceLock<Result<NodeBinaries, (bool, String)>> = OnceLock::new();
    let result = PREPARED.get_or_init(|| {
        prepare_once().map_err(|e| {
            (
                e.downcast_ref::<NodeUnavailable>().is_some(),
                format!("{e:#}"),
            )
        })
    });
    match result {
        Ok(binaries) => Ok(binaries.clone()),
        Err((true, reason)) => Err(NodeUnavailable(reason.clone()).into()),
        Err((false, message)) => Err(anyhow::Error::msg(message.clone())),
    }
}

fn prepare_once() -> anyhow::Result<NodeBinaries> {
    if !rustix::process::geteuid().is_root() {
        return Err(NodeUnavailable(
            "not root (kubelet, containerd and the bridge need root)".into(),
        )
        .into());
    }
    if !Path::new("/sys/fs/cgroup").is_dir() {
        return Err(NodeUnavailable("no /sys/fs/cgroup".into()).into());
    }
    let root = repo_root()?;
    let setup = root.join("tools/node/setup.sh");
    let status = Command::new("bash")
        .arg(&setup)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {}", setup.display()))?;
    match status.code() {
        Some(0) => {}
        // setup.sh's "this machine cannot get the packages".
        Some(3) => {
            return Err(NodeUnavailable(
                "packages are missing and cannot be installed (see tools/node/setup.sh above)"
                    .into(),
            )
            .into());
        }
        _ => bail!("{} failed ({status})", setup.display()),
    }
    for command in COMMANDS {
        if which(command).is_none() {
            bail!("{command} is still missing after tools/node/setup.sh");
        }
    }
    let bin = build_script_output(&["--node"])?;
    let versions = std::fs::read_to_string(root.join("tools/control-plane/versions.env"))
        .context("reading tools/control-plane/versions.env")?;
    let pause_version = versions
        .lines()
        .find_map(|l| l.trim().strip_prefix("PAUSE_VERSION="))
        .context("versions.env has no PAUSE_VERSION")?
        .to_owned();
    let images = bin
        .parent()
        .context("the binary directory has no parent")?
        .join("images");
    let binaries = NodeBinaries {
        kubelet: bin.join("kubelet"),
        kube_scheduler: bin.join("kube-scheduler"),
        kube_controller_manager: bin.join("kube-controller-manager"),
        helm4: bin.join("helm4"),
        pause_image: images.join(format!("pause-{pause_version}.tar")),
        pause_image_name: format!("registry.k8s.io/pause:{pause_version}"),
    };
    for path in [
        &binaries.kubelet,
        &binaries.kube_scheduler,
        &binaries.kube_controller_manager,
        &binaries.helm4,
        &binaries.pause_image,
    ] {
        if !path.is_file() {
            bail!(
                "build.sh --node succeeded but {} is missing",
                path.display()
            );
        }
    }
    Ok(binaries)
}

fn which(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
}

/// What a node may change on the host, as far as a test can see it. [`Node`]'s teardown must bring all
/// of it back: `HostState::capture()` before and after a node are equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostState {
    pub sysctls: BTreeMap<String, String>,
    /// Which of the host paths a node may create exist.
    pub paths: BTreeMap<String, bool>,
    /// `family name` of every nftables table (iptables-nft keeps its tables there).
    pub nft_tables: Vec<String>,
    /// `iptables-save` and `ip6tables-save` without comments and counters.
    pub iptables: String,
    pub links: Vec<String>,
    pub mount_points: Vec<String>,
    /// Top-level cgroup directories per v1 controller.
    pub cgroups: Vec<String>,
    pub netns: Vec<String>,
    /// Processes that run a node component (kubelet, containerd, a containerd shim, kube-scheduler,
    /// kube-controller-manager).
    pub node_processes: Vec<String>,
}

impl HostState {
    pub fn capture() -> anyhow::Result<Self> {
        let mut sysctls = BTreeMap::new();
        for name in SYSCTLS {
            if let Ok(value) = std::fs::read_to_string(format!("/proc/sys/{name}")) {
                sysctls.insert((*name).to_owned(), value.trim().to_owned());
            }
        }
        let paths = HOST_PATHS
            .iter()
            .map(|p| ((*p).to_owned(), Path::new(p).exists()))
            .collect();
        let nft_tables = run_lines("nft", &["list", "tables"])?;
        let mut iptables = String::new();
        for save in ["iptables-save", "ip6tables-save"] {
            for line in run_lines(save, &[])? {
                if line.starts_with('#') {
                    continue;
                }
                // Chain lines carry packet counters, `:INPUT ACCEPT [12:3456]`.
                let line = match line.rfind(" [") {
                    Some(i) if line.starts_with(':') => line[..i].to_owned(),
                    _ => line,
                };
                iptables.push_str(&line);
                iptables.push('\n');
            }
        }
        let links = run_lines("ip", &["-o", "link", "show"])?
            .iter()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
            .collect();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("mountinfo")?;
        let mut mount_points: Vec<String> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .collect();
        mount_points.sort();
        let mut cgroups = Vec::new();
        for controller in read_dir_names(Path::new("/sys/fs/cgroup")) {
            for child in read_dir_names(&Path::new("/sys/fs/cgroup").join(&controller)) {
                if Path::new("/sys/fs/cgroup")
                    .join(&controller)
                    .join(&child)
                    .is_dir()
                {
                    cgroups.push(format!("{controller}/{child}"));
                }
            }
        }
        cgroups.sort();
        let mut netns = read_dir_names(Path::new("/run/netns"));
        netns.sort();
        let mut node_processes = Vec::new();
        for pid in read_dir_names(Path::new("/proc")) {
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let program = String::from_utf8_lossy(program);
            let file = program.rsplit('/').next().unwrap_or_default();
            if [
                "kubelet",
                "containerd",
                "containerd-shim-runc-v2",
                "kube-scheduler",
                "kube-controller-manager",
                "pause",
            ]
            .iter()
            .any(|name| file == *name || file.starts_with(&format!("{name}-v")))
            {
                node_processes.push(format!("{pid} {program}"));
            }
        }
        Ok(Self {
            sysctls,
            paths,
            nft_tables,
            iptables,
            links,
            mount_points,
            cgroups,
            netns,
            node_processes,
        })
    }
}

/// The non-blank lines `program args` prints, as [`run_ok`] runs it.
fn run_lines(program: &str, args: &[&str]) -> anyhow::Result<Vec<String>> {
    Ok(String::from_utf8_lossy(&run_ok(program, args)?)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect())
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Holds the host-wide lock and restores the host when its stdin closes. Arguments: the host state
/// directory (lock, log) and the node directory. Lines on stdin: `NAME PID` of each node process.
/// INT and HUP are ignored so that Ctrl-C in a terminal, which reaches the whole process group, cannot
/// stop it before it has cleaned up.
const KEEPER_SCRIPT: &str = r#"
trap '' INT HUP
exec 9>>"$1/lock"
flock 9
echo locked
containerd=
others=
while read -r name pid; do
  case "$name" in
    containerd) containerd="$pid" ;;
    *) others="$others $pid" ;;
  esac
done
status=0
if [ -f "$2/teardown.sh" ]; then
  echo "teardown of $2 at $(date -u +%FT%TZ)" >"$1/teardown.log"
  sh "$2/teardown.sh" "$containerd" $others >>"$1/teardown.log" 2>&1 || status=$?
else
  rm -rf -- "$2"
fi
exit "$status"
"#;

/// The generated teardown; `@NAME@` placeholders are filled in from the host snapshot. Arguments: the
/// containerd pid, then the other node processes' pids. Every step runs even when an earlier one fails.
const TEARDOWN_TEMPLATE: &str = r#"#!/bin/sh
# Generated by cloudjob-testenv: restores the host after the node in @DIR@.
DIR='@DIR@'
CTR="ctr -a $DIR/containerd/containerd.sock -n k8s.io"
failed=0
say() { echo "teardown: $*"; }
# A pid is still ours when its command line names this node's directory (pids get reused).
owned() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$DIR"; }
stop() {
  for pid in "$@"; do owned "$pid" && kill -TERM "$pid" 2>/dev/null; done
  i=0
  while [ "$i" -lt 50 ]; do
    alive=
    for pid in "$@"; do owned "$pid" && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.1
    i=$((i + 1))
  done
  for pid in "$@"; do owned "$pid" && { say "killing $pid"; kill -KILL "$pid"; }; done
  sleep 0.2
}
containerd="$1"
shift
# 1. kubelet, kube-scheduler, kube-controller-manager: nothing may start new containers meanwhile.
stop "$@"
# 2. Every task and container, while containerd still runs: their shims outlive containerd otherwise.
if owned "$containerd"; then
  for id in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
  for id in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks delete -f "$id" >/dev/null 2>&1; done
  for id in $($CTR containers ls -q 2>/dev/null); do $CTR containers delete "$id" >/dev/null 2>&1; done
fi
stop "$containerd"
# 3. Shims of this containerd that are still there (they daemonize; their command line names our socket),
#    and any process left in the pods' cgroups (which only this node created).
for p in /proc/[0-9]*; do
  pid="${p#/proc/}"
  tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q containerd-shim && owned "$pid" && { say "killing shim $pid"; kill -KILL "$pid"; }
done
for procs in @CGROUP_PROCS@; do
  [ -f "$procs" ] || continue
  for pid in $(cat "$procs"); do say "killing pod process $pid"; kill -KILL "$pid" 2>/dev/null; done
done
sleep 0.2
# 4. Mounts: kubelet's root dir bind-mount, volumes, overlay snapshots, sandbox network namespaces.
awk '{print $5}' /proc/self/mountinfo | grep -E "^($DIR|@NEW_MOUNT_PREFIXES@)" | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null || { say "cannot unmount $m"; }
done
# 5. Network namespaces the CRI created.
for ns in /run/netns/*; do
  [ -e "$ns" ] || continue
  case " @NETNS_BEFORE@ " in *" ${ns##*/} "*) continue ;; esac
  umount -l "$ns" 2>/dev/null
  rm -f -- "$ns" || failed=1
done
# 6. Pod cgroups, deepest first.
for dir in @NEW_CGROUPS@; do
  [ -d "$dir" ] || continue
  find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d "$dir" ] && { say "cannot remove cgroup $dir"; failed=1; }
done
# 7. The bridge (the pods' veths went with their namespaces).
ip link show '@BRIDGE@' >/dev/null 2>&1 && { ip link delete '@BRIDGE@' || failed=1; }
# 8. Firewall: tables that did not exist before go; the ones that did get their saved rules back.
nft list tables 2>/dev/null | while read -r _ family name; do
  case " @NFT_BEFORE@ " in *" $family:$name "*) continue ;; esac
  nft delete table "$family" "$name" || say "cannot delete nft table $family $name"
done
@IPTABLES_RESTORE@
# 9. sysctls.
@SYSCTL_RESTORE@
# 10. Files and directories the node created outside its own directory.
for path in @NEW_PATHS@; do
  [ -e "$path" ] || continue
  rm -rf -- "$path" || { say "cannot remove $path"; failed=1; }
done
rm -rf -- "$DIR" || failed=1
say "done (failed=$failed)"
exit "$failed"
"#;

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes DIR/teardown.sh for the host as it is now (before the node changes anything).
fn write_teardown(dir: &Path, before: &HostState) -> anyhow::Result<()> {
    let dir_str = dir.display().to_string();
    let new_paths: Vec<String> = before
        .paths
        .iter()
        .filter(|(_, exists)| !**exists)
        .map(|(p, _)| shell_quote(p))
        .collect();
    let new_mount_prefixes: Vec<&str> = ["/run/containerd", "/var/lib/kubelet", "/run/netns/cni-"]
        .into_iter()
        .filter(|p| {
            !before
                .mount_points
                .iter()
                .any(|m| m.starts_with(p.trim_end_matches('-')))
        })
        .collect();
    let mut new_cgroups = Vec::new();
    let mut cgroup_procs = Vec::new();
    for controller in read_dir_names(Path::new("/sys/fs/cgroup")) {
        let key = format!("{controller}/kubepods");
        if !before.cgroups.contains(&key) {
            new_cgroups.push(shell_quote(&format!("/sys/fs/cgroup/{key}")));
            // Every cgroup.procs under it, found when the teardown runs.
            cgroup_procs.push(format!(
                "$(find {} -name cgroup.procs 2>/dev/null)",
                shell_quote(&format!("/sys/fs/cgroup/{key}"))
            ));
        }
    }
    let nft_before: Vec<String> = before
        .nft_tables
        .iter()
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip(1);
            Some(format!("{}:{}", words.next()?, words.next()?))
        })
        .collect();
    let host = dir.join("host");
    std::fs::create_dir_all(&host).with_context(|| format!("creating {}", host.display()))?;
    let mut iptables_restore = String::new();
    for (save, restore) in [
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    ] {
        let saved = run_lines(save, &[])?;
        if saved.iter().any(|l| l.starts_with('*')) {
            let file = host.join(format!("{save}.rules"));
            std::fs::write(&file, saved.join("\n") + "\n")
                .with_context(|| format!("writing {}", file.display()))?;
            writeln!(
                iptables_restore,
                "{restore} <{} || {{ say '{restore} failed'; failed=1; }}",
                shell_quote(&file.display().to_string())
            )?;
        }
    }
    let mut sysctl_restore = String::new();
    for (name, value) in &before.sysctls {
        writeln!(
            sysctl_restore,
            "[ \"$(cat /proc/sys/{name})\" = {v} ] || echo {v} >/proc/sys/{name} || {{ say 'cannot restore {name}'; failed=1; }}",
            v = shell_quote(value)
        )?;
    }
    let script = TEARDOWN_TEMPLATE
        .replace("@DIR@", &dir_str)
        .replace("@BRIDGE@", BRIDGE)
        .replace("@NEW_PATHS@", &new_paths.join(" "))
        .replace("@NEW_MOUNT_PREFIXES@", &new_mount_prefixes.join("|"))
        .replace("@NETNS_BEFORE@", &before.netns.join(" "))
        .replace("@NEW_CGROUPS@", &new_cgroups.join(" "))
        .replace("@CGROUP_PROCS@", &cgroup_procs.join(" "))
        .replace("@NFT_BEFORE@", &nft_before.join(" "))
        .replace("@IPTABLES_RESTORE@", &iptables_restore)
        .replace("@SYSCTL_RESTORE@", &sysctl_restore);
    let path = dir.join("teardown.sh");
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))
}

struct Keeper {
    sh: Child,
}

impl Keeper {
    /// Starts the keeper and waits until it holds the host-wide lock.
    async fn lock(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(HOST_STATE_DIR)
            .with_context(|| format!("creating {HOST_STATE_DIR}"))?;
        let mut sh = Command::new("/bin/sh")
            .args(["-c", KEEPER_SCRIPT, "cloudjob-testenv-node-keeper"])
            .arg(HOST_STATE_DIR)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the node keeper (/bin/sh)")?;
        let stdout = sh.stdout.take().context("the keeper has no stdout")?;
        let waited = Instant::now();
        let line = tokio::time::timeout(
            LOCK_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await;
        let mut keeper = Self { sh };
        match line {
            Ok(Ok(Ok(line))) if line.trim() == "locked" => {
                let waited = waited.elapsed();
                if waited > Duration::from_secs(1) {
                    tracing::info!("waited {waited:?} for another node to finish");
                }
                Ok(keeper)
            }
            Ok(_) => {
                keeper.abandon();
                bail!("the node keeper failed to take the lock {HOST_STATE_DIR}/lock")
            }
            Err(_) => {
                keeper.abandon();
                bail!("another node held {HOST_STATE_DIR}/lock for more than {LOCK_TIMEOUT:?}")
            }
        }
    }

    fn guard(&mut self, name: &str, pid: u32) -> anyhow::Result<()> {
        let stdin = self.sh.stdin.as_mut().context("the keeper has no stdin")?;
        writeln!(stdin, "{name} {pid}").context("handing a pid to the node keeper")?;
        stdin.flush().context("handing a pid to the node keeper")
    }

    /// Closes the keeper's stdin, lets it restore the host, and waits for it. Returns whether the
    /// teardown reported no problem.
    fn teardown(&mut self) -> bool {
        drop(self.sh.stdin.take());
        match self.sh.wait() {
            Ok(status) if status.success() => true,
            Ok(status) => {
                tracing::warn!(
                    "the node teardown reported problems ({status}); see {HOST_STATE_DIR}/teardown.log"
                );
                false
            }
            Err(e) => {
                tracing::warn!("waiting for the node keeper: {e}");
                false
            }
        }
    }

    /// Used before anything was changed: stop without a teardown.
    fn abandon(&mut self) {
        let _ = self.sh.kill();
        let _ = self.sh.wait();
    }
}

/// A control plane with a kubelet node: kube-apiserver (ServiceAccount admission on, on [`GATEWAY`]),
/// kube-controller-manager, kube-scheduler, containerd and kubelet. Dropping it stops everything and
/// restores the host (see the module documentation).
pub struct Node {
    /// Node processes in start order: containerd, kube-controller-manager, kube-scheduler, kubelet.
    processes: Vec<Supervised>,
    keeper: Option<Keeper>,
    /// Declared after `processes`/`keeper` so that it is stopped after the node's own processes.
    control_plane: Option<ControlPlane>,
    dir: PathBuf,
    binaries: NodeBinaries,
    api_port: u16,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("dir", &self.dir)
            .field("api_port", &self.api_port)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Prepares (first time: packages and builds), waits for the host-wide lock, and starts a control
    /// plane with a Ready node. Fails with [`NodeUnavailable`] on a machine that cannot run one.
    pub async fn start() -> anyhow::Result<Self> {
        let binaries = tokio::task::spawn_blocking(prepare_node)
            .await
            .context("the node preparation task panicked")??;
        let parent = std::env::temp_dir();
        let dir = tempfile::Builder::new()
            .prefix("cloudjob-node-")
            .tempdir_in(&parent)
            .context("creating the node's directory")?
            // The keeper removes it, after unmounting what kubelet and containerd mounted inside.
            .keep();
        let keeper = match Keeper::lock(&dir).await {
            Ok(keeper) => keeper,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut node = Self {
            processes: Vec::new(),
            keeper: Some(keeper),
            control_plane: None,
            dir,
            binaries,
            api_port: 0,
        };
        // From here on, dropping `node` (also on an error below) tears everything down.
        node.launch().await?;
        Ok(node)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let before = HostState::capture().context("recording the host's state")?;
        if before
            .links
            .iter()
            .any(|l| l == BRIDGE || l.starts_with(&format!("{BRIDGE}@")))
        {
            bail!(
                "the bridge {BRIDGE} exists: a previous node was not cleaned up (see {HOST_STATE_DIR}/teardown.log); `ip link delete {BRIDGE}` removes it"
            );
        }
        if before.cgroups.iter().any(|c| c.ends_with("/kubepods")) {
            bail!(
                "kubepods cgroups exist: a previous node (or another kubelet) left them; see {HOST_STATE_DIR}/teardown.log"
            );
        }
        write_teardown(&self.dir, &before)?;

        // The bridge first: kube-apiserver binds to its address, kubelet uses it as the node IP.
        run_ok("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        run_ok(
            "ip",
            &["addr", "add", &format!("{GATEWAY}/24"), "dev", BRIDGE],
        )?;
        run_ok("ip", &["link", "set", BRIDGE, "up"])?;

        let control_plane = ControlPlane::start_with(ControlPlaneOptions {
            address: Some(GATEWAY),
            service_account_admission: true,
        })
        .await
        .context("starting the control plane on the bridge address")?;
        self.api_port = control_plane
            .server_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("the control plane's URL has no port")?;
        let cp_dir = control_plane.dir().to_path_buf();
        let client = control_plane.client();
        self.control_plane = Some(control_plane);
        // The node components' kubeconfig lives in the node's directory, so that their command lines
        // name it (the keeper's proof that a pid is still theirs).
        let kubeconfig = self.dir.join("kubeconfig");
        let admin =
            std::fs::read_to_string(cp_dir.join("kubeconfig")).context("admin kubeconfig")?;
        write_private(&kubeconfig, &admin)?;

        self.start_containerd().await?;
        self.import_image(&self.binaries.pause_image.clone())
            .await?;

        let dir = self.dir.clone();
        let logs = dir.join("logs");
        let kubeconfig_arg = format!("--kubeconfig={}", kubeconfig.display());
        let mut kcm = control_plane_component(
            &self.binaries.kube_controller_manager,
            &kubeconfig,
            &dir.join("kcm-certs"),
        );
        kcm.arg(format!(
            "--service-account-private-key-file={}",
            cp_dir.join("pki/sa.key").display()
        ))
        // Published as every namespace's kube-root-ca.crt, which the pods' token volume mounts.
        .arg(format!(
            "--root-ca-file={}",
            cp_dir.join("pki/ca.crt").display()
        ))
        .arg("--use-service-account-credentials=false")
        // Quick node-lifecycle reactions: the not-ready taint goes as soon as kubelet is Ready.
        .arg("--node-monitor-period=1s");
        self.spawn("kube-controller-manager", kcm, &logs)?;

        let scheduler = control_plane_component(
            &self.binaries.kube_scheduler,
            &kubeconfig,
            &dir.join("scheduler-certs"),
        );
        self.spawn("kube-scheduler", scheduler, &logs)?;

        let kubelet_dir = dir.join("kubelet");
        std::fs::create_dir_all(kubelet_dir.join("root"))?;
        let config = kubelet_config(&dir, &cp_dir.join("pki/ca.crt"));
        let config_path = kubelet_dir.join("config.yaml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut kubelet = Command::new(&self.binaries.kubelet);
        kubelet
            .arg(format!("--config={}", config_path.display()))
            .arg(format!("--root-dir={}", kubelet_dir.join("root").display()))
            .arg(format!("--cert-dir={}", kubelet_dir.join("pki").display()))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(&kubeconfig_arg)
            .arg(format!("--node-ip={GATEWAY}"));
        self.spawn("kubelet", kubelet, &logs)?;

        let nodes: Api<K8sNode> = Api::all(client);
        let ready =
            kube::runtime::wait::await_condition(nodes, NODE_NAME, |node: Option<&K8sNode>| {
                node.is_some_and(node_is_schedulable)
            });
        match tokio::time::timeout(READY_TIMEOUT, ready).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e).context("watching the node"),
            Err(_) => bail!(
                "node {NODE_NAME} was not Ready within {READY_TIMEOUT:?}; end of kubelet's log:\n{}",
                crate::process::log_tail(&logs.join("kubelet.log"), 4096)
            ),
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis(),
            "node {NODE_NAME} ready"
        );
        Ok(())
    }

    fn spawn(&mut self, name: &'static str, command: Command, logs: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
        let process = Supervised::spawn(
            name,
            command,
            &logs.join(format!("{name}.log")),
            Lifetime::Owned,
        )?;
        let pid = process.pid();
        self.processes.push(process);
        self.keeper
            .as_mut()
            .context("the node is stopped")?
            .guard(name, pid)
    }

    async fn start_containerd(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let c = dir.join("containerd");
        for sub in ["root", "state", "opt"] {
            std::fs::create_dir_all(c.join(sub))?;
        }
        let net = dir.join("cni/net.d");
        std::fs::create_dir_all(&net)?;
        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "cloudjob-node",
            "plugins": [{
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                // Pods only talk to the host's bridge address; nothing needs NAT to the outside.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY.to_string()}]],
                    "dataDir": dir.join("cni/ipam").display().to_string(),
                }
            }]
        });
        std::fs::write(net.join("10-cloudjob.conflist"), cni.to_string())?;
        let config = format!(
            r#"version = 2
root = "{c}/root"
state = "{c}/state"
[grpc]
  address = "{c}/containerd.sock"
[ttrpc]
  address = "{c}/containerd-ttrpc.sock"
[debug]
  address = "{c}/containerd-debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj makes every sandbox fail to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{net}"
"#,
            c = c.display(),
            sandbox = self.binaries.pause_image_name,
            net = net.display(),
        );
        let config_path = c.join("config.toml");
        std::fs::write(&config_path, config)?;
        let mut containerd = Command::new("containerd");
        containerd.arg("--config").arg(&config_path);
        self.spawn("containerd", containerd, &dir.join("logs"))?;
        let socket = c.join("containerd.sock");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.processes.last_mut().and_then(Supervised::exited) {
                bail!(
                    "containerd exited ({status}); end of its log:\n{}",
                    crate::process::log_tail(&dir.join("logs/containerd.log"), 4096)
                );
            }
            if socket.exists() && self.ctr(&["version"]).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "containerd did not answer on {} within {READY_TIMEOUT:?}",
                    socket.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `ctr` against this node's containerd, in the `k8s.io` namespace kubelet uses.
    pub async fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = tokio::process::Command::new("ctr")
            .arg("-a")
            .arg(self.dir.join("containerd/containerd.sock"))
            .args(["-n", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running ctr")?;
        if !output.status.success() {
            bail!(
                "ctr {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Imports a docker-archive image (e.g. from tools/image/build.sh) into the node, under the name it
    /// carries; pods then use it with `imagePullPolicy: Never` or `IfNotPresent`.
    pub async fn import_image(&self, archive: &Path) -> anyhow::Result<()> {
        let path = archive.display().to_string();
        self.ctr(&["images", "import", &path])
            .await
            .with_context(|| format!("importing {path} into the node"))?;
        Ok(())
    }

    /// The control plane the node belongs to (kube-apiserver on [`GATEWAY`]).
    pub fn control_plane(&self) -> &ControlPlane {
        self.control_plane
            .as_ref()
            .unwrap_or_else(|| unreachable!("a started node always has its control plane"))
    }

    /// The node's binaries (kubelet, ..., `helm4`).
    pub fn binaries(&self) -> &NodeBinaries {
        &self.binaries
    }

    /// Helm 4 with the same environment as [`ControlPlane::helm`] (kubeconfig, private homes).
    pub fn helm4(&self) -> Command {
        let helm3 = self.control_plane().helm();
        let mut command = Command::new(&self.binaries.helm4);
        for (key, value) in helm3.get_envs() {
            if let Some(value) = value {
                command.env(key, value);
            }
        }
        command
    }

    /// kube-apiserver's port on [`GATEWAY`]: pods get it as `KUBERNETES_SERVICE_PORT` (no kube-proxy
    /// here serves the `kubernetes` Service).
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// The node's directory (configurations, logs in `logs/`, containerd's and kubelet's state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pids of the node's own processes (containerd, kube-controller-manager, kube-scheduler, kubelet).
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(Supervised::pid).collect()
    }

    /// The memory cgroup (cgroup v1) of the pod with this uid, whatever its QoS class.
    pub fn pod_memory_cgroup(&self, pod_uid: &str) -> Option<PathBuf> {
        let base = Path::new("/sys/fs/cgroup/memory/kubepods");
        ["", "burstable", "besteffort"]
            .iter()
            .map(|qos| base.join(qos).join(format!("pod{pod_uid}")))
            .find(|dir| dir.is_dir())
    }

    /// Stops the node and restores the host now; returns whether the teardown reported no problem.
    /// Idempotent; `Drop` does the same.
    pub fn stop(&mut self) -> bool {
        // kubelet, scheduler, controller-manager first (reaped here, so the keeper never sees their
        // pids again); containerd is stopped by the teardown, after it has deleted the containers.
        for process in self.processes.iter_mut().skip(1).rev() {
            process.stop();
        }
        let clean = match self.keeper.take() {
            Some(mut keeper) => keeper.teardown(),
            None => true,
        };
        // Reaps containerd (the keeper has stopped it) or stops it if the teardown could not.
        for process in &mut self.processes {
            process.stop();
        }
        self.processes.clear();
        self.control_plane.take();
        clean
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// kube-controller-manager or kube-scheduler as this node runs them: with the node's kubeconfig for the API
/// server and for authenticating and authorizing their own endpoint, served on a free port of 127.0.0.1
/// with a self-signed certificate in `cert_dir`, and no leader election (there is one of each).
fn control_plane_component(binary: &Path, kubeconfig: &Path, cert_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!(
            "--authentication-kubeconfig={}",
            kubeconfig.display()
        ))
        .arg(format!(
            "--authorization-kubeconfig={}",
            kubeconfig.display()
        ))
        .arg("--leader-elect=false")
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={}", free_port()))
        .arg(format!("--cert-dir={}", cert_dir.display()));
    command
}

fn node_is_schedulable(node: &K8sNode) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| {
            taints
                .iter()
                .any(|t| t.key.starts_with("node.kubernetes.io/"))
        });
    ready && !tainted
}

fn kubelet_config(dir: &Path, ca: &Path) -> String {
    let d = dir.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 here, and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{d}/containerd/containerd.sock
podLogsDir: {d}/kubelet/pod-logs
volumePluginDir: {d}/kubelet/volume-plugins
address: {GATEWAY}
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
authentication:
  anonymous: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
failSwapOn: false
# Report quickly: tests wait for pod and node status.
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
# Absolute and small: on a shared machine whose disk is mostly full (1% of 252 GB is 2.5 GB), percentage
# thresholds evict the pods under test and taint the node with disk pressure.
evictionHard: {{memory.available: "100Mi", nodefs.available: "200Mi", imagefs.available: "200Mi", nodefs.inodesFree: "1%", imagefs.inodesFree: "1%"}}
# Never garbage-collect the locally imported images: there is no registry to pull them from again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
"#,
        port = free_port(),
        healthz = free_port(),
        ca = ca.display(),
    )
}

/// Runs `program args` with no stdin and returns what it printed on stdout; an error with what it printed
/// on stderr when it fails.
fn run_ok(program: &str, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// For tests: `Ok(Some(node))`, or `Ok(None)` after printing why a node cannot run here; under CI
/// (`CI=true`) that inability is an error instead.
pub async fn start_node_or_skip() -> anyhow::Result<Option<Node>> {
    match Node::start().await {
        Ok(node) => Ok(Some(node)),
        Err(e) if e.downcast_ref::<NodeUnavailable>().is_some() => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                Err(e.context("CI=true: the node tests must run"))
            } else {
                eprintln!("SKIPPED: {e:#}");
                Ok(None)
            }
        }
        Err(e) => Err(e),
    }
}

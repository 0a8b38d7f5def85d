//! The kubelet node: it runs a pod from a locally imported image, and afterwards the host is exactly as
//! before (processes, mounts, cgroups, bridge, nftables/iptables, sysctls, files), whether the node was
//! dropped or its owner was SIGKILLed. Skips (printing why) where a node cannot run, except under CI=true.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudjob_testenv::{HOST_STATE_DIR, HostState, prepare_node, start_node_or_skip};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// Both tests change host-wide state and compare it with what it was: one at a time (the node lock
/// alone would let one test's "before" see the other's node).
static HOST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pause_pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "pause"},
        "spec": {
            "containers": [{
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10.1",
                "imagePullPolicy": "Never",
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65535, "allowPrivilegeEscalation": false}
            }]
        }
    }))
    .expect("pod")
}

async fn run_pod(client: kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pause_pod())
        .await
        .expect("pod created");
    let running = kube::runtime::wait::await_condition(pods, "pause", |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Running")
    });
    tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the pod runs within 2 minutes")
        .expect("watching the pod");
}

/// `flock ARGS LOCK true` on the host-wide node lock: whether it got the lock.
fn flock_node_lock(args: &[&str]) -> bool {
    Command::new("flock")
        .args(args)
        .arg(Path::new(HOST_STATE_DIR).join("lock"))
        .arg("true")
        .status()
        .expect("flock runs")
        .success()
}

/// Waits until no node (of another process) holds the host lock, so that "before" is not taken while
/// someone else's node is up. (The node itself then waits for the same lock.)
fn wait_until_no_node_runs() {
    if Path::new(HOST_STATE_DIR).join("lock").exists() {
        assert!(
            flock_node_lock(&["--timeout", "1800"]),
            "another node held the lock for 30 minutes"
        );
    }
}

/// The start of every test here: the host to this test alone ([`HOST`]), the node prepared, no other
/// node running, and the host's state before this test's node. `None` where no node can run (see
/// [`node_can_run`]).
async fn host_before() -> Option<(tokio::sync::MutexGuard<'static, ()>, HostState)> {
    let host = HOST.lock().await;
    if !node_can_run().await {
        return None;
    }
    wait_until_no_node_runs();
    Some((host, HostState::capture().expect("host state")))
}

/// A client of the cluster that `kubeconfig` describes.
async fn client_from(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    kube::Client::try_from(config).expect("client")
}

fn assert_restored(before: &HostState, after: &HostState) {
    let show = |s: &HostState| serde_json::to_string_pretty(s).unwrap_or_default();
    assert_eq!(
        before,
        after,
        "the host differs after the node\nbefore:\n{}\nafter:\n{}",
        show(before),
        show(after)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_a_pod_and_leaves_the_host_as_it_found_it() {
    // Build and install first, so that "before" is taken on a prepared machine.
    let Some((_host, before)) = host_before().await else {
        return;
    };
    let started = Instant::now();
    let Some(mut node) = start_node_or_skip().await.expect("the node starts") else {
        return;
    };
    eprintln!("node ready in {:.1} s", started.elapsed().as_secs_f64());
    let during = HostState::capture().expect("host state");
    assert!(
        during.links.iter().any(|l| l == cloudjob_testenv::BRIDGE),
        "the node has its bridge"
    );
    // Only one node at a time: the node's keeper holds the host-wide lock while it runs.
    assert!(
        !flock_node_lock(&["--nonblock"]),
        "the node lock is held while a node runs"
    );
    run_pod(node.control_plane().client()).await;
    let with_pod = HostState::capture().expect("host state");
    assert!(
        with_pod.node_processes.len() > during.node_processes.len(),
        "a shim and the pod's process run"
    );
    let dir = node.dir().to_path_buf();
    let stopped = Instant::now();
    assert!(node.stop(), "the teardown reports no problem");
    eprintln!("node stopped in {:.1} s", stopped.elapsed().as_secs_f64());
    drop(node);
    assert!(!dir.exists(), "the node's directory is gone");
    assert_restored(&before, &HostState::capture().expect("host state"));
}

/// Reads the runner's stdout until `export KUBECONFIG=...`.
/// Prepares the node (packages and builds, the first time). `false` after printing why this machine cannot
/// run one; under CI=true that is a failure instead.
async fn node_can_run() -> bool {
    match tokio::task::spawn_blocking(prepare_node)
        .await
        .expect("task")
    {
        Ok(_) => true,
        Err(e)
            if e.downcast_ref::<cloudjob_testenv::NodeUnavailable>()
                .is_some() =>
        {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI=true: {e:#}"
            );
            eprintln!("SKIPPED: {e:#}");
            false
        }
        Err(e) => panic!("preparing the node: {e:#}"),
    }
}

fn kubeconfig_from(stdout: impl std::io::Read) -> Option<PathBuf> {
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("export KUBECONFIG=").map(PathBuf::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_owner_still_leaves_the_host_as_it_found_it() {
    let Some((_host, before)) = host_before().await else {
        return;
    };
    // The owner is a separate process (`cloudjob-testenv run --node`) so that it can be SIGKILLed.
    let mut runner = Command::new(env!("CARGO_BIN_EXE_cloudjob-testenv"))
        .args(["run", "--node"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cloudjob-testenv run --node starts");
    let stdout = runner.stdout.take().expect("stdout");
    // Read until the kubeconfig line, then keep draining: the runner's stdout must stay open.
    let (found, kubeconfig) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(path) = line.strip_prefix("export KUBECONFIG=").filter(|_| !sent) {
                sent = found.send(PathBuf::from(path)).is_ok();
            }
        }
    });
    let kubeconfig = tokio::task::spawn_blocking(move || kubeconfig.recv())
        .await
        .expect("task")
        .expect("the runner prints its kubeconfig once the node is ready");
    run_pod(client_from(&kubeconfig).await).await;

    // SIGKILL: no destructor runs; the keepers notice their closed pipes.
    runner.kill().expect("SIGKILL");
    runner.wait().expect("reaped");
    let killed = Instant::now();
    // The node keeper holds the lock until its teardown is done.
    assert!(
        flock_node_lock(&["--timeout", "120"]),
        "the teardown finishes within 2 minutes"
    );
    eprintln!(
        "host restored {:.1} s after the SIGKILL",
        killed.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(Path::new(HOST_STATE_DIR).join("teardown.log"))
        .expect("teardown log");
    assert!(log.contains("done (failed=0)"), "teardown log:\n{log}");
    // The control plane's own watchdog removes its directory after its 3 s grace period: once it has
    // exited, the directory is gone.
    let cp_dir = kubeconfig
        .parent()
        .expect("dir")
        .to_string_lossy()
        .into_owned();
    for watchdog in processes_mentioning(&cp_dir)
        .iter()
        .filter(|p| p.contains("cloudjob-testenv-watchdog"))
    {
        let pid = watchdog.split(' ').next().and_then(|p| p.parse().ok());
        assert!(
            exited(pid.expect("pid"), Duration::from_secs(15)).await,
            "the watchdog exits within 15 s: {watchdog}"
        );
    }
    assert!(
        !Path::new(&cp_dir).exists(),
        "the control plane's directory is gone"
    );
    assert_restored(&before, &HostState::capture().expect("host state"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_node_runs_in_the_background_and_down_restores_the_host() {
    let Some((_host, before)) = host_before().await else {
        return;
    };
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("dev-cluster");
    let testenv = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cloudjob-testenv"))
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .expect("cloudjob-testenv runs")
    };
    let up = testenv(&["up", "--node"]);
    assert!(
        up.status.success(),
        "up --node: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    let kubeconfig = kubeconfig_from(stdout.as_bytes()).expect("up prints the kubeconfig");
    assert!(
        stdout.contains("export CLOUDJOB_NODE_API_PORT=")
            && stdout.contains("export CLOUDJOB_NODE_DIR="),
        "{stdout}"
    );
    // The command has returned; the node keeps running (a pod still starts on it).
    run_pod(client_from(&kubeconfig).await).await;
    let status = testenv(&["status"]);
    assert!(
        status.status.success(),
        "status: {}",
        String::from_utf8_lossy(&status.stderr)
    );

    let node_dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export CLOUDJOB_NODE_DIR="))
        .expect("up prints the node's directory")
        .to_owned();

    let down = testenv(&["down"]);
    assert!(
        down.status.success(),
        "down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    // `down` returns once the teardown has released the lock: the host is back now.
    assert!(!dir.exists(), "down removed the state directory");
    assert_restored(&before, &HostState::capture().expect("host state"));
    // Nothing the node started outlives `down`: not its etcd or kube-apiserver either (their command
    // lines name the control plane's directory), which the runner stops only after the node's teardown.
    let control_plane_dir = kubeconfig
        .parent()
        .expect("the kubeconfig lives in the control plane's directory")
        .to_string_lossy()
        .into_owned();
    for dir in [&node_dir, &control_plane_dir] {
        let survivors = processes_mentioning(dir);
        assert!(
            survivors.is_empty(),
            "processes of {dir} survived `down`: {survivors:?}"
        );
    }
}

/// `PID command line` of every process whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(text) && cloudjob_testenv::process_is_running(pid.parse().unwrap_or(0))
        {
            found.push(format!("{pid} {cmdline}"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_owner_still_leaves_the_host_as_it_found_it() {
    let Some((_host, before)) = host_before().await else {
        return;
    };
    // The node is dropped while the task unwinds.
    let task = tokio::spawn(async {
        let Some(node) = start_node_or_skip().await.expect("the node starts") else {
            return false;
        };
        run_pod(node.control_plane().client()).await;
        panic!("a test failing with a pod running on its node");
    });
    match task.await {
        Ok(false) => return, // skipped (start_node_or_skip said why)
        Ok(true) => unreachable!("the task panics once the node ran"),
        Err(e) => assert!(e.is_panic(), "the task panicked: {e}"),
    }
    assert_restored(&before, &HostState::capture().expect("host state"));
}

/// Waits up to `timeout` for the process `pid` (not a child of this one) to exit: a poll(2) of its pidfd,
/// which becomes readable when the process exits. Whether it exited (at once if there is no such process).
async fn exited(pid: i32, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let Ok(pidfd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return true; // ESRCH: already gone
    };
    let timeout = Timespec::try_from(timeout).expect("timeout");
    tokio::task::spawn_blocking(move || {
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        poll(&mut fds, Some(&timeout)).expect("poll of the pidfd") == 1
    })
    .await
    .expect("task")
}

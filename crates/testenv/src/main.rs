//! `cloudjob-testenv`: the test control plane for people (a local cluster to point kubectl, helm and
//! the operator at).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use cloudjob_testenv::{
    BRIDGE, ControlPlane, DetachedState, GATEWAY, HOST_STATE_DIR, NODE_NAME, NODE_RUNNER, Node,
    binaries, cache_dir, remove_dir,
};

#[derive(Parser)]
#[command(
    version,
    about = "A local etcd + kube-apiserver for development and tests (no Docker needed)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (first time only) the pinned kube-apiserver, etcd, kubectl and helm and print their paths.
    Build,
    /// Start a control plane in the background and print `export KUBECONFIG=...`.
    Up {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Stop the background control plane and remove its state.
    Down(DirArg),
    /// Show whether the background control plane is running.
    Status(DirArg),
    /// Run a control plane in the foreground until Ctrl-C or SIGTERM; it also stops if this process is
    /// killed.
    Run(NodeArg),
}

#[derive(clap::Args)]
struct NodeArg {
    /// Also run a kubelet node (containerd, kubelet, kube-scheduler, kube-controller-manager; root only).
    /// kube-apiserver then listens on the node's bridge address. Everything the node changes on the host
    /// is restored when it stops.
    #[arg(long)]
    node: bool,
}

#[derive(clap::Args)]
struct DirArg {
    /// Where the control plane keeps its state [default: ${CLOUDJOB_CACHE_DIR:-~/.cache/cloudjob-operator}/dev-cluster]
    #[arg(long, env = "CLOUDJOB_TESTENV_DIR")]
    dir: Option<PathBuf>,
}

impl DirArg {
    fn resolve(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(dir) => Ok(dir.clone()),
            None => Ok(cache_dir()?.join("dev-cluster")),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Build => build(),
        Cmd::Up { dir, node } if node.node => up_node(&dir.resolve()?),
        Cmd::Up { dir, .. } => up(&dir.resolve()?).await,
        Cmd::Down(dir) => down(&dir.resolve()?),
        Cmd::Status(dir) => status(&dir.resolve()?).await,
        Cmd::Run(node) if node.node => run_node().await,
        Cmd::Run(_) => run().await,
    }
}

fn build() -> anyhow::Result<()> {
    let binaries = binaries()?;
    for (name, path) in [
        ("kube-apiserver", &binaries.kube_apiserver),
        ("etcd", &binaries.etcd),
        ("kubectl", &binaries.kubectl),
        ("helm", &binaries.helm),
    ] {
        println!("{name}\t{}", path.display());
    }
    Ok(())
}

/// For `up`: `true` (after printing where) if the control plane recorded in `dir` still runs; otherwise
/// stops what is left of one and clears `dir`, and returns `false`.
fn already_running_or_cleaned(dir: &Path) -> anyhow::Result<bool> {
    if let Some(state) = DetachedState::load(dir)? {
        if state.all_running() {
            eprintln!(
                "already running at {} (state in {})",
                state.server_url,
                dir.display()
            );
            println!("export KUBECONFIG={}", state.kubeconfig.display());
            return Ok(true);
        }
        eprintln!("cleaning up a stopped control plane in {}", dir.display());
        state
            .stop()
            .context("cleaning up the previous control plane")?;
    } else if dir.exists() {
        remove_dir(dir)?;
    }
    Ok(false)
}

async fn up(dir: &Path) -> anyhow::Result<()> {
    if already_running_or_cleaned(dir)? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let state = match ControlPlane::start_detached(dir).await {
        Ok(state) => state,
        Err(err) => {
            // The failed start stopped its processes; leave no half-written state behind.
            let _ = remove_dir(dir);
            return Err(err);
        }
    };
    state.save()?;
    eprintln!(
        "control plane ready at {} in {:.1} s; logs in {}/logs; stop it with `cloudjob-testenv down`",
        state.server_url,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    println!("export KUBECONFIG={}", state.kubeconfig.display());
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    match DetachedState::load(dir)? {
        Some(state) => {
            state.stop()?;
            if state.processes.iter().any(|p| p.name == NODE_RUNNER) {
                wait_for_node_teardown()?;
            }
            eprintln!(
                "stopped the control plane at {} and removed {}",
                state.server_url,
                dir.display()
            );
        }
        None if dir.exists() => {
            remove_dir(dir)?;
            eprintln!("no control plane was recorded; removed {}", dir.display());
        }
        None => eprintln!("no control plane in {}", dir.display()),
    }
    Ok(())
}

async fn status(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = DetachedState::load(dir)? else {
        bail!(
            "no control plane in {} (start one with `cloudjob-testenv up`)",
            dir.display()
        );
    };
    println!("server:     {}", state.server_url);
    println!("kubeconfig: {}", state.kubeconfig.display());
    for process in &state.processes {
        let running = if DetachedState::is_running(process) {
            "running"
        } else {
            "NOT RUNNING"
        };
        println!(
            "{:<15} pid {:<8} {running}  (log {})",
            process.name,
            process.pid,
            process.log.display()
        );
    }
    if !state.all_running() {
        bail!("the control plane is not running; `cloudjob-testenv down` cleans it up");
    }
    let version = ControlPlane::connect_existing(&state.kubeconfig)
        .await
        .context("the processes run but the API server does not answer")?
        .client()
        .apiserver_version()
        .await
        .context("asking the API server for its version")?;
    println!("version:    {}", version.git_version);
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let control_plane = ControlPlane::start().await?;
    eprintln!(
        "control plane ready at {} in {:.1} s; Ctrl-C stops it",
        control_plane.server_url(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "export KUBECONFIG={}",
        control_plane.kubeconfig_path().display()
    );
    let pids: Vec<String> = control_plane.pids().iter().map(u32::to_string).collect();
    println!("# pids: {}", pids.join(" "));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    drop(control_plane);
    Ok(())
}

async fn run_node() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let node = Node::start().await?;
    let control_plane = node.control_plane();
    eprintln!(
        "control plane at {} with node {NODE_NAME} (bridge {BRIDGE}, {GATEWAY}) ready in {:.1} s; \
         node files and logs in {}; Ctrl-C stops it and restores the host",
        control_plane.server_url(),
        started.elapsed().as_secs_f64(),
        node.dir().display()
    );
    // Not println!: a reader that goes away (closing our stdout) must not panic the node down.
    let exports = format!(
        "export KUBECONFIG={}\nexport CLOUDJOB_NODE_API_PORT={}\nexport CLOUDJOB_NODE_DIR={}\n",
        control_plane.kubeconfig_path().display(),
        node.api_port(),
        node.dir().display()
    );
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(exports.as_bytes());
        let _ = stdout.flush();
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    let mut node = node;
    if !node.stop() {
        bail!("the node's teardown reported problems; see {HOST_STATE_DIR}/teardown.log");
    }
    Ok(())
}

/// `up --node`: runs `run --node` in the background (its own process group, so Ctrl-C in this terminal
/// does not reach it) and returns once it is ready.
fn up_node(dir: &Path) -> anyhow::Result<()> {
    if already_running_or_cleaned(dir)? {
        return Ok(());
    }
    std::fs::create_dir_all(dir.join("pki"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let out_path = dir.join("run.out");
    let log_path = dir.join("run.log");
    let out = std::fs::File::create(&out_path).context("creating run.out")?;
    let log = std::fs::File::create(&log_path).context("creating run.log")?;
    let exe = std::env::current_exe().context("locating this program")?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["run", "--node"])
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .context("starting `cloudjob-testenv run --node`")?;
    let started = std::time::Instant::now();
    // The first start builds kubelet and friends and installs packages: allow for that.
    let deadline = started + std::time::Duration::from_secs(40 * 60);
    let (kubeconfig, server) = loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(kubeconfig) = text
            .lines()
            .find_map(|l| l.strip_prefix("export KUBECONFIG="))
        {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let server = log
                .lines()
                .find_map(|l| l.strip_prefix("control plane at "))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_default()
                .to_owned();
            break (PathBuf::from(kubeconfig), server);
        }
        if let Some(status) = child.try_wait().context("watching the node runner")? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the node did not start ({status}):\n{log}");
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "the node did not start within 40 minutes; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let state = DetachedState {
        server_url: server,
        kubeconfig: kubeconfig.clone(),
        dir: dir.to_path_buf(),
        processes: vec![cloudjob_testenv::DetachedProcess {
            name: NODE_RUNNER.to_owned(),
            pid: child.id(),
            log: log_path.clone(),
        }],
    };
    state.save()?;
    eprintln!(
        "control plane and node {NODE_NAME} ready in {:.1} s; log in {}; stop with `cloudjob-testenv down`",
        started.elapsed().as_secs_f64(),
        log_path.display()
    );
    print!("{}", std::fs::read_to_string(&out_path).unwrap_or_default());
    Ok(())
}

/// `down` of a node returns once its teardown has restored the host: the teardown holds the node lock
/// until it is done.
fn wait_for_node_teardown() -> anyhow::Result<()> {
    let lock = Path::new(HOST_STATE_DIR).join("lock");
    let status = std::process::Command::new("flock")
        .args(["--timeout", "120"])
        .arg(&lock)
        .arg("true")
        .status()
        .context("running flock")?;
    if !status.success() {
        bail!(
            "the node's teardown did not finish within 2 minutes ({})",
            lock.display()
        );
    }
    Ok(())
}

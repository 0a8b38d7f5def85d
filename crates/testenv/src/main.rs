//! `cloudjob-testenv`: the test control plane for people (a local cluster to point kubectl, helm and
//! the operator at).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use cloudjob_testenv::{ControlPlane, DetachedState, binaries, cache_dir, remove_dir};

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
    Up(DirArg),
    /// Stop the background control plane and remove its state.
    Down(DirArg),
    /// Show whether the background control plane is running.
    Status(DirArg),
    /// Run a control plane in the foreground until Ctrl-C or SIGTERM; it also stops if this process is
    /// killed.
    Run,
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
        Cmd::Up(dir) => up(&dir.resolve()?).await,
        Cmd::Down(dir) => down(&dir.resolve()?),
        Cmd::Status(dir) => status(&dir.resolve()?).await,
        Cmd::Run => run().await,
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

async fn up(dir: &Path) -> anyhow::Result<()> {
    if let Some(state) = DetachedState::load(dir)? {
        if state.all_running() {
            eprintln!(
                "already running at {} (state in {})",
                state.server_url,
                dir.display()
            );
            println!("export KUBECONFIG={}", state.kubeconfig.display());
            return Ok(());
        }
        eprintln!("cleaning up a stopped control plane in {}", dir.display());
        state
            .stop()
            .context("cleaning up the previous control plane")?;
    } else if dir.exists() {
        remove_dir(dir)?;
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

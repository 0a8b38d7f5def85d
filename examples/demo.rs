//! The demo: `cargo run --release --example demo` (see docs/demo.md).
//!
//! Starts a real local control plane (etcd + kube-apiserver), the jobs API simulator and the operator (in
//! this process, the real controller code), creates sample CloudJobs with the real kubectl, and shows
//! `kubectl get cloudjobs -o wide` live until every job has finished; then `kubectl wait`, the produced ids
//! and the events. `--keep` leaves everything running until Ctrl-C.
//!
//! The operator finds its cluster through `KUBECONFIG`, and this crate forbids `unsafe` (which
//! `std::env::set_var` needs), so the demo runs itself twice: the first process picks a place for the
//! kubeconfig and starts the second one with `KUBECONFIG` pointing there; the second one runs the demo
//! and copies the control plane's kubeconfig to that place before it starts the operator.

use std::{
    collections::BTreeMap,
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use cloudjob_operator::{
    cli::{Cli, Command as OperatorCommand},
    crd::{CloudJob, Phase},
};
use cloudjob_sim::{
    Fault, FaultKind, FaultScope, JobSpec, ProgressCurve, Service, SimConfig, Simulator,
};
use cloudjob_testenv::{ControlPlane, free_port};
use kube::{Api, api::ListParams};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Set (with `KUBECONFIG`, to the same path) by the first process for the second one.
const DEMO_KUBECONFIG_ENV: &str = "CLOUDJOB_DEMO_KUBECONFIG";
const PROJECT: &str = "0605767b5c00d4762ff2c00d6fd9cf1c";
const ACCESS_KEY: &str = "sim-ak";
const SECRET_KEY: &str = "sim-sk";
const SECRET: &str = "cloud-credentials";
const LATE_SECRET: &str = "late-credentials";
/// When the demo creates the Secret that one CloudJob waits for, after the CloudJobs are created.
const LATE_SECRET_AFTER: Duration = Duration::from_secs(8);
const CRD: &str = "crds/cloudjobs.cloudjob.io.yaml";

#[derive(Debug, Clone)]
struct Options {
    keep: bool,
    /// Longest wait for every CloudJob to finish.
    timeout: Duration,
    namespace: String,
    /// Print `kubectl get cloudjobs` this often.
    tick: Duration,
    /// Redraw in place (stdout is a terminal) rather than print one table after another.
    clear: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keep: false,
            timeout: Duration::from_secs(120),
            namespace: "demo".into(),
            tick: Duration::from_secs(2),
            clear: std::io::stdout().is_terminal(),
        }
    }
}

const USAGE: &str = "\
usage: cargo run --release --example demo -- [--keep] [--timeout SECONDS]

  --keep             keep the control plane, the simulator and the operator running after the demo
                     (prints `export KUBECONFIG=...`), until Ctrl-C
  --timeout SECONDS  give up when the CloudJobs have not all finished after this long (default 120)";

/// `Ok(None)` for `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep" => options.keep = true,
            "--timeout" => {
                let value = args.next().context("--timeout needs a number of seconds")?;
                let secs: u64 = value
                    .parse()
                    .with_context(|| format!("--timeout {value:?} is not a number of seconds"))?;
                options.timeout = Duration::from_secs(secs.max(1));
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(Some(options))
}

#[cfg_attr(test, allow(dead_code))]
fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match std::env::var_os(DEMO_KUBECONFIG_ENV) {
        None => relaunch(),
        Some(kubeconfig) => run_demo(&options, Path::new(&kubeconfig)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("\ndemo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The first process: runs this program again with `KUBECONFIG` set, and waits for it. Ctrl-C reaches both
/// processes; this one leaves it to the demo, which then stops cleanly.
#[cfg_attr(test, allow(dead_code))]
fn relaunch() -> anyhow::Result<ExitCode> {
    // Kept after the demo: it holds the operator's log.
    let dir = tempfile::Builder::new()
        .prefix("cloudjob-demo-")
        .tempdir()
        .context("creating the demo's temporary directory")?
        .keep();
    let kubeconfig = dir.join("kubeconfig");
    let exe = std::env::current_exe().context("locating this program to run the demo")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status = runtime.block_on(async {
        let mut interrupt =
            signal(SignalKind::interrupt()).context("listening for Ctrl-C (SIGINT)")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut child = tokio::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env("KUBECONFIG", &kubeconfig)
            .env(DEMO_KUBECONFIG_ENV, &kubeconfig)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        loop {
            tokio::select! {
                status = child.wait() => return status.context("waiting for the demo"),
                _ = interrupt.recv() => {} // the demo got it too
                _ = terminate.recv() => {
                    // The control plane's watchdog stops etcd and kube-apiserver when the demo is gone.
                    let _ = child.start_kill();
                }
            }
        }
    })?;
    let _ = std::fs::remove_file(&kubeconfig);
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(130),
    })
}

/// The second process.
#[cfg_attr(test, allow(dead_code))]
fn run_demo(options: &Options, kubeconfig: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match runtime.block_on(demo(options, kubeconfig)) {
        Ok(report) if report.as_expected() => Ok(ExitCode::SUCCESS),
        Ok(report) => {
            eprintln!(
                "\nunexpected outcome: {:?}\n(expected {:?}); the operator's log: {}",
                report.phases,
                report.expected,
                report.log.display()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("\ninterrupted; everything is stopped");
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// A sample CloudJob with the simulated cloud job behind it.
struct Sample {
    name: &'static str,
    what: &'static str,
    secret: &'static str,
    job: JobSpec,
    /// Injected into the job's responses.
    fault: Option<Fault>,
    expected: Phase,
}

fn samples() -> Vec<Sample> {
    let job = |service, job_type: &str, secs| {
        JobSpec::new(service, PROJECT, job_type)
            .duration_secs(secs)
            .progress(ProgressCurve::Linear)
    };
    vec![
        Sample {
            name: "image-from-server",
            what: "IMS: image of a server, ~25 s, progress and current task",
            secret: SECRET,
            job: JobSpec {
                name: Some("web-golden-image".into()),
                ..job(Service::Ims, "imsCreateImageByInstance", 25.0).tasks([
                    "CreateSnapshotTask",
                    "CreateImageTask",
                    "UploadImageTask",
                    "RegisterImageTask",
                ])
            },
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "import-broken-image",
            what: "IMS: image import that fails (IMG.0024) after ~12 s",
            secret: SECRET,
            job: JobSpec {
                name: Some("imported-image".into()),
                ..job(Service::Ims, "imsImportImageJob", 12.0).fail(
                    "IMG.0024",
                    "the image file in OBS is not a valid qcow2 image",
                )
            },
            fault: None,
            expected: Phase::Failed,
        },
        Sample {
            name: "data-volumes",
            what: "EVS: batch of 3 volumes, ~15 s, progress from sub-jobs",
            secret: SECRET,
            job: job(Service::Evs, "batchCreateVolume", 15.0).sub_jobs(3, 0),
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "web-server",
            what: "ECS: a server, ~10 s",
            secret: SECRET,
            job: job(Service::Ecs, "createServer", 10.0).sub_jobs(1, 0),
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "volume-late-credentials",
            what: "EVS: its Secret `late-credentials` is created only after 8 s (SecretNotFound, Stalled)",
            secret: LATE_SECRET,
            job: job(Service::Evs, "createVolume", 20.0),
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "image-throttled",
            what: "IMS: the cloud answers 429 four times (Throttled), then it succeeds, ~15 s",
            secret: SECRET,
            job: job(Service::Ims, "imsCopyImageInRegionJob", 15.0),
            fault: Some(Fault::next(
                4,
                FaultKind::Throttle {
                    retry_after_secs: Some(2),
                },
            )),
            expected: Phase::Succeeded,
        },
    ]
}

fn manifest(sample: &Sample, namespace: &str, job_id: &str) -> String {
    format!(
        "\
# {what}
apiVersion: cloudjob.io/v1alpha1
kind: CloudJob
metadata:
  name: {name}
  namespace: {namespace}
spec:
  service: {service}
  region: eu-de
  projectId: {PROJECT}
  jobId: {job_id}
  credentialsSecretRef:
    name: {secret}
",
        what = sample.what,
        name = sample.name,
        service = sample.job.service.as_str(),
        secret = sample.secret,
    )
}

/// What the demo saw, for its test.
#[derive(Debug)]
struct Report {
    /// Final phase of each CloudJob.
    phases: BTreeMap<String, String>,
    expected: BTreeMap<String, String>,
    /// The Ready condition reasons seen per CloudJob while watching, in order (checked by the test).
    #[cfg_attr(not(test), allow(dead_code))]
    reasons: Reasons,
    log: PathBuf,
}

impl Report {
    fn as_expected(&self) -> bool {
        self.phases == self.expected
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

async fn demo(options: &Options, kubeconfig: &Path) -> anyhow::Result<Report> {
    let demo_dir = kubeconfig
        .parent()
        .context("the demo's kubeconfig path has no directory")?;
    let samples = samples();
    println!(
        "cloudjob-operator demo\n\
         ======================\n\
         This starts, on this machine only: a real Kubernetes API server (etcd + kube-apiserver as local\n\
         processes; no Docker, no kubelet), a simulator of the Huawei Cloud / Open Telekom Cloud jobs API\n\
         (IMS, EVS, ECS), and the operator itself. It then creates {} sample CloudJobs with kubectl and shows\n\
         `kubectl get cloudjobs -o wide` every {} s until all of them have finished (about half a minute).",
        samples.len(),
        options.tick.as_secs()
    );

    step(
        "Control plane binaries (kube-apiserver, etcd, kubectl, helm).\n    \
         The first run builds them from source with Go: this may take a while (about 7 minutes on 2 cores),\n    \
         then they are cached in ~/.cache/cloudjob-operator/bin and this step takes a second.",
    );
    let started = Instant::now();
    let binaries = tokio::task::spawn_blocking(cloudjob_testenv::binaries)
        .await
        .context("the control plane build task failed")?
        .context("building the control plane binaries (tools/control-plane/build.sh)")?;
    println!(
        "    ready in {} ({})",
        secs(started.elapsed()),
        binaries
            .kubectl
            .parent()
            .unwrap_or(Path::new("."))
            .display()
    );
    // From here on Ctrl-C stops the demo cleanly (before, it simply ends the build).
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;

    step("Starting the control plane (etcd + kube-apiserver)");
    let started = Instant::now();
    let cp = ControlPlane::start()
        .await
        .context("starting the control plane")?;
    println!(
        "    API server {} ready in {}",
        cp.server_url(),
        secs(started.elapsed())
    );
    std::fs::copy(cp.kubeconfig_path(), kubeconfig).with_context(|| {
        format!(
            "copying the control plane's kubeconfig to {}",
            kubeconfig.display()
        )
    })?;

    // Everything after the control plane runs inside a block so that it is stopped whatever happens.
    let outcome =
        with_control_plane(options, &cp, &binaries, demo_dir, &samples, &mut interrupt).await;
    step("Stopping the operator, the simulator and the control plane");
    tokio::task::spawn_blocking(move || drop(cp))
        .await
        .context("stopping the control plane")?;
    println!("    done");
    outcome
}

async fn with_control_plane(
    options: &Options,
    cp: &ControlPlane,
    binaries: &cloudjob_testenv::Binaries,
    demo_dir: &Path,
    samples: &[Sample],
    interrupt: &mut Signal,
) -> anyhow::Result<Report> {
    let ns = options.namespace.as_str();
    step("Installing the CloudJob CRD with kubectl");
    let crd = cloudjob_testenv::repo_root()?.join(CRD);
    let crd = crd.to_string_lossy();
    kubectl_show(cp, &["apply", "-f", &crd], None).await?;
    kubectl_show(
        cp,
        &[
            "wait",
            "--for=condition=Established",
            "crd/cloudjobs.cloudjob.io",
            "--timeout=30s",
        ],
        None,
    )
    .await?;

    step("Starting the jobs API simulator");
    let sim = Simulator::start(SimConfig::default())
        .await
        .context("starting the simulator")?;
    println!(
        "    {} (IMS at /ims, EVS at /evs, ECS at /ecs; accepts AK {ACCESS_KEY} / SK {SECRET_KEY})",
        sim.base_url()
    );

    step(&format!(
        "Namespace {ns:?} and the Secret {SECRET:?} with the simulator's AK/SK"
    ));
    kubectl_show(cp, &["create", "namespace", ns], None).await?;
    kubectl_show(cp, &secret_args(ns, SECRET), None).await?;

    step("Starting the operator (in this process: the real controller)");
    let log = demo_dir.join("operator.log");
    let operator = start_operator(&sim, &log).await?;

    let outcome = with_operator(options, cp, binaries, &sim, samples, &log, interrupt).await;
    operator.abort();
    let _ = operator.await;
    drop(sim);
    outcome
}

async fn start_operator(
    sim: &Simulator,
    log: &Path,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let file = std::fs::File::create(log)
        .with_context(|| format!("creating the operator's log {}", log.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    // Fails only if a subscriber is already set (in a test): the operator then logs there.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let template = format!("{}/{{service}}", sim.base_url());
    let argv = [
        "cloudjob-operator",
        "run",
        "--listen-address",
        &listen,
        "--endpoint-template",
        &template,
        // The simulator is on 127.0.0.1, outside the default allow-list of official cloud domains (the
        // template's host is allowed anyway; this also allows CloudJobs that name it in spec.endpoint).
        "--allowed-endpoints",
        "127.0.0.1",
        "--error-backoff-min",
        "1s",
        "--error-backoff-max",
        "5s",
    ];
    println!("    cloudjob-operator {}", argv[1..].join(" "));
    let cli = Cli::try_parse_from(argv).context("parsing the operator's arguments")?;
    let OperatorCommand::Run(args) = cli.command else {
        bail!("the operator's arguments do not select `run`");
    };
    let client = kube::Client::try_default()
        .await
        .context("configuring the operator's Kubernetes client")?;
    let operator = tokio::spawn(cloudjob_operator::run(client, args.config()));
    let url = format!("http://{listen}/readyz");
    let started = Instant::now();
    loop {
        if operator.is_finished() {
            let result = operator.await.context("the operator panicked")?;
            bail!(
                "the operator stopped at startup: {:?}; its log: {}",
                result.err(),
                log.display()
            );
        }
        if reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the operator did not become ready within 30 s; its log: {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "    ready in {} (metrics and health on http://{listen}); its log: {}",
        secs(started.elapsed()),
        log.display()
    );
    Ok(operator)
}

async fn with_operator(
    options: &Options,
    cp: &ControlPlane,
    binaries: &cloudjob_testenv::Binaries,
    sim: &Simulator,
    samples: &[Sample],
    log: &Path,
    interrupt: &mut Signal,
) -> anyhow::Result<Report> {
    let ns = options.namespace.as_str();
    step("The sample CloudJobs (the simulator runs the matching cloud jobs)");
    let mut manifests = Vec::new();
    for sample in samples {
        let created = sim
            .create_job(sample.job.clone())
            .with_context(|| format!("creating the simulated job of {}", sample.name))?;
        if let Some(fault) = &sample.fault {
            sim.set_fault(FaultScope::Job(created.job_id.clone()), fault.clone());
        }
        println!("    {:<24} {}", sample.name, sample.what);
        manifests.push(manifest(sample, ns, &created.job_id));
    }
    println!(
        "\nThis is the first one; there is no spec.endpoint: the operator's --endpoint-template points at\nthe simulator.\n"
    );
    for line in manifests.first().map(String::as_str).unwrap_or("").lines() {
        println!("    {line}");
    }

    step("Creating them: kubectl apply -f - (all six manifests on stdin)");
    kubectl_show(cp, &["apply", "-f", "-"], Some(manifests.join("---\n"))).await?;

    let (phases, reasons) = watch(options, cp, samples, log, interrupt).await?;
    println!("What each went through (the reasons of its Ready condition, as the watch saw them):");
    for sample in samples {
        let seen = reasons.get(sample.name).map(|r| r.join(" -> "));
        println!(
            "    {:<24} {}",
            sample.name,
            seen.as_deref().unwrap_or("(no status seen)")
        );
    }

    step("Waiting on conditions, as scripts and pipelines do");
    kubectl_show(
        cp,
        &[
            "wait",
            "--for=condition=Complete",
            "cloudjob/image-from-server",
            "-n",
            ns,
            "--timeout=10s",
        ],
        None,
    )
    .await?;
    kubectl_show(
        cp,
        &[
            "wait",
            "--for=condition=Failed",
            "cloudjob/import-broken-image",
            "-n",
            ns,
            "--timeout=10s",
        ],
        None,
    )
    .await?;

    step("What the jobs produced, and why one failed");
    for (name, jsonpath) in [
        ("image-from-server", "{.status.outputs.imageId}"),
        ("data-volumes", "{.status.outputs.resources[*].id}"),
        ("web-server", "{.status.outputs.serverId}"),
        (
            "import-broken-image",
            "{.status.errorCode}: {.status.failReason}",
        ),
    ] {
        let jsonpath = format!("jsonpath={jsonpath}");
        kubectl_show(
            cp,
            &["get", "cloudjob", name, "-n", ns, "-o", &jsonpath],
            None,
        )
        .await?;
    }

    step("The events of one CloudJob (events.k8s.io, as kubectl shows them)");
    kubectl_show(
        cp,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            "involvedObject.name=volume-late-credentials",
        ],
        None,
    )
    .await?;

    if options.keep {
        keep_running(cp, binaries, ns, log, interrupt).await;
    }

    Ok(Report {
        phases,
        expected: samples
            .iter()
            .map(|s| (s.name.to_string(), s.expected.as_str().to_string()))
            .collect(),
        reasons,
        log: log.to_path_buf(),
    })
}

type Phases = BTreeMap<String, String>;
type Reasons = BTreeMap<String, Vec<String>>;

/// Shows `kubectl get cloudjobs -o wide` every tick until every CloudJob is Succeeded or Failed; creates
/// the late Secret on the way.
async fn watch(
    options: &Options,
    cp: &ControlPlane,
    samples: &[Sample],
    log: &Path,
    interrupt: &mut Signal,
) -> anyhow::Result<(Phases, Reasons)> {
    let ns = options.namespace.as_str();
    let api: Api<CloudJob> = Api::namespaced(cp.client(), ns);
    let started = Instant::now();
    let mut next_frame = started;
    let mut actions: Vec<String> = Vec::new();
    let mut secret_created = false;
    let mut reasons = Reasons::new();
    if !options.clear {
        step(&format!(
            "Watching: kubectl get cloudjobs -n {ns} -o wide, every {} s until all have finished",
            options.tick.as_secs()
        ));
    }
    loop {
        let elapsed = started.elapsed();
        if !secret_created && elapsed >= LATE_SECRET_AFTER {
            let out = kubectl(cp, &secret_args(ns, LATE_SECRET), None).await?;
            if !out.status.success() {
                bail!(
                    "creating the Secret {LATE_SECRET}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            secret_created = true;
            let action = format!(
                "[{:>3}s] created the Secret {LATE_SECRET} (kubectl create secret generic {LATE_SECRET} ...): \
                 volume-late-credentials goes on by itself",
                elapsed.as_secs()
            );
            if !options.clear {
                println!("{action}");
            }
            actions.push(action);
        }

        let mut phases = Phases::new();
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for cj in list.items {
                    let name = cj.metadata.name.clone().unwrap_or_default();
                    let status = cj.status.unwrap_or_default();
                    if let Some(reason) = status
                        .conditions
                        .iter()
                        .find(|c| c.type_ == "Ready")
                        .map(|c| c.reason.clone())
                    {
                        let seen = reasons.entry(name.clone()).or_default();
                        if seen.last() != Some(&reason) {
                            seen.push(reason);
                        }
                    }
                    if let Some(phase) = status.phase {
                        phases.insert(name, phase.as_str().to_string());
                    }
                }
            }
            Err(e) => tracing::warn!("listing CloudJobs: {e}"),
        }
        let finished = samples.iter().all(|s| {
            phases
                .get(s.name)
                .is_some_and(|p| p == "Succeeded" || p == "Failed")
        });

        if finished || Instant::now() >= next_frame {
            next_frame += options.tick;
            let table = kubectl(cp, &["get", "cloudjobs", "-n", ns, "-o", "wide"], None).await?;
            let mut frame = String::new();
            if options.clear {
                frame.push_str("\x1b[H\x1b[2J");
                frame.push_str(&format!(
                    "cloudjob-operator demo: live view, refreshed every {} s (operator log: {})\n\n",
                    options.tick.as_secs(),
                    log.display()
                ));
            }
            frame.push_str(&format!(
                "[{:>3}s] $ kubectl get cloudjobs -n {ns} -o wide\n{}{}",
                started.elapsed().as_secs(),
                String::from_utf8_lossy(&table.stdout),
                String::from_utf8_lossy(&table.stderr),
            ));
            if options.clear && !actions.is_empty() {
                frame.push('\n');
                for action in &actions {
                    frame.push_str(action);
                    frame.push('\n');
                }
            }
            print!("{frame}");
            let _ = std::io::stdout().flush();
        }
        if finished && secret_created {
            println!(
                "\nEvery CloudJob has finished, {} after they were created.",
                secs(started.elapsed())
            );
            return Ok((phases, reasons));
        }
        if elapsed > options.timeout {
            let unfinished: Vec<String> = samples
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        s.name,
                        phases.get(s.name).map_or("no status yet", String::as_str)
                    )
                })
                .collect();
            bail!(
                "timed out: after {} s not every CloudJob has finished: {}. The operator's log: {}",
                options.timeout.as_secs(),
                unfinished.join(", "),
                log.display()
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = interrupt.recv() => return Err(Interrupted.into()),
        }
    }
}

async fn keep_running(
    cp: &ControlPlane,
    binaries: &cloudjob_testenv::Binaries,
    ns: &str,
    log: &Path,
    interrupt: &mut Signal,
) {
    let bin = binaries.kubectl.parent().unwrap_or(Path::new("."));
    step("Still running (--keep). In another terminal:");
    println!(
        "    export KUBECONFIG={}\n    \
         export PATH={}:$PATH   # the pinned kubectl, if you have none\n    \
         kubectl get cloudjobs -n {ns} -o wide\n    \
         kubectl describe cloudjob image-from-server -n {ns}\n    \
         tail -f {}\n\n\
         Press Ctrl-C to stop everything.",
        cp.kubeconfig_path().display(),
        bin.display(),
        log.display()
    );
    let _ = interrupt.recv().await;
}

fn secret_args(ns: &str, name: &str) -> Vec<String> {
    [
        "create",
        "secret",
        "generic",
        name,
        "-n",
        ns,
        &format!("--from-literal=accessKey={ACCESS_KEY}"),
        &format!("--from-literal=secretKey={SECRET_KEY}"),
    ]
    .map(String::from)
    .to_vec()
}

/// Runs the pinned kubectl off the async workers (the simulator and the operator keep running).
async fn kubectl<S: AsRef<str>>(
    cp: &ControlPlane,
    args: &[S],
    stdin: Option<String>,
) -> anyhow::Result<std::process::Output> {
    let mut command = cp.kubectl();
    command.args(args.iter().map(AsRef::as_ref));
    let shown = args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ");
    tokio::task::spawn_blocking(move || {
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        child.wait_with_output()
    })
    .await
    .context("the kubectl task failed")?
    .with_context(|| format!("running kubectl {shown}"))
}

/// Prints `$ kubectl ...` and its output; fails if kubectl does.
async fn kubectl_show<S: AsRef<str>>(
    cp: &ControlPlane,
    args: &[S],
    stdin: Option<String>,
) -> anyhow::Result<()> {
    let shown: Vec<String> = args.iter().map(|a| shell_quote(a.as_ref())).collect();
    println!("$ kubectl {}", shown.join(" "));
    let out = kubectl(cp, args, stdin).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !stdout.is_empty() && !stdout.ends_with('\n') {
        println!();
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("kubectl {} failed ({})", shown.join(" "), out.status);
    }
    Ok(())
}

fn shell_quote(arg: &str) -> String {
    let plain = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c));
    if plain && !arg.is_empty() {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the whole demo, non-interactively. Like `main`, it runs in a second process (this test binary
    /// again, filtered to this test) that has `KUBECONFIG` set.
    #[tokio::test(flavor = "multi_thread")]
    async fn demo_runs_to_completion() {
        if let Some(kubeconfig) = std::env::var_os(DEMO_KUBECONFIG_ENV) {
            let options = Options {
                timeout: Duration::from_secs(75),
                clear: false,
                // Against an existing cluster (CLOUDJOB_TEST_KUBECONFIG), a namespace of its own.
                namespace: if std::env::var_os(cloudjob_testenv::EXISTING_KUBECONFIG_ENV).is_some()
                {
                    format!("demo-{}", std::process::id())
                } else {
                    "demo".into()
                },
                ..Options::default()
            };
            let report = demo(&options, Path::new(&kubeconfig))
                .await
                .expect("the demo runs to completion");
            assert_eq!(report.phases, report.expected, "final phases");
            let seen = |name: &str, reason: &str| {
                report
                    .reasons
                    .get(name)
                    .is_some_and(|reasons| reasons.iter().any(|r| r == reason))
            };
            assert!(
                seen("volume-late-credentials", "SecretNotFound"),
                "SecretNotFound not seen: {:?}",
                report.reasons
            );
            assert!(
                seen("image-throttled", "Throttled"),
                "Throttled not seen: {:?}",
                report.reasons
            );
            assert!(
                seen("import-broken-image", "JobFailed"),
                "{:?}",
                report.reasons
            );
            return;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        let started = Instant::now();
        let out = tokio::process::Command::new(std::env::current_exe().expect("test binary path"))
            .args(["tests::demo_runs_to_completion", "--exact", "--nocapture"])
            .env("KUBECONFIG", &kubeconfig)
            .env(DEMO_KUBECONFIG_ENV, &kubeconfig)
            .kill_on_drop(true)
            .output()
            .await
            .expect("the demo's process runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}");
        println!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the demo failed: {}", out.status);
        assert!(
            stdout.contains("1 passed"),
            "the demo's process ran no test"
        );
        assert!(
            stdout.contains("condition met"),
            "kubectl wait output missing"
        );
        println!("demo took {}", secs(started.elapsed()));
    }

    #[test]
    fn arguments() {
        let parse = |args: &[&str]| parse_args(args.iter().map(|s| s.to_string()));
        let options = parse(&["--keep", "--timeout", "30"])
            .expect("parses")
            .expect("not help");
        assert!(options.keep);
        assert_eq!(options.timeout, Duration::from_secs(30));
        assert!(parse(&["--help"]).expect("parses").is_none());
        assert!(parse(&["--timeout", "soon"]).is_err());
        assert!(parse(&["--nope"]).is_err());
    }

    #[test]
    fn manifests_quote_nothing_and_name_the_secret() {
        for sample in samples() {
            let yaml = manifest(&sample, "demo", "0123abcd");
            let value: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
            assert_eq!(value["metadata"]["name"].as_str(), Some(sample.name));
            assert_eq!(
                value["spec"]["credentialsSecretRef"]["name"].as_str(),
                Some(sample.secret)
            );
            assert!(value["spec"].get("endpoint").is_none());
        }
    }
}

//! The demo's steps, in order: binaries, control plane, CRD, simulator, namespace and Secret, operator,
//! the sample CloudJobs, the live view, what scripts see; `--keep` waits for Ctrl-C before stopping.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use cloudjob_operator::Config;
use cloudjob_sim::{FaultScope, SimConfig, Simulator};
use cloudjob_testenv::{ControlPlane, free_port};
use cloudjob_testkit::{CRD_FILE, CRD_NAME, Operator};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    Options, Report,
    kubectl::{kubectl_show, secret_args},
    live,
    samples::{ACCESS_KEY, SECRET, SECRET_KEY, Sample, manifest, samples},
    secs, step,
};

/// Runs the demo and stops everything it started, whatever happens.
pub async fn demo(options: &Options) -> anyhow::Result<Report> {
    // Kept after the demo: it holds the operator's log.
    let demo_dir = tempfile::Builder::new()
        .prefix("cloudjob-demo-")
        .tempdir()
        .context("creating the demo's temporary directory")?
        .keep();
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

    let outcome = with_control_plane(options, &cp, &demo_dir, &samples, &mut interrupt).await;
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
    demo_dir: &Path,
    samples: &[Sample],
    interrupt: &mut Signal,
) -> anyhow::Result<Report> {
    let ns = options.namespace.as_str();
    step("Installing the CloudJob CRD with kubectl");
    println!("$ kubectl apply -f {CRD_FILE}   (then a watch until {CRD_NAME} is Established)");
    cloudjob_testkit::install_crd(cp).await?;
    println!("    established");

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
    let operator = start_operator(cp, &sim, &log).await?;
    let outcome = with_operator(options, cp, &sim, samples, &log, interrupt).await;
    operator.stop().await?;
    drop(sim);
    outcome
}

/// `cloudjob_operator::run(cp.client(), Config { ... })` on a task, logging to `log`.
async fn start_operator(
    cp: &ControlPlane,
    sim: &Simulator,
    log: &Path,
) -> anyhow::Result<Operator> {
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
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let config = Config {
        listen_address: Some(listen),
        endpoint_template: Some(format!("{}/{{service}}", sim.base_url())),
        error_backoff_min: Duration::from_secs(1),
        error_backoff_max: Duration::from_secs(5),
        ..Config::default()
    };
    println!(
        "    cloudjob_operator::run(client, Config {{ listen_address: {listen}, endpoint_template: {}, \
         error_backoff_min: 1s, error_backoff_max: 5s, .. }})",
        config.endpoint_template.as_deref().unwrap_or_default()
    );
    let started = Instant::now();
    let operator = Operator::in_process(cp.client(), config)
        .await
        .with_context(|| format!("starting the operator; its log: {}", log.display()))?;
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
        "\nThis is the first one; there is no spec.endpoint: the operator's endpoint template points at\nthe simulator.\n"
    );
    for line in manifests.first().map(String::as_str).unwrap_or("").lines() {
        println!("    {line}");
    }

    step("Creating them: kubectl apply -f - (all six manifests on stdin)");
    kubectl_show(cp, &["apply", "-f", "-"], Some(manifests.join("---\n"))).await?;

    let (phases, reasons) = live::show_until_finished(options, cp, samples, log, interrupt).await?;
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
    let mut waits_met = true;
    for (condition, name) in [
        ("Complete", "image-from-server"),
        ("Failed", "import-broken-image"),
    ] {
        let out = kubectl_show(
            cp,
            &[
                "wait",
                &format!("--for=condition={condition}"),
                &format!("cloudjob/{name}"),
                "-n",
                ns,
                "--timeout=10s",
            ],
            None,
        )
        .await?;
        waits_met &= out.contains("condition met");
    }

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
        keep_running(cp, ns, log, interrupt).await;
    }

    Ok(Report {
        phases,
        expected: samples
            .iter()
            .map(|s| (s.name.to_string(), s.expected))
            .collect(),
        reasons,
        waits_met,
        log: log.to_path_buf(),
    })
}

async fn keep_running(cp: &ControlPlane, ns: &str, log: &Path, interrupt: &mut Signal) {
    let bin = cp.binaries().kubectl.parent().unwrap_or(Path::new("."));
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

//! `helm install --wait` with the real Helm 3 (the control plane's) and Helm 4 (tools/gitops/build.sh) on a
//! chart holding a Secret and CloudJobs (`tests/fixtures/charts/cloudjob-wait`), against a real
//! kube-apiserver, the real operator and the jobs API simulator.
//!
//! Helm 4's `--wait` uses kstatus: it must return "deployed" only once every CloudJob succeeded, fail fast
//! with the cloud's error when one fails (v4.2+), and never say "deployed" while no operator has looked at
//! the CloudJobs. Helm 3's `--wait` ignores custom resources: it says "deployed" at once, which the README
//! documents (wait with kubectl afterwards).

mod gitops;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_sim::{JobSpec, Service};
use cloudjob_testkit::e2e::*;
use futures::StreamExt as _;
use gitops::{kstatus, raw_cloudjob, tools};

const FAST_RETRIES: &[&str] = &["--error-backoff-min", "300ms", "--error-backoff-max", "2s"];

fn chart() -> PathBuf {
    gitops::repo_root().join("tests/fixtures/charts/cloudjob-wait")
}

fn helm3() -> PathBuf {
    cloudjob_testenv::binaries()
        .expect("control plane binaries")
        .helm
}

/// A helm command against the test control plane, with helm's homes in a per-test directory.
fn helm(bin: &Path, env: &Env, home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .env("KUBECONFIG", env.cp.kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

struct Install {
    ok: bool,
    took: Duration,
    output: String,
}

/// `helm install images chart -n NS --wait --timeout T` with the CloudJobs `(name, jobId)` and `extra`
/// `--set` arguments.
async fn install(
    bin: &Path,
    env: &Env,
    home: &Path,
    (ns, timeout): (&str, &str),
    jobs: &[(&str, &str)],
    sets: &[String],
) -> Install {
    let release = "images";
    let chart = chart();
    let mut args: Vec<String> = [
        "install",
        release,
        chart.to_str().expect("UTF-8"),
        "-n",
        ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        timeout,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--set=endpoint={}", env.sim.base_url()));
    args.push(format!("--set=secret.accessKey={AK},secret.secretKey={SK}"));
    for (i, (name, job_id)) in jobs.iter().enumerate() {
        args.push(format!(
            "--set=jobs[{i}].name={name},jobs[{i}].service=ims,jobs[{i}].jobId={job_id}"
        ));
    }
    args.extend(sets.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let out = output(helm(bin, env, home, &args)).await;
    Install {
        ok: out.status.success(),
        took: started.elapsed(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The release's status ("deployed", "failed", "pending-install", ...) and every status in its history.
async fn release_statuses(
    bin: &Path,
    env: &Env,
    home: &Path,
    release: &str,
    ns: &str,
) -> Vec<String> {
    let out = output(helm(
        bin,
        env,
        home,
        &["history", release, "-n", ns, "-o", "json"],
    ))
    .await;
    assert!(
        out.status.success(),
        "helm history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history JSON");
    history
        .as_array()
        .expect("history list")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn job(env: &Env, secs: f64) -> String {
    env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(secs))
        .job_id
}

async fn phase(env: &Env, ns: &str, name: &str) -> Option<Phase> {
    env.cloudjobs(ns)
        .get(name)
        .await
        .ok()
        .and_then(|cj: CloudJob| cj.status)
        .and_then(|s| s.phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm4_wait_returns_only_after_the_cloudjobs_succeeded_and_helm3_does_not_wait_for_them() {
    let tools = tools();
    let env = Env::start().await;
    let home = tempfile::tempdir().expect("helm home");
    let _operator = env.operator(FAST_RETRIES).await;

    let (a, b) = (job(&env, 3.0), job(&env, 6.0));
    let run = install(
        &tools.helm4,
        &env,
        home.path(),
        ("helm4-success", "90s"),
        &[("image-a", &a), ("image-b", &b)],
        &[],
    )
    .await;
    assert!(run.ok, "helm 4 install --wait failed:\n{}", run.output);
    for name in ["image-a", "image-b"] {
        assert_eq!(
            phase(&env, "helm4-success", name).await,
            Some(Phase::Succeeded),
            "Helm 4 said deployed ({:?}) before {name} succeeded:\n{}",
            run.took,
            run.output
        );
    }
    assert!(run.took >= Duration::from_secs(5), "took {:?}", run.took);
    assert_eq!(
        release_statuses(&tools.helm4, &env, home.path(), "images", "helm4-success").await,
        ["deployed"]
    );
    println!("Helm 4 --wait, success: deployed in {:?}", run.took);

    // Helm 3: --wait knows only built-in kinds, so it returns while the job still runs; then kubectl waits.
    let slow = job(&env, 20.0);
    let run = install(
        &helm3(),
        &env,
        home.path(),
        ("helm3-success", "90s"),
        &[("image", &slow)],
        &[],
    )
    .await;
    assert!(run.ok, "helm 3 install --wait failed:\n{}", run.output);
    assert_ne!(
        phase(&env, "helm3-success", "image").await,
        Some(Phase::Succeeded),
        "Helm 3 waited for the CloudJob after all ({:?}): update the README",
        run.took
    );
    println!(
        "Helm 3 --wait, success: deployed in {:?} without waiting for the CloudJob",
        run.took
    );
    env.kubectl_wait("helm3-success", "cloudjob/image", "Ready")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm4_wait_fails_fast_with_the_clouds_error_when_a_job_fails() {
    let tools = tools();
    let env = Env::start().await;
    let home = tempfile::tempdir().expect("helm home");
    let _operator = env.operator(FAST_RETRIES).await;
    let failing = env
        .job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                .duration_secs(2.0)
                .fail("IMS.0010", "insufficient quota for private images"),
        )
        .job_id;
    let run = install(
        &tools.helm4,
        &env,
        home.path(),
        ("helm4-failure", "120s"),
        &[("image", &failing)],
        &[],
    )
    .await;
    println!(
        "Helm 4 --wait, failed job: ok={} in {:?}:\n{}",
        run.ok, run.took, run.output
    );
    assert!(
        !run.ok,
        "Helm 4 said deployed for a failed job:\n{}",
        run.output
    );
    assert!(
        run.took < Duration::from_secs(60),
        "Helm 4 waited {:?} instead of failing fast",
        run.took
    );
    assert!(
        run.output.contains("insufficient quota for private images"),
        "Helm's message lacks the cloud's error:\n{}",
        run.output
    );
    let statuses =
        release_statuses(&tools.helm4, &env, home.path(), "images", "helm4-failure").await;
    assert!(!statuses.iter().any(|s| s == "deployed"), "{statuses:?}");
    // Helm 3 says "deployed" for the same chart; `kubectl wait --for=condition=Failed` then sees the failure.
    let run = install(
        &helm3(),
        &env,
        home.path(),
        ("helm3-failure", "120s"),
        &[("image", &failing)],
        &[],
    )
    .await;
    assert!(run.ok, "helm 3 install --wait failed:\n{}", run.output);
    println!("Helm 3 --wait, failed job: deployed in {:?}", run.took);
    env.kubectl_wait("helm3-failure", "cloudjob/image", "Failed")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm4_wait_succeeds_when_the_secret_arrives_5s_after_the_release() {
    let tools = tools();
    let env = Env::start().await;
    let home = tempfile::tempdir().expect("helm home");
    let _operator = env.operator(FAST_RETRIES).await;
    let id = job(&env, 2.0);
    let started = Instant::now();
    let installing = {
        let (bin, home) = (tools.helm4.clone(), home.path().to_path_buf());
        let env_ref = &env;
        let id = id.clone();
        async move {
            install(
                &bin,
                env_ref,
                &home,
                ("late-secret", "90s"),
                &[("image", &id)],
                &["--set=secret.create=false".to_string()],
            )
            .await
        }
    };
    let arriving = async {
        // The operator has seen the missing Secret (the namespace exists once helm created it).
        let api = env.cloudjobs("late-secret");
        wait_created(&api, "image").await;
        gitops::watch_until(&api, "image", "SecretNotFound", WAIT, |cj| {
            cj.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.reason == "SecretNotFound"))
        })
        .await;
        // The scenario: an External Secret that lands 5 s after the manifests (not a wait for anything).
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
        env.secret("late-secret", "creds", AK, SK).await;
        started.elapsed()
    };
    let (run, secret_at) = tokio::join!(installing, arriving);
    println!(
        "Helm 4 --wait, Secret created after {secret_at:?}: ok={} in {:?}\n{}",
        run.ok, run.took, run.output
    );
    assert!(
        run.ok,
        "Helm 4 failed the release although the Secret arrived:\n{}",
        run.output
    );
    assert_eq!(
        phase(&env, "late-secret", "image").await,
        Some(Phase::Succeeded)
    );
}

/// Waits (by watching) until the CloudJob exists: helm creates the namespace and the objects.
async fn wait_created(api: &kube::Api<CloudJob>, name: &str) {
    let found = tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(api.clone(), name, |o: Option<&CloudJob>| o.is_some()),
    )
    .await;
    assert!(
        matches!(found, Ok(Ok(Some(_)))),
        "{name} never created: {found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_an_operator_helm4_times_out_and_never_says_deployed() {
    let tools = tools();
    let env = Env::start().await;
    let home = tempfile::tempdir().expect("helm home");
    let id = job(&env, 1.0);
    let run = install(
        &tools.helm4,
        &env,
        home.path(),
        ("no-operator", "10s"),
        &[("image", &id)],
        &[],
    )
    .await;
    let object = raw_cloudjob(&env.client, "no-operator", "image").await;
    println!(
        "Helm 4 --wait, no operator: ok={} in {:?}; kstatus {:?}\n{}",
        run.ok,
        run.took,
        kstatus(&object),
        run.output
    );
    assert!(
        !run.ok,
        "Helm 4 said deployed with no operator running:\n{}",
        run.output
    );
    assert!(run.took >= Duration::from_secs(10), "{:?}", run.took);
    let statuses = release_statuses(&tools.helm4, &env, home.path(), "images", "no-operator").await;
    assert!(!statuses.iter().any(|s| s == "deployed"), "{statuses:?}");
    assert_eq!(kstatus(&object).status, "InProgress");

    // Helm 3 does not wait for custom resources at all: "deployed" at once (documented).
    let run = install(
        &helm3(),
        &env,
        home.path(),
        ("no-operator-helm3", "10s"),
        &[("image", &id)],
        &[],
    )
    .await;
    println!(
        "Helm 3 --wait, no operator: ok={} in {:?}",
        run.ok, run.took
    );
}

/// Installs running at once in `twenty_helm4_installs_give_no_false_deployed`: each is its own release in
/// its own namespace, so they are independent, and running them side by side (as a GitOps tool
/// reconciling many releases does) keeps the test short.
const CONCURRENT_INSTALLS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_helm4_installs_give_no_false_deployed() {
    let tools = tools();
    let env = Env::start().await;
    let home = tempfile::tempdir().expect("helm home");
    let operator = env.operator(FAST_RETRIES).await;
    // Even runs: a good job of 1-3 s. Odd runs: the Secret is missing (created by nobody), so the job can
    // never finish and the install must time out.
    let run_one = |i: usize| {
        let (env, helm4, home) = (&env, &tools.helm4, home.path());
        async move {
            let good = i.is_multiple_of(2);
            let ns = format!("repeat-{i}");
            let id = job(env, 1.0 + (i % 3) as f64);
            let sets = if good {
                vec![]
            } else {
                vec!["--set=secret.create=false".to_string()]
            };
            let timeout = if good { "60s" } else { "6s" };
            let run = install(helm4, env, home, (&ns, timeout), &[("image", &id)], &sets).await;
            let phase = phase(env, &ns, "image").await;
            (i, good, run, phase)
        }
    };
    let mut runs: Vec<_> = futures::stream::iter(0..20)
        .map(run_one)
        .buffer_unordered(CONCURRENT_INSTALLS)
        .collect()
        .await;
    runs.sort_by_key(|(i, ..)| *i);
    let mut false_deployed = Vec::new();
    let mut lines = Vec::new();
    for (i, good, run, phase) in runs {
        lines.push(format!(
            "{i:2} {} ok={} took={:?} phase={phase:?}",
            if good {
                "good          "
            } else {
                "missing Secret"
            },
            run.ok,
            run.took
        ));
        if run.ok && phase != Some(Phase::Succeeded) {
            false_deployed.push(format!(
                "run {i}: deployed with phase {phase:?}\n{}",
                run.output
            ));
        }
        if good && !run.ok {
            panic!(
                "good run {i} failed:\n{}\n{}",
                run.output,
                operator.log_tail()
            );
        }
    }
    println!(
        "Helm 4 --wait, 20 installs ({CONCURRENT_INSTALLS} at a time): {} false \"deployed\"\n{}",
        false_deployed.len(),
        lines.join("\n")
    );
    assert!(
        false_deployed.is_empty(),
        "{} of 20 installs said deployed before the CloudJob succeeded:\n{}",
        false_deployed.len(),
        false_deployed.join("\n")
    );
}

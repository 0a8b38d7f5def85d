//! Every situation the operator produces, read by the real GitOps clients: kstatus (Flux's cli-utils fork,
//! which Helm 4 links; `tools/gitops/kstatus`) and Argo CD's own Lua VM running `health.lua` as `argocd-cm`
//! runs it (`tools/gitops/argocd-lua`). The objects are the CloudJobs the real operator wrote to a real
//! kube-apiserver, with the jobs API simulator behind them.
//!
//! With `CLOUDJOB_REGENERATE_ARGOCD_TESTDATA=1` the test also rewrites
//! `deploy/argocd/cloudjob.io/CloudJob/{testdata/*.yaml,health_test.yaml}` from these objects, so Argo CD's
//! fixtures are what the operator actually produced (`tests/argocd_health.rs` then checks them in Argo CD's
//! VM and Argo CD's upstream test).

mod gitops;

use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_sim::{Fault, FaultKind, FaultScope, JobSpec, Service};
use cloudjob_testkit::{Operator, e2e::*};
use gitops::{argocd_health, conditions_summary, health_dir, kstatus, raw_api, raw_cloudjob};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const FAST_RETRIES: &[&str] = &["--error-backoff-min", "300ms", "--error-backoff-max", "2s"];

/// One observed situation: the object and what each client made of it.
struct Seen {
    situation: &'static str,
    /// testdata file name (without .yaml).
    fixture: &'static str,
    object: Value,
    kstatus: gitops::KStatus,
    health: gitops::Health,
    want_kstatus: &'static str,
    want_health: &'static str,
    /// Whether this expectation depends on the status contract of issue 11 (CRD status default, grace
    /// period for credential problems).
    issue_11: bool,
}

fn cond<'a>(
    cj: &'a CloudJob,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    cj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn cond_is(cj: &CloudJob, type_: &str, status: &str, reason: Option<&str>) -> bool {
    cond(cj, type_).is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
}

fn has_reason(cj: &CloudJob, reason: &str) -> bool {
    cj.status
        .as_ref()
        .is_some_and(|s| s.conditions.iter().any(|c| c.reason == reason))
}

fn phase_is(cj: &CloudJob, phase: Phase) -> bool {
    cj.status.as_ref().and_then(|s| s.phase) == Some(phase)
}

/// The object as a fixture: no server bookkeeping, and the simulator's random address replaced.
fn fixture_of(object: &Value, base_url: &str) -> Value {
    let text = serde_json::to_string(object)
        .expect("JSON")
        .replace(base_url, "https://cloudjob-sim.example");
    let mut object: Value = serde_json::from_str(&text).expect("JSON");
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["managedFields", "uid", "resourceVersion"] {
            meta.remove(key);
        }
    }
    object
}

fn observe(
    situation: &'static str,
    fixture: &'static str,
    object: Value,
    want_kstatus: &'static str,
    want_health: &'static str,
    issue_11: bool,
) -> Seen {
    Seen {
        situation,
        fixture,
        kstatus: kstatus(&object),
        health: argocd_health(&object),
        object,
        want_kstatus,
        want_health,
        issue_11,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_situation_reads_right_in_kstatus_and_in_argo_cds_vm() {
    gitops::tools();
    let env = Env::start().await;
    let ns = env.namespace("situations").await;
    let api = env.cloudjobs(&ns);
    let raw = raw_api(&env.client, &ns);
    let mut seen = Vec::new();
    let sim_job = |id: &str, secs: f64| {
        env.job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                .job_id(id)
                .duration_secs(secs),
        )
    };
    let create = |manifest: Value| {
        let raw = raw.clone();
        async move {
            let object: kube::api::DynamicObject =
                serde_json::from_value(manifest).expect("manifest");
            serde_json::to_value(
                raw.create(&PostParams::default(), &object)
                    .await
                    .expect("CloudJob created"),
            )
            .expect("JSON")
        }
    };

    // Before the first write: no operator runs yet (down, not installed, backlogged, or the CloudJob is
    // outside its namespaces). The object as stored, status defaulted by the CRD.
    let done_job = sim_job("0000000000000000000000000000d0e5", 3.0);
    let created = create(env.cloudjob_manifest("image", "ims", &done_job.job_id)).await;
    seen.push(observe(
        "before the first write (no operator)",
        "progressing_unobserved",
        created,
        "InProgress",
        "Progressing",
        true,
    ));

    let operator = env.operator(FAST_RETRIES).await;

    // Running.
    let long = sim_job("00000000000000000000000000000a11", 3600.0);
    create(env.cloudjob_manifest("running", "ims", &long.job_id)).await;
    watch_until_seen(&api, &operator, "running", "Running", |cj| {
        phase_is(cj, Phase::Running) && cond_is(cj, "Reconciling", "True", Some("Progressing"))
    })
    .await;
    seen.push(observe(
        "running",
        "progressing_running",
        raw_cloudjob(&env.client, &ns, "running").await,
        "InProgress",
        "Progressing",
        false,
    ));

    // Throttled (HTTP 429 on every request for this job).
    let throttled = sim_job("000000000000000000000000000000f1", 3600.0);
    env.sim.set_fault(
        FaultScope::Job(throttled.job_id.clone()),
        Fault::always(FaultKind::Throttle {
            retry_after_secs: Some(1),
        }),
    );
    create(env.cloudjob_manifest("throttled", "ims", &throttled.job_id)).await;
    watch_until_seen(&api, &operator, "throttled", "Throttled", |cj| {
        has_reason(cj, "Throttled")
    })
    .await;
    seen.push(observe(
        "throttled (HTTP 429)",
        "progressing_throttled",
        raw_cloudjob(&env.client, &ns, "throttled").await,
        "InProgress",
        "Progressing",
        false,
    ));

    // Grace period: the Secret is missing (it may be created by External Secrets in a moment).
    let mut manifest = env.cloudjob_manifest("secret-pending", "ims", &long.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "not-yet".into();
    create(manifest).await;
    watch_until_seen(&api, &operator, "secret-pending", "SecretNotFound", |cj| {
        has_reason(cj, "SecretNotFound")
    })
    .await;
    seen.push(observe(
        "grace period (Secret missing)",
        "progressing_secret_not_found_grace",
        raw_cloudjob(&env.client, &ns, "secret-pending").await,
        "InProgress",
        "Progressing",
        true,
    ));

    // Grace period: the cloud rejects the credentials (HTTP 401; a key rotation in progress).
    env.secret(&ns, "rotating", "old-ak", "old-sk").await;
    let mut manifest = env.cloudjob_manifest("rejected", "ims", &long.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "rotating".into();
    create(manifest).await;
    watch_until_seen(&api, &operator, "rejected", "AuthenticationFailed", |cj| {
        has_reason(cj, "AuthenticationFailed")
    })
    .await;
    seen.push(observe(
        "grace period (credentials rejected)",
        "progressing_authentication_failed_grace",
        raw_cloudjob(&env.client, &ns, "rejected").await,
        "InProgress",
        "Progressing",
        true,
    ));

    // Stalled: the grace period (2 s for this object) is over and the Secret is still missing.
    let mut manifest = env.cloudjob_manifest("secret-missing", "ims", &long.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "never".into();
    manifest["spec"]["credentialsGracePeriodSeconds"] = 2.into();
    create(manifest).await;
    watch_until_seen(
        &api,
        &operator,
        "secret-missing",
        "Stalled SecretNotFound",
        |cj| cond_is(cj, "Stalled", "True", Some("SecretNotFound")),
    )
    .await;
    seen.push(observe(
        "Stalled (Secret still missing after the grace period)",
        "degraded_secret_not_found",
        raw_cloudjob(&env.client, &ns, "secret-missing").await,
        "Failed",
        "Degraded",
        false,
    ));

    // Stalled at once: the cloud does not know the job.
    create(env.cloudjob_manifest("unknown", "ims", "00000000000000000000000000000404")).await;
    watch_until_seen(&api, &operator, "unknown", "Stalled JobNotFound", |cj| {
        cond_is(cj, "Stalled", "True", Some("JobNotFound"))
    })
    .await;
    seen.push(observe(
        "Stalled (unknown job)",
        "degraded_job_not_found",
        raw_cloudjob(&env.client, &ns, "unknown").await,
        "Failed",
        "Degraded",
        false,
    ));

    // Failed: the cloud job ends in FAIL.
    let failing = env.job(
        JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
            .job_id("000000000000000000000000000fa11d")
            .duration_secs(1.0)
            .fail("IMS.0010", "insufficient quota for private images"),
    );
    create(env.cloudjob_manifest("failed", "ims", &failing.job_id)).await;
    watch_until_seen(&api, &operator, "failed", "Failed", |cj| {
        phase_is(cj, Phase::Failed)
    })
    .await;
    seen.push(observe(
        "failed",
        "degraded_failed",
        raw_cloudjob(&env.client, &ns, "failed").await,
        "Failed",
        "Degraded",
        false,
    ));

    // Deadline: spec.activeDeadlineSeconds passed while the job still runs.
    let mut manifest = env.cloudjob_manifest("deadline", "ims", &long.job_id);
    manifest["spec"]["activeDeadlineSeconds"] = 1.into();
    create(manifest).await;
    watch_until_seen(
        &api,
        &operator,
        "deadline",
        "Stalled DeadlineExceeded",
        |cj| cond_is(cj, "Stalled", "True", Some("DeadlineExceeded")),
    )
    .await;
    seen.push(observe(
        "deadline exceeded",
        "degraded_deadline_exceeded",
        raw_cloudjob(&env.client, &ns, "deadline").await,
        "Failed",
        "Degraded",
        false,
    ));

    // Succeeded (the CloudJob created before the operator started).
    watch_until_seen(&api, &operator, "image", "Succeeded", |cj| {
        phase_is(cj, Phase::Succeeded)
    })
    .await;
    seen.push(observe(
        "succeeded",
        "healthy",
        raw_cloudjob(&env.client, &ns, "image").await,
        "Current",
        "Healthy",
        false,
    ));

    // Paused: the paused annotation on a running job.
    let paused = sim_job("0000000000000000000000000000fa05", 3600.0);
    let mut manifest = env.cloudjob_manifest("paused", "ims", &paused.job_id);
    create(manifest.clone()).await;
    watch_until_seen(&api, &operator, "paused", "Running", |cj| {
        phase_is(cj, Phase::Running)
    })
    .await;
    manifest = json!({"metadata": {"annotations": {"cloudjob.io/paused": "true"}}});
    api.patch("paused", &PatchParams::default(), &Patch::Merge(&manifest))
        .await
        .expect("paused");
    watch_until_seen(&api, &operator, "paused", "Paused", |cj| {
        phase_is(cj, Phase::Paused)
    })
    .await;
    seen.push(observe(
        "paused",
        "suspended",
        raw_cloudjob(&env.client, &ns, "paused").await,
        "InProgress",
        "Suspended",
        false,
    ));

    // A spec edit on the finished job: the patch's own answer is the object before the operator saw it.
    let edit = json!({"spec": {"polling": {"maxIntervalSeconds": 5}}});
    let edited = raw
        .patch("image", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("spec edited");
    seen.push(observe(
        "spec edited on a finished job, not yet observed",
        "progressing_spec_edited",
        serde_json::to_value(edited).expect("JSON"),
        "InProgress",
        "Progressing",
        false,
    ));
    watch_until_seen(&api, &operator, "image", "generation 2 observed", |cj| {
        cj.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    seen.push(observe(
        "spec edited on a finished job, observed",
        "healthy_spec_edited",
        raw_cloudjob(&env.client, &ns, "image").await,
        "Current",
        "Healthy",
        false,
    ));
    drop(operator);

    // The report, then the verdict.
    let mut report =
        String::from("situation | conditions | kstatus | Argo CD health\n--- | --- | --- | ---\n");
    let mut wrong = Vec::new();
    for s in &seen {
        report.push_str(&format!(
            "{} | {} | {}: {} | {}: {}\n",
            s.situation,
            conditions_summary(&s.object),
            s.kstatus.status,
            s.kstatus.message,
            s.health.status,
            s.health.message
        ));
        if s.kstatus.status != s.want_kstatus || s.health.status != s.want_health {
            wrong.push(format!(
                "{}: kstatus {} (want {}), Argo CD {} (want {}){}",
                s.situation,
                s.kstatus.status,
                s.want_kstatus,
                s.health.status,
                s.want_health,
                if s.issue_11 {
                    " [needs issue 11's status contract]"
                } else {
                    ""
                }
            ));
        }
    }
    println!("{report}");
    if std::env::var_os("CLOUDJOB_REGENERATE_ARGOCD_TESTDATA").is_some() {
        regenerate_fixtures(&seen, &env.sim.base_url());
    }
    assert!(
        wrong.is_empty(),
        "clients read situations wrongly:\n{}\n\n{report}",
        wrong.join("\n")
    );
}

async fn watch_until_seen(
    api: &kube::Api<CloudJob>,
    operator: &Operator,
    name: &str,
    what: &str,
    done: impl Fn(&CloudJob) -> bool + Send + 'static,
) -> CloudJob {
    gitops::watch_until_or(api, name, what, WAIT, done, || {
        format!(
            "operator log tail:
{}",
            operator.log_tail()
        )
    })
    .await
}

/// Rewrites testdata/*.yaml and health_test.yaml from the observed objects: the expected health is the
/// situation's expectation, the message what Argo CD's VM produced.
fn regenerate_fixtures(seen: &[Seen], base_url: &str) {
    let dir = health_dir();
    let testdata = dir.join("testdata");
    for entry in std::fs::read_dir(&testdata).expect("testdata") {
        std::fs::remove_file(entry.expect("entry").path()).expect("old fixture removed");
    }
    let mut tests = Vec::new();
    // A situation Argo CD reads wrongly (e.g. before issue 11's status contract is in) would make a
    // misleading fixture: only the ones it reads right are written.
    for s in seen.iter().filter(|s| s.health.status == s.want_health) {
        let path = format!("testdata/{}.yaml", s.fixture);
        let object = fixture_of(&s.object, base_url);
        let yaml = serde_yaml::to_string(&object).expect("YAML");
        std::fs::write(
            dir.join(&path),
            format!(
                "# {} (produced by the operator in tests/e2e_gitops.rs)\n{yaml}",
                s.situation
            ),
        )
        .expect("fixture written");
        let health = argocd_health(&object);
        tests.push(json!({
            "healthStatus": {"status": s.want_health, "message": health.message},
            "inputPath": path,
        }));
    }
    let yaml = serde_yaml::to_string(&json!({"tests": tests})).expect("YAML");
    std::fs::write(dir.join("health_test.yaml"), yaml).expect("health_test.yaml written");
}

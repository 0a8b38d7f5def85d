//! Runtime problems become conditions with a reason, a message and an event, and never lose the job:
//! a missing Secret, rejected credentials, unknown jobs, throttling, 5xx bursts and broken responses.

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{Fault, FaultKind, FaultScope, JobSpec, ProgressCurve, Service};
use cloudjob_testkit::e2e::*;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

/// Quick retries, and credentials problems Stalled at once (no grace period), as these tests assert.
const FAST_RETRIES: &[&str] = &[
    "--error-backoff-min",
    "300ms",
    "--error-backoff-max",
    "2s",
    "--credentials-grace-period",
    "0s",
];

/// With the default grace period a Secret that arrives a few seconds late (External Secrets, Sealed Secrets)
/// never makes the CloudJob read as Stalled (kstatus Failed), which would fail a Helm 4 or Flux release.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secret_that_arrives_late_is_retried_in_its_grace_period_and_never_stalls() {
    let (env, _operator, ns) = Env::with_operator(
        &["--error-backoff-min", "300ms", "--error-backoff-max", "2s"],
        "grace",
    )
    .await;
    let job =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0));
    // Every status the API server stores for the CloudJob, from its creation on (no write is missed).
    let mut watch = env.watch(&ns, "late").await;
    let mut manifest = env.cloudjob_manifest("late", "ims", &job.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "arrives-later".into();
    env.create_cloudjob_from(&ns, manifest).await;

    let mut seen = Vec::new();
    let waiting = watch
        .until(WAIT, "Reconciling with SecretNotFound", |cj| {
            let status = cj.status.clone().unwrap_or_default();
            seen.push(status.clone());
            condition_is(&status, "Reconciling", "True", "SecretNotFound").then_some(status)
        })
        .await
        .expect("Reconciling with SecretNotFound");
    assert!(condition_is(&waiting, "Ready", "False", "SecretNotFound"));
    let message = &condition(&waiting, "Reconciling")
        .expect("reconciling")
        .message;
    assert!(
        message.contains("arrives-later") && message.contains("Stalled if this persists past"),
        "the message says what to create and when it stalls: {message}"
    );
    assert!(waiting.problem_since.is_some());

    env.secret(&ns, "arrives-later", AK, SK).await;
    let done = watch
        .until(WAIT, "Succeeded after the Secret appeared", |cj| {
            let status = cj.status.clone().unwrap_or_default();
            seen.push(status.clone());
            (status.phase == Some(Phase::Succeeded)).then_some(status)
        })
        .await
        .expect("Succeeded");
    assert!(done.problem_since.is_none(), "the problem cleared");
    assert!(seen.len() >= 3, "saw the writes: {seen:?}");
    assert!(
        seen.iter().all(|s| condition(s, "Stalled").is_none()),
        "never Stalled: {seen:#?}"
    );
    let warnings = env
        .events_for(&ns, "late")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SecretNotFound"))
        .count();
    assert_eq!(
        warnings, 1,
        "one warning for the problem, not one per retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_secret_stalls_and_the_job_finishes_once_the_secret_exists() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "late-secret").await;
    let job =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0));
    let mut manifest = env.cloudjob_manifest("late", "ims", &job.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "arrives-later".into();
    env.create_cloudjob_from(&ns, manifest).await;

    let stalled = env
        .wait_status(&operator, &ns, "late", "Stalled with SecretNotFound", |s| {
            condition_is(s, "Stalled", "True", "SecretNotFound")
        })
        .await;
    let message = &condition(&stalled, "Stalled").expect("stalled").message;
    assert!(
        message.contains("arrives-later") && message.contains("accessKey"),
        "message says what to create: {message}"
    );
    assert!(
        condition(&stalled, "Reconciling").is_none(),
        "a lasting problem is not Reconciling (kstatus: Failed)"
    );
    env.wait_event(&ns, "late", Some("Warning"), "SecretNotFound")
        .await;
    assert_eq!(
        env.job_requests(&job.job_id),
        0,
        "no request without credentials"
    );

    env.secret(&ns, "arrives-later", AK, SK).await;
    let done = env
        .wait_status(
            &operator,
            &ns,
            "late",
            "Succeeded after the Secret appeared",
            |s| s.phase == Some(Phase::Succeeded),
        )
        .await;
    assert!(condition(&done, "Stalled").is_none());
    let cj = env.cloudjobs(&ns).get("late").await.expect("cloudjob");
    assert_eq!(
        cj.metadata.generation,
        Some(1),
        "the CloudJob itself was never edited"
    );
}

/// One 404 is not proof: a job the cloud answers only a moment after handing out its id (replication lag,
/// a gateway's brief 404) is asked again after `plan::CONFIRM_AFTER` and then tracked normally, never
/// reading as Stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_unknown_at_first_is_asked_again_before_it_stalls() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "confirm").await;
    let job_id = "0123456789abcdef0123456789abcdef";
    let mut watch = env.watch(&ns, "appears-late").await;
    env.create_cloudjob(&ns, "appears-late", "ims", job_id)
        .await;

    let mut seen = Vec::new();
    let first = watch
        .until(WAIT, "the first JobNotFound", |cj| {
            let status = cj.status.clone().unwrap_or_default();
            seen.push(status.clone());
            condition_is(&status, "Ready", "False", "JobNotFound").then_some(status)
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail()));
    assert!(
        condition_is(&first, "Reconciling", "True", "ProgressingWithRetry"),
        "the first 404 reads as retrying: {first:#?}"
    );
    env.job(
        JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
            .job_id(job_id)
            .duration_secs(1.0),
    );
    watch
        .until(WAIT, "Succeeded once the cloud knows the job", |cj| {
            let status = cj.status.clone().unwrap_or_default();
            seen.push(status.clone());
            (status.phase == Some(Phase::Succeeded)).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail()));
    assert!(
        seen.iter().all(|s| condition(s, "Stalled").is_none()),
        "never Stalled: {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_credentials_and_unknown_jobs_stall_with_their_reason_and_recover_when_fixed() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "bad-input").await;
    let job =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0));
    env.secret(&ns, "wrong", AK, "not-the-secret-key").await;
    let mut manifest = env.cloudjob_manifest("wrong-creds", "ims", &job.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "wrong".into();
    env.create_cloudjob_from(&ns, manifest).await;
    env.create_cloudjob(
        &ns,
        "unknown-ims",
        "ims",
        "00000000000000000000000000000000",
    )
    .await;
    env.create_cloudjob(
        &ns,
        "unknown-ecs",
        "ecs",
        "00000000000000000000000000000001",
    )
    .await;

    let stalled = env
        .wait_status(&operator, &ns, "wrong-creds", "AuthenticationFailed", |s| {
            condition_is(s, "Stalled", "True", "AuthenticationFailed")
        })
        .await;
    let message = &condition(&stalled, "Stalled").expect("stalled").message;
    assert!(
        message.contains("APIGW.0301") && message.contains("Secret \"wrong\""),
        "{message}"
    );
    for name in ["unknown-ims", "unknown-ecs"] {
        let s = env
            .wait_status(&operator, &ns, name, "JobNotFound", |s| {
                condition_is(s, "Stalled", "True", "JobNotFound")
            })
            .await;
        assert!(condition(&s, "Ready").is_some_and(|c| c.message.contains("spec.jobId")));
    }
    let ecs = env
        .cloudjobs(&ns)
        .get("unknown-ecs")
        .await
        .expect("ecs")
        .status
        .expect("status");
    assert!(
        condition(&ecs, "Stalled")
            .expect("stalled")
            .message
            .contains("Common.0011"),
        "ECS answers 400 Common.0011"
    );

    // Fixing the Secret is enough: the operator watches the Secrets CloudJobs reference.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    secrets
        .patch(
            "wrong",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"secretKey": SK}})),
        )
        .await
        .expect("secret fixed");
    env.wait_status(
        &operator,
        &ns,
        "wrong-creds",
        "Succeeded after the fix",
        |s| s.phase == Some(Phase::Succeeded),
    )
    .await;
    let events = env.events_for(&ns, "wrong-creds").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("AuthenticationFailed"))
    );

    // No credential ever reaches status, events or logs.
    let everything = format!(
        "{}{}{}",
        serde_json::to_string(
            &env.cloudjobs(&ns)
                .list(&Default::default())
                .await
                .expect("list")
                .items
        )
        .expect("json"),
        serde_json::to_string(&env.events_for(&ns, "wrong-creds").await).expect("json"),
        operator.log_tail()
    );
    assert!(
        !everything.contains(SK) && !everything.contains("not-the-secret-key"),
        "a secret key leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_and_server_errors_end_in_the_right_status_and_never_read_as_failed() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "faults").await;
    let job = env.job(
        JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
            .duration_secs(6.0)
            .progress(ProgressCurve::Linear),
    );
    let scope = FaultScope::Job(job.job_id.clone());
    for fault in [
        Fault::next(
            2,
            FaultKind::Throttle {
                retry_after_secs: Some(1),
            },
        ),
        Fault::next(
            1,
            FaultKind::Throttle {
                retry_after_secs: None,
            },
        ),
        Fault::next(2, FaultKind::ServerError { status: 500 }),
        Fault::next(2, FaultKind::ServerError { status: 503 }),
        Fault::next(1, FaultKind::ConnectionReset),
        Fault::next(1, FaultKind::MalformedJson),
        Fault::next(1, FaultKind::TruncatedBody),
        Fault::next(1, FaultKind::CutJson),
        Fault::next(1, FaultKind::ErrorBodyOk),
        Fault::next(1, FaultKind::Slow { delay_ms: 1500 }),
    ] {
        env.sim.set_fault(scope.clone(), fault);
    }
    // Watch from before the CloudJob exists: every status it is ever written with is checked, so even a
    // short-lived Failed or Stalled write would be seen.
    let mut watch = env.watch(&ns, "flaky").await;
    env.create_cloudjob(&ns, "flaky", "ims", &job.job_id).await;
    let mut reasons_seen = std::collections::BTreeSet::new();
    let final_status = watch
        .until(WAIT, "flaky to succeed", |cj| {
            let s = cj.status.as_ref()?;
            assert_ne!(
                s.phase,
                Some(Phase::Failed),
                "a transient problem failed the job: {s:?}"
            );
            assert!(
                condition(s, "Stalled").is_none(),
                "a transient problem stalled the job: {s:?}"
            );
            if let Some(ready) = condition(s, "Ready") {
                reasons_seen.insert(ready.reason.clone());
            }
            (s.phase == Some(Phase::Succeeded)).then(|| s.clone())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail()));
    let served = env.sim.job_body(&job.job_id).expect("body");
    assert_eq!(
        final_status.outputs.and_then(|o| o.image_id).as_deref(),
        served["entities"]["image_id"].as_str()
    );

    let injected = env.sim.global_stats().faults_injected;
    for fault in [
        "throttle_retry_after",
        "throttle",
        "server_error",
        "server_error_503",
        "connection_reset",
        "malformed_json",
        "truncated_body",
        "cut_json",
        "error_body_ok",
    ] {
        assert!(
            injected.get(fault).copied().unwrap_or(0) > 0,
            "fault {fault} was not exercised: {injected:?}"
        );
    }
    let warnings: Vec<String> = env
        .events_for(&ns, "flaky")
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Throttled", "CloudUnavailable", "InvalidResponse"] {
        assert!(
            warnings.iter().any(|w| w == reason) || reasons_seen.contains(reason),
            "retries for {reason} are visible in events or conditions: events {warnings:?}, conditions {reasons_seen:?}"
        );
    }
    let metrics = operator.metrics().await.expect("metrics");
    assert!(
        metrics
            .sum("cloudjob_cloud_requests_total", &[("outcome", "throttled")])
            .is_some(),
        "throttled requests are counted"
    );
}

/// Rejected credentials retried again and again write status once: the message carries no per-request data
/// (the gateway's echo of the signed request, a date), so the retries change nothing a user can see.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_of_the_same_problem_write_status_only_once() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "retries").await;
    env.secret(&ns, "wrong", AK, "not-the-secret-key").await;
    let job = env
        .job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(600.0));
    let mut manifest = env.cloudjob_manifest("rejected", "ims", &job.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "wrong".into();
    env.create_cloudjob_from(&ns, manifest).await;
    let before = env
        .watch(&ns, "rejected")
        .await
        .until(WAIT, "Stalled with AuthenticationFailed", |cj| {
            cj.status
                .as_ref()
                .is_some_and(|s| condition_is(s, "Stalled", "True", "AuthenticationFailed"))
                .then(|| cj.clone())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail()));
    let requests = || env.job_requests(&job.job_id);
    let requests_before = requests();
    // Reconciles of one object never overlap: once a fourth retry has been answered, the third one's
    // reconcile, and whatever it wrote, is done.
    cloudjob_testenv::wait_for(WAIT, "four more rejected retries", || async {
        (requests() >= requests_before + 4).then_some(())
    })
    .await
    .expect("it kept retrying");
    let after = env.cloudjobs(&ns).get("rejected").await.expect("cloudjob");
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version,
        "{} retries of the same problem wrote nothing after the first",
        requests() - requests_before
    );
}

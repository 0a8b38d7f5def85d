//! Runtime problems become conditions with a reason, a message and an event, and never lose the job:
//! a missing Secret, rejected credentials, unknown jobs, throttling, 5xx bursts and broken responses.

mod common;

use futures::TryStreamExt as _;
use kube::runtime::WatchStreamExt as _;
use std::time::Duration;

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{Fault, FaultKind, FaultScope, JobSpec, ProgressCurve, Service};
use common::*;
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
    let env = Env::start().await;
    let operator = Operator::start(
        &env.cp,
        &["--error-backoff-min", "300ms", "--error-backoff-max", "2s"],
    )
    .await;
    let ns = env.namespace("grace").await;
    let job = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0),
        )
        .expect("job");
    // Every status the API server stores for the CloudJob, seen through a watch (no write is missed).
    let every_status = tokio::spawn({
        let api = env.cloudjobs(&ns);
        async move {
            let config = kube::runtime::watcher::Config::default().fields("metadata.name=late");
            let mut seen = Vec::new();
            let mut stream = std::pin::pin!(kube::runtime::watcher(api, config).applied_objects());
            while let Some(cj) = stream.try_next().await.expect("watch") {
                let status = cj.status.unwrap_or_default();
                let done = status.phase == Some(Phase::Succeeded);
                seen.push(status);
                if done {
                    break;
                }
            }
            seen
        }
    });
    let mut manifest = env.cloudjob_manifest("late", "ims", &job.job_id);
    manifest["spec"]["credentialsSecretRef"]["name"] = "arrives-later".into();
    env.create_cloudjob_from(&ns, manifest).await;

    let waiting = env
        .wait_status(
            &operator,
            &ns,
            "late",
            "Reconciling with SecretNotFound",
            |s| condition_is(s, "Reconciling", "True", "SecretNotFound"),
        )
        .await;
    assert!(
        condition(&waiting, "Stalled").is_none(),
        "not Stalled in the grace period"
    );
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
    assert!(done.problem_since.is_none(), "the problem cleared");
    let seen = every_status.await.expect("watch task");
    assert!(seen.len() >= 3, "saw the writes: {seen:?}");
    assert!(
        seen.iter().all(|s| condition(s, "Stalled").is_none()),
        "never Stalled: {seen:#?}"
    );
    let stalled_events = env
        .events_for(&ns, "late")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SecretNotFound"))
        .count();
    assert_eq!(
        stalled_events, 1,
        "one warning for the problem, not one per retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_secret_stalls_and_the_job_finishes_once_the_secret_exists() {
    let env = Env::start().await;
    let operator = Operator::start(&env.cp, FAST_RETRIES).await;
    let ns = env.namespace("late-secret").await;
    let job = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0),
        )
        .expect("job");
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
    let events = env.events_for(&ns, "late").await;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("SecretNotFound"))
    );
    assert_eq!(
        env.sim
            .job_stats(&job.job_id)
            .expect("stats")
            .total_requests,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_credentials_and_unknown_jobs_stall_with_their_reason_and_recover_when_fixed() {
    let env = Env::start().await;
    let operator = Operator::start(&env.cp, FAST_RETRIES).await;
    let ns = env.namespace("bad-input").await;
    let job = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0),
        )
        .expect("job");
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
    let env = Env::start().await;
    let operator = Operator::start(&env.cp, FAST_RETRIES).await;
    let ns = env.namespace("faults").await;
    let job = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                .duration_secs(6.0)
                .progress(ProgressCurve::Linear),
        )
        .expect("job");
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
    env.create_cloudjob(&ns, "flaky", "ims", &job.job_id).await;

    // Sample the status while it runs: a transient problem must never make it Failed or Stalled.
    let api = env.cloudjobs(&ns);
    let started = std::time::Instant::now();
    let mut reasons_seen = std::collections::BTreeSet::new();
    let final_status = loop {
        let status = api.get("flaky").await.ok().and_then(|cj| cj.status);
        if let Some(s) = &status {
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
            if s.phase == Some(Phase::Succeeded) {
                break s.clone();
            }
        }
        assert!(
            started.elapsed() < WAIT,
            "timed out; last {status:?}\n{}",
            operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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
    let metrics = operator.metrics().await;
    assert!(
        metrics.contains("outcome=\"throttled\""),
        "throttled requests are counted"
    );
}

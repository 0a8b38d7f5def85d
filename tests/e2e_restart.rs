//! Polling economy and durability: a killed operator loses no job and never polls a finished one again, an
//! unchanged job causes no status writes, and the annotations and deadline steer polling.

use cloudjob_operator::crd::{PAUSED_ANNOTATION, Phase, RECONCILE_REQUESTED_ANNOTATION};
use cloudjob_sim::{JobSpec, ProgressCurve, Service};
use cloudjob_testkit::e2e::*;
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_operator_finishes_jobs_and_never_polls_finished_ones_again() {
    let env = Env::start().await;
    let mut first = env.operator(&[]).await;
    let ns = env.namespace("restart").await;
    let short = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0),
        )
        .expect("job");
    let long = env
        .sim
        .create_job(
            JobSpec::new(Service::Evs, PROJECT, "batchCreateVolume")
                .duration_secs(14.0)
                .sub_jobs(2, 0),
        )
        .expect("job");
    env.create_cloudjob(&ns, "short", "ims", &short.job_id)
        .await;
    env.create_cloudjob(&ns, "long", "evs", &long.job_id).await;

    env.wait_status(&first, &ns, "short", "short job to succeed", |s| {
        s.phase == Some(Phase::Succeeded)
    })
    .await;
    env.wait_status(&first, &ns, "long", "long job to run", |s| {
        s.phase == Some(Phase::Running)
    })
    .await;
    first.kill().await;
    let polls_of_finished_job = env.job_requests(&short.job_id);

    let second = env.operator(&[]).await;
    let done = env
        .wait_status(
            &second,
            &ns,
            "long",
            "long job to succeed after the restart",
            |s| s.phase == Some(Phase::Succeeded),
        )
        .await;
    let served = env.sim.job_body(&long.job_id).expect("body");
    let volumes: Vec<String> = done
        .outputs
        .expect("outputs")
        .resources
        .into_iter()
        .map(|r| r.id)
        .collect();
    let served_volumes: Vec<&str> = served["entities"]["sub_jobs"]
        .as_array()
        .expect("sub-jobs")
        .iter()
        .filter_map(|s| s["entities"]["volume_id"].as_str())
        .collect();
    assert_eq!(volumes, served_volumes);

    // Once the new operator has handled a reconcile of the finished job, any poll it would make is made.
    env.reconcile_and_wait(&second, &ns, "short").await;
    let stats = env.sim.job_stats(&short.job_id).expect("stats");
    assert_eq!(
        stats.total_requests, polls_of_finished_job,
        "a job finished before the restart got a GET after it: {stats:?}"
    );
    let long_stats = env.sim.job_stats(&long.job_id).expect("stats");
    let after_end = long_stats
        .recent_requests
        .iter()
        .filter(|r| {
            long_stats
                .first_terminal_served_at
                .is_some_and(|t| r.at > t)
        })
        .count();
    assert_eq!(after_end, 0, "no GET after the terminal answer was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unchanged_running_job_is_polled_without_any_status_write() {
    let env = Env::start().await;
    let operator = env.operator(&[]).await;
    let ns = env.namespace("quiet").await;
    // Runs for a minute without progress or tasks: nothing a user can see changes while it runs.
    let job = env
        .sim
        .create_job(
            JobSpec::new(Service::Evs, PROJECT, "createVolume")
                .duration_secs(60.0)
                .progress(ProgressCurve::None),
        )
        .expect("job");
    env.create_cloudjob(&ns, "quiet", "evs", &job.job_id).await;
    let before = env
        .watch(&ns, "quiet")
        .await
        .until(WAIT, "quiet to be running", |cj| {
            cj.status
                .as_ref()
                .is_some_and(|s| s.phase == Some(Phase::Running))
                .then(|| cj.clone())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail()));
    let requests = || env.job_requests(&job.job_id);
    let requests_before = requests();
    // Reconciles of one object never overlap, so once a fourth poll has been served the third one's
    // reconcile, and whatever it wrote, is done.
    cloudjob_testenv::wait_for(WAIT, "four more polls", || async {
        (requests() >= requests_before + 4).then_some(())
    })
    .await
    .expect("it kept polling");
    let after = env.cloudjobs(&ns).get("quiet").await.expect("cj");
    let requests_after = requests();
    assert!(
        requests_after >= requests_before + 3,
        "it kept polling ({requests_before} -> {requests_after})"
    );
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "polls that found nothing new wrote nothing (resourceVersion unchanged)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_and_reconcile_annotations_and_the_deadline_steer_polling() {
    let env = Env::start().await;
    let operator = env.operator(&[]).await;
    let ns = env.namespace("steering").await;
    let api = env.cloudjobs(&ns);

    let job = env
        .sim
        .create_job(JobSpec::new(Service::Ims, PROJECT, "imsImportImageJob").duration_secs(8.0))
        .expect("job");
    let mut manifest = env.cloudjob_manifest("paused", "ims", &job.job_id);
    manifest["metadata"]["annotations"] = json!({PAUSED_ANNOTATION: "true"});
    env.create_cloudjob_from(&ns, manifest).await;
    let paused = env
        .wait_status(&operator, &ns, "paused", "Paused", |s| {
            s.phase == Some(Phase::Paused)
        })
        .await;
    assert!(condition_is(&paused, "Ready", "False", "Suspended"));
    env.reconcile_and_wait(&operator, &ns, "paused").await;
    assert_eq!(
        env.job_requests(&job.job_id),
        0,
        "a paused job is not polled"
    );

    let unpause = json!({"metadata": {"annotations": {PAUSED_ANNOTATION: null, RECONCILE_REQUESTED_ANNOTATION: "2026-11-23T10:00:00Z"}}});
    api.patch("paused", &PatchParams::default(), &Patch::Merge(&unpause))
        .await
        .expect("unpaused");
    let done = env
        .wait_status(&operator, &ns, "paused", "Succeeded after unpausing", |s| {
            s.phase == Some(Phase::Succeeded)
        })
        .await;
    assert_eq!(
        done.last_handled_reconcile_at.as_deref(),
        Some("2026-11-23T10:00:00Z")
    );

    let slow = env
        .sim
        .create_job(JobSpec::new(Service::Ecs, PROJECT, "createServer").duration_secs(600.0))
        .expect("job");
    let mut manifest = env.cloudjob_manifest("deadline", "ecs", &slow.job_id);
    manifest["spec"]["activeDeadlineSeconds"] = 4.into();
    env.create_cloudjob_from(&ns, manifest).await;
    let mut wait = env.cp.kubectl();
    wait.args([
        "wait",
        "-n",
        &ns,
        "--for=condition=Failed",
        "cloudjob/deadline",
        "--timeout=60s",
    ]);
    let out = output(wait).await;
    assert!(
        out.status.success(),
        "kubectl wait Failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = api
        .get("deadline")
        .await
        .expect("cj")
        .status
        .expect("status");
    assert!(condition_is(&failed, "Failed", "True", "DeadlineExceeded"));
    assert!(condition_is(&failed, "Stalled", "True", "DeadlineExceeded"));
    let polls = env.job_requests(&slow.job_id);
    env.reconcile_and_wait(&operator, &ns, "deadline").await;
    assert_eq!(
        env.job_requests(&slow.job_id),
        polls,
        "no poll after the deadline"
    );
}

//! Polling economy and durability: a killed operator loses no job and never polls a finished one again, an
//! unchanged job causes no status writes, the annotations and deadline steer polling, and a restarted
//! kube-apiserver loses nothing and repeats no event.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use cloudjob_operator::crd::{
    CloudJobStatus, PAUSED_ANNOTATION, Phase, RECONCILE_REQUESTED_ANNOTATION,
};
use cloudjob_sim::{JobSpec, ProgressCurve, Service};
use cloudjob_testkit::e2e::*;
use futures::TryStreamExt as _;
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_operator_finishes_jobs_and_never_polls_finished_ones_again() {
    let (env, mut first, ns) = Env::with_operator(&[], "restart").await;
    let short =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0));
    let long = env.job(
        JobSpec::new(Service::Evs, PROJECT, "batchCreateVolume")
            .duration_secs(14.0)
            .sub_jobs(2, 0),
    );
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
    let volumes = resource_ids(&done);
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
    let (env, operator, ns) = Env::with_operator(&[], "quiet").await;
    // Runs for a minute without progress or tasks: nothing a user can see changes while it runs.
    let job = env.job(
        JobSpec::new(Service::Evs, PROJECT, "createVolume")
            .duration_secs(60.0)
            .progress(ProgressCurve::None),
    );
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
    let (env, operator, ns) = Env::with_operator(&[], "steering").await;
    let api = env.cloudjobs(&ns);

    let job = env.job(JobSpec::new(Service::Ims, PROJECT, "imsImportImageJob").duration_secs(8.0));
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

    let slow = env.job(JobSpec::new(Service::Ecs, PROJECT, "createServer").duration_secs(600.0));
    let mut manifest = env.cloudjob_manifest("deadline", "ecs", &slow.job_id);
    manifest["spec"]["activeDeadlineSeconds"] = 4.into();
    env.create_cloudjob_from(&ns, manifest).await;
    env.kubectl_wait(&ns, "cloudjob/deadline", "Failed").await;
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

/// CloudJobs whose jobs run while kube-apiserver is killed and restarted.
const IN_FLIGHT: usize = 200;
/// CloudJobs created once the restarted API server is ready.
const CREATED_AFTER: usize = 5;
/// How soon after the restarted API server is ready a new CloudJob must get its first status.
const PICKUP_LIMIT: Duration = Duration::from_secs(10);
/// The longest the in-flight jobs may take to reach a phase.
const SETTLE: Duration = Duration::from_secs(300);

/// kube-apiserver killed (SIGKILL) and restarted in the middle of 200 running jobs: every job still
/// finishes, CloudJobs created after the restart are picked up within 10 s of its readiness, and no
/// event is published twice (transitions are computed against the status this operator last wrote, not
/// against a cache that the broken watch left stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_api_server_loses_no_cloudjob_and_duplicates_no_event() {
    // 200 jobs polled every 5-10 s ask the simulator 20-40 times a second: a per-endpoint rate limit that
    // fits them, so that what is measured is the recovery from the restart, not a queue of rate-limit
    // turns (a new CloudJob behind 200 others at a 10/s limit waits its turn, by design).
    let (mut env, operator, ns) = Env::with_operator(
        &["--rate-limit", "200", "--rate-limit-burst", "50"],
        "apiserver-restart",
    )
    .await;
    let mut names = Vec::new();
    for i in 0..IN_FLIGHT {
        let job = env.job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                .duration_secs(60.0)
                .progress(ProgressCurve::Linear)
                .tasks(["prepare", "copy", "register"]),
        );
        let name = format!("in-flight-{i}");
        let mut manifest = env.cloudjob_manifest(&name, "ims", &job.job_id);
        // Polled every 5-10 s: each job still crosses its milestones and tasks across the restart.
        manifest["spec"]["polling"] = json!({"minIntervalSeconds": 5, "maxIntervalSeconds": 10});
        env.create_cloudjob_from(&ns, manifest).await;
        names.push(name);
    }
    env.wait_statuses(
        &operator,
        &ns,
        SETTLE,
        &format!("{IN_FLIGHT} CloudJobs Running"),
        at_least_in(IN_FLIGHT, Phase::Running),
    )
    .await;

    env.cp
        .restart_api_server()
        .await
        .expect("kube-apiserver restarts");
    let ready = Instant::now();
    // Watch from readiness on, so the first status of each new CloudJob is seen when it is written.
    let first_status = {
        let api = env.cloudjobs(&ns);
        tokio::spawn(async move {
            let mut seen: HashMap<String, Duration> = HashMap::new();
            let mut stream =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while seen.len() < CREATED_AFTER {
                let Some(cj) = stream.try_next().await.expect("watch") else {
                    break;
                };
                let name = cj.metadata.name.clone().unwrap_or_default();
                let observed = cj
                    .status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .is_some_and(|g| g >= 1);
                if name.starts_with("after-") && observed {
                    seen.entry(name).or_insert_with(|| ready.elapsed());
                }
            }
            seen
        })
    };
    for i in 0..CREATED_AFTER {
        let job = env.job(JobSpec::new(Service::Evs, PROJECT, "createVolume").duration_secs(2.0));
        let name = format!("after-{i}");
        env.create_cloudjob(&ns, &name, "evs", &job.job_id).await;
        names.push(name);
    }
    let pickups = tokio::time::timeout(WAIT, first_status)
        .await
        .expect("every new CloudJob gets a status")
        .expect("watch task");
    let slowest = pickups.values().max().copied().unwrap_or_default();
    println!(
        "new CloudJobs got their first status {pickups:?} after the restarted API server was ready"
    );
    assert!(
        slowest <= PICKUP_LIMIT,
        "a CloudJob created after the restart waited {slowest:?} (> {PICKUP_LIMIT:?}): {pickups:?}\n{}",
        operator.log_warnings()
    );

    env.wait_statuses(
        &operator,
        &ns,
        SETTLE,
        &format!("{} CloudJobs Succeeded", IN_FLIGHT + CREATED_AFTER),
        at_least_in(IN_FLIGHT + CREATED_AFTER, Phase::Succeeded),
    )
    .await;

    let duplicated = duplicated_events(&env, &ns).await;
    assert!(
        duplicated.is_empty(),
        "events published twice: {duplicated:#?}"
    );
    let events: Api<Event> = Api::namespaced(env.client.clone(), &ns);
    let events = events.list(&ListParams::default()).await.expect("events");
    let succeeded: HashSet<&str> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Succeeded"))
        .filter_map(|e| e.regarding.as_ref()?.name.as_deref())
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !succeeded.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "no Succeeded event for {missing:?}");
}

/// At least `count` of the CloudJobs are in `phase`.
fn at_least_in(count: usize, phase: Phase) -> impl Fn(&HashMap<String, CloudJobStatus>) -> bool {
    move |statuses| statuses.values().filter(|s| s.phase == Some(phase)).count() >= count
}

//! Tenants are isolated: CloudJobs pointing at an endpoint that never answers hold at most a few reconcile
//! slots (for the request timeout each), so the CloudJobs of another namespace keep their detection delay.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_sim::{JobSpec, Service};
use cloudjob_testkit::e2e::*;
use futures::TryStreamExt as _;
use kube::{
    Api,
    runtime::{WatchStreamExt as _, watcher},
};

/// Jobs in the healthy namespace, and how long each runs in the simulator.
const HEALTHY_JOBS: usize = 20;
const JOB_SECONDS: f64 = 3.0;
/// CloudJobs at the endpoint that never answers.
const HUNG_JOBS: usize = 200;

/// Creates the healthy jobs and returns, per CloudJob, the seconds from its creation until it was seen
/// Succeeded through a watch, less the job's own duration: its detection delay.
async fn detection_delays(env: &Env, namespace: &str) -> Vec<f64> {
    let api: Api<CloudJob> = env.cloudjobs(namespace);
    let succeeded = tokio::spawn(async move {
        let mut seen: HashMap<String, Instant> = HashMap::new();
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while seen.len() < HEALTHY_JOBS {
            let Some(cj) = stream.try_next().await.expect("watch") else {
                break;
            };
            let done = cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded);
            if done {
                seen.entry(cj.metadata.name.unwrap_or_default())
                    .or_insert_with(Instant::now);
            }
        }
        seen
    });
    let mut created = HashMap::new();
    for i in 0..HEALTHY_JOBS {
        let job =
            env.job(JobSpec::new(Service::Evs, PROJECT, "createVolume").duration_secs(JOB_SECONDS));
        let name = format!("volume-{i}");
        env.create_cloudjob(namespace, &name, "evs", &job.job_id)
            .await;
        created.insert(name, Instant::now());
    }
    let seen = tokio::time::timeout(Duration::from_secs(180), succeeded)
        .await
        .expect("every healthy CloudJob succeeds within 180 s")
        .expect("watch task");
    let mut delays: Vec<f64> = seen
        .iter()
        .map(|(name, at)| at.duration_since(created[name]).as_secs_f64() - JOB_SECONDS)
        .collect();
    delays.sort_by(f64::total_cmp);
    delays
}

fn median_and_max(delays: &[f64]) -> (f64, f64) {
    (delays[delays.len() / 2], delays[delays.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudjobs_at_a_hung_endpoint_do_not_delay_another_namespace() {
    let env = Env::start().await;
    // Default concurrency (16 reconciles at once) and one controller for all namespaces: the slots are shared.
    let _operator = env.operator(&[]).await;

    let alone = env.namespace("alone").await;
    let baseline = detection_delays(&env, &alone).await;

    let hung = hung_endpoint().await;
    let stuck = env.namespace("stuck").await;
    for i in 0..HUNG_JOBS {
        let mut manifest = env.cloudjob_manifest(&format!("hung-{i}"), "ims", &format!("hung{i}"));
        manifest["spec"]["endpoint"] = hung.clone().into();
        env.create_cloudjob_from(&stuck, manifest).await;
    }
    let healthy = env.namespace("healthy").await;
    let beside_hung = detection_delays(&env, &healthy).await;

    let (base_median, base_max) = median_and_max(&baseline);
    let (median, max) = median_and_max(&beside_hung);
    println!(
        "detection delay of {HEALTHY_JOBS} jobs: alone median {base_median:.1} s, max {base_max:.1} s; \
         beside {HUNG_JOBS} CloudJobs at a hung endpoint median {median:.1} s, max {max:.1} s"
    );
    assert!(
        median <= base_median + 2.0 && max <= base_max + 10.0,
        "the hung endpoint delayed another namespace: alone {baseline:?}, beside it {beside_hung:?}"
    );
}

//! Two operator pods (`replicaCount=2`) on a real node: only the leader polls the cloud, as counted by the
//! simulator and by each pod's own metrics; force-deleting the leader pod hands over to the standby within
//! the lease duration; a job in flight still completes; no CloudJob is lost and no terminal job is polled
//! again.

mod node_support;

use std::time::{Duration, Instant};

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, Service};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use node_support::*;
use serde_json::json;

/// The chart's default `leaderElection.leaseDurationSeconds`.
const LEASE_SECONDS: u64 = 15;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A pod's /metrics, straight from the host over the bridge.
async fn pod_metrics(pod: &Pod) -> String {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("the pod has an IP");
    reqwest::get(format!("http://{ip}:8080/metrics"))
        .await
        .expect("the pod serves /metrics")
        .text()
        .await
        .expect("metrics body")
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

async fn lease_holder(env: &NodeEnv) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
    leases
        .get_opt("cloudjob-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

fn terminal(cj: &cloudjob_operator::crd::CloudJob) -> bool {
    matches!(
        cj.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Succeeded | Phase::Failed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_pod_polls_and_the_standby_takes_over_a_force_deleted_leader() {
    let Some(env) = NodeEnv::start().await else {
        return;
    };
    env.namespace(RELEASE_NAMESPACE, true).await;
    env.namespace("team-a", false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let values = env.values_file(dir.path(), &env.image.tag, json!({"replicaCount": 2}));
    env.helm_install("install", &values).await;
    let pods = env.operator_pods().await;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(pod_ready), "both pods Ready");

    // Jobs that end before the handover, and one still running through it.
    let mut short = Vec::new();
    for i in 0..5 {
        let job = env
            .sim
            .create_job(
                JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0),
            )
            .expect("job");
        env.create_cloudjob("team-a", &format!("short-{i}"), &job.job_id)
            .await;
        short.push((format!("short-{i}"), job.job_id));
    }
    let long = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                .duration_secs(LEASE_SECONDS as f64 + 8.0),
        )
        .expect("job");
    env.create_cloudjob("team-a", "in-flight", &long.job_id)
        .await;
    for (name, _) in &short {
        env.wait_cloudjob("team-a", name, "terminal", terminal)
            .await;
    }
    env.wait_cloudjob("team-a", "in-flight", "Running", |cj| {
        cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running)
    })
    .await;

    // Exactly one pod polls: its own request counter matches the simulator's, the other's is zero.
    let holder = lease_holder(&env).await.expect("a leader holds the lease");
    let (leader, standby): (Vec<Pod>, Vec<Pod>) = pods.into_iter().partition(|p| name(p) == holder);
    let (leader, standby) = (&leader[0], &standby[0]);
    let leader_requests = metric(&pod_metrics(leader).await, "cloudjob_cloud_requests_total");
    let standby_requests = metric(&pod_metrics(standby).await, "cloudjob_cloud_requests_total");
    let sim_requests: u64 = short
        .iter()
        .map(|(_, id)| id)
        .chain([&long.job_id])
        .filter_map(|id| env.sim.job_stats(id))
        .map(|s| s.total_requests)
        .sum();
    assert_eq!(standby_requests, 0.0, "the standby never polls");
    assert!(leader_requests >= 6.0, "the leader polled every job");
    assert!(
        sim_requests as f64 >= leader_requests,
        "the simulator saw the leader's {leader_requests} requests (it saw {sim_requests})"
    );
    assert_eq!(
        metric(&pod_metrics(standby).await, "cloudjob_leader"),
        0.0,
        "the standby knows it is not the leader"
    );

    // Force-delete the leader pod: no grace period, no lease release by a clean shutdown guaranteed.
    let killed = Instant::now();
    let mut delete = env.kubectl();
    delete.args([
        "delete",
        "pod",
        "-n",
        RELEASE_NAMESPACE,
        &holder,
        "--force",
        "--grace-period=0",
    ]);
    run(delete).await;
    // Whoever waits takes over: the standby, or the replacement pod the ReplicaSet starts at once (a
    // newcomer tries the lease immediately, while the standby re-checks it on its retry period).
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
    let gone = holder.clone();
    let takeover = kube::runtime::wait::await_condition(
        leases,
        "cloudjob-operator",
        move |lease: Option<&Lease>| {
            lease
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(|h| !h.is_empty() && h != gone)
        },
    );
    if tokio::time::timeout(Duration::from_secs(LEASE_SECONDS * 3), takeover)
        .await
        .is_err()
    {
        let leases: Api<Lease> = Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
        panic!(
            "nobody took the lease within {}s\nlease: {:?}\nlogs:\n{}",
            LEASE_SECONDS * 3,
            leases.get("cloudjob-operator").await.map(|l| l.spec),
            env.operator_logs().await,
        );
    }
    let takeover = killed.elapsed();
    let new_holder = lease_holder(&env).await.expect("a new leader");
    eprintln!(
        "takeover {:.1} s after the forced deletion of the leader (lease {LEASE_SECONDS} s), by {}",
        takeover.as_secs_f64(),
        if new_holder == name(standby) {
            "the standby"
        } else {
            "the replacement pod"
        }
    );
    // Within the lease duration, plus the standby's retry period and the API round trips.
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 5),
        "takeover took {takeover:?}"
    );

    // The job in flight completes under the new leader, and nothing is lost.
    let done = env
        .wait_cloudjob(
            "team-a",
            "in-flight",
            "Succeeded under the new leader",
            |cj| cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        )
        .await;
    assert!(
        done.status
            .and_then(|s| s.outputs)
            .and_then(|o| o.image_id)
            .is_some()
    );
    let all = env
        .cloudjobs("team-a")
        .list(&Default::default())
        .await
        .expect("list");
    assert_eq!(all.items.len(), 6, "no CloudJob lost");
    assert!(all.items.iter().all(terminal), "every CloudJob is terminal");
    // Still exactly one pod polling: the new leader.
    let pods = env.operator_pods().await;
    assert_eq!(pods.len(), 2, "the ReplicaSet replaced the deleted pod");
    for pod in &pods {
        let requests = metric(&pod_metrics(pod).await, "cloudjob_cloud_requests_total");
        if name(pod) == new_holder {
            assert!(requests >= 1.0, "the new leader polls");
        } else {
            assert_eq!(requests, 0.0, "{} is a standby and never polls", name(pod));
        }
    }

    // No job was polled again once a terminal answer had been served (the new leader reconciled every
    // CloudJob when it took over, before the in-flight job finished).
    for (name, id) in &short {
        let stats = env.sim.job_stats(id).expect("stats");
        let terminal_at = stats
            .first_terminal_served_at
            .unwrap_or_else(|| panic!("{name}: a terminal answer was served"));
        let again: Vec<_> = stats
            .recent_requests
            .iter()
            .filter(|r| r.at > terminal_at)
            .collect();
        assert!(again.is_empty(), "{name} polled after it ended: {again:?}");
    }
}

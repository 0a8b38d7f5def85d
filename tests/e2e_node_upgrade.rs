//! `helm upgrade` to a new image tag on a real node is a rolling update (leader election on, maxSurge 1,
//! maxUnavailable 0): the old and new pods overlap, but at no moment do both poll (the new pod reconciles
//! nothing before it becomes leader, and the old pod reconciles nothing after that), and no CloudJob's
//! status regresses while the leadership moves.

mod node_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_sim::{JobSpec, Service};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use node_support::*;
use serde_json::json;

/// Per CloudJob, every (phase rank, progress) a watch saw, in order.
type History = HashMap<String, Vec<(u8, i32)>>;

fn rank(phase: Option<&Phase>) -> u8 {
    match phase {
        None | Some(Phase::Pending | Phase::Paused) => 0,
        Some(Phase::Running) => 1,
        Some(Phase::Succeeded | Phase::Failed) => 2,
    }
}

/// (time, message, object) of each JSON log line.
fn log_events(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let text = |k: &str| {
                v.get(k)
                    .or_else(|| v.get("fields").and_then(|f| f.get(k)))
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            (text("timestamp"), text("message"), text("object"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_upgrade_never_has_two_pods_polling_and_nothing_regresses() {
    let Some(env) = NodeEnv::start().await else {
        return;
    };
    let next = tokio::task::spawn_blocking(|| operator_image_or_skip("e2e-next"))
        .await
        .expect("task")
        .expect("the second image builds where the first did");
    env.node.import_image(&next.archive).await.expect("import");
    env.namespace(RELEASE_NAMESPACE, true).await;
    env.namespace("team-a", false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // debug: the operator logs every reconcile, which is how the pods' activity is told apart.
    let extra = json!({
        "leaderElection": {"enabled": true},
        "logging": {"level": "info,cloudjob_operator=debug"}
    });
    let values = env.values_file(dir.path(), &env.image.tag, extra.clone());
    env.helm_install("install", &values).await;
    let old_pods = env.operator_pods().await;
    assert_eq!(old_pods.len(), 1);
    let old_name = old_pods[0].metadata.name.clone().expect("name");

    // Jobs that run through the upgrade, and some that end during it.
    for i in 0..6 {
        let secs = if i % 2 == 0 { 40.0 } else { 12.0 };
        let job = env
            .sim
            .create_job(
                JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(secs),
            )
            .expect("job");
        env.create_cloudjob("team-a", &format!("job-{i}"), &job.job_id)
            .await;
    }
    for i in 0..6 {
        env.wait_cloudjob("team-a", &format!("job-{i}"), "Running", |cj| {
            rank(cj.status.as_ref().and_then(|s| s.phase.as_ref())) >= 1
        })
        .await;
    }

    // Every status change, as a watch sees it, during the whole upgrade.
    let history: Arc<Mutex<History>> = Arc::default();
    let recorder = {
        let history = history.clone();
        let api = env.cloudjobs("team-a");
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(cj)) = stream.next().await {
                let cj: CloudJob = cj;
                let status = cj.status.unwrap_or_default();
                history
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(cj.metadata.name.unwrap_or_default())
                    .or_default()
                    .push((rank(status.phase.as_ref()), status.progress.unwrap_or(-1)));
            }
        })
    };
    // The old pod's log, followed until its container ends (it is gone from the API afterwards).
    let old_log = dir.path().join("old.log");
    let mut follow = tokio::process::Command::from(env.kubectl());
    follow
        .args(["logs", "-f", "-n", RELEASE_NAMESPACE, &old_name])
        .stdout(Stdio::from(std::fs::File::create(&old_log).expect("log")))
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut follow = follow.spawn().expect("kubectl logs -f");

    let values = env.values_file(dir.path(), &next.tag, extra);
    let started = std::time::Instant::now();
    env.helm_install("upgrade", &values).await;
    eprintln!(
        "helm upgrade --wait took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
    let deployment = deployments
        .get("cloudjob-operator")
        .await
        .expect("deployment");
    assert_eq!(
        deployment
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref()),
        Some("RollingUpdate")
    );
    let new_pods = env.operator_pods().await;
    let new_pod = new_pods
        .iter()
        .find(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.containers[0].image.as_deref() == Some(next.name.as_str()))
        })
        .expect("a pod runs the new image");
    let new_name = new_pod.metadata.name.clone().expect("name");

    // Everything finishes under the new pod.
    for i in 0..6 {
        env.wait_cloudjob("team-a", &format!("job-{i}"), "Succeeded", |cj| {
            cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
        })
        .await;
    }
    // The old container has ended by now (the rollout is complete), so its log stream has too.
    follow.wait().await.expect("kubectl logs -f ends");
    let mut new_logs = env.kubectl();
    new_logs.args(["logs", "-n", RELEASE_NAMESPACE, &new_name]);
    let new_log = dir.path().join("new.log");
    std::fs::write(&new_log, run(new_logs).await.stdout).expect("new log");

    let old = log_events(&old_log);
    let new = log_events(&new_log);
    let became_leader = new
        .iter()
        .find(|(_, m, _)| m == "became leader")
        .map(|(t, _, _)| t.clone())
        .expect("the new pod became leader");
    let old_last = old
        .iter()
        .filter(|(_, m, _)| m == "reconciled")
        .map(|(t, _, _)| t.clone())
        .max()
        .expect("the old pod reconciled");
    let new_first = new
        .iter()
        .filter(|(_, m, _)| m == "reconciled")
        .map(|(t, _, _)| t.clone())
        .min()
        .expect("the new pod reconciled");
    eprintln!(
        "old pod's last reconcile {old_last}, new pod became leader {became_leader}, its first reconcile {new_first}"
    );
    // RFC 3339 UTC timestamps of one clock compare as strings.
    assert!(
        old_last < became_leader,
        "the old pod still reconciled after the new one led"
    );
    assert!(
        new_first >= became_leader,
        "the new pod reconciled before it led"
    );

    recorder.abort();
    let history = history.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(history.len(), 6, "every CloudJob was watched");
    for (name, seen) in &history {
        for pair in seen.windows(2) {
            let ((rank_a, progress_a), (rank_b, progress_b)) = (pair[0], pair[1]);
            assert!(
                rank_b >= rank_a && (rank_b > rank_a || progress_b >= progress_a),
                "{name} regressed: {seen:?}"
            );
        }
    }
}

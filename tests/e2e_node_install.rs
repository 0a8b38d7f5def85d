//! The operator as users run it: `helm install --wait` of the real chart with the real image on a real
//! kubelet node, into a namespace that enforces the restricted Pod Security Standard. The pod passes its
//! probes, and the operator in it (in-cluster config, its ServiceAccount token) takes CloudJobs against the
//! simulator to Succeeded and Failed with the right ids; its logs are JSON lines without the AK/SK.

mod node_support;

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, Service};
use k8s_openapi::api::core::v1::Pod;
use node_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm3_install_runs_the_operator_pod_under_the_restricted_standard() {
    install_scenario(Helm::V3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm4_install_runs_the_operator_pod_under_the_restricted_standard() {
    install_scenario(Helm::V4).await;
}

async fn install_scenario(helm: Helm) {
    let Some(env) = NodeEnv::start().await else {
        return;
    };
    let mut version = match helm {
        Helm::V3 => env.helm(),
        Helm::V4 => env.node.helm4(),
    };
    version.args(["version", "--short"]);
    eprintln!(
        "{}",
        String::from_utf8_lossy(&run(version).await.stdout).trim()
    );
    env.namespace(RELEASE_NAMESPACE, true).await;
    env.namespace("team-a", false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let values = env.values_file(dir.path(), &env.image.tag, json!({}));

    let started = std::time::Instant::now();
    let out = env.helm_install_with(helm, "install", &values).await;
    let install_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "helm install --wait returned in {install_secs:.1} s\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Ready through its probes, as the restricted standard allows it.
    let pods = env.operator_pods().await;
    assert_eq!(pods.len(), 1, "one replica");
    let pod = &pods[0];
    assert!(pod_ready(pod), "helm --wait returned with a Ready pod");
    let ready_at = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let created_at = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if let (Some(ready), Some(created)) = (ready_at, created_at) {
        // Both from the API server's clock, at second resolution.
        eprintln!(
            "pod Ready {} s after its creation",
            ready.as_second() - created.as_second()
        );
    }
    let spec = pod.spec.as_ref().expect("pod spec");
    let container = &spec.containers[0];
    assert_eq!(container.image.as_deref(), Some(env.image.name.as_str()));
    assert!(container.liveness_probe.is_some() && container.readiness_probe.is_some());
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.projected.is_some() && v.name.starts_with("kube-api-access")),
        "the ServiceAccount admission plugin mounted the token"
    );
    let restarts = restart_count(pod);
    assert_eq!(restarts, 0, "no probe failure restarted it");

    // The pod does the work: no operator runs anywhere else.
    let ok_id = "0a1b2c3d-0000-4000-8000-00000000e2e1";
    let mut ok_spec =
        JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(3.0);
    ok_spec.produced_ids = vec![ok_id.to_owned()];
    let ok = env.sim.create_job(ok_spec).expect("job");
    let bad = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                .duration_secs(2.0)
                .fail("IMG.0029", "The image quota is exceeded."),
        )
        .expect("job");
    env.create_cloudjob("team-a", "ok", &ok.job_id).await;
    env.create_cloudjob("team-a", "bad", &bad.job_id).await;
    let done = env
        .wait_cloudjob("team-a", "ok", "Succeeded", |cj| {
            cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
        })
        .await;
    let outputs = done.status.and_then(|s| s.outputs).expect("outputs");
    assert_eq!(outputs.image_id.as_deref(), Some(ok_id));
    let failed = env
        .wait_cloudjob("team-a", "bad", "Failed", |cj| {
            cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Failed)
        })
        .await;
    let status = failed.status.expect("status");
    assert_eq!(status.error_code.as_deref(), Some("IMG.0029"));
    for job in [&ok.job_id, &bad.job_id] {
        let stats = env.sim.job_stats(job).expect("stats");
        assert!(
            stats.by_http_status.get(&200).copied().unwrap_or_default() > 0,
            "the pod polled {job} with a valid signature: {stats:?}"
        );
    }

    // `kubectl logs`: JSON lines, and never the credentials.
    let pod_name = pod.metadata.name.clone().expect("pod name");
    let mut logs = env.kubectl();
    logs.args(["logs", "-n", RELEASE_NAMESPACE, &pod_name]);
    let logs = String::from_utf8_lossy(&run(logs).await.stdout).into_owned();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "the operator logged something:\n{logs}");
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
    }
    assert!(!logs.contains(&env.ak), "the access key is in the logs");
    assert!(!logs.contains(&env.sk), "the secret key is in the logs");

    // The pod stayed Ready throughout.
    let pods: kube::Api<Pod> = kube::Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
    let now = pods.get(&pod_name).await.expect("pod");
    assert!(pod_ready(&now), "still Ready");
}

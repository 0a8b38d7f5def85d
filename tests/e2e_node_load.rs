//! 1,000 CloudJobs tracked by the operator pod under the chart's default resources (256 Mi memory limit,
//! 500m CPU) on a real node: every job ends, and the pod is never OOM-killed, never restarted, and never
//! throttled into failing its probes (it stays Ready throughout). Reports the pod's peak memory from its
//! cgroup (cgroup v1: memory.max_usage_in_bytes).

mod node_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_sim::{JobSpec, Service};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use node_support::*;
use serde_json::json;

const JOBS: usize = 1000;

fn read_u64(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_cloudjobs_fit_in_the_charts_default_resources() {
    let Some(env) = NodeEnv::start().await else {
        return;
    };
    env.namespace(RELEASE_NAMESPACE, true).await;
    env.namespace("load", false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Default resources; only the cloud rate limit is raised so that 1,000 jobs finish in minutes.
    let values = env.values_file(
        dir.path(),
        &env.image.tag,
        json!({"rateLimit": {"requestsPerSecond": 100, "burst": 100}}),
    );
    env.helm_install("install", &values).await;
    let pods = env.operator_pods().await;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let pod_name = pod.metadata.name.clone().expect("name");
    let uid = pod.metadata.uid.clone().expect("uid");
    let limits = pod.spec.as_ref().expect("spec").containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .expect("limits");
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("256Mi"));
    assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("500m"));
    let cgroup = env
        .node
        .pod_memory_cgroup(&uid)
        .expect("the pod's memory cgroup exists");

    // Watch the pod the whole time: any restart, OOM kill or lost readiness fails the test.
    let trouble = Arc::new(AtomicBool::new(false));
    let pod_watch = {
        let trouble = trouble.clone();
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
        let config = watcher::Config::default().fields(&format!("metadata.name={pod_name}"));
        tokio::spawn(async move {
            let mut stream = watcher(pods, config).applied_objects().boxed();
            let mut events = Vec::new();
            while let Some(Ok(pod)) = stream.next().await {
                let restarts = restart_count(&pod);
                if restarts > 0 || !pod_ready(&pod) {
                    trouble.store(true, Ordering::SeqCst);
                    events.push(format!("{:?}", pod.status));
                }
            }
            events
        })
    };

    let started = Instant::now();
    let manifests: Vec<serde_json::Value> = (0..JOBS)
        .map(|i| {
            // 20..80 s of running time, spread evenly.
            let secs = 20.0 + (i % 61) as f64;
            let job = env
                .sim
                .create_job(
                    JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                        .duration_secs(secs),
                )
                .expect("job");
            let mut manifest = env.cloudjob_manifest(&format!("job-{i:04}"), &job.job_id);
            manifest["spec"]["polling"] =
                json!({"minIntervalSeconds": 5, "maxIntervalSeconds": 15});
            manifest
        })
        .collect();
    let api = env.cloudjobs("load");
    futures::stream::iter(manifests)
        .map(|manifest| {
            let api = api.clone();
            async move {
                let cj: CloudJob = serde_json::from_value(manifest).expect("CloudJob");
                api.create(&PostParams::default(), &cj)
                    .await
                    .expect("CloudJob created");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "{JOBS} CloudJobs created in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Until every CloudJob is terminal, as a watch sees it.
    let mut terminal = std::collections::HashSet::new();
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let all_done = async {
        while let Some(event) = stream.next().await {
            let Ok(cj) = event else { continue };
            if matches!(
                cj.status.as_ref().and_then(|s| s.phase),
                Some(Phase::Succeeded | Phase::Failed)
            ) {
                terminal.insert(cj.metadata.name.unwrap_or_default());
                if terminal.len() == JOBS {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(600), all_done)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {JOBS} CloudJobs ended in 10 minutes",
                terminal.len()
            )
        });
    eprintln!(
        "all {JOBS} CloudJobs terminal {:.1} s after the first was created",
        started.elapsed().as_secs_f64()
    );

    let peak = read_u64(&cgroup.join("memory.max_usage_in_bytes")).expect("peak memory");
    let limit = read_u64(&cgroup.join("memory.limit_in_bytes")).expect("memory limit");
    let failcnt = read_u64(&cgroup.join("memory.failcnt")).unwrap_or_default();
    eprintln!(
        "pod peak memory {:.1} MiB (cgroup limit {:.0} MiB, failcnt {failcnt})",
        peak as f64 / 1048576.0,
        limit as f64 / 1048576.0
    );
    let cpu_stat = std::fs::read_to_string(
        std::path::Path::new("/sys/fs/cgroup/cpu")
            .join(
                cgroup
                    .strip_prefix("/sys/fs/cgroup/memory")
                    .expect("memory cgroup path"),
            )
            .join("cpu.stat"),
    )
    .unwrap_or_default();
    eprintln!("pod cpu.stat: {}", cpu_stat.replace('\n', ", "));
    for entry in std::fs::read_dir(&cgroup).expect("pod cgroup").flatten() {
        if let Some(container_peak) = read_u64(&entry.path().join("memory.max_usage_in_bytes")) {
            eprintln!(
                "  container cgroup {}: peak {:.1} MiB",
                entry.file_name().to_string_lossy(),
                container_peak as f64 / 1048576.0
            );
        }
    }
    // The pod cgroup counts its containers (hierarchical accounting): at least the operator's own RSS.
    assert!(
        peak > 2 * 1048576,
        "implausible peak {peak}: not the pod's cgroup?"
    );
    assert!(peak < limit, "the pod stayed under its memory limit");

    pod_watch.abort();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
    let now = pods.get(&pod_name).await.expect("the same pod still runs");
    let restarts = restart_count(&now);
    assert_eq!(
        restarts, 0,
        "never restarted (no OOM kill, no failed liveness probe)"
    );
    assert!(pod_ready(&now), "still Ready");
    assert!(
        !trouble.load(Ordering::SeqCst),
        "the pod lost readiness or restarted during the run"
    );
}

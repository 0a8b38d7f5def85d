//! `helm uninstall` on a real node removes everything the release created (Deployment, its pods,
//! ServiceAccount, RBAC, Service, Lease holder pod...) but keeps the CRD and the users' CloudJobs.

mod node_support;

use std::collections::BTreeSet;
use std::time::Duration;

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, Service};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as K8sService, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;
use node_support::*;
use serde_json::json;

/// Names of the objects carrying the release's instance label.
async fn release_objects(env: &NodeEnv) -> BTreeSet<String> {
    let lp = ListParams::default().labels("app.kubernetes.io/instance=cloudjob-operator");
    let ns = RELEASE_NAMESPACE;
    let mut names = BTreeSet::new();
    let c = &env.client;
    for d in Api::<Deployment>::namespaced(c.clone(), ns)
        .list(&lp)
        .await
        .expect("list")
        .items
    {
        names.insert(format!(
            "deployment/{}",
            d.metadata.name.unwrap_or_default()
        ));
    }
    for p in Api::<Pod>::namespaced(c.clone(), ns)
        .list(&lp)
        .await
        .expect("list")
        .items
    {
        names.insert(format!("pod/{}", p.metadata.name.unwrap_or_default()));
    }
    for s in Api::<ServiceAccount>::namespaced(c.clone(), ns)
        .list(&lp)
        .await
        .expect("list")
        .items
    {
        names.insert(format!(
            "serviceaccount/{}",
            s.metadata.name.unwrap_or_default()
        ));
    }
    for s in Api::<K8sService>::namespaced(c.clone(), ns)
        .list(&lp)
        .await
        .expect("list")
        .items
    {
        names.insert(format!("service/{}", s.metadata.name.unwrap_or_default()));
    }
    for r in Api::<ClusterRole>::all(c.clone())
        .list(&lp)
        .await
        .expect("list")
        .items
    {
        names.insert(format!(
            "clusterrole/{}",
            r.metadata.name.unwrap_or_default()
        ));
    }
    for b in Api::<ClusterRoleBinding>::all(c.clone())
        .list(&lp)
        .await
        .expect("list")
        .items
    {
        names.insert(format!(
            "clusterrolebinding/{}",
            b.metadata.name.unwrap_or_default()
        ));
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_uninstall_keeps_the_crd_and_the_cloudjobs_and_removes_the_rest() {
    let Some(env) = NodeEnv::start().await else {
        return;
    };
    env.namespace(RELEASE_NAMESPACE, true).await;
    env.namespace("team-a", false).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let values = env.values_file(dir.path(), &env.image.tag, json!({}));
    env.helm_install("install", &values).await;

    let done = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(1.0),
        )
        .expect("job");
    let running = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(3600.0),
        )
        .expect("job");
    env.create_cloudjob("team-a", "done", &done.job_id).await;
    env.create_cloudjob("team-a", "running", &running.job_id)
        .await;
    env.wait_cloudjob("team-a", "done", "Succeeded", |cj| {
        cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
    })
    .await;
    env.wait_cloudjob("team-a", "running", "Running", |cj| {
        cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running)
    })
    .await;
    let installed = release_objects(&env).await;
    for kind in [
        "deployment/",
        "pod/",
        "serviceaccount/",
        "service/",
        "clusterrole/",
        "clusterrolebinding/",
    ] {
        assert!(
            installed.iter().any(|n| n.starts_with(kind)),
            "the release created a {kind}: {installed:?}"
        );
    }

    let mut uninstall = env.helm();
    uninstall.args([
        "uninstall",
        "cloudjob-operator",
        "--namespace",
        RELEASE_NAMESPACE,
        "--wait",
    ]);
    run(uninstall).await;
    // helm --wait returns once the deleted objects are gone; pods go with their ReplicaSet (garbage
    // collection), so watch until the last one has been deleted.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), RELEASE_NAMESPACE);
    for pod in env.operator_pods().await {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        tokio::time::timeout(
            Duration::from_secs(120),
            kube::runtime::wait::await_condition(
                pods.clone(),
                &name,
                kube::runtime::wait::conditions::is_deleted(&uid),
            ),
        )
        .await
        .expect("the operator pod goes away")
        .expect("watching the pod");
    }
    let left = release_objects(&env).await;
    assert!(left.is_empty(), "left behind by helm uninstall: {left:?}");

    // The CRD and the users' CloudJobs, with their status, stay.
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    assert!(
        crds.get_opt("cloudjobs.cloudjob.io")
            .await
            .expect("get")
            .is_some(),
        "the CRD stays"
    );
    let jobs = env
        .cloudjobs("team-a")
        .list(&ListParams::default())
        .await
        .expect("list");
    let names: BTreeSet<String> = jobs
        .items
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["done".to_owned(), "running".to_owned()])
    );
    let done = jobs
        .items
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some("done"))
        .expect("done");
    assert_eq!(
        done.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Succeeded)
    );
    // And nobody polls any more.
    let mut helm_list = env.helm();
    helm_list.args(["list", "--all-namespaces", "-q"]);
    let releases = String::from_utf8_lossy(&run(helm_list).await.stdout).into_owned();
    assert!(releases.trim().is_empty(), "no release left: {releases}");
}

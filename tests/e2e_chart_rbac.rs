//! The chart's RBAC is enough and no more: the operator, run out of cluster with a TokenRequest token of
//! the chart's ServiceAccount (namespaced mode, leader election on), completes a CloudJob, while that
//! identity can neither read Secrets outside its namespaces nor change a CloudJob's spec.

use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_sim::{JobSpec, Service};
use cloudjob_testkit::{e2e::*, repo_root};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(ref e)) if e.code == 403)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_charts_service_account_can_run_the_operator_and_nothing_more() {
    let env = Env::start().await;
    let team = env.namespace("team-a").await;
    let other = env.namespace("other").await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cloudjob-system"}})).expect("ns"),
        )
        .await
        .expect("release namespace");

    let mut install = env.cp.helm();
    install
        .args(["install", "cloudjob-operator"])
        .arg(
            repo_root()
                .expect("repository")
                .join("charts/cloudjob-operator"),
        )
        .args([
            "--namespace",
            "cloudjob-system",
            "--set",
            "watchNamespaces={team-a}",
            "--set",
            "leaderElection.enabled=true",
        ]);
    run_ok(install, "helm install").await;

    let (kubeconfig, sa) = env
        .cp
        .service_account_access("cloudjob-system", "cloudjob-operator")
        .await
        .expect("token");
    let operator = env
        .operator_with_kubeconfig(
            &kubeconfig,
            &[
                "--namespaces",
                &team,
                "--leader-election",
                "--leader-election-namespace",
                "cloudjob-system",
            ],
        )
        .await;

    let job =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(2.0));
    env.create_cloudjob(&team, "rbac", "ims", &job.job_id).await;
    let done = env
        .wait_status(
            &operator,
            &team,
            "rbac",
            "Succeeded with the chart's RBAC",
            |s| s.phase == Some(Phase::Succeeded),
        )
        .await;
    assert!(done.outputs.and_then(|o| o.image_id).is_some());
    // Events are allowed: the Succeeded event comes.
    env.wait_event(&team, "rbac", None, "Succeeded").await;

    // No more than needed.
    let other_secrets: Api<Secret> = Api::namespaced(sa.clone(), &other);
    assert!(
        forbidden(other_secrets.get("creds").await),
        "reads a Secret outside its namespaces"
    );
    let all_secrets: Api<Secret> = Api::all(sa.clone());
    assert!(
        forbidden(all_secrets.list(&ListParams::default()).await),
        "lists Secrets cluster-wide"
    );
    let own_jobs: Api<CloudJob> = Api::namespaced(sa.clone(), &team);
    let edit = json!({"spec": {"region": "eu-nl"}});
    assert!(
        forbidden(
            own_jobs
                .patch("rbac", &PatchParams::default(), &Patch::Merge(&edit))
                .await
        ),
        "changes a CloudJob's spec"
    );
    assert!(
        forbidden(own_jobs.delete("rbac", &Default::default()).await),
        "deletes a CloudJob"
    );
    let other_jobs: Api<CloudJob> = Api::namespaced(sa, &other);
    assert!(
        forbidden(other_jobs.list(&ListParams::default()).await),
        "sees CloudJobs outside its namespaces"
    );

    let mut uninstall = env.cp.helm();
    uninstall.args([
        "uninstall",
        "cloudjob-operator",
        "--namespace",
        "cloudjob-system",
    ]);
    run_ok(uninstall, "helm uninstall").await;
}

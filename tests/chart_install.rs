//! A real `helm install` / `helm uninstall` of the chart against a real kube-apiserver (cloudjob-testenv),
//! including what the chart's ServiceAccount may and may not do (`kubectl auth can-i`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use cloudjob_testenv::ControlPlane;
use cloudjob_testkit::{
    CRD_NAME,
    chart::{
        FULLNAME, ObjectId, RELEASE, RELEASE_NAMESPACE, Rendered, chart_dir, container_env,
        helm_args, id, release_objects,
    },
    command,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::Value;

const SERVICE_ACCOUNT: &str = "system:serviceaccount:cloudjob-system:cloudjob-operator";

/// `kubectl auth can-i` as the chart's ServiceAccount: true for "yes".
async fn service_account_can(cp: &ControlPlane, args: &[&str]) -> Result<bool> {
    let mut command = cp.kubectl();
    command
        .args(["auth", "can-i", "--as", SERVICE_ACCOUNT])
        .args(args);
    let output = command::output(command).await?;
    match String::from_utf8_lossy(&output.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!(
            "kubectl auth can-i {args:?} answered {other:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

async fn assert_access(cp: &ControlPlane, expected: bool, args: &[&str]) -> Result<()> {
    let allowed = service_account_can(cp, args).await?;
    ensure!(
        allowed == expected,
        "the chart's ServiceAccount {} {args:?}, expected the opposite",
        if allowed { "may" } else { "may not" }
    );
    Ok(())
}

/// `helm install` of the chart, then the rendered manifest (`helm get manifest`) saved to a file.
async fn install(cp: &ControlPlane, sets: &[&str]) -> Result<(Rendered, PathBuf)> {
    let mut command = helm_args(cp.helm(), &["install", RELEASE], sets);
    command
        .arg(chart_dir()?)
        .args(["--namespace", RELEASE_NAMESPACE, "--create-namespace"]);
    command::stdout(command).await?;
    let mut get = cp.helm();
    get.args(["get", "manifest", RELEASE, "--namespace", RELEASE_NAMESPACE]);
    let manifest = command::stdout(get).await?;
    let path = cp.dir().join("chart-manifest.yaml");
    std::fs::write(&path, &manifest)?;
    Ok((Rendered::parse(&manifest)?, path))
}

/// The objects of the manifest that exist in the cluster (`kubectl get -f <manifest> -o json`).
async fn existing(cp: &ControlPlane, manifest: &Path) -> Result<BTreeSet<ObjectId>> {
    let mut command = cp.kubectl();
    command
        .args(["get", "--ignore-not-found", "-o", "json", "-f"])
        .arg(manifest);
    let out = command::stdout(command).await?;
    if out.trim().is_empty() {
        return Ok(BTreeSet::new());
    }
    let value: Value = serde_json::from_str(&out).context("parsing kubectl get -o json")?;
    Ok(match value["kind"].as_str() {
        Some("List") => value["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(id)
            .collect(),
        _ => BTreeSet::from([id(&value)]),
    })
}

/// Uninstalls the release and checks that nothing of the manifest is left but that the CRD (and so every
/// CloudJob) is.
async fn uninstall_leaves_only_the_crd(cp: &ControlPlane, manifest: &Path) -> Result<()> {
    let mut command = cp.helm();
    command.args([
        "uninstall",
        RELEASE,
        "--namespace",
        RELEASE_NAMESPACE,
        "--wait",
    ]);
    command::stdout(command).await?;
    let left = existing(cp, manifest).await?;
    ensure!(left.is_empty(), "helm uninstall left {left:?}");
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
    crds.get(CRD_NAME)
        .await
        .context("helm uninstall must keep the CRD (deleting it would delete every CloudJob)")?;
    Ok(())
}

/// Checks that every object of the release exists and the chart's CRD is established, and returns the
/// operator's Deployment.
async fn installed_deployment(
    cp: &ControlPlane,
    rendered: &Rendered,
    manifest: &Path,
) -> Result<Deployment> {
    assert_eq!(
        existing(cp, manifest).await?,
        rendered.ids(),
        "every object of the release exists in the cluster"
    );
    cloudjob_testenv::wait_for_crd_established(
        &cp.client(),
        CRD_NAME,
        std::time::Duration::from_secs(30),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), RELEASE_NAMESPACE);
    Ok(deployments.get(FULLNAME).await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_cluster_wide_creates_every_object_grants_least_privilege_and_uninstall_leaves_the_crd()
-> Result<()> {
    let cp = ControlPlane::start().await?;
    let (rendered, manifest) =
        install(&cp, &["replicaCount=2", "networkPolicy.enabled=true"]).await?;
    assert_eq!(
        rendered.ids(),
        release_objects(
            true,
            &[
                ("NetworkPolicy", RELEASE_NAMESPACE, FULLNAME),
                ("PodDisruptionBudget", RELEASE_NAMESPACE, FULLNAME),
                (
                    "Role",
                    RELEASE_NAMESPACE,
                    "cloudjob-operator-leader-election"
                ),
                (
                    "RoleBinding",
                    RELEASE_NAMESPACE,
                    "cloudjob-operator-leader-election"
                ),
            ]
        )
    );
    let deployment = installed_deployment(&cp, &rendered, &manifest).await?;
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(2));

    // What the operator needs, in any namespace.
    for args in [
        &["list", "cloudjobs.cloudjob.io", "--all-namespaces"][..],
        &["watch", "cloudjobs.cloudjob.io", "-n", "anywhere"],
        &[
            "patch",
            "cloudjobs.cloudjob.io",
            "--subresource=status",
            "-n",
            "anywhere",
        ],
        &["get", "secrets", "-n", "anywhere"],
        &["create", "configmaps", "-n", "anywhere"],
        &["create", "events.events.k8s.io", "-n", "anywhere"],
        &["patch", "events", "-n", "anywhere"],
        &[
            "create",
            "leases.coordination.k8s.io",
            "-n",
            RELEASE_NAMESPACE,
        ],
        &[
            "update",
            "leases.coordination.k8s.io/cloudjob-operator",
            "-n",
            RELEASE_NAMESPACE,
        ],
    ] {
        assert_access(&cp, true, args).await?;
    }
    // And nothing more: no spec writes, no deletes, no Secret writes, no other Lease.
    for args in [
        &["patch", "cloudjobs.cloudjob.io", "-n", "anywhere"][..],
        &["update", "cloudjobs.cloudjob.io", "-n", "anywhere"],
        &["create", "cloudjobs.cloudjob.io", "-n", "anywhere"],
        &["delete", "cloudjobs.cloudjob.io", "-n", "anywhere"],
        &["update", "secrets", "-n", "anywhere"],
        &["delete", "events", "-n", "anywhere"],
        &["create", "leases.coordination.k8s.io", "-n", "anywhere"],
        &[
            "update",
            "leases.coordination.k8s.io/someone-else",
            "-n",
            RELEASE_NAMESPACE,
        ],
        // The outputs ConfigMaps are read and written one by one, never listed, replaced or deleted.
        &["list", "configmaps", "-n", RELEASE_NAMESPACE],
        &["delete", "configmaps", "-n", RELEASE_NAMESPACE],
        &["update", "configmaps", "-n", RELEASE_NAMESPACE],
    ] {
        assert_access(&cp, false, args).await?;
    }

    uninstall_leaves_only_the_crd(&cp, &manifest).await
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_namespaced_confines_the_operator_to_the_listed_namespaces_and_uninstall_leaves_the_crd()
-> Result<()> {
    let cp = ControlPlane::start().await?;
    for namespace in ["team-a", "team-b", "team-c"] {
        let mut command = cp.kubectl();
        command.args(["create", "namespace", namespace]);
        command::stdout(command).await?;
    }
    let (rendered, manifest) = install(&cp, &["watchNamespaces={team-a,team-b}"]).await?;
    assert_eq!(
        rendered.ids(),
        release_objects(
            false,
            &[
                ("Role", "team-a", FULLNAME),
                ("Role", "team-b", FULLNAME),
                ("RoleBinding", "team-a", FULLNAME),
                ("RoleBinding", "team-b", FULLNAME),
            ]
        )
    );
    let deployment = serde_json::to_value(installed_deployment(&cp, &rendered, &manifest).await?)?;
    assert_eq!(
        container_env(&deployment)["CLOUDJOB_NAMESPACES"],
        "team-a,team-b"
    );

    for namespace in ["team-a", "team-b"] {
        assert_access(&cp, true, &["get", "secrets", "-n", namespace]).await?;
        assert_access(&cp, true, &["create", "configmaps", "-n", namespace]).await?;
        assert_access(
            &cp,
            true,
            &["watch", "cloudjobs.cloudjob.io", "-n", namespace],
        )
        .await?;
        assert_access(
            &cp,
            true,
            &[
                "update",
                "cloudjobs.cloudjob.io",
                "--subresource=status",
                "-n",
                namespace,
            ],
        )
        .await?;
        assert_access(
            &cp,
            false,
            &["patch", "cloudjobs.cloudjob.io", "-n", namespace],
        )
        .await?;
    }
    // No Secret or CloudJob outside the listed namespaces, not even in its own; no cluster-wide list.
    for namespace in ["team-c", RELEASE_NAMESPACE, "default"] {
        assert_access(&cp, false, &["get", "secrets", "-n", namespace]).await?;
        assert_access(&cp, false, &["patch", "configmaps", "-n", namespace]).await?;
        assert_access(
            &cp,
            false,
            &["list", "cloudjobs.cloudjob.io", "-n", namespace],
        )
        .await?;
    }
    assert_access(
        &cp,
        false,
        &["list", "cloudjobs.cloudjob.io", "--all-namespaces"],
    )
    .await?;
    assert_access(&cp, false, &["list", "secrets", "--all-namespaces"]).await?;

    uninstall_leaves_only_the_crd(&cp, &manifest).await
}

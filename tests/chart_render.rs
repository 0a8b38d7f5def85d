//! The Helm chart (charts/cloudjob-operator) without a cluster, with the pinned helm: lint, rendering in
//! its install modes, the values schema and the CRD copy. `chart_install.rs` installs it for real.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use cloudjob_testkit::{
    chart::{
        FULLNAME, RELEASE, RELEASE_NAMESPACE, Rendered, chart_dir, container_env, helm_args,
        release_objects,
    },
    command::{output_blocking, stdout_blocking},
    repo_root,
};
use serde_json::Value;

/// The pinned helm, for commands that need no cluster, with helm's homes in the target directory.
fn offline_helm() -> Result<Command> {
    let helm = cloudjob_testenv::binaries()?.helm;
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart-helm-home");
    let mut command = Command::new(helm);
    command
        .env_remove("KUBECONFIG")
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    Ok(command)
}

/// `helm template` of the chart as release `cloudjob-operator` in `cloudjob-system`.
fn template(sets: &[&str]) -> Result<Rendered> {
    let mut command = helm_args(offline_helm()?, &["template", RELEASE], sets);
    command
        .arg(chart_dir()?)
        .args(["--namespace", RELEASE_NAMESPACE]);
    Rendered::parse(&stdout_blocking(command)?)
}

/// Rules as (apiGroup, resource, verb, resourceNames) tuples, one per combination.
fn rule_grants(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut grants = BTreeSet::new();
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    for rule in role["rules"].as_array().into_iter().flatten() {
        let names = strings(rule.get("resourceNames")).join(",");
        for group in strings(rule.get("apiGroups")) {
            for resource in strings(rule.get("resources")) {
                for verb in strings(rule.get("verbs")) {
                    grants.insert((group.clone(), resource.clone(), verb, names.clone()));
                }
            }
        }
    }
    grants
}

/// What the operator needs on the namespaces it watches, and nothing else.
fn expected_watch_grants() -> BTreeSet<(String, String, String, String)> {
    let mut grants = BTreeSet::new();
    let mut add = |group: &str, resource: &str, verbs: &[&str]| {
        for verb in verbs {
            grants.insert((group.into(), resource.into(), (*verb).into(), String::new()));
        }
    };
    add("cloudjob.io", "cloudjobs", &["get", "list", "watch"]);
    add(
        "cloudjob.io",
        "cloudjobs/status",
        &["get", "patch", "update"],
    );
    add("", "secrets", &["get", "list", "watch"]);
    add("events.k8s.io", "events", &["create", "patch"]);
    add("", "events", &["create", "patch"]);
    add("", "configmaps", &["get", "create", "patch"]);
    grants
}

#[test]
fn helm_lint_strict_is_clean_for_default_namespaced_replicated_and_all_optional_values()
-> Result<()> {
    let variants: [&[&str]; 4] = [
        &[],
        &["watchNamespaces={team-a,team-b}"],
        &["replicaCount=3"],
        &[
            "metrics.serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "podDisruptionBudget.enabled=true",
            "leaderElection.enabled=true",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ],
    ];
    for sets in variants {
        for strict in [false, true] {
            let args: &[&str] = if strict {
                &["lint", "--strict"]
            } else {
                &["lint"]
            };
            let mut command = helm_args(offline_helm()?, args, sets);
            command.arg(chart_dir()?);
            let out = stdout_blocking(command)
                .with_context(|| format!("helm lint (strict: {strict}) with {sets:?}"))?;
            ensure!(
                out.contains("0 chart(s) failed")
                    && !out.contains("[WARNING]")
                    && !out.contains("[ERROR]"),
                "helm lint (strict: {strict}) with {sets:?} is not clean:\n{out}"
            );
        }
    }
    Ok(())
}

#[test]
fn default_values_render_cluster_wide_rbac_and_a_restricted_single_replica_deployment() -> Result<()>
{
    let rendered = template(&[])?;
    assert_eq!(
        rendered.ids(),
        release_objects(true, &[]),
        "default values render exactly these objects (no PDB, lease Role, NetworkPolicy or ServiceMonitor)"
    );

    let deployment = rendered.deployment()?;
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        deployment["spec"]["strategy"]["type"], "Recreate",
        "without leader election, an update must never run two operators at once"
    );
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(
        container["image"], "ghcr.io/cloudjob-io/cloudjob-operator:0.1.0",
        "tag defaults to appVersion"
    );
    assert_eq!(container["args"], serde_json::json!(["run"]));

    // Restricted pod security.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");

    // Probes on the metrics port, resources, the HTTP server's address.
    assert_eq!(container["ports"][0]["name"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource} is set"
            );
        }
    }

    let env = container_env(deployment);
    assert!(
        env["POD_NAME"].contains("metadata.name"),
        "POD_NAME from the downward API: {}",
        env["POD_NAME"]
    );
    assert!(env["POD_NAMESPACE"].contains("metadata.namespace"));
    assert_eq!(env["CLOUDJOB_LEADER_ELECTION"], "false");
    assert_eq!(env["CLOUDJOB_LISTEN_ADDRESS"], "0.0.0.0:8080");
    assert_eq!(env["CLOUDJOB_CONCURRENCY"], "16");
    assert_eq!(env["CLOUDJOB_RATE_LIMIT"], "10");
    assert_eq!(env["CLOUDJOB_RATE_LIMIT_BURST"], "10");
    assert_eq!(env["CLOUDJOB_LOG_FORMAT"], "json");
    assert_eq!(env["RUST_LOG"], "info");
    assert!(
        !env.contains_key("CLOUDJOB_NAMESPACES"),
        "cluster-wide mode watches all namespaces"
    );

    // The Service reaches the metrics port of the operator's pods.
    let service = rendered.get("Service", RELEASE_NAMESPACE, "cloudjob-operator-metrics")?;
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    // Least privilege: exactly the needed rules, bound to the chart's ServiceAccount.
    let role = rendered.get("ClusterRole", "", FULLNAME)?;
    assert_eq!(rule_grants(role), expected_watch_grants());
    let binding = rendered.get("ClusterRoleBinding", "", FULLNAME)?;
    assert_eq!(binding["roleRef"]["name"], FULLNAME);
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}])
    );
    Ok(())
}

#[test]
fn namespaced_mode_renders_a_role_and_binding_per_watched_namespace_and_no_cluster_role()
-> Result<()> {
    let rendered = template(&["watchNamespaces={team-a,team-b}"])?;
    let kinds = rendered.kinds();
    assert!(
        !kinds.contains("ClusterRole") && !kinds.contains("ClusterRoleBinding"),
        "kinds: {kinds:?}"
    );
    for namespace in ["team-a", "team-b"] {
        let role = rendered.get("Role", namespace, FULLNAME)?;
        assert_eq!(
            rule_grants(role),
            expected_watch_grants(),
            "rules of the Role in {namespace}"
        );
        let binding = rendered.get("RoleBinding", namespace, FULLNAME)?;
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["roleRef"]["name"], FULLNAME);
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}])
        );
    }
    assert_eq!(
        rendered.of_kind("Role").count(),
        2,
        "one Role per watched namespace, no lease Role"
    );
    assert_eq!(rendered.of_kind("RoleBinding").count(), 2);
    let env = container_env(rendered.deployment()?);
    assert_eq!(env["CLOUDJOB_NAMESPACES"], "team-a,team-b");
    Ok(())
}

#[test]
fn three_replicas_turn_on_leader_election_with_a_lease_role_a_pdb_and_rolling_updates() -> Result<()>
{
    let rendered = template(&["replicaCount=3"])?;
    let deployment = rendered.deployment()?;
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(
        deployment
            .pointer("/spec/template/spec/affinity/podAntiAffinity")
            .is_some(),
        "replicas are spread over nodes by default"
    );
    let env = container_env(deployment);
    assert_eq!(env["CLOUDJOB_LEADER_ELECTION"], "true");
    assert_eq!(env["CLOUDJOB_LEADER_ELECTION_NAMESPACE"], RELEASE_NAMESPACE);
    assert_eq!(env["CLOUDJOB_LEADER_ELECTION_LEASE"], "cloudjob-operator");
    assert_eq!(env["CLOUDJOB_LEADER_ELECTION_LEASE_SECONDS"], "15");

    let pdb = rendered.get("PodDisruptionBudget", RELEASE_NAMESPACE, FULLNAME)?;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    let lease_role = rendered.get(
        "Role",
        RELEASE_NAMESPACE,
        "cloudjob-operator-leader-election",
    )?;
    let lease = |verb: &str, names: &str| {
        (
            "coordination.k8s.io".to_owned(),
            "leases".to_owned(),
            verb.to_owned(),
            names.to_owned(),
        )
    };
    assert_eq!(
        rule_grants(lease_role),
        BTreeSet::from([
            lease("create", ""),
            lease("get", "cloudjob-operator"),
            lease("update", "cloudjob-operator"),
            lease("patch", "cloudjob-operator"),
        ]),
        "only the operator's own Lease, in the release namespace"
    );
    let binding = rendered.get(
        "RoleBinding",
        RELEASE_NAMESPACE,
        "cloudjob-operator-leader-election",
    )?;
    assert_eq!(binding["subjects"][0]["name"], FULLNAME);

    // Leader election can also be asked for with one replica, and a PDB likewise.
    let single = template(&[
        "leaderElection.enabled=true",
        "podDisruptionBudget.enabled=true",
    ])?;
    assert_eq!(
        container_env(single.deployment()?)["CLOUDJOB_LEADER_ELECTION"],
        "true"
    );
    single.get("PodDisruptionBudget", RELEASE_NAMESPACE, FULLNAME)?;
    single.get(
        "Role",
        RELEASE_NAMESPACE,
        "cloudjob-operator-leader-election",
    )?;
    Ok(())
}

#[test]
fn optional_service_monitor_and_network_policy_render_only_when_enabled() -> Result<()> {
    let rendered = template(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prometheus",
        "networkPolicy.enabled=true",
    ])?;
    let monitor = rendered.get("ServiceMonitor", RELEASE_NAMESPACE, FULLNAME)?;
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let service = rendered.get("Service", RELEASE_NAMESPACE, "cloudjob-operator-metrics")?;
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects the Service"
        );
    }
    let policy = rendered.get("NetworkPolicy", RELEASE_NAMESPACE, FULLNAME)?;
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "metrics");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );

    let mut without_service = helm_args(
        offline_helm()?,
        &["template", RELEASE],
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.service.enabled=false",
        ],
    );
    without_service.arg(chart_dir()?);
    let out = output_blocking(without_service)?;
    assert!(
        !out.status.success(),
        "a ServiceMonitor without the Service is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs metrics.service.enabled"));
    Ok(())
}

#[test]
fn values_schema_rejects_a_string_replica_count_and_unknown_keys_naming_the_value() -> Result<()> {
    let cases: [(&str, &[&str]); 4] = [
        ("replicaCount=three", &["replicaCount", "want integer"]),
        (
            "replicas=3",
            &["additional properties 'replicas' not allowed"],
        ),
        ("logging.format=xml", &["/logging/format"]),
        ("watchNamespaces={Team_A}", &["/watchNamespaces/0"]),
    ];
    for (set, expected) in cases {
        let mut command = helm_args(offline_helm()?, &["template", RELEASE], &[set]);
        command.arg(chart_dir()?);
        let out = output_blocking(command)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "--set {set} must be rejected, but helm rendered the chart"
        );
        assert!(
            stderr.contains("values don't meet the specifications of the schema"),
            "{set}: {stderr}"
        );
        for fragment in expected {
            assert!(
                stderr.contains(fragment),
                "--set {set}: expected {fragment:?} in:\n{stderr}"
            );
        }
    }
    Ok(())
}

#[test]
fn chart_crd_is_byte_identical_to_the_generated_crd_in_crds() -> Result<()> {
    let generated = repo_root()?.join("crds/cloudjobs.cloudjob.io.yaml");
    let in_chart = chart_dir()?.join("crds/cloudjobs.cloudjob.io.yaml");
    let regenerate = "regenerate both with: cargo run -- crd > crds/cloudjobs.cloudjob.io.yaml && \
                      cp crds/cloudjobs.cloudjob.io.yaml charts/cloudjob-operator/crds/";
    let generated = std::fs::read(&generated)
        .with_context(|| format!("reading {}; {regenerate}", generated.display()))?;
    let in_chart = std::fs::read(&in_chart)
        .with_context(|| format!("reading {}; {regenerate}", in_chart.display()))?;
    assert!(
        generated == in_chart,
        "charts/cloudjob-operator/crds/cloudjobs.cloudjob.io.yaml differs from crds/cloudjobs.cloudjob.io.yaml; \
         {regenerate}"
    );
    let entries: Vec<_> = std::fs::read_dir(chart_dir()?.join("crds"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        entries,
        ["cloudjobs.cloudjob.io.yaml"],
        "the chart carries only the CloudJob CRD"
    );
    Ok(())
}

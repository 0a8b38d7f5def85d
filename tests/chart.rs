//! The Helm chart (charts/cloudjob-operator), with the pinned helm: lint, rendering in its install modes, the
//! values schema, the CRD copy, and a real `helm install` / `helm uninstall` against a real kube-apiserver
//! (cloudjob-testenv), including what the chart's ServiceAccount may and may not do (`kubectl auth can-i`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail, ensure};
use cloudjob_testenv::ControlPlane;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde::Deserialize;
use serde_json::Value;

const RELEASE: &str = "cloudjob-operator";
const RELEASE_NAMESPACE: &str = "cloudjob-system";
/// With the release named like the chart, every object is named `cloudjob-operator` (stable, for other tests).
const FULLNAME: &str = "cloudjob-operator";
const CRD_NAME: &str = "cloudjobs.cloudjob.io";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:cloudjob-system:cloudjob-operator";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts/cloudjob-operator")
}

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

fn run(mut command: Command) -> Result<Output> {
    command
        .output()
        .with_context(|| format!("running {command:?}"))
}

/// Runs a command and fails with its output unless it succeeds; returns its stdout.
fn run_ok(command: Command) -> Result<String> {
    let description = format!("{command:?}");
    let output = run(command)?;
    if !output.status.success() {
        bail!(
            "{description} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `helm <args> <chart> <more>` with `--set` style arguments appended.
fn helm_args(mut command: Command, args: &[&str], sets: &[&str]) -> Command {
    command.args(args);
    for set in sets {
        command.arg("--set").arg(set);
    }
    command
}

/// (kind, namespace, name); the namespace is empty for cluster-scoped objects.
type ObjectId = (String, String, String);

/// The objects of a rendered manifest.
struct Rendered {
    objects: Vec<Value>,
}

impl Rendered {
    fn parse(yaml: &str) -> Result<Self> {
        let mut objects = Vec::new();
        for document in serde_yaml::Deserializer::from_str(yaml) {
            let value = Value::deserialize(document).context("parsing rendered YAML")?;
            if !value.is_null() {
                objects.push(value);
            }
        }
        Ok(Self { objects })
    }

    fn ids(&self) -> BTreeSet<ObjectId> {
        self.objects.iter().map(id).collect()
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.objects
            .iter()
            .map(|o| str_at(o, "/kind").to_owned())
            .collect()
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<&Value> {
        self.objects
            .iter()
            .find(|o| id(o) == (kind.to_owned(), namespace.to_owned(), name.to_owned()))
            .with_context(|| {
                format!(
                    "no {kind} {namespace}/{name} in the rendered chart; it has {:?}",
                    self.ids()
                )
            })
    }

    fn deployment(&self) -> Result<&Value> {
        self.get("Deployment", RELEASE_NAMESPACE, FULLNAME)
    }
}

fn id(object: &Value) -> ObjectId {
    (
        str_at(object, "/kind").to_owned(),
        str_at(object, "/metadata/namespace").to_owned(),
        str_at(object, "/metadata/name").to_owned(),
    )
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn objects(ids: &[(&str, &str, &str)]) -> BTreeSet<ObjectId> {
    ids.iter()
        .map(|(k, ns, n)| ((*k).to_owned(), (*ns).to_owned(), (*n).to_owned()))
        .collect()
}

/// `helm template` of the chart as release `cloudjob-operator` in `cloudjob-system`.
fn template(sets: &[&str]) -> Result<Rendered> {
    let mut command = helm_args(offline_helm()?, &["template", RELEASE], sets);
    command
        .arg(chart_dir())
        .args(["--namespace", RELEASE_NAMESPACE]);
    Rendered::parse(&run_ok(command)?)
}

/// The operator container's environment as name -> value (or the valueFrom object, as JSON text).
fn container_env(deployment: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let vars = deployment
        .pointer("/spec/template/spec/containers/0/env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for var in vars {
        let value = match (var.get("value"), var.get("valueFrom")) {
            (Some(v), _) => v.as_str().unwrap_or("").to_owned(),
            (None, Some(from)) => from.to_string(),
            (None, None) => String::new(),
        };
        env.insert(str_at(&var, "/name").to_owned(), value);
    }
    env
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
            command.arg(chart_dir());
            let out = run_ok(command)
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
        objects(&[
            ("ClusterRole", "", FULLNAME),
            ("ClusterRoleBinding", "", FULLNAME),
            ("Deployment", RELEASE_NAMESPACE, FULLNAME),
            ("Service", RELEASE_NAMESPACE, "cloudjob-operator-metrics"),
            ("ServiceAccount", RELEASE_NAMESPACE, FULLNAME),
        ]),
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
    without_service.arg(chart_dir());
    let out = run(without_service)?;
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
        command.arg(chart_dir());
        let out = run(command)?;
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
    let generated = repo().join("crds/cloudjobs.cloudjob.io.yaml");
    let in_chart = chart_dir().join("crds/cloudjobs.cloudjob.io.yaml");
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
    let entries: Vec<_> = std::fs::read_dir(chart_dir().join("crds"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        entries,
        ["cloudjobs.cloudjob.io.yaml"],
        "the chart carries only the CloudJob CRD"
    );
    Ok(())
}

// ----- against a real control plane -----

/// Runs a blocking command off the async workers.
async fn run_blocking(command: Command) -> Result<String> {
    tokio::task::spawn_blocking(move || run_ok(command)).await?
}

/// `kubectl auth can-i` as the chart's ServiceAccount: true for "yes".
async fn service_account_can(cp: &ControlPlane, args: &[&str]) -> Result<bool> {
    let mut command = cp.kubectl();
    command
        .args(["auth", "can-i", "--as", SERVICE_ACCOUNT])
        .args(args);
    let output = tokio::task::spawn_blocking(move || run(command)).await??;
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
        .arg(chart_dir())
        .args(["--namespace", RELEASE_NAMESPACE, "--create-namespace"]);
    run_blocking(command).await?;
    let mut get = cp.helm();
    get.args(["get", "manifest", RELEASE, "--namespace", RELEASE_NAMESPACE]);
    let manifest = run_blocking(get).await?;
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
    let out = run_blocking(command).await?;
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
    run_blocking(command).await?;
    let left = existing(cp, manifest).await?;
    ensure!(left.is_empty(), "helm uninstall left {left:?}");
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
    crds.get(CRD_NAME)
        .await
        .context("helm uninstall must keep the CRD (deleting it would delete every CloudJob)")?;
    Ok(())
}

async fn crd_is_established(cp: &ControlPlane) -> Result<()> {
    cloudjob_testenv::wait_for_crd_established(
        &cp.client(),
        CRD_NAME,
        std::time::Duration::from_secs(30),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_cluster_wide_creates_every_object_grants_least_privilege_and_uninstall_leaves_the_crd()
-> Result<()> {
    let cp = ControlPlane::start().await?;
    let (rendered, manifest) =
        install(&cp, &["replicaCount=2", "networkPolicy.enabled=true"]).await?;
    assert_eq!(
        rendered.ids(),
        objects(&[
            ("ClusterRole", "", FULLNAME),
            ("ClusterRoleBinding", "", FULLNAME),
            ("Deployment", RELEASE_NAMESPACE, FULLNAME),
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
            ("Service", RELEASE_NAMESPACE, "cloudjob-operator-metrics"),
            ("ServiceAccount", RELEASE_NAMESPACE, FULLNAME),
        ])
    );
    assert_eq!(
        existing(&cp, &manifest).await?,
        rendered.ids(),
        "every object of the release exists in the cluster"
    );
    crd_is_established(&cp).await?;
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), RELEASE_NAMESPACE);
    let deployment = deployments.get(FULLNAME).await?;
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
        &["get", "configmaps", "-n", RELEASE_NAMESPACE],
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
        run_blocking(command).await?;
    }
    let (rendered, manifest) = install(&cp, &["watchNamespaces={team-a,team-b}"]).await?;
    assert_eq!(
        rendered.ids(),
        objects(&[
            ("Deployment", RELEASE_NAMESPACE, FULLNAME),
            ("Role", "team-a", FULLNAME),
            ("Role", "team-b", FULLNAME),
            ("RoleBinding", "team-a", FULLNAME),
            ("RoleBinding", "team-b", FULLNAME),
            ("Service", RELEASE_NAMESPACE, "cloudjob-operator-metrics"),
            ("ServiceAccount", RELEASE_NAMESPACE, FULLNAME),
        ])
    );
    assert_eq!(
        existing(&cp, &manifest).await?,
        rendered.ids(),
        "every object of the release exists in the cluster"
    );
    crd_is_established(&cp).await?;
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), RELEASE_NAMESPACE);
    let deployment = serde_json::to_value(deployments.get(FULLNAME).await?)?;
    assert_eq!(
        container_env(&deployment)["CLOUDJOB_NAMESPACES"],
        "team-a,team-b"
    );

    for namespace in ["team-a", "team-b"] {
        assert_access(&cp, true, &["get", "secrets", "-n", namespace]).await?;
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

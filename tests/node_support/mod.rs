//! Shared harness of the tests on a real kubelet node (tests/e2e_node_*.rs) and of the image tests: the
//! operator image from tools/image/build.sh, a node from cloudjob-testenv with that image imported, the
//! CRD, and the jobs API simulator listening on the node's bridge address so that pods reach it.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cloudjob_operator::crd::CloudJob;
use cloudjob_sim::{Credentials, SimConfig, Simulator};
use cloudjob_testenv::{GATEWAY, Node, start_node_or_skip};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// The tag of the image the node tests install (tools/image/build.sh TAG).
pub const IMAGE_TAG: &str = "e2e";
pub const RELEASE_NAMESPACE: &str = "cloudjob-system";
/// Long enough for a pod to start on a busy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(180);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Runs a command and returns its output; panics with its stderr if it fails.
pub fn output_of(mut command: Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command off the async workers (the in-process simulator must keep answering meanwhile).
pub async fn run(command: Command) -> Output {
    tokio::task::spawn_blocking(move || output_of(command))
        .await
        .expect("command task")
}

/// Which pinned Helm runs the chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helm {
    V3,
    V4,
}

#[derive(Clone, Debug)]
pub struct OperatorImage {
    /// docker-archive written by tools/image/build.sh.
    pub archive: PathBuf,
    /// `localhost/cloudjob-operator:TAG`.
    pub name: String,
    pub tag: String,
}

/// Builds the operator image with tag `tag` (once per test process; cargo only rebuilds the binary when
/// the source changed), or `None` after printing why this machine cannot (no root for the packages);
/// under CI that is a failure.
pub fn operator_image_or_skip(tag: &str) -> Option<OperatorImage> {
    static BUILT: OnceLock<Mutex<HashMap<String, OperatorImage>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(image) = built.get(tag) {
        return Some(image.clone());
    }
    let setup = Command::new("bash")
        .arg(repo_root().join("tools/node/setup.sh"))
        .stdin(Stdio::null())
        .status()
        .expect("tools/node/setup.sh runs");
    if setup.code() == Some(3) {
        assert!(
            !ci(),
            "CI=true: the image tools must be installable (tools/node/setup.sh)"
        );
        eprintln!("SKIPPED: the image tools cannot be installed here (see above)");
        return None;
    }
    assert!(setup.success(), "tools/node/setup.sh failed ({setup})");
    let mut build = Command::new("bash");
    build
        .arg(repo_root().join("tools/image/build.sh"))
        .arg(tag)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // `cargo test` sets CARGO_* variables for the test binary; build scripts that watch some of them
    // would rebuild the release binary whenever the image is built from a test rather than by hand.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
            build.env_remove(key.as_ref());
        }
    }
    let out = output_of(build);
    let archive = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .expect("build.sh prints the archive path");
    assert!(archive.is_file(), "{} exists", archive.display());
    let image = OperatorImage {
        archive,
        name: format!("localhost/cloudjob-operator:{tag}"),
        tag: tag.to_owned(),
    };
    built.insert(tag.to_owned(), image.clone());
    Some(image)
}

/// A node with the operator image imported, the CRD, and the simulator on the bridge address.
pub struct NodeEnv {
    pub sim: Simulator,
    pub client: Client,
    pub image: OperatorImage,
    pub ak: String,
    pub sk: String,
    /// Last: dropped after the simulator, and it restores the host.
    pub node: Node,
}

impl NodeEnv {
    /// `None` (after printing why) on a machine that cannot run a node, unless CI=true.
    pub async fn start() -> Option<NodeEnv> {
        let image = tokio::task::spawn_blocking(|| operator_image_or_skip(IMAGE_TAG))
            .await
            .expect("image build task")?;
        let started = std::time::Instant::now();
        let node = start_node_or_skip().await.expect("the node starts")?;
        eprintln!("node ready in {:.1} s", started.elapsed().as_secs_f64());
        node.import_image(&image.archive)
            .await
            .expect("image imported");
        let client = node.control_plane().client();
        let mut apply = node.control_plane().kubectl();
        apply
            .args(["apply", "-f"])
            .arg(repo_root().join("crds/cloudjobs.cloudjob.io.yaml"));
        run(apply).await;
        cloudjob_testenv::wait_for_crd_established(
            &client,
            "cloudjobs.cloudjob.io",
            Duration::from_secs(30),
        )
        .await
        .expect("CRD established");
        // Credentials of this run only, so that "the logs never show them" means something.
        let ak = format!("AK{}", uuid_like());
        let sk = format!("SK{}{}", uuid_like(), uuid_like());
        let sim = Simulator::start(SimConfig {
            // Pods reach the host only on the bridge address.
            listen: std::net::SocketAddr::from((GATEWAY, 0)),
            credentials: vec![Credentials::new(&ak, &sk)],
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts on the bridge address");
        Some(NodeEnv {
            sim,
            client,
            image,
            ak,
            sk,
            node,
        })
    }

    pub fn helm(&self) -> Command {
        self.node.control_plane().helm()
    }

    pub fn kubectl(&self) -> Command {
        self.node.control_plane().kubectl()
    }

    /// A namespace, optionally enforcing the restricted Pod Security Standard, with a credentials
    /// Secret `creds` for the simulator.
    pub async fn namespace(&self, name: &str, restricted: bool) {
        let mut labels = serde_json::Map::new();
        if restricted {
            labels.insert(
                "pod-security.kubernetes.io/enforce".into(),
                json!("restricted"),
            );
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                    .expect("ns"),
            )
            .await
            .expect("namespace created");
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), name);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "creds"},
            "stringData": {"accessKey": self.ak, "secretKey": self.sk}
        }))
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret created");
    }

    /// Values for the chart on this node: the local image (never pulled), and the API server on the
    /// bridge address (no kube-proxy serves the `kubernetes` Service here).
    pub fn values_file(&self, dir: &Path, tag: &str, extra: serde_json::Value) -> PathBuf {
        let mut values = json!({
            "image": {"repository": "localhost/cloudjob-operator", "tag": tag, "pullPolicy": "Never"},
            // The simulator listens on the bridge address, a private one outside the default allow-list.
            "allowedEndpoints": [GATEWAY.to_string()],
            "extraEnv": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": GATEWAY.to_string()},
                {"name": "KUBERNETES_SERVICE_PORT", "value": self.node.api_port().to_string()},
            ],
        });
        merge(&mut values, extra);
        let path = dir.join(format!("values-{tag}-{}.yaml", uuid_like()));
        std::fs::write(&path, serde_json::to_string(&values).expect("values"))
            .expect("values file");
        path
    }

    /// `helm install --wait` (or `upgrade`) of the chart into RELEASE_NAMESPACE, with Helm 3.
    pub async fn helm_install(&self, verb: &str, values: &Path) -> Output {
        self.helm_install_with(Helm::V3, verb, values).await
    }

    pub async fn helm_install_with(&self, helm: Helm, verb: &str, values: &Path) -> Output {
        let mut helm = match helm {
            Helm::V3 => self.helm(),
            Helm::V4 => self.node.helm4(),
        };
        helm.args([verb, "cloudjob-operator"])
            .arg(repo_root().join("charts/cloudjob-operator"))
            .args(["--namespace", RELEASE_NAMESPACE, "--create-namespace"])
            .args(["--wait", "--timeout", "3m", "-f"])
            .arg(values);
        run(helm).await
    }

    pub fn cloudjobs(&self, namespace: &str) -> Api<CloudJob> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub fn cloudjob_manifest(&self, name: &str, job_id: &str) -> serde_json::Value {
        json!({
            "apiVersion": "cloudjob.io/v1alpha1",
            "kind": "CloudJob",
            "metadata": {"name": name},
            "spec": {
                "service": "ims",
                "region": "eu-de",
                "projectId": PROJECT,
                "jobId": job_id,
                "endpoint": format!("{}/ims", self.sim.base_url()),
                "credentialsSecretRef": {"name": "creds"},
                "polling": {"minIntervalSeconds": 1, "maxIntervalSeconds": 2}
            }
        })
    }

    pub async fn create_cloudjob(&self, namespace: &str, name: &str, job_id: &str) {
        let cj: CloudJob =
            serde_json::from_value(self.cloudjob_manifest(name, job_id)).expect("CloudJob");
        self.cloudjobs(namespace)
            .create(&PostParams::default(), &cj)
            .await
            .expect("CloudJob created");
    }

    /// Waits (watching) until the CloudJob satisfies `done`.
    pub async fn wait_cloudjob(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        done: impl Fn(&CloudJob) -> bool,
    ) -> CloudJob {
        let cond = move |cj: Option<&CloudJob>| cj.is_some_and(&done);
        match tokio::time::timeout(
            WAIT,
            kube::runtime::wait::await_condition(self.cloudjobs(namespace), name, cond),
        )
        .await
        {
            Ok(Ok(Some(cj))) => cj,
            other => panic!(
                "{namespace}/{name}: {what}: {other:?}\nlast seen: {:?}\n{}\noperator logs:\n{}",
                self.cloudjobs(namespace)
                    .get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| c.status),
                self.diagnostics().await,
                self.operator_logs().await
            ),
        }
    }

    /// The operator pods' states and the release namespace's events, for failure messages.
    pub async fn diagnostics(&self) -> String {
        let mut out = String::from("pods:\n");
        for pod in self.operator_pods().await {
            let status = pod.status.unwrap_or_default();
            out.push_str(&format!(
                "  {} phase={:?} reason={:?} containers={:?}\n",
                pod.metadata.name.unwrap_or_default(),
                status.phase,
                status.reason,
                status
                    .container_statuses
                    .unwrap_or_default()
                    .iter()
                    .map(|c| (
                        c.ready,
                        c.restart_count,
                        c.state.clone(),
                        c.last_state.clone()
                    ))
                    .collect::<Vec<_>>()
            ));
        }
        let mut events = self.kubectl();
        events.args([
            "get",
            "events",
            "-n",
            RELEASE_NAMESPACE,
            "--sort-by=.lastTimestamp",
        ]);
        if let Ok(Ok(o)) = tokio::task::spawn_blocking(move || events.output()).await {
            out.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        // What kubelet and kube-apiserver said about pods going away.
        let logs = [
            self.node.dir().join("logs/kubelet.log"),
            self.node
                .control_plane()
                .dir()
                .join("logs/kube-apiserver-1.log"),
        ];
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    [
                        "evict",
                        "Evict",
                        "OOM",
                        "Killing",
                        "probe failed",
                        "panic",
                        "F1",
                    ]
                    .iter()
                    .any(|w| l.contains(w))
                })
                .collect();
            out.push_str(&format!(
                "{} (matching lines, last 40):\n{}\n",
                log.display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            ));
        }
        out
    }

    /// The operator pods of the release.
    pub async fn operator_pods(&self) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), RELEASE_NAMESPACE);
        pods.list(&ListParams::default().labels("app.kubernetes.io/name=cloudjob-operator"))
            .await
            .expect("pods listed")
            .items
    }

    /// `kubectl logs` of every operator pod (through kube-apiserver and kubelet).
    pub async fn operator_logs(&self) -> String {
        let mut logs = String::new();
        for pod in self.operator_pods().await {
            let name = pod.metadata.name.unwrap_or_default();
            let mut kubectl = self.kubectl();
            kubectl.args(["logs", "-n", RELEASE_NAMESPACE, &name]);
            let out = tokio::task::spawn_blocking(move || kubectl.output())
                .await
                .expect("kubectl task");
            if let Ok(out) = out {
                logs.push_str(&format!(
                    "--- {name}\n{}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
        logs
    }
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// 32 hex digits, unique enough for names in one test run.
pub fn uuid_like() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Whether a pod is Ready.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// How often the pod's containers were restarted, all together.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).sum())
        .unwrap_or_default()
}

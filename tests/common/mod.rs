//! Shared harness of the end-to-end tests: a real control plane (cloudjob-testenv), the jobs API simulator
//! (cloudjob-sim, in process), the CRD applied with the real kubectl, and the real operator binary as a
//! child process.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use cloudjob_operator::crd::{CloudJob, CloudJobStatus};
use cloudjob_sim::{SimConfig, Simulator};
use cloudjob_testenv::{ControlPlane, free_port, wait_for};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::json;

pub const AK: &str = "sim-ak";
pub const SK: &str = "sim-sk";
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
pub const WAIT: Duration = Duration::from_secs(90);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A control plane with the CRD installed, and a simulator.
pub struct Env {
    pub cp: ControlPlane,
    pub sim: Simulator,
    pub client: Client,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(SimConfig::default()).await
    }

    pub async fn start_with(sim_config: SimConfig) -> Env {
        let cp = ControlPlane::start().await.expect("control plane starts");
        let client = cp.client();
        let crd = repo_root().join("crds/cloudjobs.cloudjob.io.yaml");
        let mut apply = cp.kubectl();
        apply.args(["apply", "-f"]).arg(&crd);
        let out = output(apply).await;
        assert!(
            out.status.success(),
            "kubectl apply of the CRD failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cloudjob_testenv::wait_for_crd_established(
            &client,
            "cloudjobs.cloudjob.io",
            Duration::from_secs(30),
        )
        .await
        .expect("CRD established");
        let sim = Simulator::start(sim_config)
            .await
            .expect("simulator starts");
        Env { cp, sim, client }
    }

    /// A namespace with a credentials Secret `creds` holding the simulator's AK/SK.
    pub async fn namespace(&self, name: &str) -> String {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns"),
            )
            .await
            .expect("namespace created");
        self.secret(name, "creds", AK, SK).await;
        name.to_string()
    }

    pub async fn secret(&self, namespace: &str, name: &str, ak: &str, sk: &str) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": {"accessKey": ak, "secretKey": sk}
        }))
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret created");
    }

    pub fn cloudjobs(&self, namespace: &str) -> Api<CloudJob> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Creates a CloudJob pointing at the simulator's endpoint for `service`.
    pub async fn create_cloudjob(
        &self,
        namespace: &str,
        name: &str,
        service: &str,
        job_id: &str,
    ) -> CloudJob {
        self.create_cloudjob_from(namespace, self.cloudjob_manifest(name, service, job_id))
            .await
    }

    pub fn cloudjob_manifest(&self, name: &str, service: &str, job_id: &str) -> serde_json::Value {
        json!({
            "apiVersion": "cloudjob.io/v1alpha1",
            "kind": "CloudJob",
            "metadata": {"name": name},
            "spec": {
                "service": service,
                "region": "eu-de",
                "projectId": PROJECT,
                "jobId": job_id,
                "endpoint": format!("{}/{}", self.sim.base_url(), service),
                "credentialsSecretRef": {"name": "creds"},
                "polling": {"minIntervalSeconds": 1, "maxIntervalSeconds": 3}
            }
        })
    }

    pub async fn create_cloudjob_from(
        &self,
        namespace: &str,
        manifest: serde_json::Value,
    ) -> CloudJob {
        let cj: CloudJob = serde_json::from_value(manifest).expect("valid CloudJob");
        self.cloudjobs(namespace)
            .create(&PostParams::default(), &cj)
            .await
            .expect("CloudJob created")
    }

    /// Waits until the CloudJob's status satisfies `done`, and returns it.
    pub async fn wait_status(
        &self,
        operator: &Operator,
        namespace: &str,
        name: &str,
        what: &str,
        done: impl Fn(&CloudJobStatus) -> bool,
    ) -> CloudJobStatus {
        let api = self.cloudjobs(namespace);
        let started = Instant::now();
        loop {
            let status = api.get(name).await.ok().and_then(|cj| cj.status);
            if let Some(status) = status.as_ref().filter(|s| done(s)) {
                return status.clone();
            }
            if started.elapsed() > WAIT {
                panic!(
                    "timed out waiting for {namespace}/{name}: {what}\nlast status: {}\noperator log tail:\n{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default(),
                    operator.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn events_for(
        &self,
        namespace: &str,
        name: &str,
    ) -> Vec<k8s_openapi::api::events::v1::Event> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), namespace);
        events
            .list(&ListParams::default())
            .await
            .expect("events listed")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    }

    pub async fn delete_cloudjob(&self, namespace: &str, name: &str) {
        let _ = self
            .cloudjobs(namespace)
            .delete(name, &DeleteParams::default())
            .await;
    }
}

/// The real operator binary, running against the control plane. Killed when dropped.
pub struct Operator {
    child: Option<tokio::process::Child>,
    pub metrics_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    pub async fn start(cp: &ControlPlane, extra_args: &[&str]) -> Operator {
        Self::start_with_kubeconfig(cp.kubeconfig_path(), extra_args).await
    }

    pub async fn start_with_kubeconfig(
        kubeconfig: &std::path::Path,
        extra_args: &[&str],
    ) -> Operator {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("operator.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let metrics_port = free_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloudjob-operator"))
            .arg("run")
            .arg("--listen-address")
            .arg(format!("127.0.0.1:{metrics_port}"))
            // The simulator (and the tests' own servers) live on 127.0.0.1, which the default allow-list
            // refuses: allow it explicitly, as a private-cloud install would allow its endpoints.
            .args(["--allowed-endpoints", "127.0.0.1"])
            .args(extra_args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,cloudjob_operator=debug,kube=warn")
            .stdout(Stdio::from(log_file.try_clone().expect("log fd")))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .expect("operator starts");
        let operator = Operator {
            child: Some(child),
            metrics_port,
            log,
            _dir: dir,
        };
        operator.wait_ready().await;
        operator
    }

    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let ready = wait_for(Duration::from_secs(30), "the operator's /readyz", || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
        if let Err(e) = ready {
            panic!("{e}\noperator log:\n{}", self.log_tail());
        }
    }

    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        reqwest::get(&url)
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics body")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL, as when a node dies: no graceful release of anything.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// Runs a command (kubectl, helm) off the async workers, so the in-process simulator keeps answering.
pub async fn output(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("command task")
        .expect("command runs")
}

/// Reads a seed fixture (the documented example responses).
pub fn seed(name: &str) -> serde_json::Value {
    let path = repo_root()
        .join("tests/fixtures/seeds")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON")
}

pub fn condition<'a>(
    status: &'a CloudJobStatus,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

pub fn condition_is(status: &CloudJobStatus, type_: &str, value: &str, reason: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == value && c.reason == reason)
}

//! The end-to-end tests' environment: a control plane with the CRD installed, the jobs API simulator in
//! process, CloudJobs pointing at it, and the real operator binary. Its methods panic with a message, as
//! test code does.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::Output,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use cloudjob_operator::crd::{CloudJob, CloudJobStatus, RECONCILE_REQUESTED_ANNOTATION};
use cloudjob_sim::{CreatedJob, JobSpec, SimConfig, Simulator};
use cloudjob_testenv::ControlPlane;
use futures::TryStreamExt as _;
use k8s_openapi::{
    api::{core::v1::Namespace, core::v1::Secret, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;

use crate::{ObjectWatch, Operator, ProcessOptions};

pub const AK: &str = "sim-ak";
pub const SK: &str = "sim-sk";
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// The longest wait for a status.
pub const WAIT: Duration = Duration::from_secs(90);

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
        crate::install_crd(&cp).await.expect("CRD installed");
        let sim = Simulator::start(sim_config)
            .await
            .expect("simulator starts");
        Env {
            client: cp.client(),
            cp,
            sim,
        }
    }

    /// The start of most tests: an environment, the operator as a child process (`args` after `run`) and
    /// a namespace with its credentials Secret (see [`Env::namespace`]).
    pub async fn with_operator(args: &[&str], namespace: &str) -> (Env, Operator, String) {
        let env = Env::start().await;
        let operator = env.operator(args).await;
        let namespace = env.namespace(namespace).await;
        (env, operator, namespace)
    }

    /// The operator binary as a child process, with the admin kubeconfig and `args` after `run`.
    pub async fn operator(&self, args: &[&str]) -> Operator {
        self.operator_with_kubeconfig(self.cp.kubeconfig_path(), args)
            .await
    }

    pub async fn operator_with_kubeconfig(&self, kubeconfig: &Path, args: &[&str]) -> Operator {
        Operator::process(ProcessOptions::new(operator_binary(), kubeconfig).args(args))
            .await
            .expect("the operator starts")
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

    /// A job in the simulator.
    pub fn job(&self, spec: JobSpec) -> CreatedJob {
        self.sim.create_job(spec).expect("job")
    }

    /// A watch of one CloudJob (it need not exist yet): every status write from now on.
    pub async fn watch(&self, namespace: &str, name: &str) -> ObjectWatch<CloudJob> {
        ObjectWatch::start(self.cloudjobs(namespace), name)
            .await
            .expect("watch started")
    }

    /// Watches the CloudJob until its status satisfies `done`, and returns that status.
    pub async fn wait_status(
        &self,
        operator: &Operator,
        namespace: &str,
        name: &str,
        what: &str,
        done: impl Fn(&CloudJobStatus) -> bool,
    ) -> CloudJobStatus {
        let mut watch = self.watch(namespace, name).await;
        let found = watch
            .until(WAIT, &format!("{namespace}/{name}: {what}"), |cj| {
                cj.status.clone().filter(|s| done(s))
            })
            .await;
        found.unwrap_or_else(|e| panic!("{e:#}\noperator log tail:\n{}", operator.log_tail()))
    }

    /// Watches all the namespace's CloudJobs until `done` holds for their statuses by name (a CloudJob
    /// with no status yet has the default one), and returns those statuses. `done` is asked once before
    /// anything is seen, then after every write the watch reports. Panics after `timeout`, naming `what`,
    /// with the phases seen and the operator's log.
    pub async fn wait_statuses(
        &self,
        operator: &Operator,
        namespace: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&HashMap<String, CloudJobStatus>) -> bool,
    ) -> HashMap<String, CloudJobStatus> {
        let api = self.cloudjobs(namespace);
        let mut statuses: HashMap<String, CloudJobStatus> = HashMap::new();
        let wait = async {
            let mut stream =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while !done(&statuses) {
                let Some(cj) = stream.try_next().await.expect("watch") else {
                    break;
                };
                statuses.insert(
                    cj.metadata.name.clone().unwrap_or_default(),
                    cj.status.clone().unwrap_or_default(),
                );
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            let mut phases: BTreeMap<String, usize> = BTreeMap::new();
            for status in statuses.values() {
                *phases
                    .entry(status.phase.map_or("none".into(), |p| format!("{p:?}")))
                    .or_default() += 1;
            }
            panic!(
                "{namespace}: not {what} after {timeout:?}; phases of the {} CloudJobs seen: \
                 {phases:?}\noperator warnings:\n{}\noperator log tail:\n{}",
                statuses.len(),
                operator.log_warnings(),
                operator.log_tail()
            );
        }
        statuses
    }

    /// Asks the operator to reconcile the CloudJob (the `cloudjob.io/reconcile-requested-at` annotation)
    /// and watches until `status.lastHandledReconcileAt` echoes the request: from then on, whatever that
    /// reconcile did (a poll, a write) has happened.
    pub async fn reconcile_and_wait(&self, operator: &Operator, namespace: &str, name: &str) {
        static REQUESTS: AtomicU64 = AtomicU64::new(0);
        let request = format!(
            "test-{}-{}",
            std::process::id(),
            REQUESTS.fetch_add(1, Ordering::Relaxed)
        );
        let patch = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_ANNOTATION: request}}});
        self.cloudjobs(namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("reconcile requested");
        self.wait_status(
            operator,
            namespace,
            name,
            "the reconcile request handled",
            |s| s.last_handled_reconcile_at.as_deref() == Some(request.as_str()),
        )
        .await;
    }

    /// `kubectl apply -n NAMESPACE -f MANIFEST` with the real kubectl: whether it was accepted, and
    /// everything kubectl printed (the API server's refusal, naming the field, when it was not).
    pub async fn kubectl_apply(
        &self,
        namespace: &str,
        manifest: &serde_json::Value,
    ) -> (bool, String) {
        static MANIFESTS: AtomicU64 = AtomicU64::new(0);
        let n = MANIFESTS.fetch_add(1, Ordering::Relaxed);
        let path = self.cp.dir().join(format!("manifest-{n}.json"));
        std::fs::write(&path, serde_json::to_vec(manifest).expect("JSON"))
            .expect("manifest written");
        let mut apply = self.cp.kubectl();
        apply.args(["apply", "-n", namespace, "-f"]).arg(&path);
        let out = output(apply).await;
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// [`Env::kubectl_apply`], asserting that the API server accepted the manifest.
    pub async fn apply_accepted(&self, namespace: &str, manifest: &serde_json::Value, what: &str) {
        let (ok, out) = self.kubectl_apply(namespace, manifest).await;
        assert!(ok, "{what}: should be accepted, kubectl said: {out}");
    }

    /// [`Env::kubectl_apply`], asserting that the API server refused the manifest with a message
    /// containing every one of `needles`.
    pub async fn apply_refused(
        &self,
        namespace: &str,
        manifest: &serde_json::Value,
        what: &str,
        needles: &[&str],
    ) {
        let (ok, out) = self.kubectl_apply(namespace, manifest).await;
        assert!(!ok, "{what}: should be refused, kubectl said: {out}");
        for needle in needles {
            assert!(
                out.contains(needle),
                "{what}: the refusal should contain {needle:?}: {out}"
            );
        }
    }

    /// `kubectl wait -n NAMESPACE OBJECT --for=condition=CONDITION --timeout=60s` with the real kubectl,
    /// asserting that the condition came.
    pub async fn kubectl_wait(&self, namespace: &str, object: &str, condition: &str) {
        let mut wait = self.cp.kubectl();
        wait.args([
            "wait",
            "-n",
            namespace,
            object,
            &format!("--for=condition={condition}"),
            "--timeout=60s",
        ]);
        run_ok(wait, &format!("kubectl wait {object} for {condition}")).await;
    }

    /// GETs of the simulated job `job_id` so far, whatever their outcome.
    pub fn job_requests(&self, job_id: &str) -> u64 {
        self.sim
            .job_stats(job_id)
            .expect("the simulator knows the job")
            .total_requests
    }

    /// Watches the Events regarding `name` until `done` holds for them, and returns them. The operator
    /// publishes an event after the status write it announces, so a test that has just seen a status
    /// waits here for its event instead of reading the events once.
    pub async fn wait_events(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        done: impl Fn(&[Event]) -> bool,
    ) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let regards =
            |event: &Event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name);
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        let watched = tokio::time::timeout(WAIT, async {
            let mut by_name: BTreeMap<String, Event> = BTreeMap::new();
            let mut listed = false;
            // The watcher retries errors with back-off; a lasting one shows as the timeout.
            while let Some(item) = futures::StreamExt::next(&mut stream).await {
                match item {
                    Ok(watcher::Event::Init) => {
                        by_name.clear();
                        listed = false;
                    }
                    Ok(watcher::Event::InitApply(event) | watcher::Event::Apply(event)) => {
                        if regards(&event) {
                            by_name.insert(event.metadata.name.clone().unwrap_or_default(), event);
                        }
                    }
                    Ok(watcher::Event::Delete(event)) => {
                        by_name.remove(event.metadata.name.as_deref().unwrap_or_default());
                    }
                    Ok(watcher::Event::InitDone) => listed = true,
                    Err(_) => {}
                }
                let events: Vec<Event> = by_name.values().cloned().collect();
                if listed && done(&events) {
                    return Some(events);
                }
            }
            None
        })
        .await;
        match watched {
            Ok(Some(events)) => events,
            _ => panic!(
                "{namespace}/{name}: {what} not seen within {WAIT:?}; its events: {:#?}",
                self.events_for(namespace, name).await
            ),
        }
    }

    /// [`Env::wait_events`] until an event with `reason` (and, where given, of `type_`: Normal or
    /// Warning) regards `name`.
    pub async fn wait_event(
        &self,
        namespace: &str,
        name: &str,
        type_: Option<&str>,
        reason: &str,
    ) -> Vec<Event> {
        let what = format!("a {} {reason} event", type_.unwrap_or("(any type)"));
        self.wait_events(namespace, name, &what, |events| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some(reason)
                    && type_.is_none_or(|t| e.type_.as_deref() == Some(t))
            })
        })
        .await
    }

    pub async fn events_for(&self, namespace: &str, name: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        events
            .list(&ListParams::default())
            .await
            .expect("events listed")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    }
}

/// The operator binary cargo built for the running test: test binaries are in `target/PROFILE/deps`
/// (examples in `target/PROFILE/examples`), the package's binaries in `target/PROFILE`.
pub fn operator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/PROFILE/deps");
    profile_dir.join("cloudjob-operator")
}

/// Runs a command (kubectl, helm) off the async workers, so the in-process simulator keeps answering.
pub async fn output(command: std::process::Command) -> Output {
    crate::command::output(command).await.expect("command runs")
}

/// Runs a command (kubectl, helm) like [`output`] and asserts that it succeeds, naming `what` and showing
/// what it printed on stderr.
pub async fn run_ok(command: std::process::Command, what: &str) -> Output {
    let out = output(command).await;
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The ids of the resources in the status's outputs, in order.
pub fn resource_ids(status: &CloudJobStatus) -> Vec<String> {
    let outputs = status.outputs.as_ref().expect("outputs");
    outputs.resources.iter().map(|r| r.id.clone()).collect()
}

pub fn condition<'a>(status: &'a CloudJobStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

pub fn condition_is(status: &CloudJobStatus, type_: &str, value: &str, reason: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == value && c.reason == reason)
}

/// A TCP endpoint on 127.0.0.1 that accepts connections and never answers (a hung cloud endpoint). It
/// stops with the test's runtime.
pub async fn hung_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    format!("http://{address}")
}

/// Lifecycle events (a job seen pending, started, passing a progress milestone, changing task, finishing)
/// that were published more than once for the same CloudJob, as `((name, reason, what), times)`: each
/// happens once in a CloudJob's life, so a repeat means a transition was announced again (for instance
/// computed against a stale cache). Problem warnings are left out: a problem can recur.
pub async fn duplicated_events(
    env: &Env,
    namespace: &str,
) -> Vec<((String, String, String), usize)> {
    const ONCE_IN_A_LIFETIME: [&str; 6] = [
        "Pending",
        "Started",
        "Progress",
        "TaskChanged",
        "Succeeded",
        "JobFailed",
    ];
    let events: Api<Event> = Api::namespaced(env.client.clone(), namespace);
    let events = events
        .list(&ListParams::default())
        .await
        .expect("events listed");
    let mut published: std::collections::HashMap<(String, String, String), usize> =
        std::collections::HashMap::new();
    for event in &events.items {
        let reason = event.reason.clone().unwrap_or_default();
        if !ONCE_IN_A_LIFETIME.contains(&reason.as_str()) {
            continue;
        }
        let name = event
            .regarding
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        let note = event.note.clone().unwrap_or_default();
        // A progress note carries the exact percentage; the milestone it passed is what happens once.
        let what = match note.find("(passed ") {
            Some(at) if reason == "Progress" => note[at..].to_owned(),
            _ => note,
        };
        let times = event
            .series
            .as_ref()
            .map_or(1, |s| usize::try_from(s.count).unwrap_or(1).max(1));
        *published.entry((name, reason, what)).or_default() += times;
    }
    let mut duplicated: Vec<_> = published.into_iter().filter(|(_, n)| *n > 1).collect();
    duplicated.sort();
    duplicated
}

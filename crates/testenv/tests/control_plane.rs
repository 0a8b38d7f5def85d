//! Issue 2's acceptance, against the real pinned binaries: etcd + kube-apiserver started by the harness,
//! driven with the pinned kubectl and helm and with kube-rs clients.
//!
//! Tests that only make sense for processes the harness started (pids, teardown, two control planes)
//! are skipped when `CLOUDJOB_TEST_KUBECONFIG` points them at an existing cluster; the others create
//! uniquely named namespaces so that they can run against a shared cluster too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudjob_testenv::{ControlPlane, EXISTING_KUBECONFIG_ENV, process_is_running, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use tokio::io::AsyncBufReadExt as _;

fn existing_cluster() -> bool {
    std::env::var_os(EXISTING_KUBECONFIG_ENV).is_some_and(|v| !v.is_empty())
}

/// For tests about processes the harness starts itself.
macro_rules! skip_on_existing_cluster {
    () => {
        if existing_cluster() {
            eprintln!(
                "skipped: {EXISTING_KUBECONFIG_ENV} is set, so the harness starts no processes"
            );
            return;
        }
    };
}

/// A name no other test (or earlier run against a shared cluster) uses.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `command` (with `stdin` fed in) and returns (success, stdout, stderr).
fn run(mut command: Command, stdin: &str) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("command finishes");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `command` and returns its stdout, failing the test with its stderr if it fails.
fn run_ok(command: Command) -> String {
    let description = format!("{command:?}");
    let (ok, stdout, stderr) = run(command, "");
    assert!(ok, "{description} failed:\n{stderr}\n{stdout}");
    stdout
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
}

fn is_forbidden(result: Result<impl std::fmt::Debug, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.is_forbidden())
}

#[tokio::test]
async fn control_plane_starts_and_kubectl_readyz_answers_ok() {
    let started = Instant::now();
    let cp = ControlPlane::start().await.expect("control plane starts");
    eprintln!(
        "control plane ready in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let mut readyz = cp.kubectl();
    readyz.args(["get", "--raw", "/readyz"]);
    assert_eq!(run_ok(readyz).trim(), "ok");

    let version = cp.client().apiserver_version().await.expect("version");
    if !existing_cluster() {
        assert_eq!(
            version.git_version, "v1.35.4",
            "the pinned kube-apiserver runs"
        );
        assert!(
            cp.server_url().starts_with("https://127.0.0.1:"),
            "{}",
            cp.server_url()
        );
        // The admin user is cluster-admin through its certificate's organization.
        let mut whoami = cp.kubectl();
        whoami.args(["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"]);
        assert!(run_ok(whoami).contains("system:masters"));
    }
    let namespaces: Api<Namespace> = Api::all(cp.client());
    assert!(namespaces.get_opt("default").await.expect("get").is_some());
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.cloudjob.io
spec:
  group: testenv.cloudjob.io
  scope: Namespaced
  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              minReplicas: { type: integer }
              maxReplicas: { type: integer }
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.maxReplicas"
              message: "minReplicas must not exceed maxReplicas"
"#;

fn widget(namespace: &str, name: &str, min: i64, max: i64) -> String {
    format!(
        "apiVersion: testenv.cloudjob.io/v1\nkind: Widget\nmetadata: {{ name: {name}, namespace: {namespace} }}\n\
         spec: {{ minReplicas: {min}, maxReplicas: {max} }}\n"
    )
}

#[tokio::test]
async fn crd_cel_rule_rejects_a_violating_object_with_the_rules_message() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let namespace = unique("cel");
    create_namespace(&cp.client(), &namespace).await;

    let mut apply = cp.kubectl();
    apply.args(["apply", "-f", "-"]);
    let (ok, _, stderr) = run(apply, WIDGET_CRD);
    assert!(ok, "applying the CRD: {stderr}");
    let mut established = cp.kubectl();
    established.args([
        "wait",
        "--for=condition=Established",
        "crd/widgets.testenv.cloudjob.io",
        "--timeout=30s",
    ]);
    run_ok(established);

    // Right after Established, kubectl's discovery may not list the kind yet; retry only that.
    let valid = widget(&namespace, "fine", 1, 3);
    wait_for(
        Duration::from_secs(20),
        "a valid Widget to be accepted",
        || {
            let mut apply = cp.kubectl();
            apply.args(["apply", "-f", "-"]);
            let (ok, _, stderr) = run(apply, &valid);
            assert!(
                ok || stderr.contains("no matches for kind"),
                "valid Widget rejected: {stderr}"
            );
            std::future::ready(ok.then_some(()))
        },
    )
    .await
    .expect("valid Widget accepted");

    let mut apply = cp.kubectl();
    apply.args(["apply", "-f", "-"]);
    let (ok, _, stderr) = run(apply, &widget(&namespace, "inverted", 5, 2));
    assert!(!ok, "a Widget with minReplicas > maxReplicas was accepted");
    assert!(
        stderr.contains("minReplicas must not exceed maxReplicas"),
        "the rejection names the rule's message: {stderr}"
    );

    let mut get = cp.kubectl();
    get.args(["get", "widgets", "-n", &namespace, "-o", "name"]);
    assert_eq!(run_ok(get).trim(), "widget.testenv.cloudjob.io/fine");
}

#[tokio::test]
async fn service_account_token_is_allowed_and_denied_as_its_role_says() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let client = cp.client();
    let (ns_a, ns_b) = (unique("rbac-a"), unique("rbac-b"));
    create_namespace(&client, &ns_a).await;
    create_namespace(&client, &ns_b).await;

    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns_a.clone()),
        ..ObjectMeta::default()
    };
    let pp = PostParams::default();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns_a)
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta("reader"),
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("create ServiceAccount");
    let role = Role {
        metadata: meta("configmap-reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), &ns_a)
        .create(&pp, &role)
        .await
        .expect("create Role");
    let binding = RoleBinding {
        metadata: meta("reader-reads-configmaps"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "configmap-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some(ns_a.clone()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), &ns_a)
        .create(&pp, &binding)
        .await
        .expect("create RoleBinding");

    let (kubeconfig, sa) = cp
        .service_account_access(&ns_a, "reader")
        .await
        .expect("token for the ServiceAccount");
    let text = std::fs::read_to_string(&kubeconfig).expect("read kubeconfig");
    assert!(text.contains("token:"), "authenticates with the token");
    assert!(
        !text.contains("client-certificate"),
        "and not with a client certificate"
    );

    let lp = ListParams::default();
    Api::<ConfigMap>::namespaced(sa.clone(), &ns_a)
        .list(&lp)
        .await
        .expect("the Role allows listing configmaps in its namespace");
    assert!(
        is_forbidden(
            Api::<ConfigMap>::namespaced(sa.clone(), &ns_b)
                .list(&lp)
                .await
        ),
        "configmaps of another namespace are forbidden"
    );
    assert!(
        is_forbidden(Api::<Secret>::namespaced(sa.clone(), &ns_a).list(&lp).await),
        "secrets are forbidden"
    );

    // The same identity through the pinned kubectl and the written kubeconfig.
    let kubectl = |args: &[&str]| {
        let mut command = Command::new(&cp.binaries().kubectl);
        command.env("KUBECONFIG", &kubeconfig).args(args);
        command
    };
    assert_eq!(
        run_ok(kubectl(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}"
        ])),
        format!("system:serviceaccount:{ns_a}:reader")
    );
    assert_eq!(
        run_ok(kubectl(&["auth", "can-i", "list", "configmaps"])).trim(),
        "yes"
    );
    let (ok, stdout, _) = run(kubectl(&["auth", "can-i", "list", "secrets"]), "");
    assert!(!ok && stdout.trim() == "no", "can-i list secrets: {stdout}");
}

#[tokio::test]
async fn pinned_helm_runs_against_the_control_plane_with_private_homes() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let mut version = cp.helm();
    version.args(["version", "--short"]);
    assert!(
        run_ok(version).starts_with("v3.22.0"),
        "the pinned helm runs"
    );

    // Reaching the cluster proves helm uses the admin kubeconfig.
    let mut list = cp.helm();
    list.args(["list", "--all-namespaces", "--output", "json"]);
    let releases: serde_json::Value =
        serde_json::from_str(&run_ok(list)).expect("helm list prints JSON");
    assert!(releases.is_array(), "{releases}");

    let mut env = cp.helm();
    env.arg("env");
    let env = run_ok(env);
    for var in ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"] {
        let line = env
            .lines()
            .find(|l| l.starts_with(&format!("{var}=")))
            .unwrap_or_else(|| panic!("helm env prints {var}:\n{env}"));
        assert!(
            line.contains(&cp.dir().display().to_string()),
            "{var} lives in the control plane's directory: {line}"
        );
    }
}

fn assert_all_gone(pids: &[u32], dir: &Path) {
    for pid in pids {
        assert!(!process_is_running(*pid), "process {pid} still runs");
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[tokio::test]
async fn drop_stops_every_started_process_and_removes_the_directory() {
    skip_on_existing_cluster!();
    let cp = ControlPlane::start().await.expect("control plane starts");
    let pids = cp.pids();
    let dir = cp.dir().to_path_buf();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver");
    for pid in &pids {
        assert!(
            process_is_running(*pid),
            "process {pid} runs while the control plane lives"
        );
    }
    assert!(dir.join("kubeconfig").is_file());

    let stopping = Instant::now();
    drop(cp);
    eprintln!("teardown took {:.2} s", stopping.elapsed().as_secs_f64());
    assert_all_gone(&pids, &dir);
}

#[tokio::test]
async fn panicking_owner_still_tears_the_control_plane_down() {
    skip_on_existing_cluster!();
    let (tx, rx) = tokio::sync::oneshot::channel::<(Vec<u32>, PathBuf)>();
    let task = tokio::spawn(async move {
        let cp = ControlPlane::start().await.expect("control plane starts");
        tx.send((cp.pids(), cp.dir().to_path_buf()))
            .expect("receiver waits");
        panic!("deliberate panic while holding a control plane");
    });
    let (pids, dir) = rx.await.expect("the task reports its pids");
    let err = task.await.expect_err("the task panicked");
    assert!(err.is_panic());
    assert_eq!(pids.len(), 2);
    assert_all_gone(&pids, &dir);
}

#[tokio::test]
async fn killed_owner_process_leaves_no_process_or_directory_behind() {
    skip_on_existing_cluster!();
    // `cloudjob-testenv run` holds an ordinary (non-detached) control plane, like a test does.
    let mut owner = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloudjob-testenv"))
        .arg("run")
        .env_remove(EXISTING_KUBECONFIG_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cloudjob-testenv run starts");
    let stdout = owner.stdout.take().expect("stdout is piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let (mut kubeconfig, mut pids) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(path) = line.strip_prefix("export KUBECONFIG=") {
                kubeconfig = Some(PathBuf::from(path));
            } else if let Some(list) = line.strip_prefix("# pids: ") {
                pids = Some(
                    list.split_whitespace()
                        .map(|p| p.parse::<u32>().expect("numeric pid"))
                        .collect::<Vec<_>>(),
                );
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(90), read)
        .await
        .expect("`run` reports its control plane");
    let dir = kubeconfig
        .as_deref()
        .and_then(Path::parent)
        .expect("kubeconfig printed")
        .to_path_buf();
    let pids = pids.expect("pids printed");
    assert_eq!(pids.len(), 2);
    for pid in &pids {
        assert!(process_is_running(*pid));
    }

    // SIGKILL: no destructor runs in the owner; only the watchdog can clean up.
    owner.kill().await.expect("kill the owner");
    wait_for(Duration::from_secs(15), "the orphans to be stopped", || {
        let gone = pids.iter().all(|pid| !process_is_running(*pid)) && !dir.exists();
        std::future::ready(gone.then_some(()))
    })
    .await
    .expect("the watchdog stops the processes and removes the directory");
}

#[tokio::test]
async fn two_control_planes_started_concurrently_both_work_and_do_not_clash() {
    skip_on_existing_cluster!();
    let (a, b) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (a, b) = (a.expect("first starts"), b.expect("second starts"));
    assert_ne!(a.server_url(), b.server_url());
    assert_ne!(a.kubeconfig_path(), b.kubeconfig_path());
    assert!(a.pids().iter().all(|pid| !b.pids().contains(pid)));

    create_namespace(&a.client(), "only-in-a").await;
    let in_b: Api<Namespace> = Api::all(b.client());
    assert!(
        in_b.get_opt("only-in-a").await.expect("get").is_none(),
        "separate etcds"
    );
    for cp in [&a, &b] {
        let mut readyz = cp.kubectl();
        readyz.args(["get", "--raw", "/readyz"]);
        assert_eq!(run_ok(readyz).trim(), "ok");
    }

    // Stopping one leaves the other working.
    let mut a = a;
    a.stop();
    assert!(a.pids().is_empty());
    let mut readyz = b.kubectl();
    readyz.args(["get", "--raw", "/readyz"]);
    assert_eq!(run_ok(readyz).trim(), "ok");
}

#[tokio::test]
async fn existing_cluster_mode_uses_the_given_kubeconfig_and_starts_nothing() {
    skip_on_existing_cluster!();
    // The started control plane plays the existing cluster; this is what CLOUDJOB_TEST_KUBECONFIG does.
    let cluster = ControlPlane::start().await.expect("control plane starts");
    let existing = ControlPlane::connect_existing(cluster.kubeconfig_path())
        .await
        .expect("connects to the existing cluster");
    assert!(existing.pids().is_empty(), "starts no process");
    assert_eq!(existing.server_url(), cluster.server_url());
    assert_eq!(existing.kubeconfig_path(), cluster.kubeconfig_path());

    create_namespace(&existing.client(), "made-through-existing").await;
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    assert!(
        namespaces
            .get_opt("made-through-existing")
            .await
            .expect("get")
            .is_some()
    );

    Api::<ServiceAccount>::namespaced(existing.client(), "made-through-existing")
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("robot".into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("create ServiceAccount");
    let (_, robot) = existing
        .service_account_access("made-through-existing", "robot")
        .await
        .expect("token kubeconfig built from the existing kubeconfig's CA");
    assert!(
        is_forbidden(
            Api::<ConfigMap>::namespaced(robot, "made-through-existing")
                .list(&ListParams::default())
                .await
        ),
        "an unbound ServiceAccount may not list configmaps"
    );

    let mut readyz = existing.kubectl();
    readyz.args(["get", "--raw", "/readyz"]);
    assert_eq!(run_ok(readyz).trim(), "ok");

    let existing_dir = existing.dir().to_path_buf();
    drop(existing);
    assert!(
        !existing_dir.exists(),
        "its own temporary directory is removed"
    );
    assert!(
        cluster.kubeconfig_path().is_file(),
        "the cluster's files are not touched"
    );
    cluster
        .client()
        .apiserver_version()
        .await
        .expect("the cluster still runs");
}

#[test]
fn connect_existing_reports_an_unreadable_kubeconfig() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let missing = Path::new("/nonexistent/cloudjob-testenv/kubeconfig");
    let err = runtime
        .block_on(ControlPlane::connect_existing(missing))
        .expect_err("no such file");
    assert!(
        format!("{err:#}").contains("/nonexistent/cloudjob-testenv/kubeconfig"),
        "{err:#}"
    );
}

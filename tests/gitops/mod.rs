//! The GitOps clients the tests run, built from pinned Go modules by `tools/gitops/build.sh` (Helm 4, the
//! kstatus checker, Argo CD's Lua VM and Argo CD's own health-script test), and small wrappers around them.
#![allow(dead_code)] // each test binary uses a different part

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use serde::Deserialize;

pub fn repo_root() -> PathBuf {
    cloudjob_testkit::repo_root().expect("the repository root")
}

/// Paths printed by tools/gitops/build.sh.
#[derive(Debug, Clone)]
pub struct Tools {
    pub helm4: PathBuf,
    pub kstatus: PathBuf,
    pub argocd_lua: PathBuf,
    pub argocd_upstream_test: PathBuf,
}

/// Builds the tools on first use (minutes the first time, then only a cache check) and returns their paths.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let script = repo_root().join("tools/gitops/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("tools/gitops/build.sh runs");
        assert!(out.status.success(), "tools/gitops/build.sh failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| -> PathBuf {
            let path = stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("build.sh printed no {key}=: {stdout}"));
            let path = PathBuf::from(path.trim());
            assert!(path.is_file(), "{} is missing", path.display());
            path
        };
        Tools {
            helm4: get("helm4"),
            kstatus: get("kstatus"),
            argocd_lua: get("argocd_lua"),
            argocd_upstream_test: get("argocd_upstream_test"),
        }
    })
}

/// Runs `program args` with `input` on stdin; returns stdout, panicking with stderr on failure unless
/// `allow_failure`.
fn pipe(program: &Path, args: &[&str], input: &[u8], allow_failure: bool) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("input written");
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() && !allow_failure {
        panic!(
            "{} {args:?} failed: {}\n{stdout}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), stdout)
}

/// One kstatus result, as printed by tools/gitops/kstatus.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KStatus {
    pub name: String,
    pub status: String,
    pub message: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// kstatus (Flux's cli-utils fork, as linked by Helm 4) of one object.
pub fn kstatus(object: &serde_json::Value) -> KStatus {
    let input = serde_json::to_vec(object).expect("JSON");
    let (_, out) = pipe(&tools().kstatus, &[], &input, false);
    let line = out.lines().next().expect("one kstatus line");
    serde_json::from_str(line).expect("kstatus JSON line")
}

/// An Argo CD health status.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct HealthLine {
    health: Option<Health>,
    #[serde(default)]
    error: Option<String>,
}

/// health.lua run on `object` in Argo CD's Lua VM as `argocd-cm` configures it (no useOpenLibs).
pub fn argocd_health_with(script: &Path, object: &serde_json::Value) -> Result<Health, String> {
    let input = serde_json::to_vec(object).expect("JSON");
    let script = script.to_str().expect("UTF-8 path");
    let (_, out) = pipe(&tools().argocd_lua, &["health", script], &input, false);
    let line: HealthLine =
        serde_json::from_str(out.lines().next().expect("one line")).expect("health JSON line");
    match (line.health, line.error) {
        (Some(h), None) => Ok(h),
        (_, Some(e)) => Err(e),
        (None, None) => Err("no health".into()),
    }
}

pub fn health_dir() -> PathBuf {
    repo_root().join("deploy/argocd/cloudjob.io/CloudJob")
}

/// The project's health.lua in Argo CD's Lua VM.
pub fn argocd_health(object: &serde_json::Value) -> Health {
    argocd_health_with(&health_dir().join("health.lua"), object)
        .unwrap_or_else(|e| panic!("health.lua failed in Argo CD's VM: {e}"))
}

/// `argocd-lua test DIR`: every case of DIR/health_test.yaml in Argo CD's VM with argocd-cm's libraries.
pub fn argocd_lua_test(dir: &Path) -> (bool, String) {
    pipe(
        &tools().argocd_lua,
        &["test", dir.to_str().expect("UTF-8 path")],
        b"",
        true,
    )
}

/// Waits, by watching, until the CloudJob satisfies `done`; panics with the last seen object after
/// `timeout`.
pub async fn watch_until(
    api: &kube::Api<cloudjob_operator::crd::CloudJob>,
    name: &str,
    what: &str,
    timeout: std::time::Duration,
    done: impl Fn(&cloudjob_operator::crd::CloudJob) -> bool + Send + 'static,
) -> cloudjob_operator::crd::CloudJob {
    watch_until_or(api, name, what, timeout, done, String::new).await
}

/// [`watch_until`], with `context()` (e.g. the operator's log) added to the panic message.
pub async fn watch_until_or(
    api: &kube::Api<cloudjob_operator::crd::CloudJob>,
    name: &str,
    what: &str,
    timeout: std::time::Duration,
    done: impl Fn(&cloudjob_operator::crd::CloudJob) -> bool + Send + 'static,
    context: impl FnOnce() -> String,
) -> cloudjob_operator::crd::CloudJob {
    let cond = move |o: Option<&cloudjob_operator::crd::CloudJob>| o.is_some_and(&done);
    match tokio::time::timeout(
        timeout,
        kube::runtime::wait::await_condition(api.clone(), name, cond),
    )
    .await
    {
        Ok(Ok(Some(cj))) => cj,
        other => {
            let last = api.get_opt(name).await.ok().flatten();
            panic!(
                "{name}: {what}: {other:?}\nlast seen: {}\n{}",
                serde_json::to_string_pretty(&last).unwrap_or_default(),
                context()
            )
        }
    }
}

/// The CloudJob exactly as the API server returns it (not through the operator's typed struct).
pub async fn raw_cloudjob(client: &kube::Client, namespace: &str, name: &str) -> serde_json::Value {
    let api = raw_api(client, namespace);
    serde_json::to_value(api.get(name).await.expect("CloudJob read")).expect("JSON")
}

pub fn raw_api(client: &kube::Client, namespace: &str) -> kube::Api<kube::api::DynamicObject> {
    let resource = kube::api::ApiResource::erase::<cloudjob_operator::crd::CloudJob>(&());
    kube::Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The `type=status/reason` pairs of the CloudJob's conditions, for reports.
pub fn conditions_summary(object: &serde_json::Value) -> String {
    let Some(conditions) = object
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
    else {
        return "-".into();
    };
    conditions
        .iter()
        .map(|c| {
            format!(
                "{}={}/{}",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

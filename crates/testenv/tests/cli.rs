//! The `cloudjob-testenv` binary as people use it: `up`, `status`, `down`, `build`.

use std::path::PathBuf;
use std::process::{Command, Output};

use cloudjob_testenv::{DetachedState, EXISTING_KUBECONFIG_ENV, process_is_running};

fn testenv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudjob-testenv"))
        .args(args)
        .env_remove(EXISTING_KUBECONFIG_ENV)
        .output()
        .expect("cloudjob-testenv runs")
}

fn stdout_of(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn build_prints_the_four_pinned_binaries() {
    let out = stdout_of(&testenv(&["build"]), "build");
    for name in ["kube-apiserver", "etcd", "kubectl", "helm"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("no {name} line in:\n{out}"));
        let path = PathBuf::from(line.trim_start_matches(&format!("{name}\t")));
        assert!(path.is_file(), "{} exists", path.display());
    }
}

#[test]
fn up_outlives_its_command_and_down_stops_and_removes_it() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("dev-cluster");
    let dir_arg = dir.display().to_string();

    let up = stdout_of(&testenv(&["up", "--dir", &dir_arg]), "up");
    let kubeconfig = up
        .lines()
        .find_map(|l| l.strip_prefix("export KUBECONFIG="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("up prints the export line:\n{up}"));
    assert_eq!(kubeconfig, dir.join("kubeconfig"));

    let state = DetachedState::load(&dir)
        .expect("state readable")
        .expect("up records its state");
    let pids: Vec<u32> = state.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 2);
    // `up` has exited; its processes run on, detached.
    assert!(state.all_running(), "{state:?}");

    let kubectl = cloudjob_testenv::binaries().expect("binaries").kubectl;
    let readyz = Command::new(kubectl)
        .env("KUBECONFIG", &kubeconfig)
        .args(["get", "--raw", "/readyz"])
        .output()
        .expect("kubectl runs");
    assert_eq!(stdout_of(&readyz, "kubectl get --raw /readyz").trim(), "ok");

    let again = stdout_of(&testenv(&["up", "--dir", &dir_arg]), "second up");
    assert!(again.contains(&format!("export KUBECONFIG={}", kubeconfig.display())));
    let same = DetachedState::load(&dir).expect("state").expect("state");
    assert_eq!(
        same, state,
        "a second `up` reuses the running control plane"
    );

    let status = stdout_of(&testenv(&["status", "--dir", &dir_arg]), "status");
    assert!(status.contains("v1.35.4"), "{status}");

    stdout_of(&testenv(&["down", "--dir", &dir_arg]), "down");
    for pid in &pids {
        assert!(!process_is_running(*pid), "process {pid} survived `down`");
    }
    assert!(!dir.exists(), "`down` removes the state");
    assert!(!testenv(&["status", "--dir", &dir_arg]).status.success());
}

#[test]
fn down_refuses_to_delete_a_directory_that_is_not_a_control_plane() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("precious.txt"), "keep me").expect("write");
    let out = testenv(&["down", "--dir", &dir.path().display().to_string()]);
    assert!(!out.status.success());
    assert!(dir.path().join("precious.txt").is_file());
}

//! The Argo CD health check `deploy/argocd/cloudjob.io/CloudJob/health.lua`, run by Argo CD itself: the
//! argo-cd `util/lua` package at the release pinned in `tools/gitops/versions.env` (built by
//! `tools/gitops/build.sh`).
//!
//! - Every case of `health_test.yaml` in Argo CD's VM configured as `argocd-cm` configures it: only the base,
//!   table, package and Argo CD's restricted os libraries (no `string`, no `math`).
//! - Argo CD's own upstream test (`TestLuaHealthScript`, unchanged) on the folder laid out as
//!   `resource_customizations/cloudjob.io/CloudJob/`, so the folder can be sent upstream as it is.
//!
//! The fixtures in `testdata/` are CloudJobs the operator produced in `tests/e2e_gitops.rs` (which rewrites
//! them with `CLOUDJOB_REGENERATE_ARGOCD_TESTDATA=1`).

mod gitops;

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, Result};
use gitops::{Health, argocd_health, argocd_health_with, argocd_lua_test, health_dir, tools};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HealthTest {
    health_status: serde_yaml::Value,
    input_path: String,
}

fn load_tests() -> Result<HealthTests> {
    let path = health_dir().join("health_test.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[test]
fn every_case_of_health_test_yaml_passes_in_argo_cds_vm_with_the_libraries_argocd_cm_opens() {
    let (ok, out) = argocd_lua_test(&health_dir());
    let cases = load_tests().expect("health_test.yaml").tests.len();
    let passed = out.lines().filter(|l| l.contains(r#""pass":true"#)).count();
    assert!(
        ok && passed == cases,
        "{passed} of {cases} cases pass in Argo CD's VM:\n{out}"
    );
}

#[test]
fn argo_cds_own_upstream_health_test_passes_on_the_resource_customizations_folder() {
    let script = gitops::repo_root().join("tools/gitops/argocd-upstream-test.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("-test.v")
        .output()
        .expect("argocd-upstream-test.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "argo-cd's TestLuaHealthScript failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for case in load_tests().expect("health_test.yaml").tests {
        let name = format!(
            "--- PASS: TestLuaHealthScript/cloudjob.io/CloudJob/{}",
            case.input_path
        );
        assert!(
            stdout.contains(&name),
            "upstream test did not run {}:\n{stdout}",
            case.input_path
        );
    }
}

#[test]
fn the_vm_really_lacks_string_and_math_as_in_argocd_cm() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (lib, call) in [("string", "string.upper('x')"), ("math", "math.floor(1.5)")] {
        let script = dir.path().join(format!("{lib}.lua"));
        std::fs::write(
            &script,
            format!(
                "local hs = {{}}\nhs.status = 'Healthy'\nhs.message = tostring({call})\nreturn hs\n"
            ),
        )
        .expect("script written");
        let object = serde_json::json!({"apiVersion": "cloudjob.io/v1alpha1", "kind": "CloudJob",
            "metadata": {"name": "x", "namespace": "n"}});
        let got = argocd_health_with(&script, &object);
        assert!(got.is_err(), "{lib} is open in Argo CD's VM: {got:?}");
    }
    // health.lua itself needs none of them.
    let script = std::fs::read_to_string(health_dir().join("health.lua")).expect("health.lua");
    for lib in [
        "string.", "math.", ":len(", ":sub(", ":find(", ":format(", ":match(",
    ] {
        assert!(!script.contains(lib), "health.lua uses {lib}");
    }
}

#[test]
fn health_test_yaml_covers_every_health_status_and_every_fixture() -> Result<()> {
    let tests = load_tests()?;
    let statuses: BTreeSet<String> = tests
        .tests
        .iter()
        .filter_map(|t| t.health_status.get("status")?.as_str().map(str::to_string))
        .collect();
    for wanted in ["Progressing", "Healthy", "Degraded", "Suspended"] {
        assert!(
            statuses.contains(wanted),
            "no test case expects {wanted}; cases expect {statuses:?}"
        );
    }
    let referenced: BTreeSet<String> = tests.tests.iter().map(|t| t.input_path.clone()).collect();
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(health_dir().join("testdata"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        on_disk.insert(format!("testdata/{name}"));
    }
    let unused: Vec<_> = on_disk.difference(&referenced).collect();
    let missing: Vec<_> = referenced.difference(&on_disk).collect();
    assert!(
        unused.is_empty(),
        "fixtures not used by any test case: {unused:?}"
    );
    assert!(
        missing.is_empty(),
        "test cases whose fixture is missing: {missing:?}"
    );
    Ok(())
}

#[test]
fn a_stalled_condition_beats_a_leftover_ready_only_when_the_generation_is_current() {
    tools();
    // A Stalled=True next to a leftover Ready=True must win: a failed job is never shown as Healthy.
    let object = serde_json::json!({
        "apiVersion": "cloudjob.io/v1alpha1",
        "kind": "CloudJob",
        "metadata": {"name": "j", "namespace": "n", "generation": 3},
        "status": {
            "observedGeneration": 3,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "done"},
                {"type": "Stalled", "status": "True", "reason": "JobNotFound", "message": ""}
            ]
        }
    });
    assert_eq!(
        argocd_health(&object),
        Health {
            status: "Degraded".into(),
            message: "JobNotFound".into()
        },
        "an empty condition message falls back to the reason"
    );
    let mut stale = object.clone();
    stale["metadata"]["generation"] = serde_json::json!(4);
    assert_eq!(
        argocd_health(&stale),
        Health {
            status: "Progressing".into(),
            message: "Waiting for the operator to observe generation 4".into()
        }
    );
    // The CRD's default status (observedGeneration -1) reads as not yet observed.
    let mut unobserved = object.clone();
    unobserved["metadata"]["generation"] = serde_json::json!(1);
    unobserved["status"] = serde_json::json!({"observedGeneration": -1});
    assert_eq!(argocd_health(&unobserved).status, "Progressing");
}

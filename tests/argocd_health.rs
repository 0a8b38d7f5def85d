//! Runs the Argo CD health check `deploy/argocd/cloudjob.io/CloudJob/health.lua` with a real Lua 5.1
//! interpreter (Argo CD's gopher-lua implements Lua 5.1) against every case of its `health_test.yaml`, in Argo
//! CD's own test format: `tests: [{healthStatus: {status, message}, inputPath}]`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use mlua::{Lua, LuaOptions, StdLib, Table, Value};
use serde::Deserialize;

fn health_dir() -> PathBuf {
    cloudjob_testkit::repo_root()
        .expect("repository")
        .join("deploy/argocd/cloudjob.io/CloudJob")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HealthTest {
    health_status: HealthStatus,
    input_path: String,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct HealthStatus {
    status: String,
    message: String,
}

fn load_tests() -> Result<HealthTests> {
    let path = health_dir().join("health_test.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Converts a JSON value into a Lua value the way Argo CD hands objects to health.lua: objects and arrays become
/// tables (arrays indexed from 1), numbers become Lua numbers, null becomes nil.
fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                table.set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        serde_json::Value::Object(fields) => {
            let table = lua.create_table()?;
            for (key, field) in fields {
                table.set(key.as_str(), to_lua(lua, field)?)?;
            }
            Value::Table(table)
        }
    })
}

/// Evaluates health.lua on one object in a fresh interpreter with only the libraries Argo CD opens for
/// health checks (base, table, string, math: no io or os). Returns the `status` and `message` of the table it
/// returns.
fn run_lua(
    script: &str,
    object: &serde_json::Value,
) -> mlua::Result<(Option<String>, Option<String>)> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )?;
    lua.globals().set("obj", to_lua(&lua, object)?)?;
    let hs: Table = lua.load(script).set_name("health.lua").eval()?;
    Ok((hs.get("status")?, hs.get("message")?))
}

fn evaluate(script: &str, object: &serde_json::Value) -> Result<HealthStatus> {
    // mlua's error is not Send + Sync (no "send" feature), so it is rendered into an anyhow error here.
    let (status, message) =
        run_lua(script, object).map_err(|e| anyhow!("health.lua failed: {e}"))?;
    Ok(HealthStatus {
        status: status.context("health.lua returned no status")?,
        message: message.unwrap_or_default(),
    })
}

#[test]
fn health_lua_gives_the_expected_status_and_message_for_every_case_in_health_test_yaml()
-> Result<()> {
    let dir = health_dir();
    let script = std::fs::read_to_string(dir.join("health.lua")).context("reading health.lua")?;
    let tests = load_tests()?;
    assert!(
        !tests.tests.is_empty(),
        "health_test.yaml has no test cases"
    );

    let mut failures = Vec::new();
    for case in &tests.tests {
        let path = dir.join(&case.input_path);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let object: serde_json::Value =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let got = evaluate(&script, &object)
            .with_context(|| format!("evaluating {}", case.input_path))?;
        if got != case.health_status {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                case.input_path, case.health_status, got
            ));
        }
    }
    if !failures.is_empty() {
        bail!(
            "health.lua disagrees with health_test.yaml:\n{}",
            failures.join("\n")
        );
    }
    Ok(())
}

#[test]
fn health_test_yaml_covers_every_health_status_and_every_fixture() -> Result<()> {
    let tests = load_tests()?;
    let statuses: BTreeSet<&str> = tests
        .tests
        .iter()
        .map(|t| t.health_status.status.as_str())
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
fn health_lua_reports_degraded_over_a_stale_ready_only_when_the_generation_is_current() -> Result<()>
{
    // A Stalled=True next to a leftover Ready=True must win: a failed job is never shown as Healthy.
    let script = std::fs::read_to_string(health_dir().join("health.lua"))?;
    let object = serde_json::json!({
        "metadata": {"name": "j", "generation": 3},
        "status": {
            "observedGeneration": 3,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "done"},
                {"type": "Stalled", "status": "True", "reason": "CredentialsRejected", "message": ""}
            ]
        }
    });
    let got = evaluate(&script, &object)?;
    assert_eq!(
        got,
        HealthStatus {
            status: "Degraded".into(),
            message: "CredentialsRejected".into()
        },
        "an empty condition message falls back to the reason"
    );

    let mut stale = object.clone();
    stale["metadata"]["generation"] = serde_json::json!(4);
    let got = evaluate(&script, &stale)?;
    assert_eq!(got.status, "Progressing");
    assert_eq!(
        got.message,
        "Waiting for the operator to observe generation 4"
    );
    Ok(())
}

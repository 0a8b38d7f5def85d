//! The pinned kubectl, shown as a user would type it.

use anyhow::bail;
use cloudjob_testenv::ControlPlane;

use crate::samples::{ACCESS_KEY, SECRET_KEY};

/// Runs kubectl with the control plane's kubeconfig (given explicitly, `KUBECONFIG=...`), off the async
/// workers so that the simulator and the operator keep running.
pub async fn kubectl<S: AsRef<str>>(
    cp: &ControlPlane,
    args: &[S],
    stdin: Option<String>,
) -> anyhow::Result<std::process::Output> {
    let mut command = cp.kubectl();
    command.args(args.iter().map(AsRef::as_ref));
    match stdin {
        Some(text) => cloudjob_testkit::command::output_with_stdin(command, text).await,
        None => cloudjob_testkit::command::output(command).await,
    }
}

/// Prints `$ kubectl ...` and its output, and returns its stdout; fails if kubectl does.
pub async fn kubectl_show<S: AsRef<str>>(
    cp: &ControlPlane,
    args: &[S],
    stdin: Option<String>,
) -> anyhow::Result<String> {
    let shown: Vec<String> = args.iter().map(|a| shell_quote(a.as_ref())).collect();
    println!("$ kubectl {}", shown.join(" "));
    let out = kubectl(cp, args, stdin).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !stdout.is_empty() && !stdout.ends_with('\n') {
        println!();
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("kubectl {} failed ({})", shown.join(" "), out.status);
    }
    Ok(stdout.into_owned())
}

/// `kubectl create secret generic NAME` with the simulator's keys.
pub fn secret_args(ns: &str, name: &str) -> Vec<String> {
    [
        "create",
        "secret",
        "generic",
        name,
        "-n",
        ns,
        &format!("--from-literal=accessKey={ACCESS_KEY}"),
        &format!("--from-literal=secretKey={SECRET_KEY}"),
    ]
    .map(String::from)
    .to_vec()
}

fn shell_quote(arg: &str) -> String {
    let plain = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c));
    if plain && !arg.is_empty() {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

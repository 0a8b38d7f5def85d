//! Running a command (kubectl, helm, cargo) to completion. The async forms run it on tokio's blocking
//! pool, so that the async workers keep serving whatever else runs in the process (the simulator, an
//! operator in process); the `_blocking` forms are for synchronous tests.

use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, bail};

/// Runs `command` and returns its output whatever its exit status; fails only when it cannot run.
pub async fn output(command: Command) -> anyhow::Result<Output> {
    off_workers(move || run(command, None)).await
}

/// Like [`output`], with `stdin` written to the command's standard input.
pub async fn output_with_stdin(command: Command, stdin: String) -> anyhow::Result<Output> {
    off_workers(move || run(command, Some(stdin))).await
}

/// Runs `command` and returns its stdout; fails, with both outputs, unless it exits successfully.
pub async fn stdout(command: Command) -> anyhow::Result<String> {
    off_workers(move || stdout_blocking(command)).await
}

/// [`output`] for synchronous callers.
pub fn output_blocking(command: Command) -> anyhow::Result<Output> {
    run(command, None)
}

/// [`stdout`] for synchronous callers.
pub fn stdout_blocking(command: Command) -> anyhow::Result<String> {
    let description = describe(&command);
    let output = run(command, None)?;
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

/// `program arg arg ...`, for messages.
fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn off_workers<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("the command's task failed")?
}

fn run(mut command: Command, stdin: Option<String>) -> anyhow::Result<Output> {
    let description = describe(&command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {description}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .with_context(|| format!("writing the standard input of {description}"))?;
    }
    child
        .wait_with_output()
        .with_context(|| format!("waiting for {description}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stdout_fails_with_both_outputs_unless_the_command_succeeds() {
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo out"]);
        assert_eq!(stdout(ok).await.expect("succeeds"), "out\n");
        let mut bad = Command::new("sh");
        bad.args(["-c", "echo out; echo err >&2; exit 3"]);
        let err = stdout(bad).await.expect_err("fails").to_string();
        assert!(
            err.contains("sh -c") && err.contains("out") && err.contains("err"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn stdin_reaches_the_command() {
        let output = output_with_stdin(Command::new("cat"), "piped".into())
            .await
            .expect("runs");
        assert_eq!(output.stdout, b"piped");
    }
}

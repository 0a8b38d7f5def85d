//! The demo: `cargo run --release --example demo` (see docs/demo.md).
//!
//! Starts a real local control plane (etcd + kube-apiserver), the jobs API simulator and the operator (in
//! this process: `cloudjob_operator::run`, the real controller code), creates sample CloudJobs with the
//! real kubectl, and shows `kubectl get cloudjobs -o wide` live until every job has finished; then
//! `kubectl wait`, the produced ids and the events. `--keep` leaves everything running until Ctrl-C.
//!
//! Modules: [`samples`] (the CloudJobs and their cloud jobs), [`run`] (the steps), [`live`] (the live
//! view), [`kubectl`] (running and showing kubectl).

mod kubectl;
mod live;
mod run;
mod samples;

use std::{
    collections::BTreeMap, io::IsTerminal as _, path::PathBuf, process::ExitCode, time::Duration,
};

use anyhow::{Context as _, bail};
use cloudjob_operator::crd::Phase;

#[derive(Debug, Clone)]
struct Options {
    keep: bool,
    /// Longest wait for every CloudJob to finish.
    timeout: Duration,
    namespace: String,
    /// Print `kubectl get cloudjobs` this often.
    tick: Duration,
    /// Redraw in place (stdout is a terminal) rather than print one table after another.
    clear: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keep: false,
            timeout: Duration::from_secs(120),
            namespace: "demo".into(),
            tick: Duration::from_secs(2),
            clear: std::io::stdout().is_terminal(),
        }
    }
}

const USAGE: &str = "\
usage: cargo run --release --example demo -- [--keep] [--timeout SECONDS]

  --keep             keep the control plane, the simulator and the operator running after the demo
                     (prints `export KUBECONFIG=...`), until Ctrl-C
  --timeout SECONDS  give up when the CloudJobs have not all finished after this long (default 120)";

/// `Ok(None)` for `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep" => options.keep = true,
            "--timeout" => {
                let value = args.next().context("--timeout needs a number of seconds")?;
                let secs: u64 = value
                    .parse()
                    .with_context(|| format!("--timeout {value:?} is not a number of seconds"))?;
                options.timeout = Duration::from_secs(secs.max(1));
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(run::demo(&options)));
    match outcome {
        Ok(report) if report.as_expected() => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!(
                "\nunexpected outcome: {:?}\n(expected {:?}; Ready reasons seen: {:?}; kubectl wait met: {}); \
                 the operator's log: {}",
                report.phases,
                report.expected,
                report.reasons,
                report.waits_met,
                report.log.display()
            );
            ExitCode::FAILURE
        }
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("\ninterrupted; everything is stopped");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("\ndemo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// What the demo saw.
#[derive(Debug)]
struct Report {
    /// Final phase of each CloudJob.
    phases: BTreeMap<String, Phase>,
    expected: BTreeMap<String, Phase>,
    /// The Ready condition reasons the watch saw per CloudJob, in order.
    reasons: live::Reasons,
    /// Whether both `kubectl wait`s said `condition met`.
    waits_met: bool,
    /// The operator's log.
    log: PathBuf,
}

impl Report {
    fn as_expected(&self) -> bool {
        self.phases == self.expected && self.waits_met
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the whole demo, non-interactively, in this process (the operator runs in process; kubectl
    /// gets the control plane's kubeconfig explicitly).
    #[tokio::test(flavor = "multi_thread")]
    async fn demo_runs_to_completion() {
        let options = Options {
            timeout: Duration::from_secs(75),
            clear: false,
            // Against an existing cluster (CLOUDJOB_TEST_KUBECONFIG), a namespace of its own.
            namespace: if std::env::var_os(cloudjob_testenv::EXISTING_KUBECONFIG_ENV).is_some() {
                format!("demo-{}", std::process::id())
            } else {
                "demo".into()
            },
            ..Options::default()
        };
        let report = run::demo(&options)
            .await
            .expect("the demo runs to completion");
        assert_eq!(report.phases, report.expected, "final phases");
        let seen = |name: &str, reason: &str| {
            report
                .reasons
                .get(name)
                .is_some_and(|reasons| reasons.iter().any(|r| r == reason))
        };
        assert!(
            seen("volume-late-credentials", "SecretNotFound"),
            "SecretNotFound not seen: {:?}",
            report.reasons
        );
        assert!(
            seen("image-throttled", "Throttled"),
            "Throttled not seen: {:?}",
            report.reasons
        );
        assert!(
            seen("import-broken-image", "JobFailed"),
            "{:?}",
            report.reasons
        );
        assert!(
            report.waits_met,
            "kubectl wait did not report `condition met`"
        );
    }

    #[test]
    fn arguments() {
        let parse = |args: &[&str]| parse_args(args.iter().map(|s| s.to_string()));
        let options = parse(&["--keep", "--timeout", "30"])
            .expect("parses")
            .expect("not help");
        assert!(options.keep);
        assert_eq!(options.timeout, Duration::from_secs(30));
        assert!(parse(&["--help"]).expect("parses").is_none());
        assert!(parse(&["--timeout", "soon"]).is_err());
        assert!(parse(&["--nope"]).is_err());
    }

    #[test]
    fn manifests_quote_nothing_and_name_the_secret() {
        for sample in samples::samples() {
            let yaml = samples::manifest(&sample, "demo", "0123abcd");
            let value: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
            assert_eq!(value["metadata"]["name"].as_str(), Some(sample.name));
            assert_eq!(
                value["spec"]["credentialsSecretRef"]["name"].as_str(),
                Some(sample.secret)
            );
            assert!(value["spec"].get("endpoint").is_none());
        }
    }
}

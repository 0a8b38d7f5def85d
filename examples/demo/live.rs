//! The live view: `kubectl get cloudjobs -o wide` every tick until every CloudJob has finished, with the
//! late Secret created on the way. What each CloudJob went through comes from a watch, which sees every
//! status write, so a reason that lasts a moment is not missed between two ticks.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::bail;
use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_testenv::ControlPlane;
use futures::StreamExt as _;
use kube::{
    Api, ResourceExt as _,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::signal::unix::Signal;

use crate::{
    Interrupted, Options,
    kubectl::{kubectl, secret_args},
    samples::{LATE_SECRET, LATE_SECRET_AFTER, Sample},
    secs, step,
};

/// Final phase of each CloudJob.
pub type Phases = BTreeMap<String, Phase>;
/// The Ready condition reasons seen per CloudJob, in order.
pub type Reasons = BTreeMap<String, Vec<String>>;

/// What the watch has seen so far.
#[derive(Clone, Debug, Default)]
struct Seen {
    phases: Phases,
    reasons: Reasons,
}

impl Seen {
    fn record(&mut self, cj: &CloudJob) {
        let Some(status) = &cj.status else { return };
        let name = cj.name_any();
        if let Some(ready) = status.conditions.iter().find(|c| c.type_ == "Ready") {
            let seen = self.reasons.entry(name.clone()).or_default();
            if seen.last() != Some(&ready.reason) {
                seen.push(ready.reason.clone());
            }
        }
        if let Some(phase) = status.phase {
            self.phases.insert(name, phase);
        }
    }

    fn all_finished(&self, samples: &[Sample]) -> bool {
        samples.iter().all(|s| {
            self.phases
                .get(s.name)
                .is_some_and(|p| matches!(p, Phase::Succeeded | Phase::Failed))
        })
    }
}

/// Shows the table every tick until every CloudJob is Succeeded or Failed (and the late Secret exists).
pub async fn show_until_finished(
    options: &Options,
    cp: &ControlPlane,
    samples: &[Sample],
    log: &Path,
    interrupt: &mut Signal,
) -> anyhow::Result<(Phases, Reasons)> {
    let ns = options.namespace.as_str();
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(Seen::default());
    let api: Api<CloudJob> = Api::namespaced(cp.client(), ns);
    let watch = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(cj) | watcher::Event::InitApply(cj)) => {
                    seen_tx.send_modify(|seen| seen.record(&cj));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("watching CloudJobs: {e}"),
            }
        }
    });
    let started = Instant::now();
    let outcome = show(options, cp, samples, log, interrupt, &mut seen_rx, started).await;
    watch.abort();
    outcome
}

async fn show(
    options: &Options,
    cp: &ControlPlane,
    samples: &[Sample],
    log: &Path,
    interrupt: &mut Signal,
    seen: &mut tokio::sync::watch::Receiver<Seen>,
    started: Instant,
) -> anyhow::Result<(Phases, Reasons)> {
    let ns = options.namespace.as_str();
    let mut next_frame = started;
    let mut actions: Vec<String> = Vec::new();
    let mut secret_created = false;
    if !options.clear {
        step(&format!(
            "Watching: kubectl get cloudjobs -n {ns} -o wide, every {} s until all have finished",
            options.tick.as_secs()
        ));
    }
    loop {
        let elapsed = started.elapsed();
        if !secret_created && elapsed >= LATE_SECRET_AFTER {
            let out = kubectl(cp, &secret_args(ns, LATE_SECRET), None).await?;
            if !out.status.success() {
                bail!(
                    "creating the Secret {LATE_SECRET}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            secret_created = true;
            let action = format!(
                "[{:>3}s] created the Secret {LATE_SECRET} (kubectl create secret generic {LATE_SECRET} ...): \
                 volume-late-credentials goes on by itself",
                elapsed.as_secs()
            );
            if !options.clear {
                println!("{action}");
            }
            actions.push(action);
        }

        let finished = seen.borrow_and_update().all_finished(samples);
        if finished || Instant::now() >= next_frame {
            next_frame += options.tick;
            print_frame(options, cp, log, started, &actions).await?;
        }
        if finished && secret_created {
            println!(
                "\nEvery CloudJob has finished, {} after they were created.",
                secs(started.elapsed())
            );
            let seen = seen.borrow().clone();
            return Ok((seen.phases, seen.reasons));
        }
        if elapsed > options.timeout {
            let phases = seen.borrow().phases.clone();
            let unfinished: Vec<String> = samples
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        s.name,
                        phases.get(s.name).map_or("no status yet", |p| p.as_str())
                    )
                })
                .collect();
            bail!(
                "timed out: after {} s not every CloudJob has finished: {}. The operator's log: {}",
                options.timeout.as_secs(),
                unfinished.join(", "),
                log.display()
            );
        }
        // Wake for the next frame, the late Secret, the timeout or a status write, whichever comes first.
        let mut wake = next_frame.min(started + options.timeout + Duration::from_millis(1));
        if !secret_created {
            wake = wake.min(started + LATE_SECRET_AFTER);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = seen.changed() => {}
            _ = interrupt.recv() => return Err(Interrupted.into()),
        }
    }
}

async fn print_frame(
    options: &Options,
    cp: &ControlPlane,
    log: &Path,
    started: Instant,
    actions: &[String],
) -> anyhow::Result<()> {
    let ns = options.namespace.as_str();
    let table = kubectl(cp, &["get", "cloudjobs", "-n", ns, "-o", "wide"], None).await?;
    let mut frame = String::new();
    if options.clear {
        frame.push_str("\x1b[H\x1b[2J");
        frame.push_str(&format!(
            "cloudjob-operator demo: live view, refreshed every {} s (operator log: {})\n\n",
            options.tick.as_secs(),
            log.display()
        ));
    }
    frame.push_str(&format!(
        "[{:>3}s] $ kubectl get cloudjobs -n {ns} -o wide\n{}{}",
        started.elapsed().as_secs(),
        String::from_utf8_lossy(&table.stdout),
        String::from_utf8_lossy(&table.stderr),
    ));
    if options.clear && !actions.is_empty() {
        frame.push('\n');
        for action in actions {
            frame.push_str(action);
            frame.push('\n');
        }
    }
    print!("{frame}");
    let _ = std::io::stdout().flush();
    Ok(())
}

//! One benchmark run: N jobs, every requested mode at once on one control plane.
//!
//! The modes run concurrently, each in its own namespace with its own operator and its own simulators.
//! That halves the wall time (the jobs take up to 20 minutes / time scale whatever the mode) and gives both
//! modes the same API server under the same load; the price is that they share the machine's two cores,
//! which is recorded with the results.
//!
//! [`setup`](crate::setup) starts each mode, [`measure`](crate::measure) measures it;
//! [`results`](crate::results) holds what they found.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloudjob_testenv::ControlPlane;
use jiff::Timestamp;

use crate::{
    BenchConfig,
    measure::{measure, restart_check},
    operator::ProcessUsage,
    results::{JobRecordSet, OperatorCounters, RunResult},
    setup::{create_jobs, start_mode},
    workload::{self, MAX_DURATION_SECS, MIN_DURATION_SECS},
};

/// How often progress goes to stderr while the jobs run.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Runs N jobs in every configured mode and measures them. Progress goes to stderr.
pub async fn run_n(cfg: &BenchConfig, n: usize) -> anyhow::Result<(RunResult, Vec<JobRecordSet>)> {
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("cannot create {}", cfg.out.display()))?;
    let plan = workload::plan_for(cfg.workload, n, cfg.seed, cfg.time_scale, cfg.fail_ratio);
    let longest = plan.iter().map(|j| j.duration_secs).fold(0.0, f64::max);
    let shortest = plan
        .iter()
        .map(|j| j.duration_secs)
        .fold(f64::MAX, f64::min);
    eprintln!(
        "[N={n}] starting a control plane; {} policies; {} workload, job durations {shortest:.1}-{longest:.0} s (time scale {})",
        cfg.policies.len(),
        cfg.workload.as_str(),
        cfg.time_scale
    );
    let cp = ControlPlane::start().await?;
    cloudjob_testkit::install_crd(&cp).await?;
    let client = cp.client();

    let mut envs = Vec::new();
    for &policy in &cfg.policies {
        envs.push(start_mode(cfg, &cp, &client, policy, n).await?);
    }

    eprintln!("[N={n}] creating {n} CloudJobs per mode");
    let t0 = Timestamp::now();
    let started = Instant::now();
    create_jobs(cfg, &envs, &plan).await?;
    let create_secs = started.elapsed().as_secs_f64();
    eprintln!("[N={n}] created in {create_secs:.1} s; waiting for all to finish");

    let longest_interval = cfg
        .policies
        .iter()
        .map(|p| p.fixed_interval)
        .max()
        .unwrap_or_default();
    let deadline =
        started + Duration::from_secs_f64(create_secs + longest) + longest_interval + cfg.grace;
    let mut next_report = Instant::now() + PROGRESS_EVERY;
    loop {
        let finished: Vec<usize> = envs.iter().map(|e| *e.finished.borrow()).collect();
        if finished.iter().all(|&f| f >= n) {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "[N={n}] deadline passed with {finished:?} of {n} finished; measuring anyway"
            );
            break;
        }
        if Instant::now() >= next_report {
            next_report += PROGRESS_EVERY;
            let status: Vec<String> = envs
                .iter()
                .zip(&finished)
                .map(|(e, f)| format!("{} {f}/{n}", e.name))
                .collect();
            eprintln!(
                "[N={n}] {:.0} s: {}",
                started.elapsed().as_secs_f64(),
                status.join(", ")
            );
        }
        // Wake when a watch has seen another job finish, for the next progress line, or at the deadline.
        let more_finished =
            futures::future::select_all(envs.iter_mut().map(|e| Box::pin(e.finished.changed())));
        tokio::select! {
            (changed, _, _) = more_finished => changed.context("a watch of the CloudJobs stopped")?,
            _ = tokio::time::sleep_until(next_report.min(deadline).into()) => {}
        }
    }

    // Usage and the operator's counters now, before the restart replaces the process.
    let mut usage = Vec::new();
    let mut counters = Vec::new();
    for env in &envs {
        let operator = env.operator.as_ref().context("operator not running")?;
        let pid = operator.pid().context("the operator is no process")?;
        usage.push(ProcessUsage::of(pid)?);
        let metrics = operator.metrics().await.unwrap_or_default();
        counters.push(OperatorCounters {
            cloud_requests: metrics.sum("cloudjob_cloud_requests_total", &[]),
            status_patches: metrics.sum("cloudjob_status_patches_total", &[]),
            learned_jobs: metrics.sum("cloudjob_job_type_duration_samples", &[]),
            learned_types: metrics
                .series("cloudjob_job_type_duration_samples", &[])
                .count(),
        });
    }

    eprintln!(
        "[N={n}] restarting the operators; watching {} s for requests to terminal jobs",
        cfg.restart_window.as_secs()
    );
    let restarts = futures::future::try_join_all(
        envs.iter_mut()
            .map(|env| restart_check(cfg, &cp, env, &plan)),
    )
    .await?;

    let mut modes = Vec::new();
    let mut records = Vec::new();
    for ((env, restart), (usage, counters)) in envs
        .iter()
        .zip(restarts)
        .zip(usage.into_iter().zip(counters))
    {
        let (result, jobs) = measure(cfg, env, &plan, t0, restart, usage, counters)?;
        modes.push(result);
        records.push(JobRecordSet {
            mode: env.mode,
            policy: env.name.clone(),
            jobs,
        });
    }

    for env in envs {
        env.watch_task.abort();
        if let Some(operator) = env.operator {
            operator.stop().await?;
        }
    }
    drop(cp);
    Ok((
        RunResult {
            jobs: n,
            time_scale: cfg.time_scale,
            workload: cfg.workload,
            history_per_type: if cfg.policies.iter().any(|p| p.history) {
                cfg.history_per_type
            } else {
                0
            },
            duration_range_secs: match cfg.workload {
                workload::Workload::Blind => (
                    MIN_DURATION_SECS / cfg.time_scale,
                    MAX_DURATION_SECS / cfg.time_scale,
                ),
                workload::Workload::Typed => (shortest, longest),
            },
            failing_jobs: plan.iter().filter(|j| j.fails).count(),
            rate_limit: cfg.rate_limit,
            rate_limit_burst: cfg.rate_limit_burst,
            concurrency: cfg.concurrency,
            fixed_interval_secs: 0.0,
            create_secs,
            modes,
        },
        records,
    ))
}

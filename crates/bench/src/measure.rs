//! Measuring one mode once its jobs are done: the operator's restart check, and the watch's view joined
//! with the simulators' per-job counters.

use std::{collections::BTreeMap, time::SystemTime};

use cloudjob_operator::crd::Phase;
use cloudjob_sim::JobStats;
use cloudjob_testenv::ControlPlane;
use jiff::Timestamp;

use crate::{
    BenchConfig,
    operator::ProcessUsage,
    results::{JobRecord, ModeResult, OperatorCounters, RestartCheck},
    setup::ModeEnv,
    stats::Dist,
    workload::PlannedJob,
};

/// Restarts the operator (SIGTERM, then a new process) and checks that no GET reaches a terminal job for
/// the restart window.
pub async fn restart_check(
    cfg: &BenchConfig,
    cp: &ControlPlane,
    env: &mut ModeEnv,
    plan: &[PlannedJob],
) -> anyhow::Result<RestartCheck> {
    let terminal: Vec<&PlannedJob> = {
        let tracker = env
            .tracker
            .lock()
            .map_err(|_| anyhow::anyhow!("tracker poisoned"))?;
        plan.iter()
            .filter(|j| {
                tracker
                    .jobs
                    .get(&j.name)
                    .is_some_and(|v| v.phase.is_some_and(Phase::is_terminal))
            })
            .collect()
    };
    let requests = |env: &ModeEnv| -> anyhow::Result<u64> {
        let mut sum = 0;
        for job in &terminal {
            sum += env
                .sim(job.kind.service())?
                .job_stats(&job.job_id)
                .map_or(0, |s| s.total_requests);
        }
        Ok(sum)
    };
    let writes = |env: &ModeEnv| -> u64 {
        env.tracker.lock().map_or(0, |t| {
            t.jobs.values().map(|v| u64::from(v.status_writes)).sum()
        })
    };
    let (requests_before, writes_before) = (requests(env)?, writes(env));
    if let Some(operator) = env.operator.take() {
        operator.stop().await?;
    }
    env.start_operator(cfg, cp).await?;
    // The measurement window (`--restart-window-secs`): any GET of a terminal job in it is counted.
    tokio::time::sleep(cfg.restart_window).await;
    Ok(RestartCheck {
        window_secs: cfg.restart_window.as_secs_f64(),
        requests_to_terminal_jobs: requests(env)?.saturating_sub(requests_before),
        status_writes: writes(env).saturating_sub(writes_before),
    })
}

/// Joins the watch's view with the simulator's per-job counters.
pub fn measure(
    cfg: &BenchConfig,
    env: &ModeEnv,
    plan: &[PlannedJob],
    t0: Timestamp,
    restart: RestartCheck,
    usage: ProcessUsage,
    counters: OperatorCounters,
) -> anyhow::Result<(ModeResult, Vec<JobRecord>)> {
    let tracker = env
        .tracker
        .lock()
        .map_err(|_| anyhow::anyhow!("tracker poisoned"))?;
    let mut records = Vec::with_capacity(plan.len());
    let mut wrong_phase_examples = Vec::new();
    let mut wrong_phase = 0;
    let mut last_seen: Option<Timestamp> = None;
    let mut last_true_end: Option<Timestamp> = None;
    for job in plan {
        let view = tracker.jobs.get(&job.name).cloned().unwrap_or_default();
        let stats: Option<JobStats> = env.sim(job.kind.service())?.job_stats(&job.job_id);
        let expected = if job.fails {
            Phase::Failed
        } else {
            Phase::Succeeded
        };
        if view.phase != Some(expected) {
            wrong_phase += 1;
            if wrong_phase_examples.len() < 20 {
                wrong_phase_examples.push(format!(
                    "{}: {:?} (expected {expected:?})",
                    job.name, view.phase
                ));
            }
        }
        let terminal_at = stats
            .as_ref()
            .and_then(|s| s.terminal_at)
            .and_then(timestamp);
        let after_terminal = stats.as_ref().map_or(0, requests_after_terminal);
        let delay = match (view.finish_seen_at, terminal_at) {
            (Some(seen), Some(end)) => Some(seconds_between(end, seen)),
            _ => None,
        };
        last_seen = last_seen.max(view.finish_seen_at);
        last_true_end = last_true_end.max(terminal_at);
        records.push(JobRecord {
            name: job.name.clone(),
            kind: job.kind.name().to_string(),
            duration_secs: job.duration_secs,
            fails: job.fails,
            phase: view.phase.map(|p| p.as_str().to_string()),
            requests: stats.as_ref().map_or(0, |s| s.total_requests),
            status_writes: view.status_writes,
            distinct_states: view.states.len() as u32,
            writes_after_terminal: view.writes_after_terminal,
            detection_delay_secs: delay,
            requests_after_terminal: after_terminal,
        });
    }
    let jobs_terminal = tracker.finished;
    let all_seen = jobs_terminal >= plan.len();
    let since_t0 = |t: Option<Timestamp>| t.map(|t| seconds_between(t0, t));

    let mut max_requests_per_second = BTreeMap::new();
    for (service, sim) in &env.sims {
        let stats = sim.global_stats();
        let max = stats
            .by_service
            .values()
            .map(|s| s.max_requests_per_second)
            .max()
            .unwrap_or(0);
        max_requests_per_second.insert(service.as_str().to_string(), max);
    }
    let allowed = u64::from(cfg.rate_limit) + u64::from(cfg.rate_limit_burst);
    let result = ModeResult {
        mode: env.mode,
        policy: env.name.clone(),
        fixed_interval_secs: (env.mode == crate::Mode::Fixed)
            .then_some(env.policy.fixed_interval.as_secs_f64()),
        jobs: plan.len(),
        jobs_terminal,
        wrong_phase,
        wrong_phase_examples,
        time_to_all_terminal_secs: if all_seen { since_t0(last_seen) } else { None },
        last_true_end_secs: since_t0(last_true_end),
        requests: Dist::of(records.iter().map(|r| r.requests as f64)),
        requests_total: records.iter().map(|r| r.requests).sum(),
        jobs_without_requests: records.iter().filter(|r| r.requests == 0).count(),
        status_writes: Dist::of(records.iter().map(|r| f64::from(r.status_writes))),
        distinct_states: Dist::of(records.iter().map(|r| f64::from(r.distinct_states))),
        jobs_over_write_budget: records
            .iter()
            .filter(|r| r.status_writes > r.distinct_states + 1)
            .count(),
        writes_after_terminal: records
            .iter()
            .map(|r| u64::from(r.writes_after_terminal))
            .sum(),
        detection_delay_secs: Dist::of(records.iter().filter_map(|r| r.detection_delay_secs)),
        usage,
        rate_limit_held: max_requests_per_second.values().all(|&m| m <= allowed),
        max_requests_per_second,
        requests_after_terminal: records.iter().map(|r| r.requests_after_terminal).sum(),
        jobs_with_requests_after_terminal: records
            .iter()
            .filter(|r| r.requests_after_terminal > 0)
            .count(),
        restart,
        operator_cloud_requests: counters.cloud_requests,
        operator_status_patches: counters.status_patches,
        learned_jobs: counters.learned_jobs,
        learned_types: counters.learned_types,
        watch_listings: tracker.listings,
        watch_errors: tracker.errors,
    };
    Ok((result, records))
}

/// Requests to a job after the first response that carried its terminal status. They are the newest
/// requests, so the simulator's log of the last 100 holds them all (were there more, this would be a
/// lower bound, and still not 0).
fn requests_after_terminal(stats: &JobStats) -> u64 {
    let Some(first) = stats.first_terminal_served_at else {
        return 0;
    };
    stats
        .recent_requests
        .iter()
        .filter(|r| r.at > first)
        .count() as u64
}

/// The simulator's time as a [`Timestamp`]; it takes any time that converts to `SystemTime`, so it
/// serves the simulator's clock type whichever it is.
fn timestamp(time: impl Into<SystemTime>) -> Option<Timestamp> {
    Timestamp::try_from(time.into()).ok()
}

/// Seconds from `from` to `to` (negative if `to` is earlier).
fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

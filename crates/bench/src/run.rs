//! One benchmark run: N jobs, every requested mode at once on one control plane.
//!
//! The modes run concurrently, each in its own namespace with its own operator and its own simulators.
//! That halves the wall time (the jobs take up to 20 minutes / time scale whatever the mode) and gives both
//! modes the same API server under the same load; the price is that they share the machine's two cores,
//! which is recorded with the results.
//!
//! Each mode has one simulator per service (IMS, EVS, ECS): one endpoint each, as in the real clouds, so
//! the operator's per-endpoint rate limit and the simulator's per-second request count are about the
//! same thing. CloudJobs therefore carry `spec.endpoint` instead of relying on `--endpoint-template`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use cloudjob_operator::crd::{CloudJob, Phase};
use cloudjob_sim::{JobStats, Service, SimConfig, Simulator};
use cloudjob_testenv::{ControlPlane, wait_for};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, Client, api::PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    BenchConfig, Mode,
    operator::{OperatorProcess, ProcessUsage, metric_sum},
    report::JobRecord,
    stats::Dist,
    watch::{Tracker, watch},
    workload::{self, MAX_DURATION_SECS, MIN_DURATION_SECS, PROJECT, PlannedJob},
};

const AK: &str = "sim-ak";
const SK: &str = "sim-sk";

/// The results of one N.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub jobs: usize,
    pub time_scale: f64,
    /// Real job durations after scaling: [shortest, longest] possible.
    pub duration_range_secs: (f64, f64),
    pub failing_jobs: usize,
    pub rate_limit: u32,
    pub rate_limit_burst: u32,
    pub concurrency: u16,
    pub fixed_interval_secs: f64,
    /// Time to create all CloudJobs (and simulated jobs) of all modes.
    pub create_secs: f64,
    pub modes: Vec<ModeResult>,
}

/// The results of one mode within a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModeResult {
    pub mode: Mode,
    pub jobs: usize,
    /// CloudJobs whose `finishTime` the watch saw before the deadline.
    pub jobs_terminal: usize,
    /// CloudJobs that ended in another phase than planned (Failed for the failing jobs, else Succeeded).
    pub wrong_phase: usize,
    /// Up to 20 of them, `name: phase (expected ...)`.
    pub wrong_phase_examples: Vec<String>,
    /// From the first CloudJob's creation until the watch had seen every `finishTime`.
    pub time_to_all_terminal_secs: Option<f64>,
    /// From the first CloudJob's creation until the last simulated job actually ended (the lower bound).
    pub last_true_end_secs: Option<f64>,
    /// Cloud GETs per job, as the simulator counted them.
    pub requests: Dist,
    pub requests_total: u64,
    pub jobs_without_requests: usize,
    /// Status writes per job, counted through the watch.
    pub status_writes: Dist,
    /// Distinct user-visible states per job (see `watch::StateKey`).
    pub distinct_states: Dist,
    /// Jobs with more status writes than distinct states + 1.
    pub jobs_over_write_budget: usize,
    /// Status writes seen after a job's first terminal status.
    pub writes_after_terminal: u64,
    /// Watch-seen `finishTime` minus the simulator's true end, seconds.
    pub detection_delay_secs: Dist,
    /// Operator peak RSS and CPU seconds, read just after all jobs were terminal (before the restart).
    pub usage: ProcessUsage,
    /// Highest requests within one wall-clock second, per endpoint (service).
    pub max_requests_per_second: BTreeMap<String, u64>,
    /// Whether every endpoint stayed within rate + burst requests per wall-clock second (a token bucket
    /// allows the burst on top of one second's rate).
    pub rate_limit_held: bool,
    /// Requests that reached a job after its terminal status had been served once (whole run, restart
    /// included).
    pub requests_after_terminal: u64,
    pub jobs_with_requests_after_terminal: usize,
    pub restart: RestartCheck,
    /// The operator's own counters (cross-check of the simulator and the watch), before the restart.
    pub operator_cloud_requests: Option<f64>,
    pub operator_status_patches: Option<f64>,
    /// Watch listings (more than one: a relist, and status writes in between may be uncounted).
    pub watch_listings: u32,
    pub watch_errors: u32,
}

/// The operator restarted once all jobs were terminal: what reached the terminal jobs afterwards.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RestartCheck {
    pub window_secs: f64,
    /// GETs of terminal jobs after the restart began (must be 0).
    pub requests_to_terminal_jobs: u64,
    /// Status writes seen after the restart began.
    pub status_writes: u64,
}

/// One mode's moving parts.
struct ModeEnv {
    mode: Mode,
    sims: HashMap<Service, Simulator>,
    api: Api<CloudJob>,
    tracker: Arc<Mutex<Tracker>>,
    watch_task: tokio::task::JoinHandle<()>,
    operator: Option<OperatorProcess>,
    args: Vec<String>,
}

impl ModeEnv {
    fn sim(&self, service: Service) -> anyhow::Result<&Simulator> {
        self.sims
            .get(&service)
            .with_context(|| format!("no simulator for {service}"))
    }
}

/// Runs N jobs in every configured mode and measures them. Progress goes to stderr.
pub async fn run_n(cfg: &BenchConfig, n: usize) -> anyhow::Result<(RunResult, Vec<JobRecordSet>)> {
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("cannot create {}", cfg.out.display()))?;
    let plan = workload::plan(n, cfg.seed, cfg.time_scale, cfg.fail_ratio);
    let longest = plan.iter().map(|j| j.duration_secs).fold(0.0, f64::max);
    eprintln!(
        "[N={n}] starting a control plane; {} modes; job durations {:.1}-{:.0} s (time scale {})",
        cfg.modes.len(),
        MIN_DURATION_SECS / cfg.time_scale,
        MAX_DURATION_SECS / cfg.time_scale,
        cfg.time_scale
    );
    let cp = ControlPlane::start().await?;
    install_crd(&cp).await?;
    let client = cp.client();

    let mut envs = Vec::new();
    for &mode in &cfg.modes {
        envs.push(start_mode(cfg, &cp, &client, mode, n).await?);
    }

    eprintln!("[N={n}] creating {n} CloudJobs per mode");
    let t0 = Utc::now();
    let started = Instant::now();
    create_jobs(cfg, &envs, &plan).await?;
    let create_secs = started.elapsed().as_secs_f64();
    eprintln!("[N={n}] created in {create_secs:.1} s; waiting for all to finish");

    let deadline =
        started + Duration::from_secs_f64(create_secs + longest) + cfg.fixed_interval + cfg.grace;
    let mut last_report = Instant::now();
    loop {
        let finished: Vec<usize> = envs.iter().map(|e| finished(&e.tracker)).collect();
        if finished.iter().all(|&f| f >= n) {
            break;
        }
        if Instant::now() > deadline {
            eprintln!(
                "[N={n}] deadline passed with {finished:?} of {n} finished; measuring anyway"
            );
            break;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            let status: Vec<String> = envs
                .iter()
                .zip(&finished)
                .map(|(e, f)| format!("{} {f}/{n}", e.mode.as_str()))
                .collect();
            eprintln!(
                "[N={n}] {:.0} s: {}",
                started.elapsed().as_secs_f64(),
                status.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Usage and the operator's counters now, before the restart replaces the process.
    let mut usage = Vec::new();
    let mut counters = Vec::new();
    for env in &envs {
        let operator = env.operator.as_ref().context("operator not running")?;
        usage.push(operator.usage()?);
        let text = operator.metrics().await.unwrap_or_default();
        counters.push((
            metric_sum(&text, "cloudjob_cloud_requests_total"),
            metric_sum(&text, "cloudjob_status_patches_total"),
        ));
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
            duration_range_secs: (
                MIN_DURATION_SECS / cfg.time_scale,
                MAX_DURATION_SECS / cfg.time_scale,
            ),
            failing_jobs: plan.iter().filter(|j| j.fails).count(),
            rate_limit: cfg.rate_limit,
            rate_limit_burst: cfg.rate_limit_burst,
            concurrency: cfg.concurrency,
            fixed_interval_secs: cfg.fixed_interval.as_secs_f64(),
            create_secs,
            modes,
        },
        records,
    ))
}

/// Per-job records of one mode.
#[derive(Clone, Debug)]
pub struct JobRecordSet {
    pub mode: Mode,
    pub jobs: Vec<JobRecord>,
}

fn finished(tracker: &Mutex<Tracker>) -> usize {
    tracker.lock().map(|t| t.finished).unwrap_or(0)
}

async fn install_crd(cp: &ControlPlane) -> anyhow::Result<()> {
    let crd = crate::operator::workspace_root().join("crds/cloudjobs.cloudjob.io.yaml");
    let mut apply = cp.kubectl();
    apply.args(["apply", "-f"]).arg(&crd);
    // kubectl blocks; keep it off the async workers that serve the simulators.
    let out = tokio::task::spawn_blocking(move || apply.output()).await??;
    if !out.status.success() {
        bail!(
            "kubectl apply -f {} failed: {}",
            crd.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
    wait_for(Duration::from_secs(30), "the CRD to be established", || {
        let crds = crds.clone();
        async move {
            let crd = crds.get("cloudjobs.cloudjob.io").await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await?;
    Ok(())
}

async fn start_mode(
    cfg: &BenchConfig,
    cp: &ControlPlane,
    client: &Client,
    mode: Mode,
    n: usize,
) -> anyhow::Result<ModeEnv> {
    let namespace = format!("bench-{}", mode.as_str());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
        )
        .await
        .with_context(|| format!("cannot create namespace {namespace}"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "creds"},
                "stringData": {"accessKey": AK, "secretKey": SK}
            }))?,
        )
        .await
        .context("cannot create the credentials Secret")?;

    let mut sims = HashMap::new();
    for service in Service::ALL {
        // time_scale stays 1: the operator compares the job's begin_time with the real clock, so the
        // simulated clock must be the real one. The benchmark's time scale shortens durations instead.
        sims.insert(service, Simulator::start(SimConfig::default()).await?);
    }

    let api: Api<CloudJob> = Api::namespaced(client.clone(), &namespace);
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let watch_task = tokio::spawn(watch(api.clone(), tracker.clone()));

    let mut args = vec![
        "--namespaces".to_string(),
        namespace.clone(),
        "--poll-mode".into(),
        mode.as_str().into(),
        "--rate-limit".into(),
        cfg.rate_limit.to_string(),
        "--rate-limit-burst".into(),
        cfg.rate_limit_burst.to_string(),
        "--concurrency".into(),
        cfg.concurrency.to_string(),
    ];
    if mode == Mode::Fixed {
        args.push("--fixed-poll-interval".into());
        args.push(format!("{}ms", cfg.fixed_interval.as_millis()));
    }
    let log = cfg.out.join(format!("operator-{n}-{}.log", mode.as_str()));
    // A fresh log per run: the file is appended to across the restart.
    let _ = std::fs::remove_file(&log);
    let operator =
        OperatorProcess::start(&cfg.operator_bin, cp.kubeconfig_path(), &args, log).await?;
    Ok(ModeEnv {
        mode,
        sims,
        api,
        tracker,
        watch_task,
        operator: Some(operator),
        args,
    })
}

/// Creates every planned job in every mode: the simulated job, then its CloudJob right away, so the
/// job's start and the CloudJob's creation are a few milliseconds apart.
async fn create_jobs(
    cfg: &BenchConfig,
    envs: &[ModeEnv],
    plan: &[PlannedJob],
) -> anyhow::Result<()> {
    futures::stream::iter(plan.iter().enumerate())
        .map(|(i, job)| async move {
            // Alternate which mode goes first, so neither gets its jobs systematically earlier.
            let order: Vec<&ModeEnv> = if i % 2 == 0 {
                envs.iter().collect()
            } else {
                envs.iter().rev().collect()
            };
            for env in order {
                let sim = env.sim(job.kind.service())?;
                sim.create_job(job.spec())
                    .with_context(|| format!("simulator rejected {}", job.name))?;
                create_cloudjob(env, job).await?;
            }
            anyhow::Ok(())
        })
        .buffer_unordered(cfg.create_concurrency.max(1))
        .try_collect::<()>()
        .await
}

async fn create_cloudjob(env: &ModeEnv, job: &PlannedJob) -> anyhow::Result<()> {
    let service = job.kind.service();
    let cj: CloudJob = serde_json::from_value(json!({
        "apiVersion": "cloudjob.io/v1alpha1",
        "kind": "CloudJob",
        "metadata": {
            "name": job.name,
            "labels": {"app.kubernetes.io/part-of": "cloudjob-bench", "cloudjob.io/bench-kind": job.kind.name()}
        },
        "spec": {
            "service": service.as_str(),
            "region": "eu-de",
            "projectId": PROJECT,
            "jobId": job.job_id,
            "endpoint": env.sim(service)?.endpoint(service),
            "credentialsSecretRef": {"name": "creds"}
        }
    }))?;
    // A busy API server may time out; retry, and accept that an earlier attempt got through.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match env.api.create(&PostParams::default(), &cj).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && attempt > 1 => return Ok(()),
            Err(e) if attempt < 5 => {
                eprintln!("creating {} failed ({e}); retrying", job.name);
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create CloudJob {}", job.name));
            }
        }
    }
}

/// Restarts the operator (SIGTERM, then a new process) and checks that no GET reaches a terminal job for
/// the restart window.
async fn restart_check(
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
    let log = cfg
        .out
        .join(format!("operator-{}-{}.log", plan.len(), env.mode.as_str()));
    env.operator = Some(
        OperatorProcess::start(&cfg.operator_bin, cp.kubeconfig_path(), &env.args, log).await?,
    );
    tokio::time::sleep(cfg.restart_window).await;
    Ok(RestartCheck {
        window_secs: cfg.restart_window.as_secs_f64(),
        requests_to_terminal_jobs: requests(env)?.saturating_sub(requests_before),
        status_writes: writes(env).saturating_sub(writes_before),
    })
}

/// Joins the watch's view with the simulator's per-job counters.
fn measure(
    cfg: &BenchConfig,
    env: &ModeEnv,
    plan: &[PlannedJob],
    t0: DateTime<Utc>,
    restart: RestartCheck,
    usage: ProcessUsage,
    (operator_cloud_requests, operator_status_patches): (Option<f64>, Option<f64>),
) -> anyhow::Result<(ModeResult, Vec<JobRecord>)> {
    let tracker = env
        .tracker
        .lock()
        .map_err(|_| anyhow::anyhow!("tracker poisoned"))?;
    let mut records = Vec::with_capacity(plan.len());
    let mut wrong_phase_examples = Vec::new();
    let mut wrong_phase = 0;
    let mut last_seen: Option<DateTime<Utc>> = None;
    let mut last_true_end: Option<DateTime<Utc>> = None;
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
            .map(|t| DateTime::<Utc>::from(std::time::SystemTime::from(t)));
        let after_terminal = stats.as_ref().map_or(0, requests_after_terminal);
        let delay = match (view.finish_seen_at, terminal_at) {
            (Some(seen), Some(end)) => Some((seen - end).as_seconds_f64()),
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
    let since_t0 = |t: Option<DateTime<Utc>>| t.map(|t| (t - t0).as_seconds_f64());

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
        operator_cloud_requests,
        operator_status_patches,
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

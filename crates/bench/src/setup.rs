//! Setting up one policy of a run: its namespace and Secret, one simulator per service, a watch of its
//! CloudJobs, the warm-up history (finished CloudJobs) for a policy that has one, and the operator as a
//! child process (so /proc shows its memory and CPU alone); then the CloudJobs themselves.
//!
//! Each mode has one simulator per service (IMS, EVS, ECS): one endpoint each, as in the real clouds, so
//! the operator's per-endpoint rate limit and the simulator's per-second request count are about the
//! same thing. CloudJobs therefore carry `spec.endpoint` instead of relying on `--endpoint-template`.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use cloudjob_operator::crd::CloudJob;
use cloudjob_sim::{Service, SimConfig, Simulator};
use cloudjob_testenv::ControlPlane;
use cloudjob_testkit::{Operator, ProcessOptions};
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    BenchConfig, Mode, Policy,
    watch::{Tracker, watch},
    workload::{self, PROJECT, PlannedJob},
};

/// Label of the warm-up history's CloudJobs: the watch that measures leaves them out.
pub const HISTORY_LABEL: &str = "cloudjob.io/bench-history";

const AK: &str = "sim-ak";
const SK: &str = "sim-sk";

/// One policy's moving parts.
pub struct ModeEnv {
    pub mode: Mode,
    pub policy: Policy,
    /// The policy's name (namespace `bench-NAME`, file names, column).
    pub name: String,
    pub sims: HashMap<Service, Simulator>,
    api: Api<CloudJob>,
    pub tracker: Arc<Mutex<Tracker>>,
    pub watch_task: tokio::task::JoinHandle<()>,
    /// Jobs whose `finishTime` the watch has seen, changed whenever that grows.
    pub finished: tokio::sync::watch::Receiver<usize>,
    pub operator: Option<Operator>,
    operator_args: Vec<String>,
    operator_log: PathBuf,
}

impl ModeEnv {
    pub fn sim(&self, service: Service) -> anyhow::Result<&Simulator> {
        self.sims
            .get(&service)
            .with_context(|| format!("no simulator for {service}"))
    }

    /// Starts the operator process, appending to this mode's log.
    pub async fn start_operator(
        &mut self,
        cfg: &BenchConfig,
        cp: &ControlPlane,
    ) -> anyhow::Result<()> {
        // The kit's own arguments (the simulators' address allowed) come first, this mode's after.
        let mut options =
            ProcessOptions::new(&cfg.operator_bin, cp.kubeconfig_path()).args(&self.operator_args);
        // Issue 6 measures the operator as deployed: warnings only, no per-poll logging cost.
        options.rust_log = "warn".into();
        options.log = Some(self.operator_log.clone());
        self.operator = Some(Operator::process(options).await?);
        Ok(())
    }
}

pub async fn start_mode(
    cfg: &BenchConfig,
    cp: &ControlPlane,
    client: &Client,
    policy: Policy,
    n: usize,
) -> anyhow::Result<ModeEnv> {
    let mode = policy.mode;
    let name = policy.name(cfg.workload);
    let namespace = format!("bench-{name}");
    create_namespace(client, &namespace).await?;

    let mut sims = HashMap::new();
    for service in Service::ALL {
        // time_scale stays 1: the operator compares the job's begin_time with the real clock, so the
        // simulated clock must be the real one. The benchmark's time scale shortens durations instead.
        sims.insert(service, Simulator::start(SimConfig::default()).await?);
    }

    let api: Api<CloudJob> = Api::namespaced(client.clone(), &namespace);
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let (finished_tx, finished) = tokio::sync::watch::channel(0);
    let watch_task = tokio::spawn(watch(api.clone(), tracker.clone(), finished_tx));
    if policy.history {
        let history = workload::history(
            cfg.history_per_type,
            cfg.seed,
            cfg.time_scale,
            cfg.fail_ratio,
        );
        create_history(cfg, &api, &sims, &history).await?;
    }

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
        args.push(format!("{}ms", policy.fixed_interval.as_millis()));
    }
    if let Some(cost) = cfg.request_cost {
        args.push("--poll-request-cost".into());
        args.push(format!("{}ms", cost.as_millis()));
    }
    let operator_log = cfg.out.join(format!("operator-{n}-{name}.log"));
    // A fresh log per run: the file is appended to across the restart.
    let _ = std::fs::remove_file(&operator_log);
    let mut env = ModeEnv {
        mode,
        policy,
        name,
        sims,
        api,
        tracker,
        watch_task,
        finished,
        operator: None,
        operator_args: args,
        operator_log,
    };
    env.start_operator(cfg, cp).await?;
    Ok(env)
}

/// Creates every planned job in every mode: the simulated job, then its CloudJob right away, so the
/// job's start and the CloudJob's creation are a few milliseconds apart.
pub async fn create_jobs(
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

/// The warm-up history: finished CloudJobs (status written as the operator would have) of the workload's
/// types, ended at spread times within the last hour, created before the operator starts, so that it
/// learns them from its cache at start.
async fn create_history(
    cfg: &BenchConfig,
    api: &Api<CloudJob>,
    sims: &HashMap<Service, Simulator>,
    history: &[PlannedJob],
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    futures::stream::iter(history.iter().enumerate())
        .map(|(i, job)| async move {
            let endpoint = sims
                .get(&job.kind.service())
                .with_context(|| format!("no simulator for {}", job.kind.service()))?
                .endpoint(job.kind.service());
            let mut cj = cloudjob(job, &endpoint)?;
            cj.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(HISTORY_LABEL.into(), "true".into());
            api.create(&PostParams::default(), &cj)
                .await
                .with_context(|| format!("cannot create history CloudJob {}", job.name))?;
            let ended = now - SignedDuration::from_secs(60 + (i as i64 * 37) % 3600);
            let started = ended - SignedDuration::from_secs_f64(job.duration_secs.round());
            let (phase, job_status) = if job.fails {
                ("Failed", "FAIL")
            } else {
                ("Succeeded", "SUCCESS")
            };
            let second = |t: Timestamp| t.round(jiff::Unit::Second).map(|t| t.to_string());
            let status = json!({"status": {
                "observedGeneration": 1,
                "phase": phase,
                "jobStatus": job_status,
                "jobType": job.kind.job_type(),
                "progress": 100,
                "startTime": second(started)?,
                "finishTime": second(ended)?,
            }});
            api.patch_status(&job.name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .with_context(|| format!("cannot write the status of {}", job.name))?;
            anyhow::Ok(())
        })
        .buffer_unordered(cfg.create_concurrency.max(1))
        .try_collect::<()>()
        .await
}

/// Creates `namespace` and in it the Secret `creds` with the simulators' credentials.
pub async fn create_namespace(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
        )
        .await
        .with_context(|| format!("cannot create namespace {namespace}"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
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
    Ok(())
}

/// The CloudJob of `job`, polling the simulator at `endpoint` with the credentials in `creds`.
pub fn cloudjob(job: &PlannedJob, endpoint: &str) -> anyhow::Result<CloudJob> {
    let service = job.kind.service();
    Ok(serde_json::from_value(json!({
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
            "endpoint": endpoint,
            "credentialsSecretRef": {"name": "creds"}
        }
    }))?)
}

async fn create_cloudjob(env: &ModeEnv, job: &PlannedJob) -> anyhow::Result<()> {
    let service = job.kind.service();
    let cj = cloudjob(job, &env.sim(service)?.endpoint(service))?;
    create_retrying(&env.api, &cj).await
}

/// Creates `cj`, again after a failure of a busy API server (a timeout); a 409 after a retry means an
/// earlier attempt got through.
pub async fn create_retrying(api: &Api<CloudJob>, cj: &CloudJob) -> anyhow::Result<()> {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.create(&PostParams::default(), cj).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && attempt > 1 => return Ok(()),
            Err(e) if attempt < 5 => {
                eprintln!("creating {name} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create CloudJob {name}")),
        }
    }
}

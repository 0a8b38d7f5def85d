//! The scale run (issue 14): how much memory one operator replica needs for N CloudJobs, most of them
//! finished, as a long-lived cluster holds them, and how many requests it makes to kube-apiserver.
//!
//! 1. A control plane, the CRD and one namespace; one simulator per service. The operator starts first
//!    and its resident set with no CloudJob is the base.
//! 2. N CloudJobs are created: `running` of them for jobs that run for hours, the rest for jobs of the
//!    typed workload's types that finish within a second (their durations divided by 10,000), 10 %
//!    failing. The operator reads each once and writes its finished status, as it would have over the
//!    cluster's life. The run waits until every CloudJob has a status from the operator, by
//!    watching.
//! 3. The operator is restarted: its memory after the initial list of all N (the list complete, by its
//!    `cloudjob_watch_lists_total`), and the slope per CloudJob over the base.
//! 4. kube-apiserver is restarted after a write: the operator's watch resumes from a resource version
//!    older than the new watch cache's, gets 410 Gone and lists everything again (the relist). Its peak
//!    includes the old cache and the new list side by side.
//! 5. A quiet minute: the steady resident set, and the requests made in it.
//!
//! Requests to kube-apiserver are read from its own `apiserver_request_total`; during the phases
//! measured the operator is its only client but for this run's one watch.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cloudjob_operator::crd::CloudJob;
use cloudjob_sim::{JobSpec, Service, SimConfig, Simulator};
use cloudjob_testenv::ControlPlane;
use cloudjob_testkit::{Metrics, Operator, ProcessOptions};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    setup::{cloudjob, create_namespace, create_retrying},
    workload::{self, PROJECT, Workload},
};

const NAMESPACE: &str = "bench-scale";
/// Typed durations are divided by this: every finished job ends within a second of its creation.
const FINISH_FAST: f64 = 10_000.0;
/// How long the running jobs run: longer than any scale run.
const RUNNING_FOR_SECS: f64 = 36_000.0;

#[derive(Clone, Debug)]
pub struct ScaleConfig {
    pub operator_bin: PathBuf,
    pub out: PathBuf,
    pub cloudjobs: usize,
    pub running: usize,
    pub seed: u64,
    pub create_concurrency: usize,
    /// Extra operator arguments (after the run's own).
    pub operator_args: Vec<String>,
    /// The quiet time measured as steady state.
    pub steady: Duration,
    /// Point every CloudJob at an endpoint that refuses connections (a failure storm) instead of the
    /// simulators.
    pub endpoint_down: bool,
}

/// What a scale run found. Memory in MiB, as /proc/PID/status says (VmRSS, VmHWM).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScaleResult {
    pub cloudjobs: usize,
    pub running: usize,
    pub create_secs: f64,
    pub endpoint_down: bool,
    /// From the first creation until every CloudJob had a status from the operator.
    pub fill_secs: f64,
    pub base_rss_mib: f64,
    pub fill_peak_mib: f64,
    /// The restarted operator: from its start until its list was complete.
    pub list_secs: f64,
    pub after_list_rss_mib: f64,
    pub after_list_peak_mib: f64,
    /// (after-list RSS − base) / N.
    pub kib_per_cloudjob: f64,
    pub relisted: bool,
    pub relist_secs: f64,
    pub after_relist_rss_mib: f64,
    /// VmHWM of the restarted operator over the list, the relist and the quiet minute.
    pub peak_mib: f64,
    pub steady_rss_mib: f64,
    pub requests_per_cloudjob_fill: f64,
    pub requests_per_cloudjob_list: f64,
    pub requests_per_cloudjob_relist: f64,
    pub requests_steady: f64,
}

pub async fn scale_run(cfg: &ScaleConfig) -> anyhow::Result<ScaleResult> {
    let n = cfg.cloudjobs;
    let running = cfg.running.min(n);
    let mut result = ScaleResult {
        cloudjobs: n,
        running,
        endpoint_down: cfg.endpoint_down,
        ..ScaleResult::default()
    };
    eprintln!("[scale] starting a control plane for {n} CloudJobs ({running} running)");
    let mut cp = ControlPlane::start().await?;
    cloudjob_testkit::install_crd(&cp).await?;
    let client = cp.client();
    create_namespace(&client, NAMESPACE).await?;
    let mut sims = HashMap::new();
    for service in Service::ALL {
        sims.insert(service, Simulator::start(SimConfig::default()).await?);
    }
    // A port nothing listens on: every poll is refused (bound, then closed again).
    let down = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let endpoint = |service: Service| {
        if cfg.endpoint_down {
            Ok(format!("http://{down}"))
        } else {
            sims.get(&service)
                .map(|sim| sim.endpoint(service))
                .with_context(|| format!("no simulator for {service}"))
        }
    };
    let jobs = scale_jobs(n, running, cfg.seed, endpoint)?;

    let log = cfg.out.join(format!("operator-scale-{n}.log"));
    let _ = std::fs::remove_file(&log);
    let operator = start_operator(cfg, &cp, &log).await?;
    wait_for_lists(&operator, 1).await?;
    result.base_rss_mib = rss_mib(&operator)?;
    eprintln!("[scale] base: {:.1} MiB", result.base_rss_mib);

    let observed = watch_observed(&client);
    let requests = apiserver_requests(&client).await?;
    let started = Instant::now();
    let api: Api<CloudJob> = Api::namespaced(client.clone(), NAMESPACE);
    futures::stream::iter(jobs.iter())
        .map(|(spec, cj)| {
            let api = api.clone();
            let sim = &sims[&spec.service];
            async move {
                sim.create_job(spec.clone())
                    .context("the simulator refused a job")?;
                create_retrying(&api, cj).await
            }
        })
        .buffer_unordered(cfg.create_concurrency.max(1))
        .try_collect::<()>()
        .await?;
    result.create_secs = started.elapsed().as_secs_f64();
    eprintln!("[scale] created in {:.0} s", result.create_secs);
    observed.wait_all_observed(n).await?;
    result.fill_secs = started.elapsed().as_secs_f64();
    result.fill_peak_mib = peak_mib(&operator)?;
    result.requests_per_cloudjob_fill = (apiserver_requests(&client).await? - requests) / n as f64;
    eprintln!(
        "[scale] every CloudJob has a status after {:.0} s; peak {:.1} MiB",
        result.fill_secs, result.fill_peak_mib
    );

    operator.stop().await?;
    let requests = apiserver_requests(&client).await?;
    let started = Instant::now();
    let operator = start_operator(cfg, &cp, &log).await?;
    wait_for_lists(&operator, 1).await?;
    result.list_secs = started.elapsed().as_secs_f64();
    result.after_list_rss_mib = rss_mib(&operator)?;
    result.after_list_peak_mib = peak_mib(&operator)?;
    result.kib_per_cloudjob = (result.after_list_rss_mib - result.base_rss_mib) * 1024.0 / n as f64;
    result.requests_per_cloudjob_list = (apiserver_requests(&client).await? - requests) / n as f64;
    eprintln!(
        "[scale] restarted operator listed {n} in {:.1} s: {:.1} MiB ({:.2} KiB per CloudJob), peak {:.1} MiB",
        result.list_secs,
        result.after_list_rss_mib,
        result.kib_per_cloudjob,
        result.after_list_peak_mib
    );

    // A write after the operator's last event, then a new kube-apiserver: its watch cache starts after
    // the operator's resource version, so the watch expires and the operator lists again.
    bump_revision(&client).await?;
    let started = Instant::now();
    cp.restart_api_server().await?;
    let client = cp.client();
    result.relisted = wait_for_lists(&operator, 2).await.is_ok();
    result.relist_secs = started.elapsed().as_secs_f64();
    result.after_relist_rss_mib = rss_mib(&operator)?;
    // The counter started over with the new kube-apiserver: every request it counts is the relist's.
    result.requests_per_cloudjob_relist = apiserver_requests(&client).await? / n as f64;
    eprintln!(
        "[scale] relist {}: {:.1} MiB after {:.1} s",
        if result.relisted { "done" } else { "NOT seen" },
        result.after_relist_rss_mib,
        result.relist_secs
    );

    let requests = apiserver_requests(&client).await?;
    tokio::time::sleep(cfg.steady).await;
    result.requests_steady = apiserver_requests(&client).await? - requests;
    result.steady_rss_mib = rss_mib(&operator)?;
    result.peak_mib = peak_mib(&operator)?;
    eprintln!(
        "[scale] steady: {:.1} MiB, {} requests in {:?}; peak {:.1} MiB",
        result.steady_rss_mib, result.requests_steady, cfg.steady, result.peak_mib
    );
    operator.stop().await?;
    Ok(result)
}

pub fn table(r: &ScaleResult) -> String {
    let mut t = String::new();
    let mut row = |what: &str, value: String| t.push_str(&format!("| {what} | {value} |\n"));
    row(
        "CloudJobs (running)",
        format!(
            "{} ({}){}",
            r.cloudjobs,
            r.running,
            if r.endpoint_down {
                ", every endpoint down"
            } else {
                ""
            }
        ),
    );
    row(
        "created / all with a status",
        format!("{:.0} s / {:.0} s", r.create_secs, r.fill_secs),
    );
    row("RSS, no CloudJob", format!("{:.1} MiB", r.base_rss_mib));
    row(
        "peak while they were created and finished",
        format!("{:.1} MiB", r.fill_peak_mib),
    );
    row(
        "restart: initial list",
        format!(
            "{:.1} s, RSS {:.1} MiB, peak {:.1} MiB",
            r.list_secs, r.after_list_rss_mib, r.after_list_peak_mib
        ),
    );
    row(
        "per CloudJob (RSS over the base)",
        format!("{:.2} KiB", r.kib_per_cloudjob),
    );
    row(
        "relist after a watch expiry",
        if r.relisted {
            format!(
                "{:.1} s after the kube-apiserver restart, RSS {:.1} MiB",
                r.relist_secs, r.after_relist_rss_mib
            )
        } else {
            "not seen (no 410 from the new kube-apiserver)".into()
        },
    );
    row(
        "peak over list, relist and steady state",
        format!("**{:.1} MiB**", r.peak_mib),
    );
    row("steady RSS", format!("{:.1} MiB", r.steady_rss_mib));
    row(
        "kube-apiserver requests per CloudJob: fill / list / relist",
        format!(
            "{:.2} / {:.4} / {:.4}",
            r.requests_per_cloudjob_fill,
            r.requests_per_cloudjob_list,
            r.requests_per_cloudjob_relist
        ),
    );
    row(
        "kube-apiserver requests in the quiet time",
        format!("{:.0}", r.requests_steady),
    );
    format!("| what | figure |\n| --- | --- |\n{t}")
}

/// The simulated jobs and their CloudJobs: `running` long ones first, then finished ones of the typed
/// workload's types.
fn scale_jobs(
    n: usize,
    running: usize,
    seed: u64,
    endpoint: impl Fn(Service) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<(JobSpec, CloudJob)>> {
    let planned = workload::plan_for(Workload::Typed, n, seed, FINISH_FAST, 0.1);
    planned
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let mut spec = job.spec();
            if i < running {
                spec = JobSpec::new(job.kind.service(), PROJECT, job.kind.job_type())
                    .job_id(job.job_id.clone())
                    .duration_secs(RUNNING_FOR_SECS);
            }
            let service = job.kind.service();
            let endpoint = endpoint(service)?;
            let cj = cloudjob(job, &endpoint)?;
            Ok((spec, cj))
        })
        .collect()
}

async fn start_operator(
    cfg: &ScaleConfig,
    cp: &ControlPlane,
    log: &std::path::Path,
) -> anyhow::Result<Operator> {
    let mut args = vec![
        "--namespaces".to_string(),
        NAMESPACE.into(),
        "--rate-limit".into(),
        "2000".into(),
        "--rate-limit-burst".into(),
        "200".into(),
    ];
    args.extend(cfg.operator_args.iter().cloned());
    let mut options = ProcessOptions::new(&cfg.operator_bin, cp.kubeconfig_path()).args(&args);
    options.rust_log = "warn".into();
    options.log = Some(log.to_path_buf());
    Operator::process(options).await
}

/// Waits until the operator has completed `lists` lists of the CloudJobs (its own counter, read from
/// its metrics every 200 ms: the operator's list is not visible from outside it).
async fn wait_for_lists(operator: &Operator, lists: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = operator
            .metrics()
            .await
            .map(|m: Metrics| m.total("cloudjob_watch_lists_total"))
            .unwrap_or_default();
        if done >= lists as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the operator completed {done} lists, not {lists}, in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rss_mib(operator: &Operator) -> anyhow::Result<f64> {
    Ok(operator.resident_kib().context("no operator RSS")? as f64 / 1024.0)
}

fn peak_mib(operator: &Operator) -> anyhow::Result<f64> {
    Ok(operator.peak_resident_kib().context("no operator VmHWM")? as f64 / 1024.0)
}

/// kube-apiserver's `apiserver_request_total`, all series summed.
async fn apiserver_requests(client: &Client) -> anyhow::Result<f64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client
        .request_text(request)
        .await
        .context("cannot read kube-apiserver's metrics")?;
    Ok(Metrics::parse(&text)?.total("apiserver_request_total"))
}

/// One write to etcd that the operator's CloudJob watch does not see.
async fn bump_revision(client: &Client) -> anyhow::Result<()> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    maps.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"generateName": "bump-"}}))?,
    )
    .await
    .context("cannot write a ConfigMap")?;
    Ok(())
}

/// How many CloudJobs have a status from the operator, as a watch of them sees it.
struct Observed {
    phased: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

fn watch_observed(client: &Client) -> Observed {
    let api: Api<CloudJob> = Api::namespaced(client.clone(), NAMESPACE);
    let (tx, phased) = tokio::sync::watch::channel(0);
    let task = tokio::spawn(async move {
        let mut has_phase: HashMap<String, bool> = HashMap::new();
        let mut count = 0usize;
        let events = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            let (watcher::Event::Apply(cj) | watcher::Event::InitApply(cj)) = event else {
                continue;
            };
            // Written by the operator: a phase, or a condition (a problem before any phase).
            let now = cj
                .status
                .as_ref()
                .is_some_and(|s| s.phase.is_some() || !s.conditions.is_empty());
            let name = cj.metadata.name.unwrap_or_default();
            let before = has_phase.insert(name, now).unwrap_or(false);
            match (before, now) {
                (false, true) => count += 1,
                (true, false) => count -= 1,
                _ => continue,
            }
            tx.send_replace(count);
        }
    });
    Observed { phased, task }
}

impl Observed {
    async fn wait_all_observed(mut self, n: usize) -> anyhow::Result<()> {
        let waited = tokio::time::timeout(
            Duration::from_secs(3600),
            self.phased.wait_for(|&count| count >= n),
        )
        .await;
        self.task.abort();
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => bail!("not every CloudJob got a status within an hour"),
        }
    }
}

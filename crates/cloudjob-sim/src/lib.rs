//! `cloudjob-sim`: a simulator of the Huawei Cloud / Open Telekom Cloud job APIs (ECS, EVS, IMS on
//! both its paths, BMS, SDRS, DeH, EIP, the database family, DCS, CCE, ELB, SFS Turbo) for tests, the
//! demo and benchmarks.
//!
//! One process serves every service by path prefix (`/ims/v1/...`, `/rds/v3/...`, ...), so a
//! client's per-service endpoint is `http://127.0.0.1:PORT/ims`. The unprefixed paths also work, as
//! the official SDK clients send them: the service is then taken from the `Host` header's first
//! label (`rds.eu-de.myhuaweicloud.com`), or else from the job's own record. The differences
//! between services are one table, `model::services`.
//!
//! Requests must be AK/SK signed ([`aksk`]); a job's state is computed from its timeline and the
//! simulated clock on each request, so idle jobs cost nothing.
//!
//! In-process use:
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cloudjob_sim::{JobSpec, Service, SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig { time_scale: 60.0, ..SimConfig::default() }).await?;
//! let job = sim.create_job(JobSpec::new(Service::Ims, "proj", "imsCreateImageByInstance").duration_secs(120.0))?;
//! // Point the client at sim.endpoint(Service::Ims) with AK "sim-ak" / SK "sim-sk";
//! // the job succeeds after 2 real seconds.
//! let stats = sim.job_stats(&job.job_id);
//! # let _ = stats; Ok(()) }
//! ```
//!
//! Tests that must not race the wall clock give it a manual [`Clock`] and move time themselves
//! (clients then sign with `X-Sdk-Date` at [`SimState::now`]):
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cloudjob_sim::{Clock, JobSpec, Service, SimConfig, Simulator};
//! let (clock, time) = Clock::manual("2024-11-06T06:19:43.195Z".parse()?);
//! let sim = Simulator::start(SimConfig { clock, ..SimConfig::default() }).await?;
//! let job = sim.create_job(JobSpec::new(Service::Evs, "proj", "createVolume").duration_secs(60.0))?;
//! time.advance(std::time::Duration::from_secs(60));
//! assert_eq!(sim.job_stats(&job.job_id).map(|s| s.status).as_deref(), Some("SUCCESS"));
//! # Ok(()) }
//! ```
//! The HTTP admin API (`/admin/...`) exposes the same operations; see the crate README.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod clock;
mod faults;
mod job;
pub mod model;
mod server;
mod stats;
mod sync;

pub use aksk::Credentials;
pub use clock::{Clock, ManualClock};
pub use faults::{Fault, FaultKind, FaultScope};
pub use model::{
    JobSpec, JobType, Outcome, ProgressCurve, Service, SubJobs, TimeStyle, Timeline,
    UnknownService, documented_job_types,
};
pub use stats::{GlobalStats, JobStats, RECENT_REQUESTS, RequestRecord, ServiceStats};

use clock::SimClock;
use faults::FaultTable;
use job::{Job, JobBody};
use stats::JobCounters;
use sync::{lock, read, write};

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; the default `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Accepted AK/SK pairs (security tokens are not checked).
    pub credentials: Vec<Credentials>,
    /// Simulated seconds per real second (60 = one simulated minute per second).
    pub time_scale: f64,
    /// Simulated time after which a terminal job returns not-found (the clouds: about a day).
    pub expiry: std::time::Duration,
    /// Largest accepted `X-Sdk-Date` offset from [`Self::clock`].
    pub max_clock_skew: std::time::Duration,
    /// Where "now" comes from: the system clock, or a [`ManualClock`] in tests.
    pub clock: Clock,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: vec![Credentials::new("sim-ak", "sim-sk")],
            time_scale: 1.0,
            expiry: std::time::Duration::from_secs(24 * 3600),
            max_clock_skew: aksk::MAX_CLOCK_SKEW,
            clock: Clock::System,
        }
    }
}

/// Errors of the simulator's control API (Rust and admin HTTP).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    #[error("a job with id {0} already exists")]
    DuplicateJobId(String),
    #[error("no job with id {0}")]
    NotFound(String),
    #[error("fixture body is not JSON: {0}")]
    InvalidFixture(#[from] serde_json::Error),
    #[error(
        "fixture body has no string job id (job_id, or job.id / jobs[0].id in the database layouts)"
    )]
    FixtureWithoutJobId,
    #[error("time scale must be a finite number > 0, got {0}")]
    InvalidTimeScale(f64),
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
}

/// A job as created: where to GET it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedJob {
    pub job_id: String,
    pub service: Service,
    pub project_id: String,
    /// `/{service}` and the service's job path, e.g. `/ims/v1/{project_id}/jobs/{job_id}`,
    /// `/rds/v3/{project_id}/jobs?id={job_id}`.
    pub path: String,
}

/// A job in the admin listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job_id: String,
    pub service: Service,
    pub project_id: String,
    pub status: String,
    pub expired: bool,
}

/// The simulator's state, shared by the HTTP handlers and [`Simulator`]'s methods.
#[derive(Debug)]
pub struct SimState {
    pub(crate) credentials: HashMap<String, String>,
    pub(crate) max_clock_skew: std::time::Duration,
    pub(crate) clock: SimClock,
    expiry: SignedDuration,
    jobs: RwLock<HashMap<String, Arc<Job>>>,
    pub(crate) faults: Mutex<FaultTable>,
    pub(crate) global: Mutex<GlobalStats>,
}

impl SimState {
    fn new(cfg: &SimConfig) -> Result<Self, SimError> {
        if !(cfg.time_scale.is_finite() && cfg.time_scale > 0.0) {
            return Err(SimError::InvalidTimeScale(cfg.time_scale));
        }
        let clock = SimClock::new(&cfg.clock, cfg.time_scale);
        let global = GlobalStats {
            since: Some(clock.real_now()),
            ..GlobalStats::default()
        };
        Ok(Self {
            credentials: cfg
                .credentials
                .iter()
                .map(|c| (c.access_key.clone(), c.secret_key.clone()))
                .collect(),
            max_clock_skew: cfg.max_clock_skew,
            expiry: SignedDuration::try_from(cfg.expiry).unwrap_or(SignedDuration::MAX),
            clock,
            jobs: RwLock::new(HashMap::new()),
            faults: Mutex::new(FaultTable::default()),
            global: Mutex::new(global),
        })
    }

    pub(crate) fn get_job(&self, id: &str) -> Option<Arc<Job>> {
        read(&self.jobs).get(id).cloned()
    }

    fn insert(&self, job: Job) -> Result<CreatedJob, SimError> {
        let family = model::services::row_of(job.service).family;
        let path = format!("/{}{}", job.service, family.path(&job.project_id, &job.id));
        let created = CreatedJob {
            path,
            job_id: job.id.clone(),
            service: job.service,
            project_id: job.project_id.clone(),
        };
        let mut jobs = write(&self.jobs);
        if jobs.contains_key(&job.id) {
            return Err(SimError::DuplicateJobId(job.id));
        }
        jobs.insert(job.id.clone(), Arc::new(job));
        Ok(created)
    }

    /// Creates a job whose state follows `spec`'s timeline from now (simulated time).
    pub fn create_job(&self, spec: JobSpec) -> Result<CreatedJob, SimError> {
        spec.validate().map_err(SimError::InvalidSpec)?;
        let expiry = spec.expiry_secs.map_or(self.expiry, clock::secs);
        let timeline = Timeline::new(spec, self.clock.sim_now());
        self.insert(Job {
            id: timeline.job_id.clone(),
            service: timeline.spec.service,
            project_id: timeline.spec.project_id.clone(),
            body: JobBody::Timeline(Box::new(timeline)),
            expiry: Some(expiry),
            counters: Arc::default(),
        })
    }

    /// Creates a job that always serves `body` (e.g. a documented example). Its id is the body's
    /// `job_id`. Fixture jobs never change and never expire.
    pub fn create_fixture_job(
        &self,
        service: Service,
        project_id: &str,
        body: Value,
    ) -> Result<CreatedJob, SimError> {
        let raw = serde_json::to_string(&body)?;
        self.create_fixture_job_raw(service, project_id, raw)
    }

    /// Like [`Self::create_fixture_job`] but serves `raw` byte for byte (after checking it is JSON),
    /// keeping the documentation's formatting and number spelling (`0.20`).
    pub fn create_fixture_job_raw(
        &self,
        service: Service,
        project_id: &str,
        raw: String,
    ) -> Result<CreatedJob, SimError> {
        if project_id.is_empty() || project_id.contains('/') {
            return Err(SimError::InvalidSpec(
                "project_id must be non-empty and contain no '/'".into(),
            ));
        }
        let v: Value = serde_json::from_str(&raw)?;
        let layout = model::services::row_of(service).layout;
        let (id, status) =
            model::services::fixture_identity(layout, &v).ok_or(SimError::FixtureWithoutJobId)?;
        self.insert(Job {
            id,
            service,
            project_id: project_id.to_owned(),
            body: JobBody::Fixture {
                raw: Bytes::from(raw),
                status,
            },
            expiry: None,
            counters: Arc::default(),
        })
    }

    /// Ends a timeline job now with `outcome` (a fixture job cannot be finished).
    pub fn finish_job(&self, job_id: &str, outcome: Outcome) -> Result<(), SimError> {
        let now = self.clock.sim_now();
        let mut jobs = write(&self.jobs);
        let job = jobs
            .get(job_id)
            .ok_or_else(|| SimError::NotFound(job_id.to_owned()))?;
        let JobBody::Timeline(t) = &job.body else {
            return Err(SimError::InvalidSpec(
                "fixture jobs cannot be finished".into(),
            ));
        };
        let mut t = t.clone();
        t.finish_at(now, outcome);
        let replacement = Job {
            id: job.id.clone(),
            service: job.service,
            project_id: job.project_id.clone(),
            body: JobBody::Timeline(t),
            expiry: job.expiry,
            counters: job.counters.clone(),
        };
        jobs.insert(job_id.to_owned(), Arc::new(replacement));
        Ok(())
    }

    pub fn delete_job(&self, job_id: &str) -> bool {
        write(&self.jobs).remove(job_id).is_some()
    }

    /// The body the jobs API would serve for this job now (ignoring faults, auth and expiry).
    pub fn job_body(&self, job_id: &str) -> Option<Value> {
        let job = self.get_job(job_id)?;
        match &job.body {
            JobBody::Timeline(t) => Some(t.render(self.clock.sim_now())),
            JobBody::Fixture { raw, .. } => serde_json::from_slice(raw).ok(),
        }
    }

    pub fn list_jobs(&self) -> Vec<JobSummary> {
        let now = self.clock.sim_now();
        let mut v: Vec<JobSummary> = read(&self.jobs)
            .values()
            .map(|j| JobSummary {
                job_id: j.id.clone(),
                service: j.service,
                project_id: j.project_id.clone(),
                status: j.status_at(now),
                expired: j.is_expired(now),
            })
            .collect();
        v.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        v
    }

    pub fn job_stats(&self, job_id: &str) -> Option<JobStats> {
        let job = self.get_job(job_id)?;
        let now = self.clock.sim_now();
        let status = job.status_at(now);
        let terminal_at = match job.end() {
            Some(end) if end <= now => Some(self.clock.sim_to_real(end)),
            Some(_) => None,
            // A fixture is terminal from creation; it has no meaningful end time.
            None => None,
        };
        let c = lock(&job.counters);
        Some(JobStats {
            job_id: job.id.clone(),
            service: job.service,
            project_id: job.project_id.clone(),
            expired: job.is_expired(now),
            status,
            total_requests: c.total,
            by_http_status: c.by_status.clone(),
            first_request_at: c.first_request_at,
            last_request_at: c.last_request_at,
            terminal_at,
            first_terminal_served_at: c.first_terminal_served_at,
            recent_requests: c.recent.iter().cloned().collect(),
        })
    }

    /// Adds a fault rule. Rules are tried in insertion order, job rules before global ones.
    pub fn set_fault(&self, scope: FaultScope, fault: Fault) {
        let mut t = lock(&self.faults);
        match scope {
            FaultScope::Global => t.global.push(fault),
            FaultScope::Job(id) => t.per_job.entry(id).or_default().push(fault),
        }
    }

    /// Removes the faults of one scope, or all of them with `None`.
    pub fn clear_faults(&self, scope: Option<FaultScope>) {
        let mut t = lock(&self.faults);
        match scope {
            None => *t = FaultTable::default(),
            Some(FaultScope::Global) => t.global.clear(),
            Some(FaultScope::Job(id)) => {
                t.per_job.remove(&id);
            }
        }
    }

    pub fn global_stats(&self) -> GlobalStats {
        let mut g = lock(&self.global).clone();
        g.live_jobs = read(&self.jobs).len();
        g
    }

    /// Zeroes global and per-job counters (jobs and faults stay).
    pub fn reset_stats(&self) {
        *lock(&self.global) = GlobalStats {
            since: Some(self.clock.real_now()),
            ..GlobalStats::default()
        };
        for job in read(&self.jobs).values() {
            *lock(&job.counters) = JobCounters::default();
        }
    }

    /// Removes every job and fault and zeroes the counters.
    pub fn reset_all(&self) {
        write(&self.jobs).clear();
        self.clear_faults(None);
        self.reset_stats();
    }

    /// Changes the time scale from now on (simulated time stays continuous).
    pub fn set_time_scale(&self, scale: f64) -> Result<(), SimError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(SimError::InvalidTimeScale(scale));
        }
        self.clock.set_scale(scale);
        Ok(())
    }

    pub fn time_scale(&self) -> f64 {
        self.clock.scale()
    }

    /// The current simulated time (what `begin_time`/`end_time` are based on).
    pub fn sim_now(&self) -> Timestamp {
        self.clock.sim_now()
    }

    /// The current real time as the simulator's [`Clock`] reads it: what `X-Sdk-Date` is checked
    /// against and request times are recorded in.
    pub fn now(&self) -> Timestamp {
        self.clock.real_now()
    }
}

/// A running simulator. Dropping it stops the server and closes every connection.
///
/// All control methods come from [`SimState`] through `Deref`, e.g. `sim.create_job(..)`.
#[derive(Debug)]
pub struct Simulator {
    state: Arc<SimState>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Simulator {
    /// Binds `cfg.listen` and starts serving on the current tokio runtime.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Simulator> {
        let state = Arc::new(SimState::new(&cfg)?);
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(server::serve(listener, server::router(state.clone())));
        Ok(Simulator { state, addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The endpoint of one service: `base_url() + "/ims"`.
    pub fn endpoint(&self, service: Service) -> String {
        format!("{}/{}", self.base_url(), service)
    }
}

// `Simulator` is a handle to the state plus the server task; forwarding through Deref avoids
// duplicating the whole control API.
impl std::ops::Deref for Simulator {
    type Target = SimState;
    fn deref(&self) -> &SimState {
        &self.state
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

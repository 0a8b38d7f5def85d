//! What a run measured: per N ([`RunResult`]), per mode ([`ModeResult`]) and per job ([`JobRecord`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Mode, operator::ProcessUsage, stats::Dist, workload::Workload};

fn blind() -> Workload {
    Workload::Blind
}

/// The results of one N.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub jobs: usize,
    pub time_scale: f64,
    /// Blind in results written before the typed workload existed.
    #[serde(default = "blind")]
    pub workload: Workload,
    /// Finished CloudJobs per type the policies with history saw first (0: none).
    #[serde(default)]
    pub history_per_type: usize,
    /// Real job durations after scaling: [shortest, longest] possible.
    pub duration_range_secs: (f64, f64),
    pub failing_jobs: usize,
    pub rate_limit: u32,
    pub rate_limit_burst: u32,
    pub concurrency: u16,
    /// The fixed interval of results written when a run had one fixed policy (each policy has its own now).
    #[serde(default)]
    pub fixed_interval_secs: f64,
    /// Time to create all CloudJobs (and simulated jobs) of all modes.
    pub create_secs: f64,
    pub modes: Vec<ModeResult>,
}

/// The results of one mode within a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModeResult {
    pub mode: Mode,
    /// The policy's name (`adaptive`, `adaptive-cold`, `fixed-10s`); empty in older results, which had one
    /// policy per mode.
    #[serde(default)]
    pub policy: String,
    /// The fixed mode's interval.
    #[serde(default)]
    pub fixed_interval_secs: Option<f64>,
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
    /// Finished jobs the operator's duration model learned from (its metrics, before the restart): the
    /// warm-up history seen in the cache at start, then the measured jobs as they finished.
    #[serde(default)]
    pub learned_jobs: Option<f64>,
    /// Job types in the model.
    #[serde(default)]
    pub learned_types: usize,
    /// Watch listings (more than one: a relist, and status writes in between may be uncounted).
    pub watch_listings: u32,
    pub watch_errors: u32,
}

/// What the operator's own metrics said just after all jobs were terminal.
#[derive(Clone, Copy, Debug, Default)]
pub struct OperatorCounters {
    pub cloud_requests: Option<f64>,
    pub status_patches: Option<f64>,
    pub learned_jobs: Option<f64>,
    pub learned_types: usize,
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

/// Per-job records of one mode.
#[derive(Clone, Debug)]
pub struct JobRecordSet {
    pub mode: Mode,
    /// The policy's name, as in [`ModeResult::policy`].
    pub policy: String,
    pub jobs: Vec<JobRecord>,
}

impl ModeResult {
    /// The policy's name, also for results written before policies had names.
    pub fn name(&self) -> &str {
        if self.policy.is_empty() {
            self.mode.as_str()
        } else {
            &self.policy
        }
    }
}

/// One job of one mode, as measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub name: String,
    pub kind: String,
    pub duration_secs: f64,
    pub fails: bool,
    pub phase: Option<String>,
    pub requests: u64,
    pub status_writes: u32,
    pub distinct_states: u32,
    pub writes_after_terminal: u32,
    pub detection_delay_secs: Option<f64>,
    pub requests_after_terminal: u64,
}

//! cloudjob-bench: issues 6 and 14's benchmark. For each N, N CloudJobs on a real local control plane
//! (cloudjob-testenv) whose jobs run in cloudjob-sim, tracked side by side by one release operator per
//! poll policy: the adaptive mode (on the typed workload also with a warm-up history of finished
//! CloudJobs, and without it: the cold start) and the fixed intervals (10 s: the Huawei Terraform waiter).
//!
//! Layout: [`workload`] (the jobs: blind or typed, and the history), [`run`] (one N), which [`setup`]s
//! each policy (namespace, simulators, watch, history, the operator as a process through
//! `cloudjob-testkit`, the CloudJobs) and [`measure`]s it into [`results`]; [`watch`] (what a watcher of
//! the CloudJobs sees), [`operator`] (the build and /proc), [`report`] (table, JSON, CSV), [`svg`] (the
//! plots) and [`virtual_time`] (the same policies replayed in virtual time, without a control plane).

pub mod measure;
pub mod operator;
pub mod report;
pub mod results;
pub mod run;
pub mod scale;
pub mod setup;
pub mod stats;
pub mod svg;
pub mod virtual_time;
pub mod watch;
pub mod workload;

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

pub use run::run_n;
pub use workload::Workload;

/// Finished CloudJobs per job type in the typed workload's warm-up history: twice what the operator's
/// model needs before it places polls (`durations::MIN_SAMPLES`, 20).
pub const DEFAULT_HISTORY_PER_TYPE: usize = 40;

/// How the operator spaces its polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The operator's default: age- and progress-based intervals.
    Adaptive,
    /// Every `--fixed-poll-interval` (10 s, like the Huawei Terraform waiter).
    Fixed,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Adaptive => "adaptive",
            Mode::Fixed => "fixed",
        }
    }
}

/// One operator of a run: its poll mode, the interval of the fixed mode, and whether it first sees the
/// warm-up history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub mode: Mode,
    /// The fixed mode's interval (unused by the adaptive mode).
    pub fixed_interval: Duration,
    /// Finished CloudJobs of the workload's types exist before the operator starts (typed workload).
    pub history: bool,
}

impl Policy {
    pub fn adaptive(history: bool) -> Policy {
        Policy {
            mode: Mode::Adaptive,
            fixed_interval: Duration::ZERO,
            history,
        }
    }

    pub fn fixed(interval: Duration) -> Policy {
        Policy {
            mode: Mode::Fixed,
            fixed_interval: interval,
            history: false,
        }
    }

    /// `adaptive`, `adaptive-cold` (the typed workload without history), `fixed-10s`: its namespace,
    /// file names and column.
    pub fn name(&self, workload: Workload) -> String {
        match self.mode {
            Mode::Adaptive if workload == Workload::Typed && !self.history => {
                "adaptive-cold".into()
            }
            Mode::Adaptive => "adaptive".into(),
            Mode::Fixed => format!("fixed-{}s", self.fixed_interval.as_secs_f64()),
        }
    }
}

/// Everything a benchmark run needs.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Simulated job durations are divided by this; the operator's intervals are not.
    pub time_scale: f64,
    pub workload: Workload,
    /// The operators run side by side, one per policy.
    pub policies: Vec<Policy>,
    /// Finished CloudJobs per job type the policies with history see before they start.
    pub history_per_type: usize,
    /// The operator's `--poll-request-cost`, when not its default.
    pub request_cost: Option<Duration>,
    pub fail_ratio: f64,
    /// The operator's `--rate-limit` (requests per second per endpoint), for both modes.
    pub rate_limit: u32,
    /// The operator's `--rate-limit-burst`.
    pub rate_limit_burst: u32,
    /// The operator's `--concurrency`, for both modes.
    pub concurrency: u16,
    /// Seed of the workload: the same seed gives the same jobs.
    pub seed: u64,
    /// How long after the operator's restart no request may reach a terminal job.
    pub restart_window: Duration,
    /// How long to wait for stragglers after the longest job should have ended.
    pub grace: Duration,
    /// CloudJobs (and simulated jobs) created at once.
    pub create_concurrency: usize,
    pub operator_bin: PathBuf,
    /// Operator logs, per-job CSV files.
    pub out: PathBuf,
}

impl BenchConfig {
    /// The defaults of the command line, with the given operator binary and output directory.
    pub fn new(operator_bin: PathBuf, out: PathBuf) -> BenchConfig {
        BenchConfig {
            time_scale: DEFAULT_TIME_SCALE,
            workload: Workload::Blind,
            policies: vec![
                Policy::adaptive(false),
                Policy::fixed(Duration::from_secs(10)),
            ],
            history_per_type: DEFAULT_HISTORY_PER_TYPE,
            request_cost: None,
            fail_ratio: 0.1,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            concurrency: DEFAULT_CONCURRENCY,
            seed: 6,
            restart_window: Duration::from_secs(15),
            grace: Duration::from_secs(300),
            create_concurrency: 16,
            operator_bin,
            out,
        }
    }
}

/// Default time scale: 20 min jobs last 200 s, so a default run (N = 100 and 1,000) takes about
/// 2 × 5 minutes (at scale 4 it took 13 minutes). Time scale 1 is the faithful setting, see
/// docs/performance.md: the operator's intervals are not scaled, so scaled runs favour the fixed mode's
/// request count.
pub const DEFAULT_TIME_SCALE: f64 = 6.0;
/// Default rate limit per endpoint: the fixed 10 s baseline needs N/10 × (share of the busiest
/// service, about half) requests per second, 500 at N = 10,000; twice that leaves it unthrottled.
pub const DEFAULT_RATE_LIMIT: u32 = 1000;
/// Default burst above the rate.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 100;
/// Default reconcile concurrency: the fixed baseline at N = 10,000 makes 1,000 polls per second, which
/// the operator's default of 16 in flight cannot sustain once status patches take tens of milliseconds.
pub const DEFAULT_CONCURRENCY: u16 = 64;

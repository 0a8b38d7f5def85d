//! cloudjob-bench: issue 6's benchmark. For each N, N CloudJobs on a real local control plane
//! (cloudjob-testenv) whose jobs run in cloudjob-sim, tracked by the release operator in the adaptive
//! poll mode and, side by side, in the fixed 10 s mode of the Huawei Terraform waiter.
//!
//! Layout: [`workload`] (the jobs), [`run`] (one N), which [`setup`]s each mode (namespace, simulators,
//! watch, the operator as a process through `cloudjob-testkit`, the CloudJobs) and [`measure`]s it into
//! [`results`]; [`watch`] (what a watcher of the CloudJobs sees), [`operator`] (the build and /proc),
//! [`report`] (table, JSON, CSV) and [`svg`] (the plot).

pub mod measure;
pub mod operator;
pub mod report;
pub mod results;
pub mod run;
pub mod setup;
pub mod stats;
pub mod svg;
pub mod watch;
pub mod workload;

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

pub use run::run_n;

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

/// Everything a benchmark run needs.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Simulated job durations (5 s..20 min) are divided by this; the operator's intervals are not.
    pub time_scale: f64,
    pub modes: Vec<Mode>,
    pub fail_ratio: f64,
    /// The operator's `--rate-limit` (requests per second per endpoint), for both modes.
    pub rate_limit: u32,
    /// The operator's `--rate-limit-burst`.
    pub rate_limit_burst: u32,
    /// The operator's `--concurrency`, for both modes.
    pub concurrency: u16,
    /// Interval of the fixed mode.
    pub fixed_interval: Duration,
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
            modes: vec![Mode::Adaptive, Mode::Fixed],
            fail_ratio: 0.1,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            concurrency: DEFAULT_CONCURRENCY,
            fixed_interval: Duration::from_secs(10),
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

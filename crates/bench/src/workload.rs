//! The workloads, deterministic for a seed so that every poll policy gets exactly the same jobs, about a
//! tenth of them failing:
//! - **blind** (issue 6): a mix of services, progress curves and sub-jobs, every duration log-uniform over
//!   5 s..20 min whatever the job type, so a job's type says nothing of its duration;
//! - **typed** (issue 14): 8 job types, each with its own log-normal duration ([`TYPES`]: medians 10 s to
//!   15 min, sigma 0.3 to 0.6), three of them (37.5 % of the jobs) reporting `process_percent`. Its
//!   warm-up [`history`] is finished jobs of the same types, drawn from the same distributions.

use cloudjob_sim::{JobSpec, ProgressCurve, Service};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Project id of every simulated job.
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// Shortest unscaled job duration (issue 6: 5 s to 20 min, log-uniform).
pub const MIN_DURATION_SECS: f64 = 5.0;
/// Longest unscaled job duration.
pub const MAX_DURATION_SECS: f64 = 20.0 * 60.0;

/// The kinds of job the mix draws from: what each reports while it runs decides how many distinct
/// states the operator can show, and whether the adaptive policy has progress to aim with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// IMS image job, `process_percent` rising linearly, walking through three tasks.
    ImsLinear,
    /// IMS image job, `process_percent` on a smoothstep (slow start and end).
    ImsEase,
    /// IMS import job, `process_percent` in four jumps.
    ImsSteps,
    /// IMS image job without `process_percent` (the 2024 Huawei examples have none).
    ImsNoProgress,
    /// EVS single volume: no progress at all.
    EvsVolume,
    /// EVS batch of three volumes: progress from finished sub-jobs.
    EvsBatch,
    /// ECS single server (one sub-job).
    EcsServer,
    /// ECS batch of four servers.
    EcsBatch,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::ImsLinear,
        Kind::ImsEase,
        Kind::ImsSteps,
        Kind::ImsNoProgress,
        Kind::EvsVolume,
        Kind::EvsBatch,
        Kind::EcsServer,
        Kind::EcsBatch,
    ];

    pub fn service(self) -> Service {
        match self {
            Kind::ImsLinear | Kind::ImsEase | Kind::ImsSteps | Kind::ImsNoProgress => Service::Ims,
            Kind::EvsVolume | Kind::EvsBatch => Service::Evs,
            Kind::EcsServer | Kind::EcsBatch => Service::Ecs,
        }
    }

    /// The cloud's `job_type` of this kind.
    pub fn job_type(self) -> &'static str {
        match self {
            Kind::ImsLinear | Kind::ImsEase | Kind::ImsNoProgress => "imsCreateImageByInstance",
            Kind::ImsSteps => "imsImportImageJob",
            Kind::EvsVolume => "createVolume",
            Kind::EvsBatch => "batchCreateVolume",
            Kind::EcsServer | Kind::EcsBatch => "createServer",
        }
    }

    fn progress(self) -> ProgressCurve {
        match self {
            Kind::ImsLinear => ProgressCurve::Linear,
            Kind::ImsEase => ProgressCurve::Ease,
            Kind::ImsSteps => ProgressCurve::Steps(4),
            _ => ProgressCurve::None,
        }
    }

    fn sub_jobs(self) -> Option<u32> {
        match self {
            Kind::EvsBatch => Some(3),
            Kind::EcsServer => Some(1),
            Kind::EcsBatch => Some(4),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::ImsLinear => "ims-linear",
            Kind::ImsEase => "ims-ease",
            Kind::ImsSteps => "ims-steps",
            Kind::ImsNoProgress => "ims-none",
            Kind::EvsVolume => "evs-volume",
            Kind::EvsBatch => "evs-batch",
            Kind::EcsServer => "ecs-server",
            Kind::EcsBatch => "ecs-batch",
        }
    }
}

/// Which workload a run uses.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Issue 6's mix: durations log-uniform over 5 s..20 min whatever the job type.
    Blind,
    /// Issue 14's: 8 job types with their own log-normal durations.
    Typed,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Blind => "blind",
            Workload::Typed => "typed",
        }
    }
}

/// A job type of the typed workload.
#[derive(Debug, PartialEq)]
pub struct TypedKind {
    pub name: &'static str,
    pub service: Service,
    pub job_type: &'static str,
    /// Median unscaled duration, seconds.
    pub median_secs: f64,
    /// Spread of the log-normal duration (the standard deviation of its logarithm).
    pub sigma: f64,
    pub progress: ProgressCurve,
}

/// The typed workload's 8 job types, drawn with equal chance: medians spread geometrically over
/// 10 s..15 min (×1.9 each), sigma 0.3..0.6, `process_percent` on the three IMS image types only (as the
/// clouds report it), linear, in four steps and on a smoothstep.
pub const TYPES: [TypedKind; 8] = [
    typed(
        "evs-create",
        Service::Evs,
        "createVolume",
        10.0,
        0.3,
        ProgressCurve::None,
    ),
    typed(
        "evs-extend",
        Service::Evs,
        "extendVolume",
        19.0,
        0.4,
        ProgressCurve::None,
    ),
    typed(
        "ecs-create",
        Service::Ecs,
        "createServer",
        36.0,
        0.5,
        ProgressCurve::None,
    ),
    typed(
        "ecs-resize",
        Service::Ecs,
        "resizeServer",
        69.0,
        0.4,
        ProgressCurve::None,
    ),
    typed(
        "ims-system",
        Service::Ims,
        "imsCreateImageByInstance",
        131.0,
        0.5,
        ProgressCurve::Linear,
    ),
    typed(
        "ims-import",
        Service::Ims,
        "imsImportImageJob",
        249.0,
        0.6,
        ProgressCurve::Steps(4),
    ),
    typed(
        "ims-copy",
        Service::Ims,
        "imsCopyImageInRegion",
        474.0,
        0.4,
        ProgressCurve::None,
    ),
    typed(
        "ims-whole",
        Service::Ims,
        "imsCreateWholeImage",
        900.0,
        0.3,
        ProgressCurve::Ease,
    ),
];

const fn typed(
    name: &'static str,
    service: Service,
    job_type: &'static str,
    median_secs: f64,
    sigma: f64,
    progress: ProgressCurve,
) -> TypedKind {
    TypedKind {
        name,
        service,
        job_type,
        median_secs,
        sigma,
        progress,
    }
}

/// What a planned job is: one of the blind mix's kinds or one of the typed workload's types.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JobKind {
    Blind(Kind),
    Typed(&'static TypedKind),
}

impl JobKind {
    pub fn service(self) -> Service {
        match self {
            JobKind::Blind(kind) => kind.service(),
            JobKind::Typed(kind) => kind.service,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JobKind::Blind(kind) => kind.name(),
            JobKind::Typed(kind) => kind.name,
        }
    }

    /// The cloud's `job_type`, what the operator learns durations by (with the service).
    pub fn job_type(self) -> &'static str {
        match self {
            JobKind::Blind(kind) => kind.job_type(),
            JobKind::Typed(kind) => kind.job_type,
        }
    }

    /// The progress the operator reads at running fraction `t` (0..1): `process_percent`, else finished
    /// sub-jobs out of all, as a whole percentage.
    pub fn progress_at(self, t: f64) -> Option<i32> {
        let share = match self {
            JobKind::Blind(kind) => match kind.sub_jobs() {
                // Sub-job i finishes at (i + 1) / count of the run (slightly before the parent).
                Some(count) => Some((t * f64::from(count)).floor() / f64::from(count)),
                None => kind.progress().at(t),
            },
            JobKind::Typed(kind) => kind.progress.at(t),
        }?;
        Some((share * 100.0).round().clamp(0.0, 100.0) as i32)
    }
}

/// One job of the workload.
#[derive(Clone, Debug)]
pub struct PlannedJob {
    /// CloudJob name, `job-00042`.
    pub name: String,
    /// Job id in the simulator (the same in every policy's simulators).
    pub job_id: String,
    pub kind: JobKind,
    /// Real seconds the job runs (the log-uniform draw divided by the time scale).
    pub duration_secs: f64,
    /// Whether the job ends in FAIL (and the CloudJob in phase Failed).
    pub fails: bool,
}

impl PlannedJob {
    /// The simulator's spec of this job.
    pub fn spec(&self) -> JobSpec {
        let (progress, sub_jobs) = match self.kind {
            JobKind::Blind(kind) => (kind.progress(), kind.sub_jobs()),
            JobKind::Typed(kind) => (kind.progress, None),
        };
        let mut spec = JobSpec::new(self.kind.service(), PROJECT, self.kind.job_type())
            .job_id(self.job_id.clone())
            .duration_secs(self.duration_secs)
            .progress(progress);
        if self.kind == JobKind::Blind(Kind::ImsLinear) {
            spec = spec.tasks(["PrepareTask", "CreateImageTask", "UploadTask"]);
        }
        if let Some(count) = sub_jobs {
            // A failing batch job also has a failed sub-job, as the clouds report it.
            spec = spec.sub_jobs(count, u32::from(self.fails));
        }
        if self.fails {
            spec = spec.fail("SIM.0500", "simulated failure for the benchmark");
        }
        spec
    }
}

/// The N jobs of a run of `workload`, durations divided by `time_scale`.
pub fn plan_for(
    workload: Workload,
    n: usize,
    seed: u64,
    time_scale: f64,
    fail_ratio: f64,
) -> Vec<PlannedJob> {
    match workload {
        Workload::Blind => plan(n, seed, time_scale, fail_ratio),
        Workload::Typed => plan_typed(n, seed, time_scale, fail_ratio, "job", |_, rng| {
            &TYPES[rng.random_range(0..TYPES.len())]
        }),
    }
}

/// The typed workload's warm-up history: `per_type` finished jobs of each type, drawn from the same
/// distributions with another seed, durations divided by `time_scale`. Named `history-00042`.
pub fn history(per_type: usize, seed: u64, time_scale: f64, fail_ratio: f64) -> Vec<PlannedJob> {
    // Exactly `per_type` of each type, so that every type has its history whatever the draw.
    let n = per_type * TYPES.len();
    plan_typed(n, !seed, time_scale, fail_ratio, "history", |i, _| {
        &TYPES[i % TYPES.len()]
    })
}

fn plan_typed(
    n: usize,
    seed: u64,
    time_scale: f64,
    fail_ratio: f64,
    prefix: &str,
    pick: impl Fn(usize, &mut StdRng) -> &'static TypedKind,
) -> Vec<PlannedJob> {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).rotate_left(32) ^ 14);
    (0..n)
        .map(|i| {
            let kind = pick(i, &mut rng);
            let duration = kind.median_secs * (kind.sigma * standard_normal(&mut rng)).exp();
            let fails = rng.random::<f64>() < fail_ratio;
            let id: u128 = rng.random();
            PlannedJob {
                name: format!("{prefix}-{i:05}"),
                job_id: format!("{id:032x}"),
                kind: JobKind::Typed(kind),
                duration_secs: duration / time_scale,
                fails,
            }
        })
        .collect()
}

/// A draw of the standard normal distribution (Box–Muller: the one distribution needed here does not
/// warrant a dependency).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1], so that its logarithm is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The N jobs of a blind run. Durations are log-uniform over 5 s..20 min, divided by `time_scale`.
pub fn plan(n: usize, seed: u64, time_scale: f64, fail_ratio: f64) -> Vec<PlannedJob> {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).rotate_left(32));
    let (lo, hi) = (MIN_DURATION_SECS.ln(), MAX_DURATION_SECS.ln());
    (0..n)
        .map(|i| {
            let kind = JobKind::Blind(Kind::ALL[rng.random_range(0..Kind::ALL.len())]);
            let duration = (lo + rng.random::<f64>() * (hi - lo)).exp() / time_scale;
            let fails = rng.random::<f64>() < fail_ratio;
            let id: u128 = rng.random();
            PlannedJob {
                name: format!("job-{i:05}"),
                job_id: format!("{id:032x}"),
                kind,
                duration_secs: duration,
                fails,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_mixed() {
        let a = plan(2000, 7, 1.0, 0.1);
        let b = plan(2000, 7, 1.0, 0.1);
        assert_eq!(
            a.iter().map(|j| &j.job_id).collect::<Vec<_>>(),
            b.iter().map(|j| &j.job_id).collect::<Vec<_>>()
        );
        let failing = a.iter().filter(|j| j.fails).count();
        assert!((120..280).contains(&failing), "{failing} failing of 2000");
        assert!(a.iter().all(|j| (5.0..=1200.0).contains(&j.duration_secs)));
        for kind in Kind::ALL {
            assert!(
                a.iter().any(|j| j.kind == JobKind::Blind(kind)),
                "{kind:?} missing"
            );
        }
        // Log-uniform: about half the jobs are shorter than sqrt(5 * 1200) = 77 s.
        let short = a.iter().filter(|j| j.duration_secs < 77.5).count();
        assert!((850..1150).contains(&short), "{short} short jobs");
    }

    #[test]
    fn time_scale_divides_durations() {
        let a = plan(50, 1, 1.0, 0.1);
        let b = plan(50, 1, 10.0, 0.1);
        for (x, y) in a.iter().zip(&b) {
            assert!((x.duration_secs / 10.0 - y.duration_secs).abs() < 1e-9);
        }
    }

    #[test]
    fn typed_durations_follow_each_types_log_normal() {
        let jobs = plan_for(Workload::Typed, 8000, 14, 1.0, 0.1);
        for kind in &TYPES {
            let mut d: Vec<f64> = jobs
                .iter()
                .filter(|j| j.kind == JobKind::Typed(kind))
                .map(|j| j.duration_secs)
                .collect();
            assert!(d.len() > 800, "{}: {}", kind.name, d.len());
            d.sort_by(f64::total_cmp);
            let median = d[d.len() / 2];
            assert!(
                (median / kind.median_secs - 1.0).abs() < 0.1,
                "{}: {median}",
                kind.name
            );
            // About 84 % below median × e^sigma.
            let below = d
                .iter()
                .filter(|x| **x < kind.median_secs * kind.sigma.exp())
                .count();
            let share = below as f64 / d.len() as f64;
            assert!((share - 0.84).abs() < 0.05, "{}: {share}", kind.name);
        }
        let failing = jobs.iter().filter(|j| j.fails).count();
        assert!((640..960).contains(&failing), "{failing}");
        let history = history(40, 14, 2.0, 0.1);
        assert_eq!(history.len(), 320);
        for kind in &TYPES {
            let of_kind = history
                .iter()
                .filter(|j| j.kind == JobKind::Typed(kind))
                .count();
            assert_eq!(of_kind, 40);
        }
        assert!(history.iter().all(|j| j.name.starts_with("history-")));
    }
}

//! The workload: N simulated jobs with a mix of services, progress curves and durations, about a tenth of
//! them failing. Deterministic for a seed, so that both poll modes get exactly the same jobs.

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

/// One job of the workload.
#[derive(Clone, Debug)]
pub struct PlannedJob {
    /// CloudJob name, `job-00042`.
    pub name: String,
    /// Job id in the simulator (the same in both modes' simulators).
    pub job_id: String,
    pub kind: Kind,
    /// Real seconds the job runs (the log-uniform draw divided by the time scale).
    pub duration_secs: f64,
    /// Whether the job ends in FAIL (and the CloudJob in phase Failed).
    pub fails: bool,
}

impl PlannedJob {
    /// The simulator's spec of this job.
    pub fn spec(&self) -> JobSpec {
        let (job_type, progress, sub_jobs) = match self.kind {
            Kind::ImsLinear => ("imsCreateImageByInstance", ProgressCurve::Linear, None),
            Kind::ImsEase => ("imsCreateImageByInstance", ProgressCurve::Ease, None),
            Kind::ImsSteps => ("imsImportImageJob", ProgressCurve::Steps(4), None),
            Kind::ImsNoProgress => ("imsCreateImageByInstance", ProgressCurve::None, None),
            Kind::EvsVolume => ("createVolume", ProgressCurve::None, None),
            Kind::EvsBatch => ("batchCreateVolume", ProgressCurve::None, Some(3)),
            Kind::EcsServer => ("createServer", ProgressCurve::None, Some(1)),
            Kind::EcsBatch => ("createServer", ProgressCurve::None, Some(4)),
        };
        let mut spec = JobSpec::new(self.kind.service(), PROJECT, job_type)
            .job_id(self.job_id.clone())
            .duration_secs(self.duration_secs)
            .progress(progress);
        if self.kind == Kind::ImsLinear {
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

/// The N jobs of a run. Durations are log-uniform over 5 s..20 min, divided by `time_scale`.
pub fn plan(n: usize, seed: u64, time_scale: f64, fail_ratio: f64) -> Vec<PlannedJob> {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).rotate_left(32));
    let (lo, hi) = (MIN_DURATION_SECS.ln(), MAX_DURATION_SECS.ln());
    (0..n)
        .map(|i| {
            let kind = Kind::ALL[rng.random_range(0..Kind::ALL.len())];
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
            assert!(a.iter().any(|j| j.kind == kind), "{kind:?} missing");
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
}

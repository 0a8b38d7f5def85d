//! What the operator has learned of how long each job type runs: one small duration sketch per job type
//! (the service and the cloud's `job_type`), learned from the finished CloudJobs it sees.
//!
//! Pure data. The controller owns one [`DurationModel`]: it feeds it every CloudJob it sees finish (the
//! finished CloudJobs of the cache at start included) and hands it to the plan, where `poll` places the
//! next poll from the type's finish-time distribution given the job's age. Bounded: a fixed-size
//! log-histogram per type (72 bins of `f32`) and at most [`MAX_TYPES`] types.

use std::collections::HashMap;

use crate::{
    crd::{CloudJob, CloudJobStatus, Phase, Service},
    reason::Reason,
    status::{self, condition},
};

/// Bins per doubling of the duration: neighbouring bin edges are 19 % apart, finer than the spread of
/// any real job type, so the histogram's resolution never decides where a poll goes.
const BINS_PER_OCTAVE: f64 = 4.0;
/// Lower edge of the first bin, in seconds (shorter durations count in the first bin).
const FIRST_EDGE_SECS: f64 = 0.5;
/// Bins per type: 0.5 s to 0.5 × 2^18 s (36 h); longer durations count in the last bin.
pub const BINS: usize = 72;
/// A type's weights are halved when they reach this, so that recent jobs count more and a type whose
/// durations change is relearned within about this many jobs.
const MAX_WEIGHT: f32 = 1000.0;
/// Types kept at most (which also bounds the metrics' label set); the type learned from least recently
/// is forgotten to make room for a new one.
pub const MAX_TYPES: usize = 256;
/// Finished jobs of a type needed before its polls are placed from the model; until then the age and
/// progress rule applies.
pub const MIN_SAMPLES: u64 = 20;
/// A type whose 90th percentile duration is more than this many times its 10th says little more than a
/// job's age does (issue 6's workload, log-uniform over 5 s..20 min whatever the type, is 80×): its jobs
/// are left to the age and progress rule, which is cheaper there.
pub const MAX_SPREAD: f64 = 20.0;
/// Below this weight of history longer than a job's age (about four jobs), the model knows too little
/// about that job (it has outlived nearly all that was seen of its type) and the age rule applies. Also
/// what keeps a cold start honest: while only the short jobs of a batch have finished, the long ones are
/// beyond the history and are polled by age, not as if they were about to finish.
const MIN_WEIGHT_BEYOND_AGE: f64 = 4.0;

/// A job type: the service and the cloud's `job_type` (already cut to 128 bytes by the status).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobTypeKey {
    pub service: Service,
    pub job_type: String,
}

impl JobTypeKey {
    /// The type of `cj`'s job, once a poll has reported it.
    pub fn of(cj: &CloudJob, status: &CloudJobStatus) -> Option<JobTypeKey> {
        Some(JobTypeKey {
            service: cj.spec.service,
            job_type: status.job_type.clone().filter(|t| !t.is_empty())?,
        })
    }
}

/// The durations of one job type, as a log-histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct DurationSketch {
    weights: [f32; BINS],
    total: f32,
    samples: u64,
}

impl Default for DurationSketch {
    fn default() -> Self {
        DurationSketch {
            weights: [0.0; BINS],
            total: 0.0,
            samples: 0,
        }
    }
}

/// Where `secs` falls on the bin scale: bin `i` spans positions `i..i + 1` (log-linear inside a bin).
fn position(secs: f64) -> f64 {
    // Also NaN: nothing is shorter than the first bin.
    if secs.is_nan() || secs <= FIRST_EDGE_SECS {
        return 0.0;
    }
    ((secs / FIRST_EDGE_SECS).log2() * BINS_PER_OCTAVE).min(BINS as f64)
}

/// The duration at a position of the bin scale.
fn seconds_at(position: f64) -> f64 {
    FIRST_EDGE_SECS * (position / BINS_PER_OCTAVE).exp2()
}

impl DurationSketch {
    /// Counts one finished job that ran `secs` seconds.
    pub fn add(&mut self, secs: f64) {
        if !secs.is_finite() || secs < 0.0 {
            return;
        }
        let bin = (position(secs) as usize).min(BINS - 1);
        self.weights[bin] += 1.0;
        self.total += 1.0;
        self.samples = self.samples.saturating_add(1);
        if self.total >= MAX_WEIGHT {
            self.weights.iter_mut().for_each(|w| *w *= 0.5);
            self.total *= 0.5;
        }
    }

    /// Finished jobs counted so far (before any halving).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Whether enough jobs of this type finished for polls to be placed from it.
    pub fn is_ready(&self) -> bool {
        self.samples >= MIN_SAMPLES && self.spread().is_some_and(|s| s <= MAX_SPREAD)
    }

    /// How widely the durations spread: the 90th percentile over the 10th.
    pub fn spread(&self) -> Option<f64> {
        Some(self.quantile(0.9)? / self.quantile(0.1)?)
    }

    /// The duration below which a share `q` (0..=1) of the jobs finished, in seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let target = q * f64::from(self.total);
        let mut below = 0.0;
        for (bin, weight) in self.weights.iter().map(|w| f64::from(*w)).enumerate() {
            if weight > 0.0 && below + weight >= target {
                let inside = ((target - below) / weight).clamp(0.0, 1.0);
                return Some(seconds_at(bin as f64 + inside));
            }
            below += weight;
        }
        Some(seconds_at(BINS as f64))
    }

    /// The finish time of a job of this type that has run `age_secs` without finishing, and, where the job
    /// reports its progress, what that says of its total duration. `None` when the model has nothing to
    /// say: too few samples, or the job has outlived what was seen of its type.
    pub fn given(&self, age_secs: f64, estimate: Option<OwnEstimate>) -> Option<FinishTime> {
        if !self.is_ready() || !age_secs.is_finite() {
            return None;
        }
        let age = position(age_secs.max(0.0));
        let mut remaining = [0.0f64; BINS];
        let mut raw = 0.0;
        for (bin, weight) in self.weights.iter().enumerate() {
            let (lo, hi) = (bin as f64, bin as f64 + 1.0);
            if hi <= age || *weight <= 0.0 {
                continue;
            }
            // The part of the bin beyond the job's age (uniform on the log scale inside a bin).
            let share = (hi - age.max(lo)) / (hi - lo);
            remaining[bin] = f64::from(*weight) * share;
            raw += remaining[bin];
        }
        if raw < MIN_WEIGHT_BEYOND_AGE {
            return None;
        }
        let mut total = raw;
        if let Some(own) = estimate {
            total = 0.0;
            for (bin, weight) in remaining.iter_mut().enumerate() {
                let centre = seconds_at(bin as f64 + 0.5).max(age_secs);
                *weight *= own.likelihood(centre);
                total += *weight;
            }
            // The job's own estimate lies where its type never went: the model cannot help place it.
            if total < raw * 1e-6 {
                return None;
            }
        }
        Some(FinishTime {
            weights: remaining,
            total,
            age,
        })
    }
}

/// A job's own estimate of its total duration, from its progress: log-normal around `expected_secs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OwnEstimate {
    pub expected_secs: f64,
    /// Spread of the estimate on the log scale (0.1: about ±10 %).
    pub sigma: f64,
}

impl OwnEstimate {
    fn likelihood(self, total_secs: f64) -> f64 {
        let z = (total_secs.ln() - self.expected_secs.ln()) / self.sigma.max(0.01);
        (-0.5 * z * z).exp()
    }
}

/// A job's finish-time distribution given its age (see [`DurationSketch::given`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FinishTime {
    weights: [f64; BINS],
    total: f64,
    /// The job's age on the bin scale.
    age: f64,
}

impl FinishTime {
    /// The chance that the job finishes within `window_secs` from now.
    pub fn within(&self, age_secs: f64, window_secs: f64) -> f64 {
        let until = position(age_secs + window_secs.max(0.0));
        let mut mass = 0.0;
        for (bin, weight) in self.weights.iter().enumerate() {
            let (lo, hi) = ((bin as f64).max(self.age), bin as f64 + 1.0);
            if *weight <= 0.0 || until <= lo {
                continue;
            }
            mass += weight * ((until - lo) / (hi - lo)).min(1.0);
        }
        (mass / self.total).clamp(0.0, 1.0)
    }
}

/// The duration sketches of every job type seen, at most [`MAX_TYPES`].
#[derive(Clone, Debug, Default)]
pub struct DurationModel {
    types: HashMap<JobTypeKey, TypeEntry>,
    /// Increases with every sample: when each type was last learned from, for eviction.
    clock: u64,
}

#[derive(Clone, Debug)]
struct TypeEntry {
    sketch: DurationSketch,
    last_learned: u64,
}

impl DurationModel {
    /// Counts one finished job of type `key` that ran `secs` seconds. A new type beyond [`MAX_TYPES`]
    /// evicts the type learned from least recently. Returns the type evicted, if any (for the metrics).
    pub fn learn(&mut self, key: JobTypeKey, secs: f64) -> Option<JobTypeKey> {
        self.clock += 1;
        let mut evicted = None;
        if !self.types.contains_key(&key) && self.types.len() >= MAX_TYPES {
            evicted = self
                .types
                .iter()
                .min_by_key(|(_, learned)| learned.last_learned)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = &evicted {
                self.types.remove(oldest);
            }
        }
        let learned = self.types.entry(key).or_insert_with(|| TypeEntry {
            sketch: DurationSketch::default(),
            last_learned: 0,
        });
        learned.sketch.add(secs);
        learned.last_learned = self.clock;
        evicted
    }

    /// The sketch of type `key`, if it was seen.
    pub fn sketch(&self, key: &JobTypeKey) -> Option<&DurationSketch> {
        self.types.get(key).map(|l| &l.sketch)
    }

    /// Every type and its sketch (for the metrics).
    pub fn types(&self) -> impl Iterator<Item = (&JobTypeKey, &DurationSketch)> {
        self.types.iter().map(|(k, l)| (k, &l.sketch))
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// The type and duration of `now` if it is a finished job that was not finished when last seen
/// (`was_finished`: the same CloudJob, as last seen, was): what the model learns from a CloudJob, once. A job that failed its deadline did not
/// finish and teaches nothing; one whose start or finish time is missing cannot be measured.
pub fn newly_finished(was_finished: bool, now: &CloudJob) -> Option<(JobTypeKey, f64)> {
    let finished = now
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(Phase::is_terminal);
    if was_finished || !finished {
        return None;
    }
    let status = now.status.as_ref()?;
    let deadline = status::find(status, condition::READY)
        .is_some_and(|ready| ready.reason == Reason::DeadlineExceeded.as_str());
    if deadline {
        return None;
    }
    let start = status.start_time.as_ref()?.0;
    let finish = status.finish_time.as_ref()?.0;
    let secs = finish.duration_since(start).as_secs_f64();
    (secs >= 0.0).then_some((JobTypeKey::of(now, status)?, secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::cloudjob;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn key(job_type: &str) -> JobTypeKey {
        JobTypeKey {
            service: Service::Ims,
            job_type: job_type.into(),
        }
    }

    fn sketch_of(durations: impl IntoIterator<Item = f64>) -> DurationSketch {
        let mut sketch = DurationSketch::default();
        durations.into_iter().for_each(|d| sketch.add(d));
        sketch
    }

    /// Durations spread evenly (in log) between `lo` and `hi`.
    fn log_uniform(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| lo * (hi / lo).powf((i as f64 + 0.5) / n as f64))
    }

    #[test]
    fn quantiles_are_within_a_bin_of_the_truth() {
        let sketch = sketch_of(log_uniform(10.0, 1000.0, 400));
        let median = sketch.quantile(0.5).expect("median");
        assert!((median / 100.0 - 1.0).abs() < 0.1, "median {median}");
        let p90 = sketch.quantile(0.9).expect("p90");
        let truth = 10.0 * 100f64.powf(0.9);
        assert!((p90 / truth - 1.0).abs() < 0.1, "p90 {p90} vs {truth}");
        assert!(sketch.quantile(0.0).expect("min") <= 10.5);
        assert_eq!(DurationSketch::default().quantile(0.5), None);
        assert_eq!(sketch.quantile(1.5), None);
    }

    #[test]
    fn out_of_range_durations_are_clamped_or_ignored() {
        let sketch = sketch_of([0.0, 0.1, 1e9, f64::NAN, -3.0, f64::INFINITY]);
        assert_eq!(sketch.samples(), 3);
        assert!(sketch.quantile(0.0).expect("q") >= FIRST_EDGE_SECS);
        assert!(sketch.quantile(1.0).expect("q") <= seconds_at(BINS as f64));
    }

    #[test]
    fn weights_stay_bounded_and_recent_jobs_count_more() {
        let mut sketch = sketch_of(std::iter::repeat_n(10.0, 5000));
        assert!(sketch.total < MAX_WEIGHT);
        (0..2000).for_each(|_| sketch.add(500.0));
        assert_eq!(sketch.samples(), 7000);
        let median = sketch.quantile(0.5).expect("median");
        assert!(median > 400.0, "the type was relearned: median {median}");
    }

    #[test]
    fn too_few_samples_say_nothing() {
        let few = sketch_of(log_uniform(10.0, 20.0, (MIN_SAMPLES - 1) as usize));
        let wide = sketch_of(log_uniform(5.0, 1200.0, 400));
        assert!(wide.spread().expect("spread") > MAX_SPREAD && !wide.is_ready());
        assert!(!few.is_ready());
        assert_eq!(few.given(1.0, None), None);
        let enough = sketch_of(log_uniform(10.0, 20.0, MIN_SAMPLES as usize));
        assert!(enough.given(1.0, None).is_some());
        // A job older than every one seen of its type: the model has nothing to say.
        assert_eq!(enough.given(100.0, None), None);
    }

    #[test]
    fn finish_time_is_conditional_on_the_age() {
        let sketch = sketch_of(log_uniform(50.0, 500.0, 400));
        let young = sketch.given(1.0, None).expect("young");
        // Nothing finishes before 50 s; about half by 158 s (the median of 50..500 in log).
        assert!(young.within(1.0, 40.0) < 0.01);
        assert!((young.within(1.0, 157.0) - 0.5).abs() < 0.05);
        assert!((young.within(1.0, 1e6) - 1.0).abs() < 1e-9);
        // Of the jobs still running at 158 s, half are done by 281 s.
        let old = sketch.given(158.0, None).expect("old");
        assert!(old.within(158.0, 0.0) < 1e-9);
        let by_281 = old.within(158.0, 123.0);
        assert!((by_281 - 0.5).abs() < 0.05, "{by_281}");
    }

    #[test]
    fn the_jobs_own_estimate_sharpens_the_distribution() {
        let sketch = sketch_of(log_uniform(50.0, 500.0, 400));
        let own = OwnEstimate {
            expected_secs: 200.0,
            sigma: 0.1,
        };
        let informed = sketch.given(100.0, Some(own)).expect("informed");
        assert!(informed.within(100.0, 60.0) < 0.05);
        assert!(informed.within(100.0, 150.0) > 0.9);
        // An estimate far beyond anything seen of the type: the model cannot help.
        let beyond = OwnEstimate {
            expected_secs: 1e7,
            sigma: 0.1,
        };
        assert_eq!(sketch.given(100.0, Some(beyond)), None);
    }

    #[test]
    fn types_are_capped_and_the_least_recently_learned_is_evicted() {
        let mut model = DurationModel::default();
        for i in 0..MAX_TYPES {
            assert_eq!(model.learn(key(&format!("t{i}")), 10.0), None);
        }
        // t0 is learned from again, so t1 is now the stalest.
        assert_eq!(model.learn(key("t0"), 12.0), None);
        assert_eq!(model.learn(key("new"), 5.0), Some(key("t1")));
        assert_eq!(model.len(), MAX_TYPES);
        assert!(model.sketch(&key("t1")).is_none());
        assert_eq!(model.sketch(&key("t0")).map(|s| s.samples()), Some(2));
        assert_eq!(model.sketch(&key("new")).map(|s| s.samples()), Some(1));
    }

    fn finished(phase: Phase, start: i64, finish: Option<i64>, reason: &str) -> CloudJob {
        let at = |s| Time(jiff::Timestamp::from_second(1_700_000_000 + s).expect("ts"));
        let mut cj = cloudjob("a");
        cj.status = Some(CloudJobStatus {
            phase: Some(phase),
            job_type: Some("imsCreateImageByInstance".into()),
            start_time: Some(at(start)),
            finish_time: finish.map(at),
            conditions: vec![Condition {
                type_: condition::READY.into(),
                status: "False".into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: at(0),
                observed_generation: None,
            }],
            ..Default::default()
        });
        cj
    }

    #[test]
    fn a_job_teaches_its_duration_once_when_it_finishes() {
        let running = finished(Phase::Running, 0, None, "Progressing");
        let done = finished(Phase::Succeeded, 0, Some(75), "Succeeded");
        let learned = newly_finished(false, &done).expect("learned");
        assert_eq!(learned.0.job_type, "imsCreateImageByInstance");
        assert_eq!(learned.1, 75.0);
        // Seen for the first time already finished (the cache at start): learned.
        assert!(newly_finished(false, &done).is_some());
        // Seen finished again (a relist, a bookkeeping write): not learned twice.
        assert_eq!(newly_finished(true, &done), None);
        assert_eq!(newly_finished(false, &running), None);
        let failed = finished(Phase::Failed, 0, Some(30), "JobFailed");
        assert!(newly_finished(false, &failed).is_some());
        let deadline = finished(Phase::Failed, 0, Some(30), "DeadlineExceeded");
        assert_eq!(newly_finished(false, &deadline), None);
        let unmeasured = finished(Phase::Succeeded, 0, None, "Succeeded");
        assert_eq!(newly_finished(false, &unmeasured), None);
    }
}

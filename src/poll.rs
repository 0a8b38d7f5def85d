//! The poll-interval rule: how long to wait before the next GET of a job that is not finished.
//!
//! Pure. Once the operator has seen enough jobs of a type finish, polls are placed from that type's
//! finish-time distribution given the job's age (and, where the job reports progress, its own estimate):
//! where finishing is likely, often; where it is not, seldom. Until then, and for a job older than any
//! seen of its type: quick at first, then proportional to how long the job has run, and, where the job
//! reports progress, aimed at the moment it should finish.

use std::time::Duration;

use jiff::Timestamp;

use crate::{
    crd::{CloudJob, CloudJobStatus, POLL_INTERVAL_ANNOTATION},
    durations::{DurationModel, FinishTime, JobTypeKey, OwnEstimate},
};

/// Default shortest interval between two polls of one job.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(2);
/// Default longest interval between two polls of one job.
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(60);

/// How often a job waiting for its order to be paid (PENDING_PAYMENT) is polled: a person has to pay or
/// cancel the order, which takes minutes to days, and a cancelled order's job never changes again. A
/// `cloudjob.io/reconcile-requested-at` annotation still polls at once (e.g. right after paying).
pub const PENDING_PAYMENT_INTERVAL: Duration = Duration::from_secs(300);

/// Below this many expected remaining seconds, the next poll aims just past the expected finish.
const NEAR_FINISH_SECS: f64 = 15.0;

/// A running job at 100 % is polled again after this share of its age.
const AT_100_PERCENT_AGE_SHARE: f64 = 0.05;

/// Default price of one request, in seconds of detection delay (`--poll-request-cost`); see [`Learned`].
/// Chosen on the benchmark's typed workload (`cloudjob-bench --virtual`): the highest price whose median
/// detection delay is still no worse than a fixed 10 s poller's, at about a third of its requests.
pub const DEFAULT_REQUEST_COST: Duration = Duration::from_millis(1250);

/// The price of a request is counted for a job type whose median duration is this long ...
const COST_REFERENCE_MEDIAN_SECS: f64 = 60.0;
/// ... and grows with this power of the type's median: ×0.64 for a 10 s type, ×1.97 for a 15 min one. A few
/// seconds matter less after a quarter of an hour than after ten seconds; on the typed workload this
/// reaches the same median delay with about 10 % fewer requests than one price for all types.
const COST_GROWTH_EXPONENT: f64 = 0.25;

/// How the request's price scales for a type whose median duration is `median_secs`.
fn cost_growth(median_secs: f64) -> f64 {
    (median_secs.max(MIN_PRICED_MEDIAN_SECS) / COST_REFERENCE_MEDIAN_SECS)
        .powf(COST_GROWTH_EXPONENT)
}

/// Types shorter than this are priced as if they lasted this long (no price falls towards zero).
const MIN_PRICED_MEDIAN_SECS: f64 = 1.0;

/// How the operator spaces polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// Adapt to the job's age and progress (the default).
    Adaptive,
    /// Always the same interval, as the Terraform waiters do (for comparison in benchmarks).
    Fixed(Duration),
}

/// Shortest and longest interval for one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
}

impl Bounds {
    /// The CloudJob's `spec.polling`, filled in with the defaults.
    pub fn of(cj: &CloudJob) -> Bounds {
        let polling = cj.spec.polling.clone().unwrap_or_default();
        let secs = |v: Option<i64>, default: Duration| {
            v.and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .unwrap_or(default)
        };
        let min = secs(polling.min_interval_seconds, DEFAULT_MIN_INTERVAL);
        let max = secs(polling.max_interval_seconds, DEFAULT_MAX_INTERVAL.max(min)).max(min);
        Bounds { min, max }
    }
}

/// What the adaptive mode knows besides the job itself.
#[derive(Clone, Copy, Debug)]
pub struct Learned<'a> {
    /// The durations of the job types seen finished.
    pub durations: &'a DurationModel,
    /// The trade-off between requests and detection delay: how much detection delay one request is
    /// worth for a type whose median duration is a minute (more for longer types, see [`cost_growth`]);
    /// `--poll-request-cost`, per CloudJob `spec.polling.requestCostMilliseconds`. The next poll goes
    /// where the delay it saves on average reaches this price: higher means fewer requests and later
    /// detection.
    pub request_cost: Duration,
}

impl Learned<'_> {
    /// The request cost for `cj` in seconds: its own `spec.polling.requestCostMilliseconds`, else the
    /// operator's.
    fn request_cost_of(&self, cj: &CloudJob) -> f64 {
        cj.spec
            .polling
            .as_ref()
            .and_then(|p| p.request_cost_milliseconds)
            .filter(|ms| *ms > 0)
            .map_or(self.request_cost.as_secs_f64(), |ms| ms as f64 / 1000.0)
    }
}

/// The delay before the next poll. `jitter` (around 1.0, e.g. 0.9..1.1) spreads polls of jobs created
/// together so they do not hit the cloud in lockstep. It is applied after the bounds, and what it pushes
/// past a bound is folded back inside. A job without progress that the age rule holds at the maximum
/// (every old job without progress sits there for good) polls on its own slot instead, see
/// [`own_slot`]: random jitter would need a quarter of an hour to spread a batch created together over
/// the whole interval. (A job placed from its type's history reaches the maximum only for a while, and
/// moving onto a slot would cost it a request each time.)
pub fn next_interval(
    cj: &CloudJob,
    status: &CloudJobStatus,
    mode: PollMode,
    learned: Learned<'_>,
    now: Timestamp,
    jitter: f64,
) -> Duration {
    if let Some(fixed) = annotation_interval(cj) {
        return fixed;
    }
    let bounds = Bounds::of(cj);
    if awaits_payment(status) {
        let slow = PENDING_PAYMENT_INTERVAL.max(bounds.max);
        return slow.mul_f64(jitter.clamp(0.5, 1.5));
    }
    let interval = match mode {
        PollMode::Fixed(interval) => return interval,
        PollMode::Adaptive => {
            let elapsed = age(
                status,
                cj.metadata.creation_timestamp.as_ref().map(|t| t.0),
                now,
            );
            match finish_time(cj, status, learned.durations, elapsed) {
                Some((finish, median)) => {
                    let cost = learned.request_cost_of(cj) * cost_growth(median);
                    place(&finish, elapsed, cost, bounds.max)
                }
                None => {
                    let by_age = adaptive(status, elapsed);
                    let reports_progress = status.progress.is_some_and(|p| p >= 1);
                    if by_age >= bounds.max && bounds.max > bounds.min && !reports_progress {
                        return own_slot(cj, now, bounds);
                    }
                    by_age
                }
            }
        }
    };
    let clamped = interval.clamp(bounds.min, bounds.max);
    fold_into(clamped.mul_f64(jitter.clamp(0.5, 1.5)), bounds)
}

/// The time until the job's own slot at or before one maximum interval from `now`. Each CloudJob's
/// slots lie one maximum interval apart, at a phase taken from its uid, so jobs polled at the maximum
/// spread evenly over the interval from their first poll there on, whenever they were created, and keep
/// their slots across operator restarts. It never exceeds the maximum; the first poll at the maximum may
/// come early (by less than one interval), after which each poll falls on the job's slot.
fn own_slot(cj: &CloudJob, now: Timestamp, bounds: Bounds) -> Duration {
    let period = i64::try_from(bounds.max.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let phase = i64::try_from(identity_hash(cj) % period.unsigned_abs()).unwrap_or(0);
    let target = now.as_millisecond().saturating_add(period);
    let slot = target - (target - phase).rem_euclid(period);
    let until = u64::try_from(slot - now.as_millisecond()).unwrap_or(0);
    Duration::from_millis(until).clamp(bounds.min, bounds.max)
}

/// A hash of the CloudJob's uid (its namespace and name before the API server gave it one). Only spread
/// matters: std's SipHash with fixed keys, stable within one build of the operator.
fn identity_hash(cj: &CloudJob) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    match &cj.metadata.uid {
        Some(uid) => uid.hash(&mut hasher),
        None => (&cj.metadata.namespace, &cj.metadata.name).hash(&mut hasher),
    }
    hasher.finish()
}

/// Whether the status says the job waits for an order to be paid.
fn awaits_payment(status: &CloudJobStatus) -> bool {
    status.conditions.iter().any(|c| {
        c.type_ == crate::status::condition::READY
            && c.reason == crate::reason::Reason::PendingPayment.as_str()
    })
}

/// `value` with what lies beyond a bound reflected back inside (then clamped, for a spread wider than the
/// bounds).
fn fold_into(value: Duration, bounds: Bounds) -> Duration {
    let folded = if value > bounds.max {
        bounds.max.saturating_sub(value - bounds.max)
    } else if value < bounds.min {
        bounds.min + (bounds.min - value)
    } else {
        value
    };
    folded.clamp(bounds.min, bounds.max)
}

/// Seconds the job has run: since the cloud says it began, else since the CloudJob was created.
fn age(status: &CloudJobStatus, created: Option<Timestamp>, now: Timestamp) -> f64 {
    let since = status
        .start_time
        .as_ref()
        .map(|t| t.0)
        .or(created)
        .unwrap_or(now);
    now.duration_since(since).as_secs_f64().max(0.0)
}

/// The job's finish-time distribution from its type's history, and the type's median duration, when the
/// model has them. A job at 100 % that still runs is left to the age rule, which looks again soon
/// whatever its type.
fn finish_time(
    cj: &CloudJob,
    status: &CloudJobStatus,
    durations: &DurationModel,
    elapsed: f64,
) -> Option<(FinishTime, f64)> {
    let sketch = durations.sketch(&JobTypeKey::of(cj, status)?)?;
    let own = match status.progress {
        Some(p) if p >= 100 => return None,
        Some(p) if p >= 1 && elapsed >= 1.0 => Some(own_estimate(p, elapsed)),
        _ => None,
    };
    Some((sketch.given(elapsed, own)?, sketch.quantile(0.5)?))
}

/// What `p` % done after `elapsed` seconds says of the job's total duration: `elapsed × 100 / p` for a
/// steady job, less certain the less is done (progress curves are rarely straight: smoothstep, steps).
fn own_estimate(p: i32, elapsed: f64) -> OwnEstimate {
    let done = f64::from(p.clamp(1, 99)) / 100.0;
    OwnEstimate {
        expected_secs: elapsed / done,
        sigma: 0.15 + 0.6 * (1.0 - done),
    }
}

/// The next poll from the finish-time distribution: at the first window `w` for which the detection
/// delay a poll after `w` saves on average, P(finish within w) × w / 2, reaches the price of a request
/// (`request_cost`, in seconds).
/// Where finishing is likely, the window is short; where it is not, long (up to `limit`, the maximum
/// interval). This is the square-root rule of optimal inspection (interval ≈ √(2 × cost / hazard)),
/// computed over the window instead of at its start so that a rising chance (a job about to finish by
/// its own estimate) is not overshot.
fn place(finish: &FinishTime, elapsed: f64, request_cost: f64, limit: Duration) -> Duration {
    let limit = limit.as_secs_f64();
    let worth = |window: f64| finish.within(elapsed, window) * window / 2.0 >= request_cost;
    if !worth(limit) {
        return Duration::from_secs_f64(limit);
    }
    let (mut not_yet, mut enough) = (0.0, limit);
    // 30 halvings: well below a millisecond for any maximum interval up to an hour.
    for _ in 0..30 {
        let mid = (not_yet + enough) / 2.0;
        if worth(mid) {
            enough = mid;
        } else {
            not_yet = mid;
        }
    }
    Duration::from_secs_f64(enough)
}

/// Today's rule, used until a job's type has enough history: by age, aimed by progress.
fn adaptive(status: &CloudJobStatus, elapsed: f64) -> Duration {
    match status.progress {
        // With p% done after `elapsed`, a steady job needs elapsed*(100-p)/p more. Far from the end, poll at
        // 60% of that, so the estimate sharpens as the end nears; close to it, poll just after the expected
        // finish, so the finish is seen in one request instead of creeping up on it.
        Some(p) if (1..100).contains(&p) && elapsed >= 1.0 => {
            let remaining = elapsed * f64::from(100 - p) / f64::from(p);
            let aim = if remaining <= NEAR_FINISH_SECS {
                remaining * 1.1 + 1.0
            } else {
                remaining * 0.6
            };
            // Progress early in a job is a poor predictor: never more than double the job's age.
            Duration::from_secs_f64(aim.min(2.0 * elapsed))
        }
        // Done, by its own account, but not finished yet: it is about to finish, so look again soon (a
        // quarter of its age would see it up to a minute late).
        Some(p) if p >= 100 => Duration::from_secs_f64(elapsed * AT_100_PERCENT_AGE_SHARE),
        // Without progress, a job that has run for t seconds will likely run a while longer: wait t/4.
        _ => Duration::from_secs_f64(elapsed * 0.25),
    }
}

/// `cloudjob.io/poll-interval`: `30s`, `2m`, `1h` or plain seconds, at least one second.
pub fn annotation_interval(cj: &CloudJob) -> Option<Duration> {
    parse_interval(
        cj.metadata
            .annotations
            .as_ref()?
            .get(POLL_INTERVAL_ANNOTATION)?,
    )
}

/// At least one second, at most a day: the annotation steers polling, it cannot stop it or flood the cloud.
fn parse_interval(raw: &str) -> Option<Duration> {
    let interval = crate::duration::parse(raw).ok()?;
    (interval >= Duration::from_secs(1)).then(|| interval.min(Duration::from_secs(24 * 3600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crd::PollingSpec,
        test_support::{cloudjob, no_history},
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn none() -> Learned<'static> {
        Learned {
            durations: no_history(),
            request_cost: DEFAULT_REQUEST_COST,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("ts")
    }

    /// The adaptive interval for `cj` in `status`, at [`at`]`(now)`, knowing `learned`.
    fn adaptive_by(
        learned: Learned<'_>,
        cj: &CloudJob,
        status: &CloudJobStatus,
        now: i64,
        jitter: f64,
    ) -> Duration {
        next_interval(cj, status, PollMode::Adaptive, learned, at(now), jitter)
    }

    /// [`adaptive_by`] with nothing learned.
    fn adaptive(cj: &CloudJob, status: &CloudJobStatus, now: i64, jitter: f64) -> Duration {
        adaptive_by(none(), cj, status, now, jitter)
    }

    fn status(started: i64, progress: Option<i32>) -> CloudJobStatus {
        CloudJobStatus {
            start_time: Some(Time(at(started))),
            progress,
            ..Default::default()
        }
    }

    #[test]
    fn young_jobs_are_polled_at_the_minimum() {
        let cj = cloudjob("a");
        assert_eq!(
            adaptive(&cj, &status(0, None), 3, 1.0),
            DEFAULT_MIN_INTERVAL
        );
    }

    #[test]
    fn interval_grows_with_age_up_to_the_maximum() {
        let cj = cloudjob("a");
        let i = |t| adaptive(&cj, &status(0, None), t, 1.0);
        assert_eq!(i(40), Duration::from_secs(10));
        assert!(i(40) < i(120));
        assert!(i(10_000) <= DEFAULT_MAX_INTERVAL);
    }

    #[test]
    fn progress_aims_at_the_expected_finish() {
        let cj = cloudjob("a");
        let i = |started, progress, now| adaptive(&cj, &status(started, Some(progress)), now, 1.0);
        // 80% after 160 s: about 40 s left, so poll in 24 s rather than in 40 s (a quarter of its age).
        assert_eq!(i(0, 80, 160), Duration::from_secs(24));
        // 95% after 190 s: about 10 s left, so poll just after the expected finish (12 s).
        assert_eq!(i(0, 95, 190), Duration::from_secs(12));
        // 10% after 60 s: about 540 s left; capped by the maximum.
        assert_eq!(i(0, 10, 60), DEFAULT_MAX_INTERVAL);
        // Early progress never stretches the interval beyond twice the job's age.
        assert_eq!(i(0, 2, 3), Duration::from_secs(6));
    }

    #[test]
    fn spec_bounds_and_jitter_apply() {
        let mut cj = cloudjob("a");
        cj.spec.polling = Some(PollingSpec {
            min_interval_seconds: Some(5),
            max_interval_seconds: Some(20),
            ..Default::default()
        });
        assert_eq!(
            adaptive(&cj, &status(0, None), 1, 1.0),
            Duration::from_secs(5)
        );
        let old = adaptive(&cj, &status(0, None), 10_000, 1.0);
        assert!(old >= Duration::from_secs(5) && old <= Duration::from_secs(20));
        let jittered = adaptive(&cj, &status(0, None), 40, 1.1);
        assert_eq!(jittered, Duration::from_secs(11));
    }

    /// `cloudjob("a")` with `uid`.
    fn with_uid(uid: &str) -> CloudJob {
        let mut cj = cloudjob("a");
        cj.metadata.uid = Some(uid.into());
        cj
    }

    #[test]
    fn old_jobs_at_the_maximum_poll_on_their_own_slots_spread_over_the_interval() {
        let old = status(0, None);
        // 6,000 CloudJobs created together, all at the maximum at once: their next polls spread evenly
        // over the interval, whatever the jitter says.
        let mut per_tenth = [0u32; 10];
        for n in 0..6_000 {
            let jitter = [0.9, 1.0, 1.1][n % 3];
            let interval = adaptive(&with_uid(&format!("uid-{n}")), &old, 10_000, jitter);
            assert!(interval >= DEFAULT_MIN_INTERVAL && interval <= DEFAULT_MAX_INTERVAL);
            let tenth =
                (interval.as_secs_f64() / DEFAULT_MAX_INTERVAL.as_secs_f64() * 10.0) as usize;
            per_tenth[tenth.min(9)] += 1;
        }
        // 600 expected in each tenth; the binomial's spread is ±23.
        assert!(
            per_tenth.iter().all(|n| (500..=700).contains(n)),
            "{per_tenth:?}"
        );
        // Once on its slot, a job stays there: its next poll is one maximum interval later, whatever the
        // jitter, so each keeps its place in the spread.
        let cj = with_uid("uid-7");
        let slot_at = |now_ms: i64| {
            let now = Timestamp::from_millisecond(at(0).as_millisecond() + now_ms).expect("ts");
            let wait = next_interval(&cj, &old, PollMode::Adaptive, none(), now, 1.0);
            now_ms + i64::try_from(wait.as_millis()).expect("ms")
        };
        let slot = slot_at(10_000_000);
        assert_eq!(slot_at(slot), slot + 60_000);
        assert_eq!(slot_at(slot + 250), slot + 60_000, "a poll a little late");
        // Young jobs at the minimum are spread above it.
        let young = adaptive(&cj, &status(0, None), 1, 0.9);
        assert!(young > DEFAULT_MIN_INTERVAL && young <= DEFAULT_MIN_INTERVAL.mul_f64(1.1));
    }

    #[test]
    fn a_running_job_at_100_percent_is_polled_soon() {
        let cj = cloudjob("a");
        let at_100 = adaptive(&cj, &status(0, Some(100)), 400, 1.0);
        assert_eq!(at_100, Duration::from_secs(20));
        // Without progress, a quarter of its age (100 s) holds it at the 60 s maximum.
        assert!(at_100 < DEFAULT_MAX_INTERVAL / 2, "{at_100:?}");
    }

    #[test]
    fn annotation_and_fixed_mode_override() {
        let mut cj = cloudjob("a");
        assert_eq!(
            next_interval(
                &cj,
                &status(0, None),
                PollMode::Fixed(Duration::from_secs(10)),
                none(),
                at(1000),
                1.0
            ),
            Duration::from_secs(10)
        );
        cj.metadata.annotations =
            Some([(POLL_INTERVAL_ANNOTATION.to_string(), "2m".to_string())].into());
        assert_eq!(
            adaptive(&cj, &status(0, None), 1, 1.0),
            Duration::from_secs(120)
        );
        assert_eq!(parse_interval("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("fast"), None);
        assert_eq!(parse_interval("99999999999999999999h"), None);
    }

    /// A model that saw `n` jobs of the test CloudJob's type, spread evenly (in log) over `lo..hi` seconds.
    fn history(n: usize, lo: f64, hi: f64) -> DurationModel {
        let mut model = DurationModel::default();
        for i in 0..n {
            let secs = lo * (hi / lo).powf((i as f64 + 0.5) / n as f64);
            model.learn(image_type(), secs);
        }
        model
    }

    fn image_type() -> JobTypeKey {
        JobTypeKey {
            service: crate::crd::Service::Ims,
            job_type: "imsCreateImageByInstance".into(),
        }
    }

    fn typed(started: i64, progress: Option<i32>) -> CloudJobStatus {
        CloudJobStatus {
            job_type: Some("imsCreateImageByInstance".into()),
            ..status(started, progress)
        }
    }

    fn with(model: &DurationModel) -> Learned<'_> {
        Learned {
            durations: model,
            request_cost: DEFAULT_REQUEST_COST,
        }
    }

    #[test]
    fn a_learned_type_is_polled_seldom_where_it_rarely_finishes_and_often_where_it_does() {
        let cj = cloudjob("a");
        let model = history(100, 250.0, 350.0);
        let i = |now, status: &CloudJobStatus| adaptive_by(with(&model), &cj, status, now, 1.0);
        // No job of this type finishes within a minute of its start: wait the maximum at once, where
        // the age rule would poll every 2 s at first.
        assert_eq!(i(5, &typed(0, None)), DEFAULT_MAX_INTERVAL);
        assert_eq!(i(150, &typed(0, None)), DEFAULT_MAX_INTERVAL);
        // Right where they finish: often, far more often than the age rule's quarter of the age.
        let busy = i(290, &typed(0, None));
        assert!(busy <= Duration::from_secs(15), "{busy:?}");
        // Older than nearly all seen: the age rule (a quarter of the age, up to the maximum, where the
        // job polls on its own slot).
        assert_eq!(
            i(400, &typed(0, None)),
            own_slot(&cj, at(400), Bounds::of(&cj))
        );
        // A job of another type knows nothing of this history.
        assert_eq!(i(5, &status(0, None)), DEFAULT_MIN_INTERVAL);
    }

    #[test]
    fn until_a_type_has_enough_samples_the_age_rule_applies() {
        let cj = cloudjob("a");
        let i = |model: &DurationModel| adaptive_by(with(model), &cj, &typed(0, None), 40, 1.0);
        let few = history((crate::durations::MIN_SAMPLES - 1) as usize, 250.0, 350.0);
        assert_eq!(i(&few), Duration::from_secs(10));
        let enough = history(crate::durations::MIN_SAMPLES as usize, 250.0, 350.0);
        assert_eq!(i(&enough), DEFAULT_MAX_INTERVAL);
        // A type whose durations spread too widely to say more than the age: the age rule.
        let uninformative = history(200, 5.0, 1200.0);
        assert_eq!(i(&uninformative), Duration::from_secs(10));
    }

    #[test]
    fn the_request_cost_trades_requests_for_delay_with_a_per_object_override() {
        let mut cj = cloudjob("a");
        let model = history(200, 100.0, 400.0);
        let at_cost = |cj: &CloudJob, millis| {
            let learned = Learned {
                durations: &model,
                request_cost: Duration::from_millis(millis),
            };
            adaptive_by(learned, cj, &typed(0, None), 200, 1.0)
        };
        let (eager, default, frugal) = (at_cost(&cj, 500), at_cost(&cj, 1000), at_cost(&cj, 2000));
        assert!(
            eager < default && default < frugal,
            "{eager:?} {default:?} {frugal:?}"
        );
        // The square-root rule: four times the price, about twice the interval.
        let ratio = frugal.as_secs_f64() / eager.as_secs_f64();
        assert!((1.6..2.4).contains(&ratio), "{ratio}");
        cj.spec.polling = Some(PollingSpec {
            request_cost_milliseconds: Some(2000),
            ..Default::default()
        });
        assert_eq!(at_cost(&cj, 500), frugal);
    }

    #[test]
    fn the_jobs_own_progress_is_combined_with_its_types_history() {
        let cj = cloudjob("a");
        let model = history(200, 100.0, 400.0);
        let i = |progress, now| adaptive_by(with(&model), &cj, &typed(0, progress), now, 1.0);
        // Half done after 120 s: the finish is expected near 240 s, so wait longer than the type alone
        // would have a job of that age wait.
        let half = i(Some(50), 120);
        assert!(half > i(None, 120), "{half:?}");
        // 95 % after 190 s: about 10 s left, so look again around then.
        let nearly = i(Some(95), 190);
        assert!(
            nearly >= Duration::from_secs(3) && nearly <= Duration::from_secs(15),
            "{nearly:?}"
        );
        assert!(nearly < i(None, 190), "{nearly:?}");
        // A job at 100 % that still runs is looked at soon, whatever its type says.
        assert_eq!(i(Some(100), 200), Duration::from_secs(10));
    }

    #[test]
    fn learned_intervals_keep_the_bounds_and_are_jittered_after_them() {
        let mut cj = cloudjob("a");
        cj.spec.polling = Some(PollingSpec {
            min_interval_seconds: Some(5),
            max_interval_seconds: Some(20),
            request_cost_milliseconds: Some(100),
        });
        let model = history(100, 250.0, 350.0);
        let i = |now, jitter| adaptive_by(with(&model), &cj, &typed(0, None), now, jitter);
        assert_eq!(i(5, 1.0), Duration::from_secs(20));
        assert_eq!(
            i(5, 1.1),
            Duration::from_secs(18),
            "folded back below the maximum"
        );
        assert_eq!(i(300, 1.0), Duration::from_secs(5));
        assert_eq!(
            i(300, 0.9),
            Duration::from_secs_f64(5.5),
            "folded back above the minimum"
        );
    }
}

//! The poll-interval rule: how long to wait before the next GET of a job that is not finished.
//!
//! Pure. Quick at first, then proportional to how long the job has run, and, where the job reports progress,
//! aimed at the moment it should finish (so a finished job is seen soon without polling a long job often).

use std::time::Duration;

use jiff::Timestamp;

use crate::crd::{CloudJob, CloudJobStatus, POLL_INTERVAL_ANNOTATION};

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

/// The delay before the next poll. `jitter` (around 1.0, e.g. 0.9..1.1) spreads polls of jobs created
/// together so they do not hit the cloud in lockstep. It is applied after the bounds, and what it pushes
/// past a bound is folded back inside, so that jobs held at a bound (every old job without progress sits at
/// the maximum) are spread below it instead of all polling at exactly the bound.
pub fn next_interval(
    cj: &CloudJob,
    status: &CloudJobStatus,
    mode: PollMode,
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
        PollMode::Adaptive => adaptive(
            status,
            cj.metadata.creation_timestamp.as_ref().map(|t| t.0),
            now,
        ),
    };
    let clamped = interval.clamp(bounds.min, bounds.max);
    fold_into(clamped.mul_f64(jitter.clamp(0.5, 1.5)), bounds)
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

fn adaptive(status: &CloudJobStatus, created: Option<Timestamp>, now: Timestamp) -> Duration {
    let since = status
        .start_time
        .as_ref()
        .map(|t| t.0)
        .or(created)
        .unwrap_or(now);
    let elapsed = now.duration_since(since).as_secs_f64().max(0.0);
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
    use crate::{crd::PollingSpec, test_support::cloudjob};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("ts")
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
            next_interval(&cj, &status(0, None), PollMode::Adaptive, at(3), 1.0),
            DEFAULT_MIN_INTERVAL
        );
    }

    #[test]
    fn interval_grows_with_age_up_to_the_maximum() {
        let cj = cloudjob("a");
        let i = |t| next_interval(&cj, &status(0, None), PollMode::Adaptive, at(t), 1.0);
        assert_eq!(i(40), Duration::from_secs(10));
        assert!(i(40) < i(120));
        assert_eq!(i(10_000), DEFAULT_MAX_INTERVAL);
    }

    #[test]
    fn progress_aims_at_the_expected_finish() {
        let cj = cloudjob("a");
        let i = |started, progress, now| {
            next_interval(
                &cj,
                &status(started, Some(progress)),
                PollMode::Adaptive,
                at(now),
                1.0,
            )
        };
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
        });
        assert_eq!(
            next_interval(&cj, &status(0, None), PollMode::Adaptive, at(1), 1.0),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_interval(&cj, &status(0, None), PollMode::Adaptive, at(10_000), 1.0),
            Duration::from_secs(20)
        );
        let jittered = next_interval(&cj, &status(0, None), PollMode::Adaptive, at(40), 1.1);
        assert_eq!(jittered, Duration::from_secs(11));
    }

    #[test]
    fn old_jobs_at_the_maximum_are_spread_below_it_not_polled_in_lockstep() {
        let cj = cloudjob("a");
        let i = |jitter| {
            next_interval(
                &cj,
                &status(0, None),
                PollMode::Adaptive,
                at(10_000),
                jitter,
            )
        };
        let spread: Vec<Duration> = [0.9, 0.95, 1.0, 1.05, 1.1].into_iter().map(i).collect();
        assert!(
            spread
                .iter()
                .all(|d| *d <= DEFAULT_MAX_INTERVAL && *d >= Duration::from_secs(54))
        );
        assert_eq!(
            i(1.1),
            Duration::from_secs(54),
            "folded back below the maximum"
        );
        assert_eq!(i(1.05), Duration::from_secs(57));
        assert_eq!(i(0.95), Duration::from_secs(57));
        // Young jobs at the minimum are spread above it.
        let young = next_interval(&cj, &status(0, None), PollMode::Adaptive, at(1), 0.9);
        assert!(young > DEFAULT_MIN_INTERVAL && young <= DEFAULT_MIN_INTERVAL.mul_f64(1.1));
    }

    #[test]
    fn a_running_job_at_100_percent_is_polled_soon() {
        let cj = cloudjob("a");
        let at_100 = next_interval(&cj, &status(0, Some(100)), PollMode::Adaptive, at(400), 1.0);
        assert_eq!(at_100, Duration::from_secs(20));
        let without = next_interval(&cj, &status(0, None), PollMode::Adaptive, at(400), 1.0);
        assert!(at_100 < without / 2, "{at_100:?} vs {without:?}");
    }

    #[test]
    fn annotation_and_fixed_mode_override() {
        let mut cj = cloudjob("a");
        assert_eq!(
            next_interval(
                &cj,
                &status(0, None),
                PollMode::Fixed(Duration::from_secs(10)),
                at(1000),
                1.0
            ),
            Duration::from_secs(10)
        );
        cj.metadata.annotations =
            Some([(POLL_INTERVAL_ANNOTATION.to_string(), "2m".to_string())].into());
        assert_eq!(
            next_interval(&cj, &status(0, None), PollMode::Adaptive, at(1), 1.0),
            Duration::from_secs(120)
        );
        assert_eq!(parse_interval("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("fast"), None);
        assert_eq!(parse_interval("99999999999999999999h"), None);
    }
}

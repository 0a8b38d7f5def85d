//! The plan: from a CloudJob, what was observed of its job, and now, decide the status it should have, the
//! events to publish and when to look again.
//!
//! Pure: no I/O, the clock and the jitter are arguments. Every decision of a reconcile is made here
//! (finished, paused, deadline, the problem's reason and message through `status`, requeue or back-off);
//! `controller::observe` only gathers the facts and `controller::apply` only carries the plan out.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt as _;

use crate::{
    cloud::{client::CloudError, endpoint::EndpointError, model::JobObservation},
    crd::{CloudJob, CloudJobStatus, PAUSED_ANNOTATION, Phase},
    credentials::CredentialsError,
    durations::DurationModel,
    events::{self, EventSpec},
    poll::{self, PollMode},
    reason::Reason,
    status::{self, Handling, Outcome, condition},
};

/// What reconcile learned of the job.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Nothing was asked: the plan needs no poll ([`needs_poll`] was false).
    Skipped,
    /// The cloud answered with the job.
    Job(Box<JobObservation>),
    /// The job could not be read.
    Problem(Problem),
    /// Not asked yet: the endpoint's rate limit gave this CloudJob a turn this much later.
    Deferred(Duration),
}

/// Why the job could not be read: the user's input or the cloud, never the operator's own failure (those
/// are `crate::error::Error`, retried by the error policy).
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// The credentials Secret does not exist in the CloudJob's namespace.
    SecretNotFound,
    /// The credentials Secret lacks a key or holds an unusable value.
    SecretInvalid(CredentialsError),
    /// No endpoint URL can be built from the spec and the operator's settings.
    InvalidEndpoint(EndpointError),
    /// The cloud refused, failed or could not be reached.
    Cloud(CloudError),
    /// `spec.outputsConfigMap` names a ConfigMap this CloudJob does not own.
    ConfigMapNotOwned { name: String },
}

impl Problem {
    /// The condition reason this problem is reported with.
    pub fn reason(&self) -> Reason {
        match self {
            Problem::SecretNotFound => Reason::SecretNotFound,
            Problem::SecretInvalid(_) => Reason::SecretInvalid,
            Problem::InvalidEndpoint(_) => Reason::InvalidEndpoint,
            Problem::ConfigMapNotOwned { .. } => Reason::ConfigMapConflict,
            Problem::Cloud(e) => match e {
                CloudError::Throttled { .. } => Reason::Throttled,
                CloudError::Unauthorized { .. } => Reason::AuthenticationFailed,
                CloudError::Forbidden { .. } => Reason::Forbidden,
                CloudError::NotFound { .. } => Reason::JobNotFound,
                CloudError::Rejected { .. } => Reason::RequestRejected,
                CloudError::Unavailable { .. } | CloudError::Transport(_) => {
                    Reason::CloudUnavailable
                }
                CloudError::InvalidResponse(_) => Reason::InvalidResponse,
                CloudError::Endpoint(_) => Reason::InvalidEndpoint,
                CloudError::EndpointNotAllowed(_) => Reason::EndpointNotAllowed,
                // The credentials hold something a request header cannot carry.
                CloudError::Signing(_) => Reason::SecretInvalid,
            },
        }
    }

    /// How long the cloud asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Problem::Cloud(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// The operator-wide settings the plan reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    pub poll_mode: PollMode,
    /// Seconds of detection delay one request is worth, unless the CloudJob says (see `poll::Learned`).
    pub request_cost: Duration,
    /// How long a credentials problem reads as Reconciling before Stalled, unless the CloudJob says.
    pub credentials_grace: Duration,
}

/// How soon a problem that needs confirming ([`Reason::needs_confirmation`]) is asked again.
pub const CONFIRM_AFTER: Duration = Duration::from_secs(5);

/// What to do after this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status the CloudJob should have; written only when it differs from the current one.
    pub status: CloudJobStatus,
    /// Events for the transition, published after the status is written.
    pub events: Vec<EventSpec>,
    /// Write `spec.outputsConfigMap` with the new status: only after a poll read the job, which `observe`
    /// does only once that ConfigMap is known to be free or this CloudJob's own.
    pub export_outputs: bool,
    pub next: Next,
}

/// When to reconcile again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Only when the object changes: the job is finished, paused, or past its deadline.
    AwaitChange,
    /// Poll again after this long: the job is running normally (the error back-off starts over).
    Poll(Duration),
    /// The job could not be read: retry after `after` (the cloud's Retry-After) or else the per-object
    /// back-off, but never later than `at_most` (the deadline).
    Retry {
        after: Option<Duration>,
        at_most: Option<Duration>,
    },
}

/// Whether reconcile must ask the cloud: never for a finished job, nor while polling is paused.
pub fn needs_poll(cj: &CloudJob) -> bool {
    !is_finished(cj) && !is_paused(cj)
}

/// The plan for `cj` after `observation`. `durations` is what the operator learned of how long each job
/// type runs (the next poll is placed from it). `jitter` (around 1.0, e.g. 0.9..1.1) spreads the polls of
/// jobs created together.
pub fn plan(
    cj: &CloudJob,
    observation: &Observation,
    now: Timestamp,
    rules: &Rules,
    durations: &DurationModel,
    jitter: f64,
) -> Plan {
    let (status, next) = decide(cj, observation, now, rules, durations, jitter);
    let old = cj.status.clone().unwrap_or_default();
    let events = events::transition_events(&old, &status);
    let export_outputs =
        cj.spec.outputs_config_map.is_some() && matches!(observation, Observation::Job(_));
    Plan {
        status,
        events,
        export_outputs,
        next,
    }
}

fn decide(
    cj: &CloudJob,
    observation: &Observation,
    now: Timestamp,
    rules: &Rules,
    durations: &DurationModel,
    jitter: f64,
) -> (CloudJobStatus, Next) {
    // A finished job never changes again, also after a restart: only bookkeeping follows the object.
    if is_finished(cj) {
        return (status::bookkeeping(cj), Next::AwaitChange);
    }
    if is_paused(cj) {
        return (
            status::next_status(cj, &Outcome::Paused, now),
            Next::AwaitChange,
        );
    }
    let deadline = Deadline::of(cj, now);
    let past_deadline = |cj: &CloudJob| {
        deadline.filter(|d| d.remaining.is_zero()).map(|d| {
            let outcome = Outcome::DeadlineExceeded { seconds: d.seconds };
            (status::next_status(cj, &outcome, now), Next::AwaitChange)
        })
    };
    let remaining = deadline.map(|d| d.remaining);
    match observation {
        Observation::Job(job) => {
            let status = status::next_status(cj, &Outcome::Observed(job), now);
            // The last poll decides: a job seen finished is reported as it finished, even when the
            // deadline passed while it was being read.
            if status.phase.is_some_and(Phase::is_terminal) {
                return (status, Next::AwaitChange);
            }
            if let Some(exceeded) = past_deadline(cj) {
                return exceeded;
            }
            let learned = poll::Learned {
                durations,
                request_cost: rules.request_cost,
            };
            let delay = poll::next_interval(cj, &status, rules.poll_mode, learned, now, jitter);
            let delay = remaining.map_or(delay, |r| delay.min(r));
            (status, Next::Poll(delay))
        }
        Observation::Problem(problem) => past_deadline(cj).unwrap_or_else(|| {
            let reported_since = problem_since(cj, problem.reason());
            let since = reported_since.unwrap_or(now);
            let handling = handling(
                cj,
                problem.reason(),
                reported_since.is_some(),
                since,
                now,
                rules,
            );
            // A problem that needs confirming is asked again soon, not after the whole back-off.
            let confirm_after = (handling == Handling::Retry
                && problem.reason().needs_confirmation())
            .then_some(CONFIRM_AFTER);
            // Look again when the grace period ends, so that the problem reads as Stalled on time.
            let until_stalled = match handling {
                Handling::Grace { stalls_at } => {
                    Duration::try_from(stalls_at.duration_since(now)).ok()
                }
                _ => None,
            };
            let outcome = Outcome::Problem {
                problem,
                since,
                handling,
            };
            let next = Next::Retry {
                after: problem.retry_after().or(confirm_after),
                at_most: [remaining, until_stalled].into_iter().flatten().min(),
            };
            (status::next_status(cj, &outcome, now), next)
        }),
        // Nothing was learned: the status stays as it is (not even bookkeeping, so that a CloudJob never
        // observed keeps reading as in progress), and the job is asked at its turn.
        Observation::Deferred(turn) => past_deadline(cj).unwrap_or_else(|| {
            let next = Next::Retry {
                after: Some(*turn),
                at_most: remaining,
            };
            (cj.status.clone().unwrap_or_default(), next)
        }),
        // Only when a caller skipped a poll the plan needed: change nothing and look again soon.
        Observation::Skipped => past_deadline(cj).unwrap_or_else(|| {
            let next = Next::Retry {
                after: None,
                at_most: remaining,
            };
            (cj.status.clone().unwrap_or_default(), next)
        }),
    }
}

/// When the problem with `reason` started, if the CloudJob already reports it.
fn problem_since(cj: &CloudJob, reason: Reason) -> Option<Timestamp> {
    let status = cj.status.as_ref()?;
    let ready = status::find(status, condition::READY)?;
    (ready.reason == reason.as_str()).then_some(status.problem_since.as_ref()?.0)
}

/// Whether a problem reads as retrying, as a credentials problem in its grace period, or as Stalled.
/// `already_reported`: the CloudJob's status already names this problem (it was seen before).
fn handling(
    cj: &CloudJob,
    reason: Reason,
    already_reported: bool,
    since: Timestamp,
    now: Timestamp,
    rules: &Rules,
) -> Handling {
    if reason.needs_confirmation() && !already_reported {
        return Handling::Retry;
    }
    if reason.is_credentials_problem() {
        let grace = cj
            .spec
            .credentials_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(rules.credentials_grace, Duration::from_secs);
        let stalls_at = jiff::SignedDuration::try_from(grace)
            .ok()
            .and_then(|g| since.checked_add(g).ok())
            .unwrap_or(Timestamp::MAX);
        return if now >= stalls_at {
            Handling::Stall
        } else {
            Handling::Grace { stalls_at }
        };
    }
    if reason.is_lasting_problem() {
        Handling::Stall
    } else {
        Handling::Retry
    }
}

fn is_finished(cj: &CloudJob) -> bool {
    cj.status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(Phase::is_terminal)
}

fn is_paused(cj: &CloudJob) -> bool {
    cj.annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// `spec.activeDeadlineSeconds`, counted from the CloudJob's creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Deadline {
    seconds: i64,
    /// Zero once the deadline has passed.
    remaining: Duration,
}

impl Deadline {
    fn of(cj: &CloudJob, now: Timestamp) -> Option<Deadline> {
        let seconds = cj.spec.active_deadline_seconds?;
        let limit = u64::try_from(seconds).ok()?;
        let created = cj.metadata.creation_timestamp.as_ref()?.0;
        let elapsed = now.duration_since(created).as_secs_f64().max(0.0);
        let remaining = Duration::try_from_secs_f64((limit as f64 - elapsed).max(0.0)).ok()?;
        Some(Deadline { seconds, remaining })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crd::RECONCILE_REQUESTED_ANNOTATION,
        test_support::{cloudjob, no_history},
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    const RULES: Rules = Rules {
        poll_mode: PollMode::Adaptive,
        request_cost: poll::DEFAULT_REQUEST_COST,
        credentials_grace: Duration::ZERO,
    };

    /// [`RULES`] with a 5-minute grace period for credentials problems.
    const GRACE_RULES: Rules = Rules {
        credentials_grace: Duration::from_secs(300),
        ..RULES
    };

    fn created() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("ts")
    }

    fn at(seconds: i64) -> Timestamp {
        created() + jiff::SignedDuration::from_secs(seconds)
    }

    /// [`plan`] `seconds` after the CloudJob's creation, by `rules`, with nothing learned and no jitter.
    fn plan_by(rules: &Rules, cj: &CloudJob, observation: &Observation, seconds: i64) -> Plan {
        plan(cj, observation, at(seconds), rules, no_history(), 1.0)
    }

    /// [`plan_by`] the default rules.
    fn plan_at(cj: &CloudJob, observation: &Observation, seconds: i64) -> Plan {
        plan_by(&RULES, cj, observation, seconds)
    }

    fn job(value: serde_json::Value) -> Observation {
        Observation::Job(Box::new(JobObservation::from_value(&value).expect("job")))
    }

    /// The cloud's 404 for a job it does not know.
    fn job_not_found() -> Observation {
        Observation::Problem(Problem::Cloud(CloudError::NotFound {
            status: 404,
            code: "IMG.0024".into(),
            message: "not found".into(),
        }))
    }

    fn throttled(retry_after: Option<Duration>) -> Observation {
        Observation::Problem(Problem::Cloud(CloudError::Throttled {
            code: "APIGW.0308".into(),
            message: "The throttling threshold has been reached".into(),
            retry_after,
        }))
    }

    fn reasons(plan: &Plan) -> Vec<&'static str> {
        plan.events.iter().map(|e| e.reason.as_str()).collect()
    }

    fn ready_reason(status: &CloudJobStatus) -> Option<&str> {
        status::find(status, condition::READY).map(|c| c.reason.as_str())
    }

    fn with_status(mut cj: CloudJob, status: CloudJobStatus) -> CloudJob {
        cj.status = Some(status);
        cj
    }

    fn annotated(mut cj: CloudJob, key: &str, value: &str) -> CloudJob {
        cj.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        cj
    }

    #[test]
    fn a_running_job_is_polled_again_at_the_adaptive_interval() {
        let cj = cloudjob("a");
        let p = plan_at(&cj, &job(json!({"status": "RUNNING"})), 3);
        assert_eq!(p.status.phase, Some(Phase::Running));
        assert_eq!(p.next, Next::Poll(poll::DEFAULT_MIN_INTERVAL));
        assert_eq!(reasons(&p), ["Started"]);
    }

    #[test]
    fn a_finished_job_is_never_polled_and_gets_bookkeeping_only() {
        let cj = cloudjob("a");
        let done = plan_at(
            &cj,
            &job(json!({"status": "SUCCESS", "entities": {"image_id": "i"}})),
            5,
        );
        assert_eq!(done.next, Next::AwaitChange);
        assert_eq!(reasons(&done), ["Succeeded"]);
        let mut cj = with_status(cj, done.status.clone());
        assert!(!needs_poll(&cj));
        cj.metadata.generation = Some(2);
        let cj = annotated(cj, RECONCILE_REQUESTED_ANNOTATION, "r1");
        // Even a contradicting observation cannot change a finished job.
        let later = plan_at(&cj, &job(json!({"status": "FAIL"})), 50);
        assert_eq!(later.status.phase, Some(Phase::Succeeded));
        assert_eq!(later.status.observed_generation, Some(2));
        assert!(
            later
                .status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
        assert_eq!(
            later.status.last_handled_reconcile_at.as_deref(),
            Some("r1")
        );
        assert!(later.events.is_empty());
        assert_eq!(later.next, Next::AwaitChange);
    }

    #[test]
    fn a_paused_job_is_not_polled_and_reads_suspended() {
        let cj = annotated(cloudjob("a"), PAUSED_ANNOTATION, "true");
        assert!(!needs_poll(&cj));
        let p = plan_at(&cj, &Observation::Skipped, 1);
        assert_eq!(p.status.phase, Some(Phase::Paused));
        assert_eq!(ready_reason(&p.status), Some(Reason::Suspended.as_str()));
        assert_eq!(p.next, Next::AwaitChange);
        assert_eq!(reasons(&p), ["Paused"]);
        let not_paused = annotated(cloudjob("a"), PAUSED_ANNOTATION, "false");
        assert!(needs_poll(&not_paused));
    }

    #[test]
    fn a_job_seen_finished_after_its_deadline_keeps_its_true_outcome() {
        let mut cj = cloudjob("a");
        cj.spec.active_deadline_seconds = Some(60);
        let p = plan_at(&cj, &job(json!({"status": "SUCCESS"})), 61);
        assert_eq!(p.status.phase, Some(Phase::Succeeded));
        assert_eq!(ready_reason(&p.status), Some("Succeeded"));
    }

    #[test]
    fn an_unfinished_job_past_its_deadline_fails_with_deadline_exceeded() {
        let mut cj = cloudjob("a");
        cj.spec.active_deadline_seconds = Some(60);
        for observation in [job(json!({"status": "RUNNING"})), throttled(None)] {
            let p = plan_at(&cj, &observation, 60);
            assert_eq!(p.status.phase, Some(Phase::Failed));
            assert_eq!(
                status::find(&p.status, condition::FAILED).map(|c| c.reason.as_str()),
                Some("DeadlineExceeded")
            );
            assert_eq!(p.next, Next::AwaitChange);
        }
    }

    #[test]
    fn polls_and_retries_never_overshoot_the_deadline() {
        let mut cj = cloudjob("a");
        cj.spec.active_deadline_seconds = Some(60);
        let running = with_status(
            cj.clone(),
            plan_at(&cj, &job(json!({"status": "RUNNING"})), 1).status,
        );
        let p = plan_at(&running, &job(json!({"status": "RUNNING"})), 59);
        assert_eq!(p.next, Next::Poll(Duration::from_secs(1)));
        let p = plan_at(&running, &throttled(None), 50);
        assert_eq!(
            p.next,
            Next::Retry {
                after: None,
                at_most: Some(Duration::from_secs(10))
            }
        );
    }

    #[test]
    fn a_problem_retries_after_the_clouds_retry_after() {
        let cj = cloudjob("a");
        let p = plan_at(&cj, &throttled(Some(Duration::from_secs(7))), 1);
        assert_eq!(
            p.next,
            Next::Retry {
                after: Some(Duration::from_secs(7)),
                at_most: None
            }
        );
        assert_eq!(ready_reason(&p.status), Some("Throttled"));
        assert_eq!(reasons(&p), ["Throttled"]);
        // The same problem again changes nothing a user sees and publishes nothing.
        let cj = with_status(cj, p.status.clone());
        let again = plan_at(&cj, &throttled(Some(Duration::from_secs(7))), 9);
        assert_eq!(again.status, p.status);
        assert!(again.events.is_empty());
    }

    #[test]
    fn every_problem_names_what_to_do() {
        let problems = [
            (Problem::SecretNotFound, "SecretNotFound", "create it"),
            (
                Problem::SecretInvalid(CredentialsError::MissingKey {
                    secret: "creds".into(),
                    key: "secretKey".into(),
                }),
                "SecretInvalid",
                "fix the Secret",
            ),
            (
                Problem::InvalidEndpoint(EndpointError {
                    endpoint: "x".into(),
                    reason: "bad".into(),
                }),
                "InvalidEndpoint",
                "fix spec.endpoint",
            ),
            (
                Problem::Cloud(CloudError::Unauthorized {
                    code: "APIGW.0301".into(),
                    message: "bad".into(),
                }),
                "AuthenticationFailed",
                "check the access key",
            ),
            (
                Problem::Cloud(CloudError::NotFound {
                    status: 400,
                    code: "Common.0011".into(),
                    message: "m".into(),
                }),
                "JobNotFound",
                "check spec.jobId",
            ),
            (
                Problem::Cloud(CloudError::Signing("invalid header value".into())),
                "SecretInvalid",
                "check the keys",
            ),
        ];
        for (problem, reason, advice) in problems {
            let p = plan_at(&cloudjob("a"), &Observation::Problem(problem), 1);
            let ready = status::find(&p.status, condition::READY).expect("Ready");
            assert_eq!(ready.reason, reason);
            assert!(ready.message.contains(advice), "{}", ready.message);
        }
    }

    fn secret_missing() -> Observation {
        Observation::Problem(Problem::SecretNotFound)
    }

    fn condition_of<'a>(status: &'a CloudJobStatus, type_: &str) -> Option<(&'a str, &'a str)> {
        status::find(status, type_).map(|c| (c.status.as_str(), c.reason.as_str()))
    }

    #[test]
    fn a_turn_later_at_the_endpoint_changes_nothing_and_comes_back_then() {
        let cj = cloudjob("a");
        let p = plan_at(&cj, &Observation::Deferred(Duration::from_secs(4)), 1);
        assert_eq!(
            p.status,
            CloudJobStatus::default(),
            "never observed: no write"
        );
        assert!(p.events.is_empty());
        assert_eq!(
            p.next,
            Next::Retry {
                after: Some(Duration::from_secs(4)),
                at_most: None
            }
        );
    }

    #[test]
    fn outputs_are_exported_only_after_a_poll_read_the_job() {
        let mut cj = cloudjob("a");
        cj.spec.outputs_config_map = Some("ids".into());
        let seen = plan_at(&cj, &job(json!({"status": "RUNNING"})), 1);
        assert!(seen.export_outputs);
        let conflict = Observation::Problem(Problem::ConfigMapNotOwned { name: "ids".into() });
        let refused = plan_at(&cj, &conflict, 1);
        assert!(
            !refused.export_outputs,
            "never into a ConfigMap that is not ours"
        );
        assert_eq!(
            status::find(&refused.status, condition::STALLED).map(|c| c.reason.as_str()),
            Some("ConfigMapConflict")
        );
        assert!(!plan_at(&cj, &secret_missing(), 1).export_outputs);
        cj.spec.outputs_config_map = None;
        assert!(!plan_at(&cj, &job(json!({"status": "RUNNING"})), 1).export_outputs);
    }

    #[test]
    fn a_credentials_problem_reads_as_reconciling_until_its_grace_period_ends() {
        let cj = cloudjob("a");
        let first = plan_by(&GRACE_RULES, &cj, &secret_missing(), 10);
        assert_eq!(
            condition_of(&first.status, condition::RECONCILING),
            Some(("True", "SecretNotFound"))
        );
        assert_eq!(condition_of(&first.status, condition::STALLED), None);
        assert_eq!(
            first.status.problem_since,
            Some(Time(at(10))),
            "the problem's start is kept in status"
        );
        // Retried no later than the end of the grace period, so that it reads as Stalled on time.
        assert_eq!(
            first.next,
            Next::Retry {
                after: None,
                at_most: Some(Duration::from_secs(300))
            }
        );
        let cj = with_status(cj, first.status.clone());
        let later = plan_by(&GRACE_RULES, &cj, &secret_missing(), 200);
        assert_eq!(
            later.status, first.status,
            "retries in the grace period write nothing"
        );
        assert!(later.events.is_empty());
        let stalled = plan_by(&GRACE_RULES, &cj, &secret_missing(), 310);
        assert_eq!(
            condition_of(&stalled.status, condition::STALLED),
            Some(("True", "SecretNotFound"))
        );
        assert_eq!(condition_of(&stalled.status, condition::RECONCILING), None);
        assert_eq!(stalled.status.problem_since, Some(Time(at(10))));
    }

    #[test]
    fn the_cloudjob_can_shorten_or_lengthen_the_grace_period() {
        let mut cj = cloudjob("a");
        cj.spec.credentials_grace_period_seconds = Some(0);
        let p = plan_by(&GRACE_RULES, &cj, &secret_missing(), 1);
        assert_eq!(
            condition_of(&p.status, condition::STALLED),
            Some(("True", "SecretNotFound"))
        );
        cj.spec.credentials_grace_period_seconds = Some(3600);
        let p = plan_by(&GRACE_RULES, &cj, &secret_missing(), 1000);
        assert_eq!(condition_of(&p.status, condition::STALLED), None);
    }

    #[test]
    fn a_first_not_found_is_confirmed_soon_before_it_stalls() {
        let not_found = job_not_found();
        let first = plan_at(&cloudjob("a"), &not_found, 1);
        assert_eq!(
            condition_of(&first.status, condition::READY),
            Some(("False", "JobNotFound"))
        );
        assert_eq!(
            condition_of(&first.status, condition::RECONCILING),
            Some(("True", "ProgressingWithRetry"))
        );
        assert_eq!(condition_of(&first.status, condition::STALLED), None);
        assert_eq!(
            first.next,
            Next::Retry {
                after: Some(CONFIRM_AFTER),
                at_most: None
            }
        );
        // The job turns up on the confirming poll: it simply runs.
        let cj = with_status(cloudjob("a"), first.status);
        let found = plan_at(&cj, &job(json!({"status": "RUNNING"})), 6);
        assert_eq!(found.status.phase, Some(Phase::Running));
        assert_eq!(condition_of(&found.status, condition::STALLED), None);
    }

    #[test]
    fn problems_that_need_a_person_stall_at_once_and_passing_ones_retry() {
        let not_found = job_not_found();
        let first = plan_by(&GRACE_RULES, &cloudjob("a"), &not_found, 1);
        let confirmed = plan_by(
            &GRACE_RULES,
            &with_status(cloudjob("a"), first.status.clone()),
            &not_found,
            6,
        );
        assert_eq!(
            condition_of(&confirmed.status, condition::STALLED),
            Some(("True", "JobNotFound"))
        );
        assert_eq!(
            confirmed.next,
            Next::Retry {
                after: None,
                at_most: None
            }
        );
        let p = plan_by(&GRACE_RULES, &cloudjob("a"), &throttled(None), 1);
        assert_eq!(
            condition_of(&p.status, condition::RECONCILING),
            Some(("True", "ProgressingWithRetry"))
        );
        assert_eq!(condition_of(&p.status, condition::STALLED), None);
    }

    #[test]
    fn a_new_problem_restarts_the_clock_and_recovery_clears_it() {
        let cj = cloudjob("a");
        let missing = plan_by(&GRACE_RULES, &cj, &secret_missing(), 10);
        let cj = with_status(cj, missing.status);
        let rejected = Observation::Problem(Problem::Cloud(CloudError::Unauthorized {
            code: "APIGW.0301".into(),
            message: "canonical request GET /v1/... x-sdk-date:20260101T000100Z".into(),
        }));
        let p = plan_by(&GRACE_RULES, &cj, &rejected, 100);
        assert_eq!(p.status.problem_since, Some(Time(at(100))));
        let ready = status::find(&p.status, condition::READY).expect("Ready");
        assert!(
            !ready.message.contains("x-sdk-date"),
            "no echoed request in status: {}",
            ready.message
        );
        let cj = with_status(cj, p.status);
        let recovered = plan_by(&GRACE_RULES, &cj, &job(json!({"status": "RUNNING"})), 120);
        assert_eq!(recovered.status.problem_since, None);
        assert_eq!(reasons(&recovered), ["Started", "Recovered"]);
    }

    #[test]
    fn repeated_throttling_with_changing_retry_after_writes_status_once() {
        let cj = cloudjob("a");
        let first = plan_at(&cj, &throttled(Some(Duration::from_secs(2))), 1);
        let cj = with_status(cj, first.status.clone());
        for (i, seconds) in [5, 30, 1, 600].into_iter().enumerate() {
            let again = plan_at(
                &cj,
                &throttled(Some(Duration::from_secs(seconds))),
                10 + i as i64,
            );
            assert_eq!(again.status, first.status, "Retry-After {seconds}");
        }
    }

    #[test]
    fn a_throttled_message_says_how_it_retries() {
        let p = plan_at(&cloudjob("a"), &throttled(Some(Duration::from_secs(3))), 1);
        let ready = status::find(&p.status, condition::READY).expect("Ready");
        assert!(ready.message.contains("Retry-After"), "{}", ready.message);
    }

    #[test]
    fn an_unpaid_order_reads_as_pending_payment_polls_slowly_and_never_fails_by_itself() {
        let cj = cloudjob("a");
        let unpaid =
            || job(json!({"status": "PENDING_PAYMENT", "job_id": "j", "job_type": "createServer"}));
        let p = plan_at(&cj, &unpaid(), 1);
        assert_eq!(p.status.phase, Some(Phase::Pending));
        assert_eq!(ready_reason(&p.status), Some("PendingPayment"));
        assert_eq!(
            condition_of(&p.status, condition::RECONCILING),
            Some(("True", "PendingPayment"))
        );
        assert_eq!(condition_of(&p.status, condition::STALLED), None);
        let ready = status::find(&p.status, condition::READY).expect("Ready");
        for advice in ["pay the order", "cancel the order", "14 days"] {
            assert!(ready.message.contains(advice), "{}", ready.message);
        }
        assert_eq!(p.next, Next::Poll(poll::PENDING_PAYMENT_INTERVAL));
        assert_eq!(reasons(&p), ["PendingPayment"]);
        // Days later it is still only pending, and nothing a user sees changed: no write, no event.
        let cj = with_status(cj, p.status.clone());
        let later = plan_at(&cj, &unpaid(), 3 * 86_400);
        assert_eq!(later.status, p.status);
        assert!(later.events.is_empty());
        assert_eq!(later.next, Next::Poll(poll::PENDING_PAYMENT_INTERVAL));
        // Paid: it runs, and is polled at the usual pace again.
        let paid = plan_at(
            &cj,
            &job(json!({"status": "RUNNING", "job_id": "j"})),
            3 * 86_400 + 1,
        );
        assert_eq!(ready_reason(&paid.status), Some("Progressing"));
        assert!(matches!(paid.next, Next::Poll(d) if d < poll::PENDING_PAYMENT_INTERVAL));
        // Only the user's own deadline ends the wait.
        let mut bounded = cloudjob("b");
        bounded.spec.active_deadline_seconds = Some(600);
        let p = plan_at(&bounded, &unpaid(), 1);
        assert_eq!(p.next, Next::Poll(poll::PENDING_PAYMENT_INTERVAL));
        let p = plan_at(&bounded, &unpaid(), 601);
        assert_eq!(
            status::find(&p.status, condition::FAILED).map(|c| c.reason.as_str()),
            Some("DeadlineExceeded")
        );
    }

    #[test]
    fn deadline_counts_from_creation() {
        let mut cj = cloudjob("a");
        cj.metadata.creation_timestamp = Some(Time(created()));
        cj.spec.active_deadline_seconds = Some(60);
        let remaining = |cj: &CloudJob, s| Deadline::of(cj, at(s)).map(|d| d.remaining);
        assert_eq!(remaining(&cj, 50), Some(Duration::from_secs(10)));
        assert_eq!(remaining(&cj, 60), Some(Duration::ZERO));
        assert_eq!(remaining(&cj, 6000), Some(Duration::ZERO));
        cj.spec.active_deadline_seconds = None;
        assert_eq!(remaining(&cj, 6000), None);
    }
}

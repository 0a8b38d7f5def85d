//! The status rule: what a CloudJob's status should be, given the CloudJob, what the last poll found, and now.
//!
//! Pure: no I/O, the clock is an argument. The result equals the previous status whenever nothing a user can
//! see has changed (transition times are kept unless a condition's status flips), so the controller writes
//! status only when this function returns something different.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::{
    cloud::client::CloudError,
    cloud::model::{JobObservation, JobState},
    crd::{
        CloudJob, CloudJobStatus, Outputs, PAUSED_ANNOTATION, Phase, RECONCILE_REQUESTED_ANNOTATION,
    },
    credentials,
    plan::Problem,
    reason::Reason,
};

/// Condition types, as kstatus, Flux, Argo CD and `kubectl wait` read them.
pub mod condition {
    /// True when the job succeeded.
    pub const READY: &str = "Ready";
    /// True only while the job is unfinished and being polled; absent otherwise.
    pub const RECONCILING: &str = "Reconciling";
    /// True when the job failed or a lasting problem needs a person; absent otherwise.
    pub const STALLED: &str = "Stalled";
    /// True when the job succeeded (batch/v1 Job).
    pub const COMPLETE: &str = "Complete";
    /// True when the job failed (batch/v1 Job).
    pub const FAILED: &str = "Failed";
}

/// What status says of a job in PENDING_PAYMENT. Fixed text (no progress, no time), so that the slow
/// polls of an unpaid order never rewrite status.
pub const PENDING_PAYMENT_TEXT: &str = "the job waits for its yearly/monthly order to be paid (PENDING_PAYMENT): pay the order in the cloud console's Billing Center to let it run, or cancel the order; a cancelled order's job is never updated again and the cloud deletes it after 14 days, so then delete this CloudJob. Polled every few minutes until then";

/// What the status is computed from, as the plan decided it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome<'a> {
    /// The cloud answered with the job.
    Observed(&'a JobObservation),
    /// The job could not be read, since `since`; `handling` is what the plan decided to make of it.
    Problem {
        problem: &'a Problem,
        since: Timestamp,
        handling: Handling,
    },
    /// Polling is paused by annotation.
    Paused,
    /// `spec.activeDeadlineSeconds` has passed.
    DeadlineExceeded { seconds: i64 },
}

/// How a problem reads, as the plan decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Passing trouble, retried: Reconciling with ProgressingWithRetry (kstatus InProgress).
    Retry,
    /// A credentials problem within its grace period: Reconciling with the problem as reason; Stalled if it
    /// persists past `stalls_at`.
    Grace { stalls_at: Timestamp },
    /// Needs a person: Stalled (kstatus Failed). Still retried with back-off, and clears when fixed.
    Stall,
}

/// The status the CloudJob should have after `outcome`, starting from its current status.
/// Not for a finished job: the plan gives that one [`bookkeeping`] only.
pub fn next_status(cj: &CloudJob, outcome: &Outcome<'_>, now: Timestamp) -> CloudJobStatus {
    let mut status = bookkeeping(cj);
    let generation = cj.metadata.generation;
    // Only a problem keeps it (set again below).
    status.problem_since = None;
    let conditions = Conditions { generation, now };
    match outcome {
        Outcome::Observed(job) => {
            apply_observation(&mut status, job, now);
            let phase = status.phase.unwrap_or(Phase::Pending);
            match phase {
                Phase::Succeeded => {
                    let message = success_message(job);
                    conditions.set(
                        &mut status,
                        condition::READY,
                        true,
                        Reason::Succeeded,
                        &message,
                    );
                    conditions.set(
                        &mut status,
                        condition::COMPLETE,
                        true,
                        Reason::Succeeded,
                        &message,
                    );
                    for t in [
                        condition::RECONCILING,
                        condition::STALLED,
                        condition::FAILED,
                    ] {
                        remove(&mut status, t);
                    }
                }
                Phase::Failed => {
                    let (reason, message) = failure(job);
                    conditions.set(&mut status, condition::READY, false, reason, &message);
                    conditions.set(&mut status, condition::STALLED, true, reason, &message);
                    conditions.set(&mut status, condition::FAILED, true, reason, &message);
                    for t in [condition::RECONCILING, condition::COMPLETE] {
                        remove(&mut status, t);
                    }
                }
                Phase::Pending | Phase::Running | Phase::Paused => {
                    let (reason, message) = if job.state == JobState::PendingPayment {
                        (Reason::PendingPayment, PENDING_PAYMENT_TEXT.to_string())
                    } else {
                        (Reason::Progressing, progress_message(job))
                    };
                    conditions.set(&mut status, condition::READY, false, reason, &message);
                    conditions.set(&mut status, condition::RECONCILING, true, reason, &message);
                    remove(&mut status, condition::STALLED);
                }
            }
        }
        Outcome::Problem {
            problem,
            since,
            handling,
        } => {
            let (reason, message) = explain(problem, cj);
            if status.phase.is_none() || status.phase == Some(Phase::Paused) {
                status.phase = Some(Phase::Pending);
            }
            status.problem_since = Some(time(*since));
            conditions.set(&mut status, condition::READY, false, reason, &message);
            match handling {
                Handling::Stall => {
                    conditions.set(&mut status, condition::STALLED, true, reason, &message);
                    remove(&mut status, condition::RECONCILING);
                }
                Handling::Grace { stalls_at } => {
                    let waiting = format!(
                        "{message}; retrying, and reported as Stalled if this persists past {}",
                        time(*stalls_at).0
                    );
                    conditions.set(&mut status, condition::RECONCILING, true, reason, &waiting);
                    remove(&mut status, condition::STALLED);
                }
                Handling::Retry => {
                    // Passing trouble: still working on it (kstatus: InProgress, not Failed).
                    let retrying = format!("retrying: {message}");
                    conditions.set_reason(
                        &mut status,
                        condition::RECONCILING,
                        true,
                        "ProgressingWithRetry",
                        &retrying,
                    );
                    remove(&mut status, condition::STALLED);
                }
            }
        }
        Outcome::Paused => {
            status.phase = Some(Phase::Paused);
            let message = format!(
                "polling is paused by the {PAUSED_ANNOTATION} annotation; remove it to resume"
            );
            conditions.set(
                &mut status,
                condition::READY,
                false,
                Reason::Suspended,
                &message,
            );
            remove(&mut status, condition::RECONCILING);
            remove(&mut status, condition::STALLED);
        }
        Outcome::DeadlineExceeded { seconds } => {
            status.phase = Some(Phase::Failed);
            status.finish_time.get_or_insert_with(|| time(now));
            let message = format!(
                "the job did not finish within spec.activeDeadlineSeconds ({seconds} s); it is no longer polled"
            );
            let reason = Reason::DeadlineExceeded;
            conditions.set(&mut status, condition::READY, false, reason, &message);
            conditions.set(&mut status, condition::STALLED, true, reason, &message);
            conditions.set(&mut status, condition::FAILED, true, reason, &message);
            remove(&mut status, condition::RECONCILING);
        }
    }
    status
}

/// The current status with only the bookkeeping brought up to date: the generation it reflects (on the
/// status and on each condition) and the last reconcile request handled. All a finished job ever gets.
pub fn bookkeeping(cj: &CloudJob) -> CloudJobStatus {
    let mut status = cj.status.clone().unwrap_or_default();
    status.observed_generation = cj.metadata.generation;
    for c in &mut status.conditions {
        c.observed_generation = cj.metadata.generation;
    }
    if let Some(requested) = cj.annotations().get(RECONCILE_REQUESTED_ANNOTATION) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    status
}

/// A status timestamp. `metav1.Time` is stored with whole seconds, so anything finer would make every
/// computed status differ from the stored one and cause a write per poll.
pub fn time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// Copies what the cloud reported into status and derives the phase.
fn apply_observation(status: &mut CloudJobStatus, job: &JobObservation, now: Timestamp) {
    let failed_sub_jobs = job.sub_jobs.as_ref().is_some_and(|s| s.failed > 0);
    let phase = match job.state {
        JobState::Init | JobState::PendingPayment => Phase::Pending,
        JobState::Running | JobState::Other(_) => Phase::Running,
        // A batch whose sub-jobs partly failed did not produce everything it was asked for.
        JobState::Success if failed_sub_jobs => Phase::Failed,
        JobState::Success => Phase::Succeeded,
        JobState::Fail | JobState::Cancelled => Phase::Failed,
    };
    status.phase = Some(phase);
    status.job_status = Some(job.raw_status.clone());
    status.job_type = job.job_type.clone().or(status.job_type.take());
    if job.progress.is_some() {
        status.progress = job.progress;
    }
    status.current_task = if phase.is_terminal() {
        None
    } else {
        job.current_task.clone()
    };
    if let Some(begin) = job.begin_time {
        status.start_time = Some(time(begin));
    } else if status.start_time.is_none() && phase != Phase::Pending {
        status.start_time = Some(time(now));
    }
    if phase.is_terminal() {
        let finish = job
            .end_time
            .or(status.finish_time.as_ref().map(|t| t.0))
            .unwrap_or(now);
        status.finish_time = Some(time(finish));
        status.completion_time = (phase == Phase::Succeeded).then(|| time(finish));
        if phase == Phase::Failed {
            status.error_code = job.error_code.clone();
            status.fail_reason = job.fail_reason.clone();
        }
    }
    let outputs = Outputs {
        primary_id: job.primary_id().map(str::to_string),
        image_id: job.image_id.clone(),
        image_name: job.image_name.clone(),
        volume_id: job.volume_id.clone(),
        server_id: job.server_id.clone(),
        resources: job.resources.clone(),
        target_resources: job.targets.clone(),
    };
    status.outputs = (outputs != Outputs::default()).then_some(outputs);
    status.sub_jobs = job.sub_jobs.clone();
}

fn success_message(job: &JobObservation) -> String {
    match job.resources.len() {
        0 => "the job succeeded".to_string(),
        1 => format!(
            "the job succeeded and produced {} {}",
            job.resources[0].kind, job.resources[0].id
        ),
        n => format!("the job succeeded and produced {n} resources (see status.outputs.resources)"),
    }
}

fn failure(job: &JobObservation) -> (Reason, String) {
    let cause = match (&job.error_code, &job.fail_reason) {
        (Some(code), Some(reason)) => format!("{code}: {reason}"),
        (Some(code), None) => code.clone(),
        (None, Some(reason)) => reason.clone(),
        (None, None) => "the cloud gave no reason".to_string(),
    };
    match &job.sub_jobs {
        Some(sub) if sub.failed > 0 && sub.succeeded > 0 => (
            Reason::PartiallyFailed,
            format!(
                "{} of {} sub-jobs failed ({cause}); the others' resources are in status.outputs",
                sub.failed, sub.total
            ),
        ),
        _ if job.state == JobState::Cancelled => (
            Reason::JobCancelled,
            format!(
                "the job was cancelled ({}): {cause}; start a new job",
                job.raw_status
            ),
        ),
        _ => (Reason::JobFailed, format!("the job failed: {cause}")),
    }
}

fn progress_message(job: &JobObservation) -> String {
    let mut message = format!("the job is {}", job.raw_status);
    if let Some(p) = job.progress {
        message.push_str(&format!(", {p}% done"));
    }
    if let Some(task) = &job.current_task {
        message.push_str(&format!(", current task {task}"));
    }
    message
}

/// A problem as a condition reason and a message that says what to do next.
fn explain(problem: &Problem, cj: &CloudJob) -> (Reason, String) {
    let reference = &cj.spec.credentials_secret_ref;
    let secret = &reference.name;
    let message = match problem {
        Problem::SecretNotFound => format!(
            "Secret {secret:?} not found in namespace {:?}: create it with the keys {} and {}; the job is polled as soon as it exists",
            cj.metadata.namespace.as_deref().unwrap_or_default(),
            reference
                .access_key_key
                .as_deref()
                .unwrap_or(credentials::DEFAULT_ACCESS_KEY_KEY),
            reference
                .secret_key_key
                .as_deref()
                .unwrap_or(credentials::DEFAULT_SECRET_KEY_KEY),
        ),
        Problem::SecretInvalid(e) => {
            format!("{e}: fix the Secret or spec.credentialsSecretRef's key names")
        }
        Problem::InvalidEndpoint(e) => {
            format!("{e}; fix spec.endpoint (or the operator's --endpoint-template)")
        }
        Problem::Cloud(e) => explain_cloud_error(e, cj),
        Problem::ConfigMapNotOwned { name } => format!(
            "ConfigMap {name:?} exists and is not owned by this CloudJob, so its outputs are not written there: delete or rename that ConfigMap, or change spec.outputsConfigMap"
        ),
    };
    (problem.reason(), message)
}

fn explain_cloud_error(e: &CloudError, cj: &CloudJob) -> String {
    let secret = &cj.spec.credentials_secret_ref.name;
    match e {
        // No per-request data (the Retry-After value, the gateway's echo of the signed request) goes into
        // a message: each retry would rewrite status. It is in the operator's log.
        CloudError::Throttled { retry_after, .. } => {
            let when = if retry_after.is_some() {
                "when the cloud's Retry-After allows"
            } else {
                "with back-off"
            };
            format!("{e}; retrying {when}")
        }
        CloudError::Unauthorized { code, .. } => format!(
            "the cloud API rejected the credentials (HTTP 401 {code}); check the access key and secret key in Secret {secret:?}"
        ),
        CloudError::Forbidden { .. } => format!(
            "{e}; check that the credentials in Secret {secret:?} may read jobs of project {:?}",
            cj.spec.project_id
        ),
        CloudError::NotFound { .. } => format!(
            "{e}; check spec.jobId, spec.projectId, spec.service and spec.region (the cloud deletes jobs about a day after they finish)"
        ),
        CloudError::Rejected { .. } => format!("{e}; check the CloudJob's spec"),
        CloudError::Unavailable { .. }
        | CloudError::Transport(_)
        | CloudError::InvalidResponse(_) => {
            format!("{e}; retrying with back-off")
        }
        CloudError::Endpoint(_) => format!("{e}; check spec.endpoint"),
        CloudError::EndpointNotAllowed(_) => e.to_string(),
        CloudError::Signing(_) => format!("{e}; check the keys in Secret {secret:?}"),
    }
}

/// Sets and removes conditions, keeping `lastTransitionTime` unless the status flips.
struct Conditions {
    generation: Option<i64>,
    now: Timestamp,
}

impl Conditions {
    fn set(
        &self,
        status: &mut CloudJobStatus,
        type_: &str,
        value: bool,
        reason: Reason,
        message: &str,
    ) {
        self.set_reason(status, type_, value, reason.as_str(), message)
    }

    fn set_reason(
        &self,
        status: &mut CloudJobStatus,
        type_: &str,
        value: bool,
        reason: &str,
        message: &str,
    ) {
        let value = if value { "True" } else { "False" };
        let existing = status.conditions.iter().position(|c| c.type_ == type_);
        let last_transition_time = existing
            .map(|i| &status.conditions[i])
            .filter(|c| c.status == value)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| time(self.now));
        let condition = Condition {
            type_: type_.to_string(),
            status: value.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: self.generation,
            last_transition_time,
        };
        match existing {
            Some(i) => status.conditions[i] = condition,
            None => status.conditions.push(condition),
        }
    }
}

fn remove(status: &mut CloudJobStatus, type_: &str) {
    status.conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if present.
pub fn find<'a>(status: &'a CloudJobStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{crd::CloudJobSpec, test_support::cloudjob};
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("ts")
    }

    /// Leaked so that the borrowed outcome lives as long as the test needs it.
    fn observed(value: serde_json::Value) -> Outcome<'static> {
        Outcome::Observed(Box::leak(Box::new(
            JobObservation::from_value(&value).expect("job"),
        )))
    }

    fn cond<'a>(s: &'a CloudJobStatus, t: &str) -> Option<(&'a str, &'a str)> {
        find(s, t).map(|c| (c.status.as_str(), c.reason.as_str()))
    }

    fn with_status(mut cj: CloudJob, status: CloudJobStatus) -> CloudJob {
        cj.status = Some(status);
        cj
    }

    #[test]
    fn running_job_is_reconciling_and_not_ready() {
        let cj = cloudjob("a");
        let s = next_status(
            &cj,
            &observed(
                json!({"status": "RUNNING", "job_type": "t", "begin_time": "2025-12-31T23:59:00.000Z", "entities": {"process_percent": 0.4, "current_task": "Copy"}}),
            ),
            now(),
        );
        assert_eq!(s.phase, Some(Phase::Running));
        assert_eq!(s.progress, Some(40));
        assert_eq!(s.current_task.as_deref(), Some("Copy"));
        assert_eq!(
            s.start_time,
            Some(Time("2025-12-31T23:59:00Z".parse().expect("ts")))
        );
        assert_eq!(cond(&s, condition::READY), Some(("False", "Progressing")));
        assert_eq!(
            cond(&s, condition::RECONCILING),
            Some(("True", "Progressing"))
        );
        assert_eq!(cond(&s, condition::STALLED), None);
        assert_eq!(s.observed_generation, Some(1));
    }

    #[test]
    fn success_sets_ready_complete_and_times_and_drops_reconciling() {
        let cj = cloudjob("a");
        let running = next_status(&cj, &observed(json!({"status": "RUNNING"})), now());
        let cj = with_status(cj, running);
        let body = std::fs::read(format!(
            "{}/tests/fixtures/seeds/huawei-ims-imsCreateImageByInstance.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let job = JobObservation::parse(&body).expect("job");
        let s = next_status(&cj, &Outcome::Observed(&job), now());
        assert_eq!(s.phase, Some(Phase::Succeeded));
        assert_eq!(cond(&s, condition::READY), Some(("True", "Succeeded")));
        assert_eq!(cond(&s, condition::COMPLETE), Some(("True", "Succeeded")));
        assert_eq!(cond(&s, condition::RECONCILING), None);
        assert_eq!(
            s.completion_time,
            Some(Time("2024-11-06T06:23:25Z".parse().expect("ts")))
        );
        assert_eq!(s.finish_time, s.completion_time);
        assert_eq!(
            s.outputs.as_ref().and_then(|o| o.image_id.as_deref()),
            Some("3f7185de-b59a-4bb8-aa1d-7a513528b0e9")
        );
        assert_eq!(
            s.outputs.as_ref().and_then(|o| o.primary_id.as_deref()),
            Some("3f7185de-b59a-4bb8-aa1d-7a513528b0e9")
        );
        assert_eq!(s.progress, Some(100));
    }

    #[test]
    fn status_times_are_whole_seconds_like_the_api_server_stores_them() {
        let cj = cloudjob("a");
        let now: Timestamp = "2026-01-01T00:00:00.987654Z".parse().expect("ts");
        let s = next_status(
            &cj,
            &observed(json!({"status": "FAIL", "begin_time": "2024-11-06T06:19:43.195Z"})),
            now,
        );
        assert_eq!(
            s.start_time,
            Some(Time("2024-11-06T06:19:43Z".parse().expect("ts")))
        );
        assert_eq!(
            s.finish_time,
            Some(Time("2026-01-01T00:00:00Z".parse().expect("ts")))
        );
        assert!(
            s.conditions
                .iter()
                .all(|c| c.last_transition_time.0.subsec_nanosecond() == 0)
        );
    }

    #[test]
    fn failure_is_stalled_and_failed_for_gitops_tools() {
        let cj = cloudjob("a");
        let s = next_status(
            &cj,
            &observed(
                json!({"status": "FAIL", "error_code": "IMG.0024", "fail_reason": "disk too small", "end_time": ""}),
            ),
            now(),
        );
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(cond(&s, condition::STALLED), Some(("True", "JobFailed")));
        assert_eq!(cond(&s, condition::FAILED), Some(("True", "JobFailed")));
        assert_eq!(cond(&s, condition::READY), Some(("False", "JobFailed")));
        assert_eq!(cond(&s, condition::COMPLETE), None);
        assert_eq!(s.error_code.as_deref(), Some("IMG.0024"));
        assert_eq!(
            s.finish_time,
            Some(Time(now())),
            "unparsable end_time falls back to when it was seen"
        );
        assert_eq!(s.completion_time, None);
        assert!(
            find(&s, condition::FAILED)
                .expect("failed")
                .message
                .contains("IMG.0024: disk too small")
        );
    }

    #[test]
    fn partly_failed_batch_is_reported_as_such() {
        let cj = cloudjob("a");
        let s = next_status(
            &cj,
            &observed(json!({"status": "FAIL", "entities": {"sub_jobs": [
                {"status": "SUCCESS", "job_id": "s1", "entities": {"volume_id": "v1"}},
                {"status": "FAIL", "job_id": "s2", "error_code": "EVS.1", "fail_reason": "quota"}
            ]}})),
            now(),
        );
        assert_eq!(
            cond(&s, condition::FAILED),
            Some(("True", "PartiallyFailed"))
        );
        assert_eq!(s.outputs.as_ref().map(|o| o.resources.len()), Some(1));
        assert_eq!(s.fail_reason.as_deref(), Some("quota"));
    }

    #[test]
    fn lasting_problem_is_stalled_and_clears_when_fixed() {
        let cj = cloudjob("a");
        let s = next_status(
            &cj,
            &Outcome::Problem {
                problem: &Problem::SecretNotFound,
                since: now(),
                handling: Handling::Stall,
            },
            now(),
        );
        assert_eq!(s.phase, Some(Phase::Pending));
        assert_eq!(
            cond(&s, condition::STALLED),
            Some(("True", "SecretNotFound"))
        );
        assert_eq!(cond(&s, condition::RECONCILING), None);
        let cj = with_status(cj, s);
        let s = next_status(&cj, &observed(json!({"status": "RUNNING"})), now());
        assert_eq!(cond(&s, condition::STALLED), None);
        assert_eq!(
            cond(&s, condition::RECONCILING),
            Some(("True", "Progressing"))
        );
    }

    #[test]
    fn transient_problem_keeps_reconciling_with_retry() {
        let cj = cloudjob("a");
        let cj = with_status(
            cj.clone(),
            next_status(&cj, &observed(json!({"status": "RUNNING"})), now()),
        );
        let s = next_status(
            &cj,
            &Outcome::Problem {
                problem: &Problem::Cloud(CloudError::Throttled {
                    code: "APIGW.0308".into(),
                    message: "429".into(),
                    retry_after: None,
                }),
                since: now(),
                handling: Handling::Retry,
            },
            now(),
        );
        assert_eq!(s.phase, Some(Phase::Running));
        assert_eq!(cond(&s, condition::READY), Some(("False", "Throttled")));
        assert_eq!(
            cond(&s, condition::RECONCILING),
            Some(("True", "ProgressingWithRetry"))
        );
        assert_eq!(cond(&s, condition::STALLED), None);
    }

    #[test]
    fn unchanged_observation_gives_identical_status() {
        let cj = cloudjob("a");
        let outcome = observed(json!({"status": "RUNNING", "entities": {"process_percent": 0.5}}));
        let first = next_status(&cj, &outcome, now());
        let cj = with_status(cj, first.clone());
        let later: Timestamp = "2026-01-01T00:05:00Z".parse().expect("ts");
        assert_eq!(
            next_status(&cj, &outcome, later),
            first,
            "no user-visible change, no new status"
        );
    }

    #[test]
    fn transition_time_is_kept_unless_the_condition_flips() {
        let cj = cloudjob("a");
        let first = next_status(
            &cj,
            &observed(json!({"status": "RUNNING", "entities": {"process_percent": 0.1}})),
            now(),
        );
        let cj = with_status(cj, first.clone());
        let later: Timestamp = "2026-01-01T00:05:00Z".parse().expect("ts");
        let second = next_status(
            &cj,
            &observed(json!({"status": "RUNNING", "entities": {"process_percent": 0.6}})),
            later,
        );
        let t = |s: &CloudJobStatus| {
            find(s, condition::READY)
                .expect("ready")
                .last_transition_time
                .clone()
        };
        assert_eq!(t(&first), t(&second));
        let cj = with_status(cj, second);
        let third = next_status(&cj, &observed(json!({"status": "SUCCESS"})), later);
        assert_eq!(t(&third), Time(later));
    }

    #[test]
    fn deadline_and_pause() {
        let cj = cloudjob("a");
        let s = next_status(&cj, &Outcome::DeadlineExceeded { seconds: 60 }, now());
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(
            cond(&s, condition::FAILED),
            Some(("True", "DeadlineExceeded"))
        );
        assert_eq!(
            cond(&s, condition::STALLED),
            Some(("True", "DeadlineExceeded"))
        );
        let s = next_status(&cj, &Outcome::Paused, now());
        assert_eq!(s.phase, Some(Phase::Paused));
        assert_eq!(cond(&s, condition::READY), Some(("False", "Suspended")));
        assert_eq!(cond(&s, condition::RECONCILING), None);
    }

    #[test]
    fn reconcile_request_is_echoed() {
        let mut cj = cloudjob("a");
        cj.metadata.annotations = Some(
            [(
                RECONCILE_REQUESTED_ANNOTATION.to_string(),
                "now-1".to_string(),
            )]
            .into(),
        );
        let s = next_status(&cj, &observed(json!({"status": "INIT"})), now());
        assert_eq!(s.last_handled_reconcile_at.as_deref(), Some("now-1"));
        assert_eq!(s.phase, Some(Phase::Pending));
        let _: &CloudJobSpec = &cj.spec;
    }
}

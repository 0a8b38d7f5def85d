//! The event rule: which Kubernetes Events a status transition deserves.
//!
//! Pure. Events come from transitions only (phase, progress milestone, task, problem), never one per poll,
//! so a long job makes a handful. Warnings can repeat (a job throttled again after recovering), and
//! `controller::apply` publishes them through a shared Recorder that folds repeats into an EventSeries.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::{
    crd::{CloudJobStatus, Phase},
    reason::Reason,
    status::{condition, find},
};

/// Progress percentages worth an event when crossed.
const MILESTONES: [i32; 3] = [25, 50, 75];

/// Why an event is published: a lifecycle step, or a condition reason (a problem or a failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// The job was seen not started yet.
    Pending,
    /// The job was seen running.
    Started,
    /// The job passed a progress milestone.
    Progress,
    /// The job's current task changed.
    TaskChanged,
    /// The job succeeded.
    Succeeded,
    /// Polling was paused by annotation.
    Paused,
    /// A problem cleared.
    Recovered,
    /// A CloudJob cannot be decoded (an object stored under an older schema, or a status written out of
    /// range); it is skipped.
    InvalidObject,
    /// A failure or a problem, with the condition's reason.
    Condition(Reason),
}

impl EventReason {
    /// The PascalCase reason shown by `kubectl describe` and counted in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Pending => "Pending",
            EventReason::Started => "Started",
            EventReason::Progress => "Progress",
            EventReason::TaskChanged => "TaskChanged",
            EventReason::Succeeded => "Succeeded",
            EventReason::Paused => "Paused",
            EventReason::Recovered => "Recovered",
            EventReason::InvalidObject => "InvalidObject",
            EventReason::Condition(reason) => reason.as_str(),
        }
    }
}

/// One event to publish about a CloudJob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: EventReason,
    /// What the operator did (always `Poll` here: every event is about what a poll found).
    pub action: &'static str,
    /// Human-readable detail (no credentials ever reach status, so none reach events).
    pub note: String,
}

/// The events for going from `old` to `new`.
pub fn transition_events(old: &CloudJobStatus, new: &CloudJobStatus) -> Vec<EventSpec> {
    let mut events = Vec::new();
    let normal = |reason: EventReason, note: String| EventSpec {
        warning: false,
        reason,
        action: "Poll",
        note,
    };
    let warning = |reason: Reason, note: String| EventSpec {
        warning: true,
        reason: EventReason::Condition(reason),
        action: "Poll",
        note,
    };

    let job = |s: &CloudJobStatus| {
        format!(
            "{} job {}",
            s.job_type.as_deref().unwrap_or("cloud"),
            s.job_status.as_deref().unwrap_or("?")
        )
    };
    let ready_reason = |s: &CloudJobStatus| find(s, condition::READY).and_then(reason_of);
    let awaits_payment = ready_reason(new) == Some(Reason::PendingPayment);
    if awaits_payment && ready_reason(old) != Some(Reason::PendingPayment) {
        // Someone has to act (pay or cancel the order): say so once, with what to do.
        events.push(normal(
            EventReason::Condition(Reason::PendingPayment),
            find(new, condition::READY)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        ));
    }
    if old.phase != new.phase {
        match new.phase {
            Some(Phase::Pending) if awaits_payment => {}
            Some(Phase::Pending) if new.job_status.is_some() => events.push(normal(
                EventReason::Pending,
                format!("{} has not started yet", job(new)),
            )),
            Some(Phase::Running) => events.push(normal(
                EventReason::Started,
                format!("{} is running", job(new)),
            )),
            Some(Phase::Succeeded) => {
                let produced = new
                    .outputs
                    .as_ref()
                    .map(|o| {
                        o.resources
                            .iter()
                            .map(|r| format!("{} {}", r.kind, r.id))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let note = if produced.is_empty() {
                    format!("{} succeeded", job(new))
                } else {
                    format!("{} succeeded, produced {}", job(new), produced.join(", "))
                };
                events.push(normal(EventReason::Succeeded, note));
            }
            Some(Phase::Failed) => {
                let c = find(new, condition::FAILED);
                let reason = c.and_then(reason_of).unwrap_or(Reason::JobFailed);
                events.push(warning(
                    reason,
                    c.map(|c| c.message.clone()).unwrap_or_default(),
                ));
            }
            Some(Phase::Paused) => events.push(normal(
                EventReason::Paused,
                "polling paused by annotation".into(),
            )),
            _ => {}
        }
    }

    if new.phase.is_some_and(|p| !p.is_terminal()) {
        let (before, after) = (old.progress.unwrap_or(0), new.progress.unwrap_or(0));
        if let Some(m) = MILESTONES
            .iter()
            .rev()
            .find(|m| before < **m && after >= **m)
        {
            events.push(normal(
                EventReason::Progress,
                format!("{after}% done (passed {m}%)"),
            ));
        }
        if new.current_task.is_some() && new.current_task != old.current_task {
            events.push(normal(
                EventReason::TaskChanged,
                format!(
                    "current task: {}",
                    new.current_task.as_deref().unwrap_or("")
                ),
            ));
        }
    }

    // Problems: a warning when one starts or changes kind, a normal event when it clears.
    let problem = |s: &CloudJobStatus| {
        find(s, condition::READY).and_then(|c| {
            reason_of(c)
                .filter(|r| r.is_lasting_problem() || r.is_transient_problem())
                .map(|r| (r, c.message.clone()))
        })
    };
    match (problem(old), problem(new)) {
        (old_problem, Some((reason, message)))
            if old_problem.as_ref().map(|p| p.0) != Some(reason) =>
        {
            events.push(warning(reason, message))
        }
        (Some((reason, _)), None) if !new.phase.is_some_and(Phase::is_terminal) => {
            events.push(normal(
                EventReason::Recovered,
                format!("{reason} cleared, polling normally again"),
            ))
        }
        _ => {}
    }
    events
}

/// The typed reason of a condition this operator wrote; `None` for anything else.
fn reason_of(condition: &Condition) -> Option<Reason> {
    condition.reason.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cloud::{client::CloudError, model::JobObservation},
        plan::Problem,
        status::{Outcome, next_status},
        test_support::cloudjob,
    };
    use serde_json::json;

    fn step(old: &CloudJobStatus, outcome: Outcome<'_>) -> CloudJobStatus {
        let mut cj = cloudjob("a");
        cj.status = Some(old.clone());
        next_status(&cj, &outcome, "2026-01-01T00:00:00Z".parse().expect("ts"))
    }

    /// Leaked so that the borrowed outcome lives as long as the test needs it.
    fn job(v: serde_json::Value) -> Outcome<'static> {
        Outcome::Observed(Box::leak(Box::new(
            JobObservation::from_value(&v).expect("job"),
        )))
    }

    fn reasons(events: &[EventSpec]) -> Vec<&str> {
        events.iter().map(|e| e.reason.as_str()).collect()
    }

    #[test]
    fn a_job_lifecycle_makes_a_handful_of_events() {
        let s0 = CloudJobStatus::default();
        let s1 = step(
            &s0,
            job(
                json!({"status": "RUNNING", "entities": {"process_percent": 0.1, "current_task": "A"}}),
            ),
        );
        assert_eq!(
            reasons(&transition_events(&s0, &s1)),
            ["Started", "TaskChanged"]
        );
        let s2 = step(
            &s1,
            job(
                json!({"status": "RUNNING", "entities": {"process_percent": 0.15, "current_task": "A"}}),
            ),
        );
        assert!(
            transition_events(&s1, &s2).is_empty(),
            "no event for an ordinary poll"
        );
        let s3 = step(
            &s2,
            job(
                json!({"status": "RUNNING", "entities": {"process_percent": 0.8, "current_task": "B"}}),
            ),
        );
        assert_eq!(
            reasons(&transition_events(&s2, &s3)),
            ["Progress", "TaskChanged"]
        );
        assert!(transition_events(&s2, &s3)[0].note.contains("passed 75%"));
        let s4 = step(
            &s3,
            job(json!({"status": "SUCCESS", "entities": {"image_id": "img-1"}})),
        );
        let done = transition_events(&s3, &s4);
        assert_eq!(reasons(&done), ["Succeeded"]);
        assert!(done[0].note.contains("image img-1"));
        assert!(!done[0].warning);
    }

    #[test]
    fn failure_is_a_warning_with_the_cause() {
        let s0 = CloudJobStatus::default();
        let s1 = step(
            &s0,
            job(json!({"status": "FAIL", "error_code": "IMG.1", "fail_reason": "boom"})),
        );
        let events = transition_events(&s0, &s1);
        assert_eq!(reasons(&events), ["JobFailed"]);
        assert!(events[0].warning && events[0].note.contains("IMG.1: boom"));
    }

    #[test]
    fn problems_warn_once_and_recovery_is_noted() {
        let s0 = step(
            &CloudJobStatus::default(),
            job(json!({"status": "RUNNING"})),
        );
        let problem = Problem::Cloud(CloudError::Throttled {
            code: "APIGW.0308".into(),
            message: "429".into(),
            retry_after: None,
        });
        let throttled = Outcome::Problem {
            problem: &problem,
            since: "2026-01-01T00:00:00Z".parse().expect("ts"),
            handling: crate::status::Handling::Retry,
        };
        let s1 = step(&s0, throttled);
        assert_eq!(reasons(&transition_events(&s0, &s1)), ["Throttled"]);
        let s2 = step(&s1, throttled);
        assert!(
            transition_events(&s1, &s2).is_empty(),
            "the same problem again is not a new event"
        );
        let s3 = step(&s2, job(json!({"status": "RUNNING"})));
        assert_eq!(reasons(&transition_events(&s2, &s3)), ["Recovered"]);
    }
}

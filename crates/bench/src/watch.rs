//! What a user watching the CloudJobs sees: per job, the status writes (watch events whose status differs
//! from the previous one), the distinct user-visible states, and when `finishTime` first appeared.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use cloudjob_operator::crd::{CloudJob, CloudJobStatus, Phase};
use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};

/// A user-visible state: phase, progress, current task, the conditions' (type, status, reason), and the
/// sub-job counts. Timestamps and messages are left out: a state is what someone would act on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateKey {
    phase: Option<Phase>,
    progress: Option<i32>,
    current_task: Option<String>,
    conditions: Vec<(String, String, String)>,
    sub_jobs: Option<(i32, i32)>,
}

impl StateKey {
    pub fn of(status: &CloudJobStatus) -> StateKey {
        let mut conditions: Vec<(String, String, String)> = status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        conditions.sort();
        StateKey {
            phase: status.phase,
            progress: status.progress,
            current_task: status.current_task.clone(),
            conditions,
            sub_jobs: status.sub_jobs.as_ref().map(|s| (s.succeeded, s.failed)),
        }
    }
}

/// What the watch saw of one CloudJob.
#[derive(Clone, Debug, Default)]
pub struct JobView {
    last_status: Option<CloudJobStatus>,
    /// Watch events whose status differed from the previous one.
    pub status_writes: u32,
    /// Status writes seen after the first terminal status (bookkeeping only; should be none).
    pub writes_after_terminal: u32,
    pub states: HashSet<StateKey>,
    /// When the watch first delivered a status with `finishTime` (the benchmark's clock).
    pub finish_seen_at: Option<Timestamp>,
    pub phase: Option<Phase>,
}

/// The views of all CloudJobs of one namespace.
#[derive(Debug, Default)]
pub struct Tracker {
    pub jobs: HashMap<String, JobView>,
    /// Jobs whose `finishTime` has been seen.
    pub finished: usize,
    /// Watch (re)starts: each one after the first may have skipped intermediate writes.
    pub listings: u32,
    /// Errors of the watch stream (it retries with back-off).
    pub errors: u32,
}

impl Tracker {
    fn observe(&mut self, cj: &CloudJob, now: Timestamp) {
        let view = self.jobs.entry(cj.name_any()).or_default();
        if cj.status == view.last_status {
            return; // Spec, metadata or a relist: not a status write.
        }
        if let Some(status) = &cj.status {
            if view.phase.is_some_and(Phase::is_terminal) {
                view.writes_after_terminal += 1;
            }
            view.status_writes += 1;
            view.states.insert(StateKey::of(status));
            view.phase = status.phase;
            if status.finish_time.is_some() && view.finish_seen_at.is_none() {
                view.finish_seen_at = Some(now);
                self.finished += 1;
            }
        }
        view.last_status = cj.status.clone();
    }
}

/// Watches the CloudJobs of `api` into `tracker` until the task is aborted; `finished` gets the number of
/// jobs whose `finishTime` has been seen whenever it grows.
pub async fn watch(
    api: Api<CloudJob>,
    tracker: Arc<Mutex<Tracker>>,
    finished: tokio::sync::watch::Sender<usize>,
) {
    // The warm-up history is the operator's input, not a measured job.
    let measured = watcher::Config::default()
        .page_size(500)
        .labels(&format!("!{}", crate::setup::HISTORY_LABEL));
    let stream = watcher(api, measured).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        // One clock reading per event, taken before the lock: the moment this event reached us.
        let now = Timestamp::now();
        let Ok(mut tracker) = tracker.lock() else {
            return;
        };
        match event {
            Ok(watcher::Event::Apply(cj) | watcher::Event::InitApply(cj)) => {
                tracker.observe(&cj, now);
            }
            Ok(watcher::Event::Init) => tracker.listings += 1,
            Ok(watcher::Event::InitDone | watcher::Event::Delete(_)) => {}
            Err(_) => tracker.errors += 1,
        }
        finished.send_if_modified(|count| {
            std::mem::replace(count, tracker.finished) != tracker.finished
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudjob_operator::crd::CloudJobSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn cloudjob(status: Option<CloudJobStatus>) -> CloudJob {
        let spec: CloudJobSpec = serde_json::from_value(serde_json::json!({
            "service": "ims", "region": "eu-de", "projectId": "p", "jobId": "j",
            "credentialsSecretRef": {"name": "creds"}
        }))
        .expect("spec");
        let mut cj = CloudJob::new("a", spec);
        cj.status = status;
        cj
    }

    fn status(phase: Phase, progress: Option<i32>, reason: &str) -> CloudJobStatus {
        CloudJobStatus {
            phase: Some(phase),
            progress,
            finish_time: phase
                .is_terminal()
                .then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if phase.is_terminal() { "True" } else { "False" }.into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn counts_writes_states_and_finish() {
        let mut t = Tracker::default();
        let now = Timestamp::now();
        t.observe(&cloudjob(None), now); // created: no status, no write
        let running = status(Phase::Running, Some(10), "Running");
        t.observe(&cloudjob(Some(running.clone())), now);
        t.observe(&cloudjob(Some(running.clone())), now); // metadata change: same status
        t.observe(
            &cloudjob(Some(status(Phase::Running, Some(50), "Running"))),
            now,
        );
        t.observe(&cloudjob(Some(running)), now); // back to an earlier state: a write, not a new state
        let done = status(Phase::Succeeded, None, "Succeeded");
        t.observe(&cloudjob(Some(done.clone())), now);
        let view = &t.jobs["a"];
        assert_eq!(view.status_writes, 4);
        assert_eq!(view.states.len(), 3);
        assert_eq!(view.finish_seen_at, Some(now));
        assert_eq!(t.finished, 1);
        let mut touched = done;
        touched.last_handled_reconcile_at = Some("x".into());
        t.observe(&cloudjob(Some(touched)), now);
        assert_eq!(t.jobs["a"].writes_after_terminal, 1);
        assert_eq!(t.finished, 1);
    }
}

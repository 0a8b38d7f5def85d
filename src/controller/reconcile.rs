//! One reconcile: observe the job (I/O), plan (pure), apply the plan (I/O), and turn the plan's next step
//! into a requeue, growing or resetting the object's error back-off.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use jiff::Timestamp;
use kube::{
    ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};
use tracing::{Instrument, info_span, warn};

use super::{Context, WatchedCloudJob, apply, observe};
use crate::{
    crd::CloudJob,
    error::Error,
    plan::{self, Next, Observation},
};

/// Reconciles one CloudJob, or reports one that cannot be decoded and leaves it alone.
pub async fn reconcile(object: Arc<WatchedCloudJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let cj = match &object.0 {
        Ok(cj) => cj,
        Err(invalid) => {
            apply::report_invalid(object.as_ref(), invalid, &ctx).await;
            return Ok(Action::await_change());
        }
    };
    let span = info_span!("reconcile", namespace = cj.namespace().unwrap_or_default(), name = %cj.name_any());
    let started = Instant::now();
    let result = reconcile_job(cj, &ctx).instrument(span).await;
    ctx.shared.metrics.reconciled(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

/// A reconcile that failed against the Kubernetes API is retried with the object's back-off.
pub fn error_policy(object: Arc<WatchedCloudJob>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx
        .shared
        .backoffs
        .next(&ObjectRef::from_obj(object.as_ref()));
    warn!(name = %object.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_job(cj: &CloudJob, ctx: &Context) -> Result<Action, Error> {
    let observation = if plan::needs_poll(cj) {
        observe::observe(cj, ctx).await?
    } else {
        Observation::Skipped
    };
    let jitter = rand::random_range(0.9..1.1);
    let plan = plan::plan(
        cj,
        &observation,
        Timestamp::now(),
        &ctx.shared.rules,
        jitter,
    );
    apply::apply(cj, &plan, ctx).await?;
    Ok(requeue(cj, plan.next, ctx))
}

/// The plan's next step as a requeue. Runs only after the status was written, so that a status write
/// that keeps failing keeps growing the back-off instead of resetting it.
fn requeue(cj: &CloudJob, next: Next, ctx: &Context) -> Action {
    let shared = &ctx.shared;
    let key = || object_ref(cj);
    match next {
        Next::AwaitChange => {
            shared.backoffs.forget(&key());
            Action::await_change()
        }
        Next::Poll(delay) => {
            shared.backoffs.forget(&key());
            shared.metrics.poll_scheduled(delay);
            Action::requeue(delay)
        }
        Next::Retry { after, at_most } => {
            let delay = after.unwrap_or_else(|| shared.backoffs.next(&key()));
            Action::requeue(at_most.map_or(delay, |limit| delay.min(limit)))
        }
    }
}

/// The key of `cj` in the controller's queue and in [`Backoffs`].
fn object_ref(cj: &CloudJob) -> ObjectRef<WatchedCloudJob> {
    let name = cj.name_any();
    match cj.namespace() {
        Some(namespace) => ObjectRef::new(&name).within(&namespace),
        None => ObjectRef::new(&name),
    }
}

/// Per-object error back-off: grows with each failure in a row, forgotten on success and on deletion
/// (kube-runtime has none built in).
pub struct Backoffs {
    min: Duration,
    max: Duration,
    by_object: Mutex<HashMap<ObjectRef<WatchedCloudJob>, ExponentialBackoff>>,
}

impl Backoffs {
    pub fn new(min: Duration, max: Duration) -> Backoffs {
        Backoffs {
            min,
            max,
            by_object: Mutex::default(),
        }
    }

    /// The delay before the next retry of `object`, longer each time.
    pub fn next(&self, object: &ObjectRef<WatchedCloudJob>) -> Duration {
        let Ok(mut by_object) = self.by_object.lock() else {
            return self.max;
        };
        by_object
            .entry(object.clone())
            .or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(self.min)
                    .with_max_delay(self.max)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(self.max)
    }

    pub fn forget(&self, object: &ObjectRef<WatchedCloudJob>) {
        if let Ok(mut by_object) = self.by_object.lock() {
            by_object.remove(object);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_object.lock().map(|m| m.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectRef<WatchedCloudJob> {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn backoff_grows_per_object_and_starts_over_when_forgotten() {
        let backoffs = Backoffs::new(Duration::from_secs(2), Duration::from_secs(300));
        let first = backoffs.next(&key("a"));
        let second = backoffs.next(&key("a"));
        let third = backoffs.next(&key("a"));
        // Jitter adds up to one delay on top of each step: compare against the un-jittered bounds.
        assert!(first >= Duration::from_secs(2) && first < Duration::from_secs(4));
        assert!(second >= Duration::from_secs(4), "{second:?}");
        assert!(third >= Duration::from_secs(8), "{third:?}");
        let other = backoffs.next(&key("b"));
        assert!(
            other < Duration::from_secs(4),
            "objects do not share a back-off"
        );
        backoffs.forget(&key("a"));
        assert!(backoffs.next(&key("a")) < Duration::from_secs(4));
        backoffs.forget(&key("a"));
        backoffs.forget(&key("b"));
        assert_eq!(backoffs.len(), 0, "forgotten objects leave nothing behind");
    }

    #[test]
    fn backoff_never_exceeds_its_maximum() {
        let backoffs = Backoffs::new(Duration::from_secs(2), Duration::from_secs(10));
        for _ in 0..20 {
            assert!(backoffs.next(&key("a")) <= Duration::from_secs(20));
        }
    }
}

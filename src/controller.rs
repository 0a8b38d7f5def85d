//! The controller: watches CloudJobs (and the Secrets they reference), polls each unfinished job once per
//! reconcile, writes status when it changed, publishes events for transitions and schedules the next poll.
//!
//! The rules live elsewhere and are pure (`status`, `poll`, `events`); this module is the I/O around them.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::{StreamExt, future};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{PartialObjectMeta, Patch, PatchParams},
    runtime::{
        Controller, PredicateConfig, WatchStreamExt,
        controller::{self, Action},
        events::{Event as KubeEvent, EventType, Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    cloud::{
        client::{CloudClient, CloudError, JobRequest},
        endpoint,
    },
    crd::{
        CloudJob, CloudJobStatus, PAUSED_ANNOTATION, POLL_INTERVAL_ANNOTATION, Phase,
        RECONCILE_REQUESTED_ANNOTATION,
    },
    credentials::{self, CredentialCache},
    error::Error,
    events::transition_events,
    metrics::Metrics,
    poll::{self, PollMode},
    reason::Reason,
    status::{self, Outcome, next_status},
};

/// The field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "cloudjob-operator";
/// Longest wait for one Kubernetes API call made by a reconcile.
const API_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest note Kubernetes accepts on an event.
const MAX_EVENT_NOTE: usize = 1000;

/// What the controller needs to know besides the objects.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// Only CloudJobs matching this label selector are handled.
    pub label_selector: Option<String>,
    /// Reconciles running at once, per watched namespace.
    pub concurrency: u16,
    pub poll_mode: PollMode,
    /// `{service}`/`{region}` template for the endpoint of CloudJobs without `spec.endpoint`.
    pub endpoint_template: Option<String>,
    /// Shortest and longest delay after a failed poll or reconcile.
    pub error_backoff_min: Duration,
    pub error_backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespaces: Vec::new(),
            label_selector: None,
            concurrency: 16,
            poll_mode: PollMode::Adaptive,
            endpoint_template: None,
            error_backoff_min: Duration::from_secs(2),
            error_backoff_max: Duration::from_secs(300),
        }
    }
}

/// State shared by the controllers of all watched namespaces.
pub struct Shared {
    pub client: Client,
    pub cloud: CloudClient,
    /// Publishes Warning events. Its cache folds a repeated warning (a job throttled again and again) into
    /// one Event with a growing series count.
    pub warnings: Recorder,
    /// Normal events are one per transition and never repeat, so folding has nothing to fold: each is
    /// published through a fresh Recorder, instead of keeping every one in a shared 6-minute cache
    /// (kube-runtime's), which at 10,000 jobs was the bulk of the operator's memory.
    reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    credentials: CredentialCache,
    /// Per-object error back-off: grows with each failure, forgotten on success (kube-runtime has none).
    backoffs: Mutex<HashMap<ObjectRef<CloudJob>, ExponentialBackoff>>,
}

impl Shared {
    pub fn new(
        client: Client,
        cloud: CloudClient,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter: Reporter,
    ) -> Shared {
        Shared {
            warnings: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            cloud,
            metrics,
            settings,
            credentials: CredentialCache::default(),
            backoffs: Mutex::new(HashMap::new()),
        }
    }

    fn next_backoff(&self, cj: &CloudJob) -> Duration {
        let Ok(mut backoffs) = self.backoffs.lock() else {
            return self.settings.error_backoff_max;
        };
        backoffs
            .entry(ObjectRef::from_obj(cj))
            .or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(self.settings.error_backoff_min)
                    .with_max_delay(self.settings.error_backoff_max)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(self.settings.error_backoff_max)
    }

    fn reset_backoff(&self, cj: &CloudJob) {
        if let Ok(mut backoffs) = self.backoffs.lock() {
            backoffs.remove(&ObjectRef::from_obj(cj));
        }
    }
}

/// Per-namespace context: the shared state plus that scope's Secret metadata cache.
pub struct Context {
    shared: Arc<Shared>,
    secrets: Store<PartialObjectMeta<Secret>>,
}

/// Runs one controller per watched namespace (or one for all namespaces) until a shutdown signal.
pub async fn run(shared: Arc<Shared>) {
    let scopes: Vec<Option<String>> = if shared.settings.namespaces.is_empty() {
        vec![None]
    } else {
        shared
            .settings
            .namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    let stores: Arc<Mutex<Vec<Store<CloudJob>>>> = Arc::default();
    let gauges = tokio::spawn(report_phases(shared.metrics.clone(), stores.clone()));
    future::join_all(
        scopes
            .into_iter()
            .map(|ns| run_scope(shared.clone(), ns, stores.clone())),
    )
    .await;
    gauges.abort();
}

async fn run_scope(
    shared: Arc<Shared>,
    namespace: Option<String>,
    stores: Arc<Mutex<Vec<Store<CloudJob>>>>,
) {
    let client = shared.client.clone();
    // Secrets are watched as metadata only: their resourceVersion says when cached credentials are stale.
    let (jobs, secrets): (Api<CloudJob>, Api<PartialObjectMeta<Secret>>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let mut job_watch = watcher::Config::default().page_size(500);
    if let Some(selector) = &shared.settings.label_selector {
        job_watch = job_watch.labels(selector);
    }

    let (job_store, job_writer) = reflector::store();
    if let Ok(mut all) = stores.lock() {
        all.push(job_store.clone());
    }
    // managedFields are the largest part of an object and never read here: drop them before caching.
    let job_stream = watcher(jobs, job_watch)
        .modify(|cj: &mut CloudJob| cj.managed_fields_mut().clear())
        .reflect(job_writer)
        .applied_objects()
        // Our own status writes must not trigger a poll: only spec and the annotations that steer
        // polling do. Scheduled polls come from the requeue, not from watch events.
        .predicate_filter(
            relevant_change,
            PredicateConfig::default().ttl(Duration::from_secs(7 * 24 * 3600)),
        );

    let (secret_store, secret_writer) = reflector::store();
    let secret_changes = watcher(secrets, watcher::Config::default())
        .reflect(secret_writer)
        .filter_map(|event| {
            future::ready(match event {
                // The initial listing is not a change; CloudJobs are reconciled on start anyway.
                Ok(watcher::Event::Apply(secret) | watcher::Event::Delete(secret)) => {
                    Some(Ok(secret))
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
        });

    let referrers = job_store.clone();
    let context = Arc::new(Context {
        shared: shared.clone(),
        secrets: secret_store,
    });
    let scope = namespace.clone().unwrap_or_else(|| "*".into());
    info!(namespace = %scope, "watching CloudJobs");
    Controller::for_stream(job_stream, job_store)
        .watches_stream(secret_changes, move |secret: PartialObjectMeta<Secret>| {
            cloudjobs_using(&referrers, &secret)
        })
        .with_config(controller::Config::default().concurrency(shared.settings.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(object = %object, "reconciled"),
                Err(controller::Error::ReconcilerFailed(e, object)) => {
                    warn!(object = %object, error = %e, "reconcile failed")
                }
                Err(e) => warn!(namespace = %scope, error = %e, "controller stream error"),
            }
            future::ready(())
        })
        .await;
}

/// Hash of what should trigger a reconcile: the spec (generation) and the polling annotations.
fn relevant_change(cj: &CloudJob) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    cj.metadata.generation.hash(&mut hasher);
    for key in [
        PAUSED_ANNOTATION,
        RECONCILE_REQUESTED_ANNOTATION,
        POLL_INTERVAL_ANNOTATION,
    ] {
        cj.annotations().get(key).hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// The CloudJobs whose credentials are in `secret`.
fn cloudjobs_using(
    jobs: &Store<CloudJob>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<CloudJob>> {
    let (namespace, name) = (secret.namespace(), secret.name_any());
    jobs.state()
        .iter()
        .filter(|cj| cj.namespace() == namespace && cj.spec.credentials_secret_ref.name == name)
        .map(|cj| ObjectRef::from_obj(cj.as_ref()))
        .collect()
}

async fn report_phases(metrics: Arc<Metrics>, stores: Arc<Mutex<Vec<Store<CloudJob>>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let mut counts: HashMap<Option<Phase>, i64> = HashMap::new();
        let snapshot: Vec<Store<CloudJob>> = stores.lock().map(|s| s.clone()).unwrap_or_default();
        for store in snapshot {
            for cj in store.state() {
                *counts
                    .entry(cj.status.as_ref().and_then(|s| s.phase))
                    .or_default() += 1;
            }
        }
        metrics.set_jobs_by_phase(&counts.into_iter().collect::<Vec<_>>());
    }
}

async fn reconcile(cj: Arc<CloudJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", namespace = cj.namespace().unwrap_or_default(), name = %cj.name_any());
    let started = Instant::now();
    let result = reconcile_job(&cj, &ctx).instrument(span).await;
    ctx.shared.metrics.reconciled(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

fn error_policy(cj: Arc<CloudJob>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.shared.next_backoff(&cj);
    warn!(name = %cj.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_job(cj: &CloudJob, ctx: &Context) -> Result<Action, Error> {
    let shared = &ctx.shared;
    let namespace = cj.namespace().ok_or(Error::MissingNamespace)?;
    let now = Timestamp::now();
    let old = cj.status.clone().unwrap_or_default();

    let (new, action) = if old.phase.is_some_and(Phase::is_terminal) {
        // Finished: never polled again, also after a restart. Only bookkeeping can change.
        (status::bookkeeping(cj), Action::await_change())
    } else if cj
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
    {
        (
            next_status(cj, &Outcome::Paused, now),
            Action::await_change(),
        )
    } else if let Some(seconds) = deadline_passed(cj, now) {
        (
            next_status(cj, &Outcome::DeadlineExceeded { seconds }, now),
            Action::await_change(),
        )
    } else {
        let (outcome, retry_after) = poll_job(cj, &namespace, ctx).await?;
        let new = next_status(cj, &outcome, now);
        let action = match &outcome {
            _ if new.phase.is_some_and(Phase::is_terminal) => {
                shared.reset_backoff(cj);
                Action::await_change()
            }
            Outcome::Observed(_) => {
                shared.reset_backoff(cj);
                let jitter = rand::random_range(0.9..1.1);
                let delay = poll::next_interval(cj, &new, shared.settings.poll_mode, now, jitter);
                let delay = until_deadline(cj, now).map_or(delay, |d| delay.min(d));
                shared.metrics.poll_scheduled(delay);
                Action::requeue(delay)
            }
            _ => Action::requeue(retry_after.unwrap_or_else(|| shared.next_backoff(cj))),
        };
        (new, action)
    };

    if cj.status.as_ref() != Some(&new) {
        patch_status(cj, &namespace, &new, shared).await?;
        publish_events(cj, &old, &new, shared).await;
    }
    Ok(action)
}

/// One GET of the job, or the problem that prevented it.
async fn poll_job(
    cj: &CloudJob,
    namespace: &str,
    ctx: &Context,
) -> Result<(Outcome, Option<Duration>), Error> {
    let shared = &ctx.shared;
    let creds = match read_credentials(cj, namespace, ctx).await? {
        Ok(creds) => creds,
        Err(problem) => return Ok((problem, None)),
    };
    let base = match endpoint::base_url(&cj.spec, shared.settings.endpoint_template.as_deref()) {
        Ok(url) => url,
        Err(e) => {
            let message = format!("{e}; fix spec.endpoint (or the operator's --endpoint-template)");
            return Ok((
                Outcome::Problem {
                    reason: Reason::InvalidEndpoint,
                    message,
                },
                None,
            ));
        }
    };
    let request = JobRequest {
        base_url: &base,
        project_id: &cj.spec.project_id,
        job_id: &cj.spec.job_id,
    };
    let result = shared.cloud.get_job(request, &creds).await;
    let service = cj.spec.service.as_str();
    shared.metrics.cloud_request(
        service,
        result
            .as_ref()
            .map_or_else(CloudError::category, |_| "success"),
    );
    match result {
        Ok(job) => Ok((Outcome::Observed(Box::new(job)), None)),
        Err(e) => {
            info!(error = %e, "poll failed");
            let retry_after = e.retry_after();
            let (reason, message) = explain(&e, cj);
            Ok((Outcome::Problem { reason, message }, retry_after))
        }
    }
}

/// A cloud error as a condition reason and a message that says what to do next.
fn explain(e: &CloudError, cj: &CloudJob) -> (Reason, String) {
    let secret = &cj.spec.credentials_secret_ref.name;
    match e {
        CloudError::Throttled { retry_after, .. } => {
            let when = retry_after.map_or("with back-off".to_string(), |d| {
                format!("after {} s (Retry-After)", d.as_secs())
            });
            (Reason::Throttled, format!("{e}; retrying {when}"))
        }
        CloudError::Unauthorized { .. } => (
            Reason::AuthenticationFailed,
            format!("{e}; check the access key and secret key in Secret {secret:?}"),
        ),
        CloudError::Forbidden { .. } => (
            Reason::Forbidden,
            format!(
                "{e}; check that the credentials in Secret {secret:?} may read jobs of project {:?}",
                cj.spec.project_id
            ),
        ),
        CloudError::NotFound { .. } => (
            Reason::JobNotFound,
            format!(
                "{e}; check spec.jobId, spec.projectId, spec.service and spec.region (the cloud deletes jobs about a day after they finish)"
            ),
        ),
        CloudError::Rejected { .. } => (
            Reason::RequestRejected,
            format!("{e}; check the CloudJob's spec"),
        ),
        CloudError::Unavailable { .. } | CloudError::Transport(_) => (
            Reason::CloudUnavailable,
            format!("{e}; retrying with back-off"),
        ),
        CloudError::InvalidResponse(_) => (
            Reason::InvalidResponse,
            format!("{e}; retrying with back-off"),
        ),
        CloudError::Endpoint(_) | CloudError::Signing(_) => {
            (Reason::InvalidEndpoint, format!("{e}; check spec.endpoint"))
        }
    }
}

/// Credentials from the CloudJob's Secret (never another namespace's), through the cache.
async fn read_credentials(
    cj: &CloudJob,
    namespace: &str,
    ctx: &Context,
) -> Result<Result<aksk::Credentials, Outcome>, Error> {
    let reference = &cj.spec.credentials_secret_ref;
    let cache = &ctx.shared.credentials;
    let cached_version = ctx
        .secrets
        .get(&ObjectRef::new(&reference.name).within(namespace))
        .and_then(|meta| meta.resource_version());
    if let Some(creds) = cached_version
        .as_deref()
        .and_then(|rv| cache.get(namespace, reference, rv))
    {
        return Ok(Ok(creds));
    }
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), namespace);
    let secret = tokio::time::timeout(API_TIMEOUT, api.get_opt(&reference.name))
        .await
        .map_err(|_| Error::Timeout(API_TIMEOUT))?
        .map_err(Error::SecretRead)?;
    let Some(secret) = secret else {
        cache.remove(namespace, &reference.name);
        let message = format!(
            "Secret {:?} not found in namespace {namespace:?}: create it with the keys {} and {}; the job is polled as soon as it exists",
            reference.name,
            reference
                .access_key_key
                .as_deref()
                .unwrap_or(credentials::DEFAULT_ACCESS_KEY_KEY),
            reference
                .secret_key_key
                .as_deref()
                .unwrap_or(credentials::DEFAULT_SECRET_KEY_KEY),
        );
        return Ok(Err(Outcome::Problem {
            reason: Reason::SecretNotFound,
            message,
        }));
    };
    match credentials::from_secret(&secret, reference) {
        Ok(creds) => {
            if let Some(rv) = secret.resource_version() {
                cache.insert(namespace, reference, rv, creds.clone());
            }
            Ok(Ok(creds))
        }
        Err(e) => Ok(Err(Outcome::Problem {
            reason: Reason::SecretInvalid,
            message: format!("{e}: fix the Secret or spec.credentialsSecretRef's key names"),
        })),
    }
}

/// Seconds of `spec.activeDeadlineSeconds` if they have passed since the CloudJob was created.
fn deadline_passed(cj: &CloudJob, now: Timestamp) -> Option<i64> {
    let seconds = cj.spec.active_deadline_seconds?;
    (until_deadline(cj, now)? == Duration::ZERO).then_some(seconds)
}

fn until_deadline(cj: &CloudJob, now: Timestamp) -> Option<Duration> {
    let seconds = u64::try_from(cj.spec.active_deadline_seconds?).ok()?;
    let created = cj.metadata.creation_timestamp.as_ref()?.0;
    let elapsed = now.duration_since(created).as_secs_f64().max(0.0);
    Some(Duration::from_secs_f64((seconds as f64 - elapsed).max(0.0)))
}

async fn patch_status(
    cj: &CloudJob,
    namespace: &str,
    status: &CloudJobStatus,
    shared: &Shared,
) -> Result<(), Error> {
    let api: Api<CloudJob> = Api::namespaced(shared.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": CloudJob::api_version(&()),
        "kind": CloudJob::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    tokio::time::timeout(
        API_TIMEOUT,
        api.patch_status(&cj.name_any(), &params, &Patch::Apply(&patch)),
    )
    .await
    .map_err(|_| Error::Timeout(API_TIMEOUT))?
    .map_err(Error::StatusPatch)?;
    shared.metrics.status_patched();
    Ok(())
}

/// Events are best effort: a failure to publish one is logged, never fails the reconcile.
async fn publish_events(
    cj: &CloudJob,
    old: &CloudJobStatus,
    new: &CloudJobStatus,
    shared: &Shared,
) {
    let reference = cj.object_ref(&());
    for spec in transition_events(old, new) {
        let event = KubeEvent {
            type_: if spec.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: spec.reason.clone(),
            note: Some(crate::text::prefix(&spec.note, MAX_EVENT_NOTE).to_string()),
            action: spec.action.to_string(),
            secondary: None,
        };
        let published = if spec.warning {
            shared.warnings.publish(&event, &reference).await
        } else {
            Recorder::new(shared.client.clone(), shared.reporter.clone())
                .publish(&event, &reference)
                .await
        };
        match published {
            Ok(()) => shared.metrics.event_published(spec.warning, &spec.reason),
            Err(e) => warn!(reason = %spec.reason, error = %e, "cannot publish event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::cloudjob;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn status_writes_do_not_count_as_relevant_changes() {
        let cj = cloudjob("a");
        let mut with_status = cj.clone();
        with_status.status = Some(CloudJobStatus {
            phase: Some(Phase::Running),
            ..Default::default()
        });
        with_status.metadata.resource_version = Some("99".into());
        assert_eq!(relevant_change(&cj), relevant_change(&with_status));
        let mut paused = cj.clone();
        paused.metadata.annotations =
            Some([(PAUSED_ANNOTATION.to_string(), "true".to_string())].into());
        assert_ne!(relevant_change(&cj), relevant_change(&paused));
        let mut edited = cj.clone();
        edited.metadata.generation = Some(2);
        assert_ne!(relevant_change(&cj), relevant_change(&edited));
    }

    #[test]
    fn deadline_counts_from_creation() {
        let mut cj = cloudjob("a");
        let created: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        cj.metadata.creation_timestamp = Some(Time(created));
        cj.spec.active_deadline_seconds = Some(60);
        let at = |s: i64| created + jiff::SignedDuration::from_secs(s);
        assert_eq!(deadline_passed(&cj, at(59)), None);
        assert_eq!(until_deadline(&cj, at(50)), Some(Duration::from_secs(10)));
        assert_eq!(deadline_passed(&cj, at(60)), Some(60));
        cj.spec.active_deadline_seconds = None;
        assert_eq!(deadline_passed(&cj, at(6000)), None);
    }

    #[test]
    fn explanations_say_what_to_do() {
        let cj = cloudjob("a");
        let (reason, message) = explain(
            &CloudError::Unauthorized {
                code: "APIGW.0301".into(),
                message: "bad".into(),
            },
            &cj,
        );
        assert_eq!(reason, Reason::AuthenticationFailed);
        assert!(message.contains("check the access key"), "{message}");
        let (reason, message) = explain(
            &CloudError::Throttled {
                code: "APIGW.0308".into(),
                message: "m".into(),
                retry_after: Some(Duration::from_secs(3)),
            },
            &cj,
        );
        assert_eq!(reason, Reason::Throttled);
        assert!(message.contains("after 3 s"), "{message}");
        let (reason, _) = explain(
            &CloudError::NotFound {
                status: 400,
                code: "Common.0011".into(),
                message: "m".into(),
            },
            &cj,
        );
        assert_eq!(reason, Reason::JobNotFound);
    }
}

//! One reconcile: observe the job (I/O), plan (pure), apply the plan (I/O), and turn the plan's next step
//! into a requeue, growing or resetting the object's error back-off.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use jiff::Timestamp;
use kube::{
    ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};
use tracing::{Instrument, info_span, warn};

use super::{CachedCloudJob, Context, apply, cache::Cached};
use crate::{
    crd::CloudJob,
    error::Error,
    plan::{self, Next, Observation},
};

/// Reconciles one CloudJob, or reports one that cannot be decoded and leaves it alone.
pub async fn reconcile(object: Arc<CachedCloudJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", namespace = object.namespace().unwrap_or_default(), name = %object.name_any());
    let started = Instant::now();
    let result = reconcile_cached(&object, &ctx)
        .instrument(span)
        .await
        .map(|next| next.map_or_else(Action::await_change, Action::requeue));
    ctx.shared.metrics.reconciled(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

/// The reconcile of a cached CloudJob: the whole CloudJob from the cache (with the status this
/// operator wrote last if the cache does not show it yet) or, for a finished one whose bookkeeping is
/// due, from the API server; nothing for a finished one that is settled.
async fn reconcile_cached(
    object: &CachedCloudJob,
    ctx: &Context,
) -> Result<Option<Duration>, Error> {
    let key = ObjectRef::from_obj(object);
    let written = ctx.shared.last_written.ahead_of_cache(object, &key);
    let cj = match (object.for_reconcile(), written) {
        (Cached::Invalid(error), _) => {
            apply::report_invalid(object, error, ctx).await;
            return Ok(None);
        }
        (Cached::Whole(mut cj), written) => {
            if written.is_some() {
                cj.status = written;
            }
            cj
        }
        (Cached::Settled, None) => {
            ctx.shared.backoffs.forget(&key);
            return Ok(None);
        }
        (Cached::ReadFirst, _) | (Cached::Settled, Some(_)) => {
            match observe::read_cloudjob(object, ctx).await? {
                Some(cj) => Box::new(cj),
                // Deleted meanwhile: its delete event follows.
                None => return Ok(None),
            }
        }
    };
    reconcile_job(&cj, ctx).await
}

/// A reconcile that failed against the Kubernetes API is retried with the object's back-off.
pub fn error_policy(object: Arc<CachedCloudJob>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx
        .shared
        .backoffs
        .next(&ObjectRef::from_obj(object.as_ref()));
    warn!(name = %object.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The reconcile of a decoded CloudJob: when to reconcile it again (`None`: on its next change).
async fn reconcile_job(cj: &CloudJob, ctx: &Context) -> Result<Option<Duration>, Error> {
    let observation = if plan::needs_poll(cj) {
        observe::observe(cj, ctx).await?
    } else {
        Observation::Skipped
    };
    let jitter = rand::random_range(0.9..1.1);
    let plan = {
        // Held only while the pure plan runs (microseconds); the watch's learning waits that long.
        let durations = ctx
            .shared
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plan::plan(
            cj,
            &observation,
            Timestamp::now(),
            &ctx.shared.rules,
            &durations,
            jitter,
        )
    };
    apply::apply(cj, &plan, ctx).await?;
    Ok(next_delay(cj, plan.next, ctx))
}

/// The plan's next step as a delay (`None`: wait for a change of the object). Runs only after the status
/// was written, so that a status write that keeps failing keeps growing the back-off instead of
/// resetting it.
fn next_delay(cj: &CloudJob, next: Next, ctx: &Context) -> Option<Duration> {
    let shared = &ctx.shared;
    let key = || object_ref(cj);
    match next {
        Next::AwaitChange => {
            shared.backoffs.forget(&key());
            None
        }
        Next::Poll(delay) => {
            shared.backoffs.forget(&key());
            shared.metrics.poll_scheduled(delay);
            Some(delay)
        }
        Next::Retry { after, at_most } => {
            let delay = after.unwrap_or_else(|| shared.backoffs.next(&key()));
            Some(at_most.map_or(delay, |limit| delay.min(limit)))
        }
    }
}

/// The key of `cj` in the controller's queue and in [`Backoffs`].
pub fn object_ref(cj: &CloudJob) -> ObjectRef<CachedCloudJob> {
    super::key_of(&cj.metadata)
}

/// Per-object error back-off: grows with each failure in a row, forgotten on success and on deletion
/// (kube-runtime has none built in). The delays are backon's exponential back-off; what is kept per
/// object is only its count of failures in a row, under a hash of its reference. In a failure storm
/// every CloudJob has an entry, and a reference (its name and namespace on the heap) beside a back-off
/// iterator take well over 200 bytes, where a hash and a count take 12. Two objects whose references
/// hash alike (one chance in 2^64 per pair) would share a count: one would wait longer than its own
/// failures ask, which delays a retry and breaks nothing.
pub struct Backoffs {
    delays: ExponentialBuilder,
    max: Duration,
    hasher: RandomState,
    failures_in_a_row: Mutex<HashMap<u64, u32>>,
}

/// A count past which the delay has long reached any sensible maximum (a minimum doubled 31 times is
/// over 2 billion times itself: from 1 ms, 24 days), so that counting stops there and never overflows.
const FAILURES_COUNTED: u32 = 32;

impl Backoffs {
    pub fn new(min: Duration, max: Duration) -> Backoffs {
        Backoffs {
            delays: ExponentialBuilder::default()
                .with_min_delay(min)
                .with_max_delay(max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
            max,
            hasher: RandomState::new(),
            failures_in_a_row: Mutex::default(),
        }
    }

    /// The delay before the next retry of `object`, longer each time.
    pub fn next(&self, object: &ObjectRef<CachedCloudJob>) -> Duration {
        let failures = {
            let mut counts = self
                .failures_in_a_row
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(self.hasher.hash_one(object)).or_insert(0);
            let before = *count;
            *count = (before + 1).min(FAILURES_COUNTED);
            before
        };
        // The delay after `failures` earlier ones, as backon's iterator would give it as its next.
        self.delays
            .build()
            .nth(failures as usize)
            .unwrap_or(self.max)
    }

    pub fn forget(&self, object: &ObjectRef<CachedCloudJob>) {
        let hash = self.hasher.hash_one(object);
        self.failures_in_a_row
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&hash);
    }

    /// Keeps only the back-offs of the objects in `alive`.
    pub fn retain(&self, alive: impl IntoIterator<Item = ObjectRef<CachedCloudJob>>) {
        let alive: HashSet<u64> = alive
            .into_iter()
            .map(|object| self.hasher.hash_one(&object))
            .collect();
        self.failures_in_a_row
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|hash, _| alive.contains(hash));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures_in_a_row
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

pub mod observe {
    //! Observe: the I/O that learns what the plan needs. Reads the credentials (through the cache), builds the
    //! endpoint and makes one signed GET of the job. Whatever stops it that the user or the cloud must fix is
    //! folded into the [`Observation`]; only failures of the operator's own Kubernetes calls are errors.

    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::{Api, ResourceExt};
    use tracing::info;

    use super::object_ref;
    use crate::controller::{CachedCloudJob, Context};
    use crate::{
        cloud::{
            catalogue,
            client::{CloudError, JobRequest},
            endpoint,
            model::JobObservation,
            rate::Turn,
        },
        crd::CloudJob,
        credentials,
        error::Error,
        plan::{Observation, Problem},
    };

    /// Longest wait for one Kubernetes API call made by a reconcile.
    pub const API_TIMEOUT: Duration = Duration::from_secs(15);

    /// How long a CloudJob waits when its endpoint has its limit of requests under way. Short, because waiting
    /// costs no request; a CloudJob never polled yet (no status) should not sit behind a burst of others for
    /// long.
    pub const ENDPOINT_BUSY_RETRY: Duration = Duration::from_secs(2);

    /// The whole CloudJob of `cached`, read from the API server (`None`: it is gone), for a finished one the
    /// cache keeps only in summary.
    pub async fn read_cloudjob(
        cached: &CachedCloudJob,
        ctx: &Context,
    ) -> Result<Option<CloudJob>, Error> {
        let namespace = cached.namespace().ok_or(Error::MissingNamespace)?;
        let api: Api<CloudJob> = Api::namespaced(ctx.shared.client.clone(), &namespace);
        tokio::time::timeout(API_TIMEOUT, api.get_opt(&cached.name_any()))
            .await
            .map_err(|_| Error::Timeout(API_TIMEOUT))?
            .map_err(Error::CloudJobRead)
    }

    /// One poll of the job, or the problem that prevented it.
    pub async fn observe(cj: &CloudJob, ctx: &Context) -> Result<Observation, Error> {
        match poll(cj, ctx).await {
            Ok(job) => Ok(Observation::Job(Box::new(job))),
            Err(Stop::Problem(problem)) => Ok(Observation::Problem(problem)),
            Err(Stop::Deferred(wait)) => Ok(Observation::Deferred(wait)),
            Err(Stop::Error(e)) => Err(e),
        }
    }

    /// Why a poll stopped short: a problem to report, the endpoint's rate limit (come back later), or the
    /// operator's own failure to retry.
    enum Stop {
        Problem(Problem),
        Deferred(Duration),
        Error(Error),
    }

    impl From<Problem> for Stop {
        fn from(problem: Problem) -> Self {
            Stop::Problem(problem)
        }
    }

    impl From<Error> for Stop {
        fn from(e: Error) -> Self {
            Stop::Error(e)
        }
    }

    async fn poll(cj: &CloudJob, ctx: &Context) -> Result<JobObservation, Stop> {
        let shared = &ctx.shared;
        let template = shared.config.endpoint_template.as_deref();
        let base = endpoint::base_url(&cj.spec, template).map_err(Problem::InvalidEndpoint)?;
        endpoint::check_allowed(&cj.spec, &base, template, &shared.config.allowed_endpoints)
            .map_err(|e| Problem::Cloud(e.into()))?;
        let credentials = read_credentials(cj, ctx).await?;
        // The endpoint's rate limit: wait here only for a turn that is (almost) now; otherwise book a turn
        // and free this reconcile slot until then.
        let endpoint_key = endpoint::rate_limit_key(&base);
        // An endpoint with its limit of requests under way (a slow or hung one) gets no more reconcile slots.
        let Some(_in_flight) = shared.in_flight.try_start(&endpoint_key) else {
            let jitter = rand::random_range(0.75..1.25);
            return Err(Stop::Deferred(ENDPOINT_BUSY_RETRY.mul_f64(jitter)));
        };
        match shared
            .rate
            .turn(&endpoint_key, &object_ref(cj), Instant::now())
        {
            Turn::Now(wait) => tokio::time::sleep(wait).await,
            Turn::Later(wait) => return Err(Stop::Deferred(wait)),
        }
        let api = catalogue::api(cj.spec.service);
        let request = JobRequest {
            base_url: &base,
            project_id: &cj.spec.project_id,
            job_id: &cj.spec.job_id,
            api,
            path: api.path(cj.spec.cloud, cj.spec.ims_job_path),
        };
        let result = shared.cloud.get_job(request, &credentials).await;
        shared.metrics.cloud_request(
            cj.spec.service.as_str(),
            result
                .as_ref()
                .map_or_else(CloudError::category, |_| "success"),
        );
        let job = result.map_err(|e| {
            info!(error = %e, "poll failed");
            Stop::Problem(Problem::Cloud(e))
        })?;
        check_outputs_config_map(cj, ctx).await?;
        Ok(job)
    }

    /// `spec.outputsConfigMap` must be free or this CloudJob's own: the operator never takes over a ConfigMap
    /// that someone else made.
    async fn check_outputs_config_map(cj: &CloudJob, ctx: &Context) -> Result<(), Stop> {
        let Some(name) = &cj.spec.outputs_config_map else {
            return Ok(());
        };
        let namespace = cj.namespace().ok_or(Error::MissingNamespace)?;
        let api: Api<ConfigMap> = Api::namespaced(ctx.shared.client.clone(), &namespace);
        let existing = tokio::time::timeout(API_TIMEOUT, api.get_opt(name))
            .await
            .map_err(|_| Error::Timeout(API_TIMEOUT))?
            .map_err(Error::ConfigMap)?;
        let owned = |config_map: &ConfigMap| {
            config_map
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == cj.metadata.uid.as_ref())
        };
        match existing {
            Some(config_map) if !owned(&config_map) => {
                Err(Problem::ConfigMapNotOwned { name: name.clone() }.into())
            }
            _ => Ok(()),
        }
    }

    /// Credentials from the CloudJob's Secret (never another namespace's), through the cache.
    async fn read_credentials(cj: &CloudJob, ctx: &Context) -> Result<aksk::Credentials, Stop> {
        let namespace = cj.namespace().ok_or(Error::MissingNamespace)?;
        let reference = &cj.spec.credentials_secret_ref;
        credentials::validate_reference(reference).map_err(Problem::SecretInvalid)?;
        let cache = &ctx.shared.credentials;
        if let Some(creds) = cache.get(&namespace, reference) {
            return Ok(creds);
        }
        let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &namespace);
        let secret = tokio::time::timeout(API_TIMEOUT, api.get_opt(&reference.name))
            .await
            .map_err(|_| Error::Timeout(API_TIMEOUT))?
            .map_err(Error::SecretRead)?;
        let Some(secret) = secret else {
            cache.remove(&namespace, &reference.name);
            return Err(Problem::SecretNotFound.into());
        };
        let creds = credentials::from_secret(&secret, reference).map_err(Problem::SecretInvalid)?;
        if let Some(rv) = secret.resource_version() {
            cache.insert(&namespace, reference, rv, creds.clone());
        }
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{controller::mock, test_support::cloudjob};
    use cloudjob_sim::{JobSpec, Service, SimConfig, Simulator};
    use http::Method;
    use kube::core::{DeserializeGuard, ObjectMeta, error_boundary::InvalidObject};
    use serde_json::json;

    /// A simulator with one IMS job that runs for an hour, and CloudJob `a` pointing at it (the simulator
    /// must outlive the test's reconciles).
    async fn running_job() -> (Simulator, CloudJob) {
        let sim = Simulator::start(SimConfig::default())
            .await
            .expect("simulator");
        let created = sim
            .create_job(
                JobSpec::new(
                    Service::Ims,
                    "0123456789abcdef0123456789abcdef",
                    "createImage",
                )
                .duration_secs(3600.0),
            )
            .expect("job");
        let mut cj = cloudjob("a");
        cj.spec.job_id = created.job_id.clone();
        cj.spec.endpoint = Some(sim.endpoint(Service::Ims));
        (sim, cj)
    }

    #[tokio::test]
    async fn one_reconcile_reads_the_secret_polls_once_writes_status_and_announces_it() {
        let (sim, cj) = running_job().await;
        let (ctx, mut api) = mock::context();
        let task = tokio::spawn({
            let ctx = ctx.clone();
            let cj = cj.clone();
            async move { reconcile_job(&cj, &ctx).await }
        });

        let (method, uri, _, send) = mock::next_request(&mut api).await;
        assert_eq!(
            (method, uri.as_str()),
            (Method::GET, "/api/v1/namespaces/ns/secrets/creds")
        );
        mock::respond(
            send,
            200,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "creds", "namespace": "ns", "resourceVersion": "7"},
                   "data": {"accessKey": "c2ltLWFr", "secretKey": "c2ltLXNr"}}),
        );
        let (method, uri, body, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::PATCH);
        assert!(uri.contains("/cloudjobs/a/status"), "{uri}");
        assert_eq!(body["status"]["phase"], "Running", "{body}");
        assert_eq!(body["status"]["jobStatus"], "RUNNING");
        let mut written = cj.clone();
        written.status = serde_json::from_value(body["status"].clone()).expect("status");
        mock::respond(send, 200, serde_json::to_value(&written).expect("json"));
        let (_, uri, body, send) = mock::next_request(&mut api).await;
        assert!(uri.contains("/events"), "{uri}");
        assert_eq!(body["reason"], "Started");
        mock::respond(send, 201, body);

        let next = task
            .await
            .expect("task")
            .expect("reconciled")
            .expect("a requeue");
        // A job that has just started is polled again at the shortest interval, give or take the jitter.
        let min = crate::poll::DEFAULT_MIN_INTERVAL;
        assert!((min..=min.mul_f64(1.1)).contains(&next), "{next:?}");
        let stats = sim.job_stats(&cj.spec.job_id).expect("stats");
        assert_eq!(stats.total_requests, 1, "one signed GET per reconcile");
        assert_eq!(stats.by_http_status.get(&200), Some(&1));
    }

    #[tokio::test]
    async fn a_finished_cloudjob_costs_no_request_until_its_bookkeeping_is_due_then_is_read_whole()
    {
        let mut done = cloudjob("a");
        done.metadata.generation = Some(1);
        done.status = Some(crate::crd::CloudJobStatus {
            phase: Some(crate::crd::Phase::Succeeded),
            observed_generation: Some(1),
            job_status: Some("SUCCESS".into()),
            progress: Some(100),
            ..Default::default()
        });
        let (ctx, mut api) = mock::context();
        let cached = |cj: &CloudJob| Arc::new(CachedCloudJob::of(DeserializeGuard(Ok(cj.clone()))));

        // Settled: answered from the cache alone (the mock would hang on any request).
        let settled = reconcile(cached(&done), ctx.clone())
            .await
            .expect("reconciled");
        assert_eq!(settled, Action::await_change());

        // Its spec edited: the cache keeps only a summary, so the whole object is read, then the
        // bookkeeping written from it, the rest of the status (jobStatus, progress) as it was.
        let mut edited = done.clone();
        edited.metadata.generation = Some(2);
        let task = tokio::spawn(reconcile(cached(&edited), ctx.clone()));
        let (method, uri, _, send) = mock::next_request(&mut api).await;
        assert_eq!(
            (method, uri.as_str()),
            (
                Method::GET,
                "/apis/cloudjob.io/v1alpha1/namespaces/ns/cloudjobs/a"
            )
        );
        mock::respond(send, 200, serde_json::to_value(&edited).expect("json"));
        let (method, uri, body, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::PATCH);
        assert!(uri.contains("/cloudjobs/a/status"), "{uri}");
        assert_eq!(body["status"]["observedGeneration"], 2, "{body}");
        assert_eq!(body["status"]["jobStatus"], "SUCCESS", "{body}");
        assert_eq!(body["status"]["progress"], 100, "{body}");
        mock::respond(send, 200, serde_json::to_value(&edited).expect("json"));
        let after = task.await.expect("task").expect("reconciled");
        assert_eq!(after, Action::await_change());
    }

    /// Answers the Secret read of a reconcile with the simulator's credentials.
    async fn serve_secret(api: &mut mock::ApiHandle) {
        let (method, uri, _, send) = mock::next_request(api).await;
        assert_eq!(
            (method, uri.as_str()),
            (Method::GET, "/api/v1/namespaces/ns/secrets/creds")
        );
        mock::respond(
            send,
            200,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "creds", "namespace": "ns", "resourceVersion": "7"},
                   "data": {"accessKey": "c2ltLWFr", "secretKey": "c2ltLXNr"}}),
        );
    }

    #[tokio::test]
    async fn a_reconcile_from_a_stale_cache_announces_nothing_again() {
        let (sim, mut stale) = running_job().await;
        stale.metadata.uid = Some("uid-1".into());
        let (ctx, mut api) = mock::context();
        let reconcile_stale = || {
            let ctx = ctx.clone();
            let cj = stale.clone();
            tokio::spawn(async move {
                reconcile(Arc::new(CachedCloudJob::of(DeserializeGuard(Ok(cj)))), ctx).await
            })
        };

        let first = reconcile_stale();
        serve_secret(&mut api).await;
        let (method, _, body, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::PATCH);
        let mut written = stale.clone();
        written.status = serde_json::from_value(body["status"].clone()).expect("status");
        mock::respond(send, 200, serde_json::to_value(&written).expect("json"));
        let (_, _, body, send) = mock::next_request(&mut api).await;
        assert_eq!(body["reason"], "Started");
        mock::respond(send, 201, body);
        first.await.expect("task").expect("reconciled");

        // The watch has not delivered the write yet (an API server restart, a watch gap): the cache still
        // shows the CloudJob without status. Nothing may be written or announced again.
        // The credentials are cached now: the second reconcile reads no Secret.
        let second = reconcile_stale();
        tokio::select! {
            done = second => done.expect("task").expect("reconciled"),
            request = api.next_request() => panic!(
                "no second status write, no second Started event: {:?}",
                request.map(|(r, _)| (r.method().clone(), r.uri().clone()))
            ),
        };
        assert_eq!(
            sim.job_stats(&stale.spec.job_id)
                .expect("stats")
                .total_requests,
            2
        );
    }

    #[tokio::test]
    async fn an_undecodable_cloudjob_is_announced_and_left_alone() {
        let (ctx, mut api) = mock::context();
        let invalid = DeserializeGuard::<CloudJob>(Err(InvalidObject {
            error: "status.progress: invalid value: 3000000000, expected i32".into(),
            metadata: ObjectMeta {
                name: Some("bad".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
        }));
        let task = tokio::spawn({
            let ctx = ctx.clone();
            async move { reconcile(Arc::new(CachedCloudJob::of(invalid)), ctx).await }
        });
        let (method, uri, body, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::POST);
        assert!(uri.contains("/namespaces/ns/events"), "{uri}");
        assert_eq!(
            (body["type"].as_str(), body["reason"].as_str()),
            (Some("Warning"), Some("InvalidObject"))
        );
        assert!(
            body["note"]
                .as_str()
                .is_some_and(|n| n.contains("3000000000")),
            "{body}"
        );
        mock::respond(send, 201, body);
        assert_eq!(
            task.await.expect("task").expect("no error"),
            Action::await_change()
        );
        drop(ctx);
        assert!(
            mock::no_more_requests(&mut api).await,
            "no status write for an object that cannot be read"
        );
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn failed_polls_back_off_until_one_succeeds_and_retry_after_wins() {
        let (ctx, _api) = mock::context();
        let cj = cloudjob("a");
        let retry = Next::Retry {
            after: None,
            at_most: None,
        };
        let first = next_delay(&cj, retry, &ctx).expect("requeue");
        let second = next_delay(&cj, retry, &ctx).expect("requeue");
        assert!((2 * SECOND..4 * SECOND).contains(&first), "{first:?}");
        assert!(second >= 4 * SECOND, "the back-off grows: {second:?}");
        let throttled = Next::Retry {
            after: Some(7 * SECOND),
            at_most: None,
        };
        assert_eq!(next_delay(&cj, throttled, &ctx), Some(7 * SECOND));
        let near_deadline = Next::Retry {
            after: Some(7 * SECOND),
            at_most: Some(3 * SECOND),
        };
        assert_eq!(next_delay(&cj, near_deadline, &ctx), Some(3 * SECOND));
        assert_eq!(
            next_delay(&cj, Next::Poll(5 * SECOND), &ctx),
            Some(5 * SECOND)
        );
        let after_success = next_delay(&cj, retry, &ctx).expect("requeue");
        assert!(
            after_success < 4 * SECOND,
            "a successful poll starts the back-off over: {after_success:?}"
        );
        assert_eq!(next_delay(&cj, Next::AwaitChange, &ctx), None);
        assert_eq!(
            ctx.shared.backoffs.len(),
            0,
            "a finished job keeps no back-off"
        );
    }

    fn key(name: &str) -> ObjectRef<CachedCloudJob> {
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
    fn a_resync_keeps_only_the_back_offs_of_cloudjobs_still_there() {
        let backoffs = Backoffs::new(Duration::from_secs(2), Duration::from_secs(300));
        for name in ["gone", "kept"] {
            backoffs.next(&key(name));
            backoffs.next(&key(name));
        }
        backoffs.retain([key("kept")]);
        assert_eq!(backoffs.len(), 1);
        assert!(
            backoffs.next(&key("kept")) >= Duration::from_secs(8),
            "the one still there keeps its count"
        );
        assert!(
            backoffs.next(&key("gone")) < Duration::from_secs(4),
            "the one gone starts over"
        );
    }

    #[test]
    fn backoff_never_exceeds_its_maximum() {
        let backoffs = Backoffs::new(Duration::from_secs(2), Duration::from_secs(10));
        // Past the count where counting stops, too.
        for _ in 0..2 * FAILURES_COUNTED {
            let delay = backoffs.next(&key("a"));
            // Jitter adds up to one delay on top of the maximum.
            assert!(delay <= Duration::from_secs(20), "{delay:?}");
        }
        assert!(backoffs.next(&key("a")) >= Duration::from_secs(10));
    }
}

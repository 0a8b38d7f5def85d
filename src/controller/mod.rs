//! The controller: watches CloudJobs (and the Secrets they name) and reconciles each one as
//! observe (I/O, `observe`) → plan (pure, `crate::plan`) → apply (I/O, `apply`), in `reconcile`.
//!
//! This module is the watch side: one kube-runtime `Controller` per watched namespace (or one for all),
//! the streams that feed it, and the state the reconciles share.

mod apply;
mod cache;
mod reconcile;

use reconcile::observe;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self},
        events::Reporter,
        reflector::{self, ObjectRef, Store},
        utils::ResetTimerBackoff,
        watcher,
    },
};
use tracing::{debug, info, warn};

use crate::{
    cloud::{
        client::CloudClient,
        rate::{InFlight, MAX_IN_FLIGHT_PER_ENDPOINT, RateLimiter},
    },
    config::Config,
    crd::Phase,
    credentials::CredentialCache,
    durations::{self, DurationModel, JobTypeKey},
    metrics::Metrics,
    plan::Rules,
};

pub use apply::FIELD_MANAGER;
use apply::LastWritten;
use reconcile::Backoffs;

pub use cache::{CachedCloudJob, DecodedCloudJob};

/// State shared by the controllers of all watched namespaces.
pub struct Shared {
    pub client: Client,
    pub cloud: CloudClient,
    /// Who publishes the events. Events come from the plan, one per transition of the status (a problem
    /// retried again and again changes no status and announces nothing again), so kube-runtime's
    /// Recorder cache, which folds repeats into a series, has nothing to fold: each event is published
    /// through a fresh Recorder instead of keeping every one for 6 minutes in a shared cache, which at
    /// 10,000 jobs was the bulk of the operator's memory (and in a failure storm, the Warnings, most of
    /// it).
    reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    rules: Rules,
    credentials: CredentialCache,
    backoffs: Backoffs,
    last_written: LastWritten,
    /// The per-endpoint rate limit, shared by all CloudJobs.
    rate: RateLimiter<String, ObjectRef<CachedCloudJob>>,
    /// Requests under way per endpoint, bounded.
    in_flight: InFlight<String>,
    /// How long each job type runs, learned from the CloudJobs seen finishing (the watch) and read by
    /// every plan.
    durations: Mutex<DurationModel>,
}

impl Shared {
    pub fn new(
        client: Client,
        cloud: CloudClient,
        metrics: Arc<Metrics>,
        config: Config,
    ) -> Shared {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(config.identity.clone()),
        };
        Shared {
            reporter,
            client,
            cloud,
            metrics,
            rules: Rules {
                poll_mode: config.poll_mode,
                request_cost: config.poll_request_cost,
                credentials_grace: config.credentials_grace_period,
            },
            backoffs: Backoffs::new(
                config.error_backoff_min,
                config.error_backoff_max.max(config.error_backoff_min),
            ),
            rate: RateLimiter::new(config.rate_limit, config.rate_limit_burst),
            in_flight: InFlight::new(MAX_IN_FLIGHT_PER_ENDPOINT),
            config,
            credentials: CredentialCache::default(),
            last_written: LastWritten::default(),
            durations: Mutex::default(),
        }
    }

    /// Counts a job of type `key` that ran `secs` seconds, and shows the type's new figures.
    fn learn(&self, key: JobTypeKey, secs: f64) {
        let mut model = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(evicted) = model.learn(key.clone(), secs) {
            self.metrics
                .forget_job_type(evicted.service.as_str(), &evicted.job_type);
        }
        if let Some(sketch) = model.sketch(&key) {
            self.metrics.job_type_learned(
                key.service.as_str(),
                &key.job_type,
                sketch.samples(),
                sketch.quantile(0.5),
            );
        }
    }

    /// Drops what is kept for a CloudJob that is gone.
    fn forget(&self, object: &ObjectRef<CachedCloudJob>) {
        self.backoffs.forget(object);
        self.last_written.forget(object);
        self.rate.forget(object);
    }

    /// Drops what is kept for every CloudJob for which `alive` is false, and every cached Secret (read
    /// again on the next poll that needs it).
    fn prune(&self, jobs: &Store<CachedCloudJob>) {
        let alive = |object: &ObjectRef<CachedCloudJob>| jobs.get(object).is_some();
        self.backoffs.retain(
            jobs.state()
                .iter()
                .map(|cj| ObjectRef::from_obj(cj.as_ref())),
        );
        self.last_written.prune(|object| jobs.get(object));
        self.rate.retain(alive, std::time::Instant::now());
        self.credentials.clear();
    }
}

/// Something kept per CloudJob between reconciles (the status last written for it), by
/// object reference, and dropped when the CloudJob is deleted or a resync finds it gone, so that what is
/// kept never outgrows the cluster's CloudJobs. A poisoned lock (a panic while it was held) is treated as
/// empty: nothing kept here is worth stopping the operator for.
pub(crate) struct PerObject<V> {
    by_object: Mutex<HashMap<ObjectRef<CachedCloudJob>, V>>,
}

impl<V> Default for PerObject<V> {
    fn default() -> Self {
        Self {
            by_object: Mutex::default(),
        }
    }
}

impl<V> PerObject<V> {
    /// Runs `f` on the map; `None` if the lock is poisoned.
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut HashMap<ObjectRef<CachedCloudJob>, V>) -> R,
    ) -> Option<R> {
        self.by_object
            .lock()
            .ok()
            .map(|mut by_object| f(&mut by_object))
    }

    pub(crate) fn forget(&self, object: &ObjectRef<CachedCloudJob>) {
        self.with(|by_object| by_object.remove(object));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.with(|by_object| by_object.len()).unwrap_or_default()
    }
}

/// What a reconcile gets.
pub struct Context {
    shared: Arc<Shared>,
}

/// Runs one controller per watched namespace (or one for all namespaces) until a shutdown signal.
pub async fn run(shared: Arc<Shared>) {
    let scopes: Vec<Option<String>> = if shared.config.namespaces.is_empty() {
        vec![None]
    } else {
        shared.config.namespaces.iter().cloned().map(Some).collect()
    };
    let stores: Arc<Mutex<Vec<Store<CachedCloudJob>>>> = Arc::default();
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
    stores: Arc<Mutex<Vec<Store<CachedCloudJob>>>>,
) {
    let client = shared.client.clone();
    // Secrets are watched as metadata only: their resourceVersion says when cached credentials are stale.
    let (jobs, secrets): (Api<DecodedCloudJob>, Api<PartialObjectMeta<Secret>>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let mut job_watch = watcher::Config::default().page_size(500);
    if let Some(selector) = &shared.config.label_selector {
        job_watch = job_watch.labels(selector);
    }

    let (job_store, writer) = reflector::store();
    if let Ok(mut all) = stores.lock() {
        all.push(job_store.clone());
    }
    let mut cache = CacheWriter {
        shared: shared.clone(),
        cached: job_store.clone(),
        writer,
        listed: false,
        list_round: 0,
    };
    // Each event is learned from, cached (in the compact form) and, where it changed what steers
    // polling, passed on to trigger a reconcile.
    let job_stream = with_own_backoff(watcher(jobs, job_watch))
        .map_ok(move |event| cache.take(event))
        .try_filter_map(|changed| future::ready(Ok(changed)));

    // Only Secrets a CloudJob has read are cached (as parsed credentials); the watch only says when one
    // changed or went away, and which CloudJobs to reconcile when a Secret they wait for appears.
    let credentials = shared.credentials.clone();
    let secret_changes = with_own_backoff(watcher(secrets, watcher::Config::default()))
        .try_filter_map(move |event| {
            future::ready(Ok(match event {
                watcher::Event::Apply(secret) => {
                    credentials.observe(
                        &secret.namespace().unwrap_or_default(),
                        &secret.name_any(),
                        &secret.resource_version().unwrap_or_default(),
                    );
                    Some(secret)
                }
                // A relist after a watch gap: only a cached Secret that changed meanwhile is news.
                watcher::Event::InitApply(secret) => credentials
                    .observe(
                        &secret.namespace().unwrap_or_default(),
                        &secret.name_any(),
                        &secret.resource_version().unwrap_or_default(),
                    )
                    .then_some(secret),
                watcher::Event::Delete(secret) => {
                    credentials.remove(&secret.namespace().unwrap_or_default(), &secret.name_any());
                    Some(secret)
                }
                watcher::Event::Init | watcher::Event::InitDone => None,
            }))
        });

    let referrers = job_store.clone();
    let resync = resync_ticks(shared.clone(), job_store.clone());
    let context = Arc::new(Context {
        shared: shared.clone(),
    });
    let scope = namespace.clone().unwrap_or_else(|| "*".into());
    info!(namespace = %scope, "watching CloudJobs");
    Controller::for_stream(job_stream, job_store)
        .watches_stream(secret_changes, move |secret: PartialObjectMeta<Secret>| {
            cloudjobs_using(&referrers, &secret)
        })
        .reconcile_all_on(resync)
        .with_config(controller::Config::default().concurrency(shared.config.concurrency))
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, context)
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

/// The longest wait between two attempts to re-establish a broken watch. client-go's (and kube's default)
/// 30 s is kind to an API server with thousands of clients; this operator has two watches (one attempt a
/// second costs an API server nothing), and a CloudJob created right after an API server restart must not
/// wait half a minute to be seen. (The jitter adds up to as much again.)
const WATCH_RETRY_MAX: Duration = Duration::from_secs(1);

/// A watch stream with a back-off of its own (so that one failing watch does not slow the others down),
/// in which an expired resource version (HTTP 410 Gone) is the relist the watcher does anyway, not an
/// error to back off from. The back-off is kube's default (0.8 s doubling, with jitter, reset after two
/// quiet minutes) capped at [`WATCH_RETRY_MAX`].
fn with_own_backoff<K: Send>(
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send {
    let retries = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(800))
        .with_max_delay(WATCH_RETRY_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    let backoff = ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(retries),
        Duration::from_secs(120),
    );
    stream
        .filter(|event| {
            let expired =
                matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410);
            future::ready(!expired)
        })
        .backoff(backoff)
}

/// Ticks that reconcile every CloudJob again, every `config.resync_interval`: a safety net for a trigger
/// that was lost (a watch gap, a dropped event). A finished or unchanged CloudJob costs no API call. Each
/// tick also drops what is kept for CloudJobs that are gone without a delete event being seen.
fn resync_ticks(
    shared: Arc<Shared>,
    jobs: Store<CachedCloudJob>,
) -> impl futures::Stream<Item = ()> + Send {
    let period = shared.config.resync_interval;
    let first = tokio::time::Instant::now() + period;
    tokio_stream_interval(first, period).map(move |()| {
        shared.prune(&jobs);
    })
}

fn tokio_stream_interval(
    first: tokio::time::Instant,
    period: Duration,
) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(
        tokio::time::interval_at(first, period),
        |mut interval| async move {
            interval.tick().await;
            Some(((), interval))
        },
    )
}

/// The writing side of the CloudJob cache: takes the watch's events in, in the compact form.
///
/// The initial list fills the cache the way kube-runtime's reflector does (buffered, then swapped in,
/// which makes the cache ready). A relist (after a watch expiry) is applied in place instead: each
/// object listed replaces its old entry, and at the end the entries the relist did not list are deleted.
/// The reflector's own way would hold the old cache and the whole new list side by side until the list
/// is done, doubling the memory at the moment a large cluster relists.
struct CacheWriter {
    shared: Arc<Shared>,
    cached: Store<CachedCloudJob>,
    writer: reflector::store::Writer<CachedCloudJob>,
    /// Whether the initial list is done (the cache is ready).
    listed: bool,
    /// The number of the list under way or last done, stamped on every object cached. At the end of a
    /// relist the objects stamped with an earlier one were not listed again: they are gone. (It replaces a
    /// set of the relisted objects' references, one more copy of every name and namespace at the moment
    /// of the relist; README, Performance.)
    list_round: u32,
}

impl CacheWriter {
    /// Takes one watch event into the cache, and returns the CloudJob it should trigger a reconcile of:
    /// one seen for the first time, or whose spec, uid or polling annotations changed (not our own
    /// status writes; scheduled polls come from the requeue, not from watch events), unless it is
    /// finished and settled.
    fn take(&mut self, event: watcher::Event<DecodedCloudJob>) -> Option<CachedCloudJob> {
        match event {
            watcher::Event::Apply(decoded) => self.put(decoded, watcher::Event::Apply),
            watcher::Event::InitApply(decoded) if self.listed => {
                self.put(decoded, watcher::Event::Apply)
            }
            watcher::Event::InitApply(decoded) => self.put(decoded, watcher::Event::InitApply),
            watcher::Event::Delete(decoded) => {
                let gone = CachedCloudJob::of(decoded);
                self.delete(gone);
                None
            }
            watcher::Event::Init if self.listed => {
                self.list_round = self.list_round.wrapping_add(1);
                None
            }
            watcher::Event::Init => {
                self.writer.apply_watcher_event(&watcher::Event::Init);
                None
            }
            watcher::Event::InitDone if self.listed => {
                let round = self.list_round;
                for unseen in self
                    .cached
                    .state()
                    .into_iter()
                    .filter(|cj| cj.list_round() != round)
                {
                    self.delete(unseen.as_ref().clone());
                }
                self.shared.metrics.watch_listed();
                None
            }
            watcher::Event::InitDone => {
                self.writer.apply_watcher_event(&watcher::Event::InitDone);
                self.listed = true;
                self.shared.metrics.watch_listed();
                None
            }
        }
    }

    /// Caches a CloudJob that was listed, created or changed, as the reflector event `as_event` (the
    /// initial list's objects are buffered until it is done; everything else goes in at once).
    fn put(
        &mut self,
        decoded: DecodedCloudJob,
        as_event: fn(CachedCloudJob) -> watcher::Event<CachedCloudJob>,
    ) -> Option<CachedCloudJob> {
        let (mut after, changed) = self.compact(decoded);
        after.set_list_round(self.list_round);
        let trigger = changed.then(|| after.clone());
        self.writer.apply_watcher_event(&as_event(after));
        trigger
    }

    /// Drops a CloudJob that is gone, and what is kept for it: it is never reconciled again.
    fn delete(&mut self, gone: CachedCloudJob) {
        self.shared.forget(&ObjectRef::from_obj(&gone));
        self.writer
            .apply_watcher_event(&watcher::Event::Delete(gone));
    }

    /// The cached form of `decoded`, and whether it should trigger a reconcile.
    ///
    /// Before the cache takes it, a CloudJob seen finished for the first time (absent from the cache, as
    /// all are in the initial list, or unfinished there) teaches its type's duration, once. A relist
    /// finds it already finished in the cache, so it teaches nothing again, and triggers only where it
    /// changed meanwhile.
    fn compact(&self, decoded: DecodedCloudJob) -> (CachedCloudJob, bool) {
        let before = self.cached.get(&key_of(decoded.meta()));
        if let Ok(now) = &decoded.0 {
            let was_finished = before.as_ref().is_some_and(|b| b.is_finished());
            if let Some((key, secs)) = durations::newly_finished(was_finished, now) {
                self.shared.learn(key, secs);
            }
        }
        let after = CachedCloudJob::of(decoded);
        self.shared.last_written.caught_up(&after);
        // A settled finished CloudJob has nothing to reconcile, also when first seen: at start, the
        // bulk of a long-lived cluster's CloudJobs costs no reconcile at all.
        let changed = !after.is_settled()
            && before.is_none_or(|before| before.steering() != after.steering());
        (after, changed)
    }
}

/// The cache's key of the CloudJob with `meta`.
fn key_of(meta: &kube::api::ObjectMeta) -> ObjectRef<CachedCloudJob> {
    let name = meta.name.as_deref().unwrap_or_default();
    match &meta.namespace {
        Some(namespace) => ObjectRef::new(name).within(namespace),
        None => ObjectRef::new(name),
    }
}

/// The CloudJobs whose credentials are in `secret`.
fn cloudjobs_using(
    jobs: &Store<CachedCloudJob>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<CachedCloudJob>> {
    let (namespace, name) = (secret.namespace(), secret.name_any());
    jobs.state()
        .iter()
        .filter(|cj| cj.namespace() == namespace && cj.polls_with_secret() == Some(name.as_str()))
        .map(|cj| ObjectRef::from_obj(cj.as_ref()))
        .collect()
}

async fn report_phases(metrics: Arc<Metrics>, stores: Arc<Mutex<Vec<Store<CachedCloudJob>>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let mut counts: HashMap<Option<Phase>, i64> = HashMap::new();
        let snapshot: Vec<Store<CachedCloudJob>> =
            stores.lock().map(|s| s.clone()).unwrap_or_default();
        for store in snapshot {
            for cj in store.state() {
                *counts.entry(cj.phase()).or_default() += 1;
            }
        }
        metrics.set_jobs_by_phase(&counts.into_iter().collect::<Vec<_>>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crd::{CloudJob, CloudJobStatus},
        test_support::cloudjob,
    };
    use kube::core::DeserializeGuard;

    fn decoded(name: &str, phase: Option<Phase>) -> DecodedCloudJob {
        let mut cj: CloudJob = cloudjob(name);
        cj.metadata.generation = Some(1);
        cj.status = phase.map(|phase| CloudJobStatus {
            phase: Some(phase),
            observed_generation: Some(1),
            ..Default::default()
        });
        DeserializeGuard(Ok(cj))
    }

    fn names(triggered: Vec<Option<CachedCloudJob>>) -> Vec<String> {
        triggered
            .into_iter()
            .flatten()
            .map(|cj| cj.name_any())
            .collect()
    }

    #[tokio::test]
    async fn a_relist_updates_the_cache_in_place_and_triggers_only_what_changed() {
        let (ctx, _api) = mock::context();
        let (store, writer) = reflector::store();
        let mut cache = CacheWriter {
            shared: ctx.shared.clone(),
            cached: store.clone(),
            writer,
            listed: false,
            list_round: 0,
        };
        let initial = [
            watcher::Event::Init,
            watcher::Event::InitApply(decoded("running", Some(Phase::Running))),
            watcher::Event::InitApply(decoded("new", None)),
            watcher::Event::InitApply(decoded("done", Some(Phase::Succeeded))),
            watcher::Event::InitDone,
        ];
        let triggered = names(initial.into_iter().map(|e| cache.take(e)).collect());
        assert_eq!(
            triggered,
            ["running", "new"],
            "a settled finished CloudJob is not reconciled"
        );
        assert_eq!(store.state().len(), 3);

        // The relist after a watch expiry: "done" was deleted meanwhile, "new" started running, and
        // "running" is as it was.
        let mut sizes = Vec::new();
        let mut triggered = Vec::new();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(decoded("running", Some(Phase::Running))),
            watcher::Event::InitApply(decoded("new", Some(Phase::Running))),
            watcher::Event::InitDone,
        ] {
            triggered.push(cache.take(event));
            let new = store.get(&ObjectRef::new("new").within("ns"));
            sizes.push((store.state().len(), new.and_then(|cj| cj.phase())));
        }
        assert_eq!(
            names(triggered),
            Vec::<String>::new(),
            "no spec or annotation changed"
        );
        let running = Some(Phase::Running);
        assert_eq!(
            sizes,
            [(3, None), (3, None), (3, running), (2, running)],
            "updated in place as listed; the unlisted one is gone at the end"
        );
        let metrics = ctx.shared.metrics.encode().expect("metrics");
        assert!(
            metrics.contains("cloudjob_watch_lists_total 2"),
            "{metrics}"
        );
    }
}

/// A controller context around a mocked Kubernetes API, for the fast tests of `apply` and `reconcile`.
#[cfg(test)]
pub(crate) mod mock {
    use super::*;
    use crate::cloud::client::ClientSettings;
    use http::{Request, Response};
    use kube::client::Body;

    pub type ApiHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    /// A context whose Kubernetes client talks to the returned handle.
    pub fn context() -> (Arc<Context>, ApiHandle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let cloud = CloudClient::new(&ClientSettings::default()).expect("http client");
        // The simulator is on 127.0.0.1, outside the default endpoint allow-list.
        let config = Config {
            allowed_endpoints: crate::cloud::endpoint::AllowList::parse("127.0.0.1")
                .expect("allow-list"),
            ..Config::default()
        };
        let shared = Shared::new(client, cloud, Arc::new(Metrics::new()), config);
        let context = Context {
            shared: Arc::new(shared),
        };
        (Arc::new(context), handle)
    }

    /// The next request the code under test sends, with its body as JSON (`Null` when empty).
    pub async fn next_request(
        handle: &mut ApiHandle,
    ) -> (
        http::Method,
        String,
        serde_json::Value,
        tower_test::mock::SendResponse<Response<Body>>,
    ) {
        // A request that never comes fails the test instead of hanging it.
        let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .expect("a request to the API server within 10 s")
            .expect("a request to the API server");
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.method, parts.uri.to_string(), json, send)
    }

    /// Whether the code under test sent nothing more before every client was dropped (a leaked client
    /// fails the test after 10 s instead of hanging it).
    pub async fn no_more_requests(handle: &mut ApiHandle) -> bool {
        tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .expect("all API clients dropped within 10 s")
            .is_none()
    }

    /// Answers with `status` and a JSON body.
    pub fn respond(
        send: tower_test::mock::SendResponse<Response<Body>>,
        status: u16,
        body: serde_json::Value,
    ) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).expect("json")))
            .expect("response");
        send.send_response(response);
    }
}

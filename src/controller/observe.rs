//! Observe: the I/O that learns what the plan needs. Reads the credentials (through the cache), builds the
//! endpoint and makes one signed GET of the job. Whatever stops it that the user or the cloud must fix is
//! folded into the [`Observation`]; only failures of the operator's own Kubernetes calls are errors.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, ResourceExt};
use tracing::info;

use super::{CachedCloudJob, Context, reconcile::object_ref};
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

/// One poll of the job, or the problem that prevented it.
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

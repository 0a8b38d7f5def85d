//! Observe: the I/O that learns what the plan needs. Reads the credentials (through the cache), builds the
//! endpoint and makes one signed GET of the job. Whatever stops it that the user or the cloud must fix is
//! folded into the [`Observation`]; only failures of the operator's own Kubernetes calls are errors.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use tracing::info;

use super::Context;
use crate::{
    cloud::{
        client::{CloudError, JobRequest},
        endpoint,
        model::JobObservation,
    },
    crd::CloudJob,
    credentials,
    error::Error,
    plan::{Observation, Problem},
};

/// Longest wait for one Kubernetes API call made by a reconcile.
pub const API_TIMEOUT: Duration = Duration::from_secs(15);

/// One poll of the job, or the problem that prevented it.
pub async fn observe(cj: &CloudJob, ctx: &Context) -> Result<Observation, Error> {
    match poll(cj, ctx).await {
        Ok(job) => Ok(Observation::Job(Box::new(job))),
        Err(Stop::Problem(problem)) => Ok(Observation::Problem(problem)),
        Err(Stop::Error(e)) => Err(e),
    }
}

/// Why a poll stopped short: a problem to report, or the operator's own failure to retry.
enum Stop {
    Problem(Problem),
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
    let request = JobRequest {
        base_url: &base,
        project_id: &cj.spec.project_id,
        job_id: &cj.spec.job_id,
    };
    let result = shared.cloud.get_job(request, &credentials).await;
    shared.metrics.cloud_request(
        cj.spec.service.as_str(),
        result
            .as_ref()
            .map_or_else(CloudError::category, |_| "success"),
    );
    result.map_err(|e| {
        info!(error = %e, "poll failed");
        Stop::Problem(Problem::Cloud(e))
    })
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

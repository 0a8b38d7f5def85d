//! Apply: carries a plan out. Writes the status (server-side apply, one field manager) only when it
//! differs from the one the CloudJob has, then publishes the plan's events.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::error_boundary::InvalidObject,
    runtime::events::{Event, EventType, Recorder},
};
use tracing::warn;

use super::{Context, Shared, WatchedCloudJob, observe::API_TIMEOUT};
use crate::{
    crd::{CloudJob, CloudJobStatus},
    error::Error,
    events::{EventReason, EventSpec},
    plan::Plan,
    text,
};

/// The field manager of every status write (server-side apply), and the events' reporting controller.
pub const FIELD_MANAGER: &str = "cloudjob-operator";
/// Longest note Kubernetes accepts on an event.
const MAX_EVENT_NOTE: usize = 1000;

/// Writes the planned status when it changed, then publishes the planned events.
pub async fn apply(cj: &CloudJob, plan: &Plan, ctx: &Context) -> Result<(), Error> {
    if cj.status.as_ref() == Some(&plan.status) {
        return Ok(());
    }
    patch_status(cj, &plan.status, &ctx.shared).await?;
    for event in &plan.events {
        publish(cj, event, &ctx.shared).await;
    }
    Ok(())
}

/// Tells about a CloudJob that cannot be decoded, in the log and (best effort) in a Warning event: it is
/// skipped, and every other CloudJob goes on.
pub async fn report_invalid(object: &WatchedCloudJob, invalid: &InvalidObject, ctx: &Context) {
    warn!(
        namespace = object.namespace().unwrap_or_default(),
        name = %object.name_any(),
        error = %text::prefix(&invalid.error, MAX_EVENT_NOTE),
        "skipping a CloudJob that cannot be decoded"
    );
    let event = EventSpec {
        warning: true,
        reason: EventReason::InvalidObject,
        action: "Decode",
        note: format!(
            "the operator cannot read this CloudJob and skips it ({}); fix or recreate it",
            invalid.error
        ),
    };
    publish_to(&object.object_ref(&()), &event, &ctx.shared).await;
}

async fn patch_status(
    cj: &CloudJob,
    status: &CloudJobStatus,
    shared: &Shared,
) -> Result<(), Error> {
    let namespace = cj.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<CloudJob> = Api::namespaced(shared.client.clone(), &namespace);
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
async fn publish(cj: &CloudJob, event: &EventSpec, shared: &Shared) {
    publish_to(&cj.object_ref(&()), event, shared).await;
}

async fn publish_to(
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    spec: &EventSpec,
    shared: &Shared,
) {
    let reason = spec.reason.as_str();
    let event = Event {
        type_: if spec.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_string(),
        note: Some(text::prefix(&spec.note, MAX_EVENT_NOTE).to_string()),
        action: spec.action.to_string(),
        secondary: None,
    };
    let published = if spec.warning {
        shared.warnings.publish(&event, regarding).await
    } else {
        Recorder::new(shared.client.clone(), shared.reporter.clone())
            .publish(&event, regarding)
            .await
    };
    match published {
        Ok(()) => shared.metrics.event_published(spec.warning, reason),
        Err(e) => warn!(reason, error = %e, "cannot publish event"),
    }
}

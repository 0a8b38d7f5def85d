//! Apply: carries a plan out. Writes the status (server-side apply, one field manager) only when it
//! differs from the one the CloudJob has, then publishes the plan's events.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::ObjectMeta};

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        events::{Event, EventType, Recorder},
        reflector::ObjectRef,
    },
};
use tracing::{debug, warn};

use super::{CachedCloudJob, Context, PerObject, Shared, observe::API_TIMEOUT};
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
    // No status and the default status say the same: nothing.
    if cj.status.clone().unwrap_or_default() == plan.status {
        return Ok(());
    }
    // Before the status: a failed export is retried with the status write, which it would not be once
    // the status no longer changes.
    if plan.export_outputs {
        export_outputs(cj, &plan.status, &ctx.shared).await?;
    }
    if patch_status(cj, &plan.status, &ctx.shared).await? == StatusWrite::Gone {
        // Deleted while it was being polled: nothing to write or announce, and nothing to warn about.
        debug!(name = %cj.name_any(), "the CloudJob was deleted before its status was written");
        return Ok(());
    }
    ctx.shared.last_written.remember(cj, &plan.status);
    for event in &plan.events {
        publish(cj, event, &ctx.shared).await;
    }
    Ok(())
}

/// What became of a status write.
#[derive(Debug, PartialEq, Eq)]
enum StatusWrite {
    Stored,
    /// The CloudJob no longer exists (HTTP 404).
    Gone,
}

/// The status this operator last wrote for each CloudJob (by uid, so that a CloudJob deleted and created
/// again under the same name starts afresh), until the watch shows it or the CloudJob is gone.
#[derive(Default)]
pub struct LastWritten(PerObject<Written>);

struct Written {
    uid: Option<String>,
    status: CloudJobStatus,
}

impl LastWritten {
    fn remember(&self, cj: &CloudJob, status: &CloudJobStatus) {
        let written = Written {
            uid: cj.uid(),
            status: status.clone(),
        };
        self.0.with(|by_object| {
            by_object.insert(super::reconcile::object_ref(cj), written);
        });
    }

    /// The status last written for `cached`, when the cache does not show it yet (after a watch gap the
    /// cache can hold a status older than the one this operator last wrote, and planning from it would
    /// announce the same transitions again). Once the cache has caught up the entry is dropped: the cache
    /// is the truth again.
    pub fn ahead_of_cache(
        &self,
        cached: &CachedCloudJob,
        object: &ObjectRef<CachedCloudJob>,
    ) -> Option<CloudJobStatus> {
        self.0.with(|by_object| {
            let written = by_object.get(object)?;
            if written.uid != cached.uid() || cached.shows(&written.status) {
                by_object.remove(object);
                return None;
            }
            Some(written.status.clone())
        })?
    }

    /// Drops the entry of `cached` once the cache shows what was written (the watch brought the write
    /// back), so that a CloudJob this operator finished does not keep its whole status here.
    pub fn caught_up(&self, cached: &CachedCloudJob) {
        let object = ObjectRef::from_obj(cached);
        self.0.with(|by_object| {
            if by_object
                .get(&object)
                .is_some_and(|w| w.uid == cached.uid() && cached.shows(&w.status))
            {
                by_object.remove(&object);
            }
        });
    }

    pub fn forget(&self, object: &ObjectRef<CachedCloudJob>) {
        self.0.forget(object);
    }

    /// Keeps only the entries of CloudJobs still cached (by `cached`) that the cache does not show yet:
    /// a write whose watch event came before it was remembered is dropped here.
    pub fn prune(
        &self,
        cached: impl Fn(&ObjectRef<CachedCloudJob>) -> Option<Arc<CachedCloudJob>>,
    ) {
        self.0.with(|by_object| {
            by_object.retain(|object, written| {
                cached(object)
                    .is_some_and(|c| !(c.uid() == written.uid && c.shows(&written.status)))
            })
        });
    }
}

/// Tells about a CloudJob that cannot be decoded, in the log and (best effort) in a Warning event: it is
/// skipped, and every other CloudJob goes on.
pub async fn report_invalid(object: &CachedCloudJob, error: &str, ctx: &Context) {
    warn!(
        namespace = object.namespace().unwrap_or_default(),
        name = %object.name_any(),
        error = %text::prefix(error, MAX_EVENT_NOTE),
        "skipping a CloudJob that cannot be decoded"
    );
    let event = EventSpec {
        warning: true,
        reason: EventReason::InvalidObject,
        action: "Decode",
        note: format!(
            "the operator cannot read this CloudJob and skips it ({error}); fix or recreate it"
        ),
    };
    publish_to(&object.object_ref(&()), &event, &ctx.shared).await;
}

async fn patch_status(
    cj: &CloudJob,
    status: &CloudJobStatus,
    shared: &Shared,
) -> Result<StatusWrite, Error> {
    let namespace = cj.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<CloudJob> = Api::namespaced(shared.client.clone(), &namespace);
    let patch = serde_json::json!({
        "apiVersion": CloudJob::api_version(&()),
        "kind": CloudJob::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = tokio::time::timeout(
        API_TIMEOUT,
        api.patch_status(&cj.name_any(), &params, &Patch::Apply(&patch)),
    )
    .await
    .map_err(|_| Error::Timeout(API_TIMEOUT))?;
    match written {
        Ok(_) => {
            shared.metrics.status_patched();
            Ok(StatusWrite::Stored)
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(StatusWrite::Gone),
        Err(e) => Err(Error::StatusPatch(e)),
    }
}

/// Keeps `spec.outputsConfigMap` (checked free or ours by `observe`) filled with the phase and produced ids,
/// owned by the CloudJob so that it goes with it.
async fn export_outputs(
    cj: &CloudJob,
    status: &CloudJobStatus,
    shared: &Shared,
) -> Result<(), Error> {
    let Some(name) = &cj.spec.outputs_config_map else {
        return Ok(());
    };
    let (Some(namespace), Some(owner)) = (cj.namespace(), cj.controller_owner_ref(&())) else {
        return Err(Error::MissingNamespace);
    };
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(outputs_data(cj, status)),
        ..ConfigMap::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(shared.client.clone(), &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    tokio::time::timeout(
        API_TIMEOUT,
        api.patch(name, &params, &Patch::Apply(&config_map)),
    )
    .await
    .map_err(|_| Error::Timeout(API_TIMEOUT))?
    .map_err(Error::ConfigMap)?;
    Ok(())
}

/// The keys of the outputs ConfigMap: identifiers Flux `${var}` substitution and `envFrom` accept.
fn outputs_data(cj: &CloudJob, status: &CloudJobStatus) -> BTreeMap<String, String> {
    let outputs = status.outputs.clone().unwrap_or_default();
    let resource_ids = outputs
        .resources
        .iter()
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    [
        ("jobId", Some(cj.spec.job_id.clone())),
        ("phase", status.phase.map(|p| p.as_str().to_string())),
        ("primaryId", outputs.primary_id),
        ("imageId", outputs.image_id),
        ("imageName", outputs.image_name),
        ("volumeId", outputs.volume_id),
        ("serverId", outputs.server_id),
        (
            "resourceIds",
            Some(resource_ids).filter(|ids| !ids.is_empty()),
        ),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_string(), value?)))
    .collect()
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
    let published = Recorder::new(shared.client.clone(), shared.reporter.clone())
        .publish(&event, regarding)
        .await;
    match published {
        Ok(()) => shared.metrics.event_published(spec.warning, reason),
        Err(e) => warn!(reason, error = %e, "cannot publish event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cloud::model::JobObservation,
        controller::mock,
        plan::{self, Observation, Rules},
        poll::PollMode,
        test_support::{cloudjob, no_history},
    };
    use http::Method;
    use serde_json::json;

    #[test]
    fn a_written_status_is_kept_only_until_the_cache_shows_it() {
        let last_written = LastWritten::default();
        let mut cj = cloudjob("a");
        cj.metadata.uid = Some("uid-1".into());
        let finished = CloudJobStatus {
            phase: Some(crate::crd::Phase::Succeeded),
            observed_generation: Some(1),
            job_status: Some("SUCCESS".into()),
            ..Default::default()
        };
        last_written.remember(&cj, &finished);
        let cached =
            |cj: &CloudJob| CachedCloudJob::of(kube::core::DeserializeGuard(Ok(cj.clone())));

        let behind = cached(&cj);
        last_written.caught_up(&behind);
        assert_eq!(
            last_written.0.len(),
            1,
            "the cache does not show the write yet"
        );
        assert_eq!(
            last_written.ahead_of_cache(&behind, &ObjectRef::from_obj(&behind)),
            Some(finished.clone())
        );

        cj.status = Some(finished);
        last_written.caught_up(&cached(&cj));
        assert_eq!(last_written.0.len(), 0, "shown by the cache, dropped");
    }

    /// The plan after seeing `cj`'s job running with a task: status Running, events Started and TaskChanged.
    fn running(cj: &CloudJob) -> Plan {
        let job = JobObservation::from_value(
            &json!({"status": "RUNNING", "entities": {"current_task": "CopyData"}}),
        )
        .expect("job");
        let rules = Rules {
            poll_mode: PollMode::Adaptive,
            request_cost: crate::poll::DEFAULT_REQUEST_COST,
            credentials_grace: std::time::Duration::ZERO,
        };
        let now = "2026-01-01T00:00:10Z".parse().expect("ts");
        let job = Observation::Job(Box::new(job));
        plan::plan(cj, &job, now, &rules, no_history(), 1.0)
    }

    fn with_status(mut cj: CloudJob, status: &CloudJobStatus) -> CloudJob {
        cj.status = Some(status.clone());
        cj
    }

    #[tokio::test]
    async fn an_unchanged_status_is_neither_written_nor_announced() {
        let (ctx, mut api) = mock::context();
        let cj = cloudjob("a");
        let cj = with_status(cj.clone(), &running(&cj).status);
        let again = running(&cj);
        assert!(again.events.is_empty());
        apply(&cj, &again, &ctx).await.expect("nothing to do");
        drop(ctx);
        assert!(
            mock::no_more_requests(&mut api).await,
            "no request reached the API server"
        );
    }

    #[tokio::test]
    async fn a_changed_status_is_patched_first_then_its_events_are_published_in_order() {
        let (ctx, mut api) = mock::context();
        let cj = cloudjob("a");
        let plan = running(&cj);
        let written = with_status(cj.clone(), &plan.status);
        let task = tokio::spawn({
            let ctx = ctx.clone();
            async move { apply(&cj, &plan, &ctx).await }
        });

        let (method, uri, body, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::PATCH);
        assert!(
            uri.starts_with("/apis/cloudjob.io/v1alpha1/namespaces/ns/cloudjobs/a/status?"),
            "{uri}"
        );
        assert!(uri.contains("fieldManager=cloudjob-operator") && uri.contains("force=true"));
        assert_eq!(body["status"]["phase"], "Running");
        assert_eq!(body["status"]["currentTask"], "CopyData");
        mock::respond(send, 200, serde_json::to_value(&written).expect("json"));

        for expected in ["Started", "TaskChanged"] {
            let (method, uri, body, send) = mock::next_request(&mut api).await;
            assert_eq!(method, Method::POST);
            assert!(
                uri.starts_with("/apis/events.k8s.io/v1/namespaces/ns/events"),
                "{uri}"
            );
            assert_eq!(body["reason"], expected);
            assert_eq!(body["type"], "Normal");
            assert_eq!(body["regarding"]["name"], "a");
            mock::respond(send, 201, body);
        }
        task.await.expect("apply task").expect("applied");
        drop(ctx);
        assert!(
            mock::no_more_requests(&mut api).await,
            "nothing after the events"
        );
    }

    #[tokio::test]
    async fn the_outputs_config_map_is_written_owned_by_the_cloudjob_before_the_status() {
        let (ctx, mut api) = mock::context();
        let mut cj = cloudjob("a");
        cj.metadata.uid = Some("uid-a".into());
        cj.spec.outputs_config_map = Some("image-ids".into());
        let job = JobObservation::from_value(
            &json!({"status": "SUCCESS", "entities": {"image_id": "img-1", "image_name": "web"}}),
        )
        .expect("job");
        let rules = Rules {
            poll_mode: PollMode::Adaptive,
            request_cost: crate::poll::DEFAULT_REQUEST_COST,
            credentials_grace: std::time::Duration::ZERO,
        };
        let now = "2026-01-01T00:00:10Z".parse().expect("ts");
        let job = Observation::Job(Box::new(job));
        let plan = plan::plan(&cj, &job, now, &rules, no_history(), 1.0);
        let task = tokio::spawn({
            let ctx = ctx.clone();
            let cj = cj.clone();
            async move { apply(&cj, &plan, &ctx).await }
        });

        let (method, uri, body, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::PATCH);
        assert!(
            uri.starts_with("/api/v1/namespaces/ns/configmaps/image-ids?"),
            "{uri}"
        );
        assert_eq!(
            body["data"],
            json!({"jobId": cj.spec.job_id, "phase": "Succeeded", "primaryId": "img-1",
                   "imageId": "img-1", "imageName": "web", "resourceIds": "img-1"})
        );
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"], &owner["controller"]),
            (&json!("CloudJob"), &json!("uid-a"), &json!(true))
        );
        mock::respond(send, 200, body);
        let (method, uri, _, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::PATCH);
        assert!(uri.contains("/cloudjobs/a/status"), "{uri}");
        mock::respond(send, 200, serde_json::to_value(&cj).expect("json"));
        let (_, uri, body, send) = mock::next_request(&mut api).await;
        assert!(uri.contains("/events"), "{uri}");
        mock::respond(send, 201, body);
        task.await.expect("apply task").expect("applied");
    }

    /// Applies a plan whose status write the API server answers with `code` and `message`; returns what
    /// `apply` returned and whether any request (an event) followed the write.
    async fn apply_with_status_write_answered(
        code: u16,
        reason: &str,
        message: &str,
    ) -> (Result<(), Error>, bool) {
        let (ctx, mut api) = mock::context();
        let cj = cloudjob("a");
        let plan = running(&cj);
        let task = tokio::spawn({
            let ctx = ctx.clone();
            async move { apply(&cj, &plan, &ctx).await }
        });
        let (method, _, _, send) = mock::next_request(&mut api).await;
        assert_eq!(method, Method::PATCH);
        mock::respond(
            send,
            code,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": message, "reason": reason, "code": code}),
        );
        let result = task.await.expect("apply task");
        drop(ctx);
        (result, !mock::no_more_requests(&mut api).await)
    }

    #[tokio::test]
    async fn a_cloudjob_deleted_while_polled_is_neither_an_error_nor_announced() {
        let (result, announced) = apply_with_status_write_answered(
            404,
            "NotFound",
            "cloudjobs.cloudjob.io \"a\" not found",
        )
        .await;
        assert!(
            result.is_ok(),
            "a deleted CloudJob is no failure: {result:?}"
        );
        assert!(!announced, "no event about a CloudJob that is gone");
    }

    #[tokio::test]
    async fn a_failed_status_write_is_an_error_and_announces_nothing() {
        let (result, announced) =
            apply_with_status_write_answered(500, "InternalError", "etcdserver: request timed out")
                .await;
        assert!(matches!(result, Err(Error::StatusPatch(_))), "{result:?}");
        assert!(!announced, "no event for a status that was not written");
    }
}

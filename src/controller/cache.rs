//! What the controller keeps of each CloudJob between watch events: [`CachedCloudJob`], the part of the
//! object its decisions read, not the object.
//!
//! A long-lived cluster holds mostly finished CloudJobs, and a finished CloudJob is never polled again:
//! its reconcile only follows a new generation or a reconcile request into `observedGeneration` and
//! `lastHandledReconcileAt` (bookkeeping). So a finished one is kept as those few fields; the
//! reconcile that finds bookkeeping due reads the whole object from the API server first. An unfinished
//! one keeps its spec and status, which the plan reads whole, as compact JSON. Every one keeps only the
//! metadata the controller reads (name, namespace, uid, generation, creation and deletion time, the
//! annotations that steer polling); the resourceVersion (status is written by server-side apply, which
//! needs none), labels, other annotations (kubectl's last-applied copy among them), owner references
//! and managedFields are dropped. A finished CloudJob that is settled is not even reconciled when it is
//! first seen (at start, in the initial list): there is nothing to do for it. Measured with
//! `cloudjob-bench --scale` (README, Performance).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, core::DeserializeGuard};
use serde::{Deserialize, Deserializer};

use crate::crd::{
    CloudJob, CloudJobSpec, CloudJobStatus, PAUSED_ANNOTATION, POLL_INTERVAL_ANNOTATION, Phase,
    RECONCILE_REQUESTED_ANNOTATION,
};

/// A CloudJob as the watch decodes it: the object, or the metadata and error of one that does not decode
/// (so that one bad object is skipped instead of failing the list of every CloudJob).
pub type DecodedCloudJob = DeserializeGuard<CloudJob>;

/// The annotations the controller reads; every other one is dropped from the cache.
const KEPT_ANNOTATIONS: [&str; 3] = [
    PAUSED_ANNOTATION,
    RECONCILE_REQUESTED_ANNOTATION,
    POLL_INTERVAL_ANNOTATION,
];

/// A CloudJob as the controller caches it (see the module's documentation).
#[derive(Clone, Debug)]
pub struct CachedCloudJob {
    metadata: ObjectMeta,
    kept: Kept,
    /// The list (initial list or relist) this copy was last cached in (the cache writer's count).
    list_round: u32,
}

#[derive(Clone, Debug)]
enum Kept {
    /// Not finished: spec and status as decoded.
    Unfinished(Box<Unfinished>),
    /// Finished: what its bookkeeping compares.
    Finished(Finished),
    /// Not decodable: why (the reconcile reports it).
    Invalid(Box<str>),
}

/// An unfinished CloudJob's spec and status as compact JSON, beside the two fields read without a
/// reconcile: the phase (the phase gauges, every 5 s) and the Secret's name (which CloudJobs a Secret
/// event wakes). The typed pair is many small allocations (a running job's conditions alone are
/// a dozen strings), the JSON one; decoding it again for a reconcile is cheap next to the request the
/// reconcile makes. Measured with 10,000 running CloudJobs: 3.73 → 2.87 KiB each (README, Performance).
#[derive(Clone, Debug)]
struct Unfinished {
    phase: Option<Phase>,
    secret: Box<str>,
    json: Box<[u8]>,
}

/// The spec and status as [`Unfinished`] stores them.
#[derive(serde::Serialize)]
struct Encoding<'a> {
    spec: &'a CloudJobSpec,
    status: Option<&'a CloudJobStatus>,
}

/// The spec and status read back from [`Unfinished`].
#[derive(Deserialize)]
struct Decoding {
    spec: CloudJobSpec,
    status: Option<CloudJobStatus>,
}

impl Unfinished {
    fn of(spec: &CloudJobSpec, status: Option<&CloudJobStatus>) -> Result<Unfinished, String> {
        let json = serde_json::to_vec(&Encoding { spec, status })
            .map_err(|e| format!("the operator cannot cache this CloudJob: {e}"))?;
        Ok(Unfinished {
            phase: status.and_then(|s| s.phase),
            secret: spec.credentials_secret_ref.name.as_str().into(),
            json: json.into_boxed_slice(),
        })
    }

    fn decode(&self) -> serde_json::Result<Decoding> {
        serde_json::from_slice(&self.json)
    }
}

/// What is kept of a finished CloudJob's status.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    phase: Phase,
    observed_generation: Option<i64>,
    last_handled_reconcile_at: Option<String>,
}

impl Finished {
    /// The summary of `status` when it is finished.
    pub fn of(status: &CloudJobStatus) -> Option<Finished> {
        let phase = status.phase.filter(|p| p.is_terminal())?;
        Some(Finished {
            phase,
            observed_generation: status.observed_generation,
            last_handled_reconcile_at: status.last_handled_reconcile_at.clone(),
        })
    }
}

/// What the reconcile of a cached CloudJob has to work with.
pub enum Cached<'a> {
    /// The whole CloudJob (with the cache's metadata): plan from it.
    Whole(Box<CloudJob>),
    /// A finished CloudJob whose status already follows its generation and reconcile request: nothing
    /// to do.
    Settled,
    /// A finished CloudJob whose bookkeeping is due (or, never expected, an unfinished one whose cached
    /// copy does not read back): read the object, then plan from it.
    ReadFirst,
    /// A CloudJob that cannot be decoded, and why.
    Invalid(&'a str),
}

impl CachedCloudJob {
    /// The cached form of what the watch decoded.
    pub fn of(decoded: DecodedCloudJob) -> CachedCloudJob {
        match decoded.0 {
            Ok(cj) => {
                let kept = match cj.status.as_ref().and_then(Finished::of) {
                    Some(finished) => Kept::Finished(finished),
                    None => match Unfinished::of(&cj.spec, cj.status.as_ref()) {
                        Ok(unfinished) => Kept::Unfinished(Box::new(unfinished)),
                        Err(error) => Kept::Invalid(error.into()),
                    },
                };
                CachedCloudJob {
                    metadata: trimmed(cj.metadata),
                    kept,
                    list_round: 0,
                }
            }
            Err(invalid) => CachedCloudJob {
                metadata: trimmed(invalid.metadata),
                kept: Kept::Invalid(invalid.error.into()),
                list_round: 0,
            },
        }
    }

    /// What a reconcile of this CloudJob works with.
    pub fn for_reconcile(&self) -> Cached<'_> {
        match &self.kept {
            Kept::Unfinished(unfinished) => match unfinished.decode() {
                Ok(Decoding { spec, status }) => Cached::Whole(Box::new(CloudJob {
                    metadata: self.metadata.clone(),
                    spec,
                    status,
                })),
                // The cache's own JSON that does not read back would be a bug; the API server's copy
                // serves as well.
                Err(_) => Cached::ReadFirst,
            },
            Kept::Finished(finished) if self.bookkeeping_due(finished) => Cached::ReadFirst,
            Kept::Finished(_) => Cached::Settled,
            Kept::Invalid(error) => Cached::Invalid(error),
        }
    }

    /// Whether a finished CloudJob's status lags its generation or its reconcile request (what
    /// `status::bookkeeping` would write).
    fn bookkeeping_due(&self, finished: &Finished) -> bool {
        let requested = self.annotation(RECONCILE_REQUESTED_ANNOTATION);
        finished.observed_generation != self.metadata.generation
            || (requested.is_some() && requested != finished.last_handled_reconcile_at.as_deref())
    }

    /// Whether `status`, as cached, is what this cache holds (the cache has caught up with a write).
    pub fn shows(&self, status: &CloudJobStatus) -> bool {
        match (&self.kept, Finished::of(status)) {
            (Kept::Finished(cached), Some(written)) => *cached == written,
            (Kept::Unfinished(unfinished), None) => unfinished
                .decode()
                .is_ok_and(|cached| cached.status.as_ref() == Some(status)),
            _ => false,
        }
    }

    /// Whether a reconcile would find nothing to do: finished, its bookkeeping not due.
    pub fn is_settled(&self) -> bool {
        matches!(&self.kept, Kept::Finished(finished) if !self.bookkeeping_due(finished))
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.kept, Kept::Finished(_))
    }

    pub(super) fn list_round(&self) -> u32 {
        self.list_round
    }

    pub(super) fn set_list_round(&mut self, round: u32) {
        self.list_round = round;
    }

    pub fn phase(&self) -> Option<Phase> {
        match &self.kept {
            Kept::Unfinished(unfinished) => unfinished.phase,
            Kept::Finished(finished) => Some(finished.phase),
            Kept::Invalid(_) => None,
        }
    }

    /// The credentials Secret's name of a CloudJob that may still poll.
    pub fn polls_with_secret(&self) -> Option<&str> {
        match &self.kept {
            Kept::Unfinished(unfinished) => Some(&unfinished.secret),
            _ => None,
        }
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// What steers polling, to tell a change of it from a status write: uid (a CloudJob deleted and
    /// created again), generation (the spec) and the polling annotations.
    pub fn steering(&self) -> (Option<&str>, Option<i64>, [Option<&str>; 3]) {
        (
            self.metadata.uid.as_deref(),
            self.metadata.generation,
            KEPT_ANNOTATIONS.map(|key| self.annotation(key)),
        )
    }
}

/// The metadata the controller reads, and nothing else.
fn trimmed(meta: ObjectMeta) -> ObjectMeta {
    let annotations = meta.annotations.map(|mut all| {
        all.retain(|key, _| KEPT_ANNOTATIONS.contains(&key.as_str()));
        all
    });
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        generation: meta.generation,
        creation_timestamp: meta.creation_timestamp,
        deletion_timestamp: meta.deletion_timestamp,
        annotations: annotations.filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    }
}

impl Resource for CachedCloudJob {
    type DynamicType = ();
    type Scope = <CloudJob as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        CloudJob::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        CloudJob::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        CloudJob::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        CloudJob::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Decoding straight into the cached form (kube-runtime's controller asks its object type to be
/// decodable; the watch itself decodes [`DecodedCloudJob`]s).
impl<'de> Deserialize<'de> for CachedCloudJob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DecodedCloudJob::deserialize(deserializer).map(CachedCloudJob::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crd::{CloudJobStatus, Phase},
        test_support::cloudjob,
    };
    use kube::core::error_boundary::InvalidObject;

    fn cached(cj: CloudJob) -> CachedCloudJob {
        CachedCloudJob::of(DeserializeGuard(Ok(cj)))
    }

    fn finished(mut cj: CloudJob, observed_generation: i64) -> CloudJob {
        cj.status = Some(CloudJobStatus {
            phase: Some(Phase::Succeeded),
            observed_generation: Some(observed_generation),
            job_type: Some("createImage".into()),
            ..Default::default()
        });
        cj
    }

    #[test]
    fn only_the_metadata_the_controller_reads_is_kept() {
        let mut cj = cloudjob("a");
        cj.metadata.uid = Some("uid-1".into());
        cj.metadata.resource_version = Some("42".into());
        cj.metadata.labels = Some([("team".to_string(), "x".to_string())].into());
        cj.metadata.annotations = Some(
            [
                (PAUSED_ANNOTATION.to_string(), "true".to_string()),
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    "{}".to_string(),
                ),
            ]
            .into(),
        );
        let kept = cached(cj);
        assert_eq!(kept.metadata.labels, None);
        assert_eq!(
            kept.metadata.annotations,
            Some([(PAUSED_ANNOTATION.to_string(), "true".to_string())].into())
        );
        assert_eq!(kept.metadata.uid.as_deref(), Some("uid-1"));
        assert_eq!(kept.metadata.resource_version, None);
        let Cached::Whole(whole) = kept.for_reconcile() else {
            panic!("an unfinished CloudJob is planned from whole");
        };
        assert_eq!(whole.spec, cloudjob("a").spec);
    }

    #[test]
    fn a_running_cloudjob_comes_back_whole_from_its_compact_form() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let mut cj = cloudjob("a");
        cj.spec.polling = Some(crate::crd::PollingSpec {
            min_interval_seconds: Some(5),
            max_interval_seconds: Some(90),
            request_cost_milliseconds: Some(800),
        });
        let at = Time("2026-01-01T00:01:00Z".parse().expect("timestamp"));
        cj.status = Some(CloudJobStatus {
            phase: Some(Phase::Running),
            observed_generation: Some(1),
            job_type: Some("createImage".into()),
            progress: Some(40),
            current_task: Some("copying".into()),
            start_time: Some(at.clone()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "Running".into(),
                message: "The job runs: 40 % done.".into(),
                last_transition_time: at,
                observed_generation: Some(1),
            }],
            ..Default::default()
        });
        let kept = cached(cj.clone());
        assert_eq!(kept.phase(), Some(Phase::Running));
        assert_eq!(kept.polls_with_secret(), Some("creds"));
        let Cached::Whole(whole) = kept.for_reconcile() else {
            panic!("an unfinished CloudJob is planned from whole");
        };
        assert_eq!((whole.spec, whole.status), (cj.spec, cj.status));
    }

    #[test]
    fn a_finished_cloudjob_is_settled_until_its_generation_or_a_reconcile_request_moves() {
        let mut cj = finished(cloudjob("a"), 1);
        cj.metadata.generation = Some(1);
        let kept = cached(cj.clone());
        assert!(kept.is_finished());
        assert_eq!(kept.phase(), Some(Phase::Succeeded));
        assert_eq!(kept.polls_with_secret(), None);
        assert!(matches!(kept.for_reconcile(), Cached::Settled));
        assert!(kept.is_settled());

        let mut edited = cj.clone();
        edited.metadata.generation = Some(2);
        assert!(matches!(cached(edited).for_reconcile(), Cached::ReadFirst));

        let mut requested = cj.clone();
        requested.metadata.annotations = Some(
            [(
                RECONCILE_REQUESTED_ANNOTATION.to_string(),
                "now".to_string(),
            )]
            .into(),
        );
        assert!(matches!(
            cached(requested.clone()).for_reconcile(),
            Cached::ReadFirst
        ));
        if let Some(status) = requested.status.as_mut() {
            status.last_handled_reconcile_at = Some("now".into());
        }
        assert!(matches!(cached(requested).for_reconcile(), Cached::Settled));
    }

    #[test]
    fn the_cache_shows_a_written_status_once_it_holds_it() {
        let running = CloudJobStatus {
            phase: Some(Phase::Running),
            progress: Some(40),
            ..Default::default()
        };
        let mut cj = cloudjob("a");
        cj.status = Some(running.clone());
        let kept = cached(cj.clone());
        assert!(kept.shows(&running));
        let later = CloudJobStatus {
            progress: Some(50),
            ..running.clone()
        };
        assert!(!kept.shows(&later));

        let done = finished(cj, 1);
        let written = done.status.clone().expect("status");
        let kept = cached(done);
        assert!(kept.shows(&written), "a finished status, as summarised");
        assert!(!kept.shows(&running));
    }

    #[test]
    fn an_undecodable_cloudjob_keeps_its_error() {
        let kept = CachedCloudJob::of(DeserializeGuard(Err(InvalidObject {
            error: "spec.jobId: invalid type".into(),
            metadata: ObjectMeta {
                name: Some("bad".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
        })));
        assert!(matches!(
            kept.for_reconcile(),
            Cached::Invalid("spec.jobId: invalid type")
        ));
        assert_eq!(kept.phase(), None);
    }

    #[test]
    fn steering_ignores_status_writes_but_not_spec_or_annotation_changes() {
        let cj = cloudjob("a");
        let mut with_status = cj.clone();
        with_status.status = Some(CloudJobStatus {
            phase: Some(Phase::Running),
            ..Default::default()
        });
        with_status.metadata.resource_version = Some("99".into());
        let (a, b) = (cached(cj.clone()), cached(with_status));
        assert_eq!(a.steering(), b.steering());
        let mut paused = cj.clone();
        paused.metadata.annotations =
            Some([(PAUSED_ANNOTATION.to_string(), "true".to_string())].into());
        assert_ne!(a.steering(), cached(paused).steering());
        let mut edited = cj.clone();
        edited.metadata.generation = Some(2);
        assert_ne!(a.steering(), cached(edited).steering());
        let mut recreated = cj;
        recreated.metadata.uid = Some("uid-2".into());
        assert_ne!(a.steering(), cached(recreated).steering());
    }
}

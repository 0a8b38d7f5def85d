//! The sample CloudJobs and the simulated cloud jobs behind them.

use std::time::Duration;

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{Fault, FaultKind, JobSpec, ProgressCurve, Service};

pub const PROJECT: &str = "0605767b5c00d4762ff2c00d6fd9cf1c";
pub const ACCESS_KEY: &str = "sim-ak";
pub const SECRET_KEY: &str = "sim-sk";
pub const SECRET: &str = "cloud-credentials";
pub const LATE_SECRET: &str = "late-credentials";
/// When the demo creates the Secret that one CloudJob waits for, after the CloudJobs are created.
pub const LATE_SECRET_AFTER: Duration = Duration::from_secs(8);

/// A sample CloudJob with the simulated cloud job behind it.
pub struct Sample {
    pub name: &'static str,
    pub what: &'static str,
    pub secret: &'static str,
    pub job: JobSpec,
    /// Injected into the job's responses.
    pub fault: Option<Fault>,
    pub expected: Phase,
}

pub fn samples() -> Vec<Sample> {
    let job = |service, job_type: &str, secs| {
        JobSpec::new(service, PROJECT, job_type)
            .duration_secs(secs)
            .progress(ProgressCurve::Linear)
    };
    vec![
        Sample {
            name: "image-from-server",
            what: "IMS: image of a server, ~25 s, progress and current task",
            secret: SECRET,
            job: JobSpec {
                name: Some("web-golden-image".into()),
                ..job(Service::Ims, "imsCreateImageByInstance", 25.0).tasks([
                    "CreateSnapshotTask",
                    "CreateImageTask",
                    "UploadImageTask",
                    "RegisterImageTask",
                ])
            },
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "import-broken-image",
            what: "IMS: image import that fails (IMG.0024) after ~12 s",
            secret: SECRET,
            job: JobSpec {
                name: Some("imported-image".into()),
                ..job(Service::Ims, "imsImportImageJob", 12.0).fail(
                    "IMG.0024",
                    "the image file in OBS is not a valid qcow2 image",
                )
            },
            fault: None,
            expected: Phase::Failed,
        },
        Sample {
            name: "data-volumes",
            what: "EVS: batch of 3 volumes, ~15 s, progress from sub-jobs",
            secret: SECRET,
            job: job(Service::Evs, "batchCreateVolume", 15.0).sub_jobs(3, 0),
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "web-server",
            what: "ECS: a server, ~10 s",
            secret: SECRET,
            job: job(Service::Ecs, "createServer", 10.0).sub_jobs(1, 0),
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "volume-late-credentials",
            what: "EVS: its Secret `late-credentials` is created only after 8 s (SecretNotFound, retried in its grace period)",
            secret: LATE_SECRET,
            job: job(Service::Evs, "createVolume", 20.0),
            fault: None,
            expected: Phase::Succeeded,
        },
        Sample {
            name: "image-throttled",
            what: "IMS: the cloud answers 429 four times (Throttled), then it succeeds, ~15 s",
            secret: SECRET,
            job: job(Service::Ims, "imsCopyImageInRegionJob", 15.0),
            fault: Some(Fault::next(
                4,
                FaultKind::Throttle {
                    retry_after_secs: Some(2),
                },
            )),
            expected: Phase::Succeeded,
        },
    ]
}

pub fn manifest(sample: &Sample, namespace: &str, job_id: &str) -> String {
    format!(
        "\
# {what}
apiVersion: cloudjob.io/v1alpha1
kind: CloudJob
metadata:
  name: {name}
  namespace: {namespace}
spec:
  service: {service}
  region: eu-de
  projectId: {PROJECT}
  jobId: {job_id}
  credentialsSecretRef:
    name: {secret}
",
        what = sample.what,
        name = sample.name,
        service = sample.job.service.as_str(),
        secret = sample.secret,
    )
}

//! The `CloudJob` custom resource: spec, status and the CRD generated from them.
//!
//! Validation lives in the schema (types, enums, lengths) and in CEL rules, so that `kubectl apply` of a bad
//! CloudJob fails at admission with a message naming the field, instead of reaching the controller.

// kube's derive takes one `printcolumn(...)` per column; clippy mistakes their repeated keys for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, JSON, JSONSchemaProps, JSONSchemaPropsOrArray,
        JSONSchemaPropsOrBool,
    },
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of every resource and annotation this operator owns.
pub const GROUP: &str = "cloudjob.io";

/// Annotation: `"true"` stops polling until it is removed or set to anything else.
pub const PAUSED_ANNOTATION: &str = "cloudjob.io/paused";
/// Annotation: any new value triggers one immediate poll; echoed as `status.lastHandledReconcileAt`.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "cloudjob.io/reconcile-requested-at";
/// Annotation: a fixed poll interval for this object (`30s`, `2m`, or plain seconds), overriding the adaptive one.
pub const POLL_INTERVAL_ANNOTATION: &str = "cloudjob.io/poll-interval";

/// Most sub-jobs listed one by one in `status.subJobs.items`; `status.subJobs.total` always counts all.
pub const MAX_LISTED_SUB_JOBS: usize = 50;

/// A cloud asynchronous job (IMS, EVS, ECS, BMS, SDRS, DeH, EIP, the database family...) mirrored into
/// Kubernetes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cloudjob.io",
    version = "v1alpha1",
    kind = "CloudJob",
    plural = "cloudjobs",
    // Not `cj`: that is batch/v1 CronJob's short name, which kubectl always prefers.
    shortname = "cjob",
    category = "cloud",
    namespaced,
    status = "CloudJobStatus",
    derive = "PartialEq",
    doc = "CloudJob mirrors an asynchronous job of a Huawei Cloud or Open Telekom Cloud service's jobs API (ECS, EVS, IMS, BMS, SDRS, DeH, EIP: GET /v1/{project_id}/jobs/{job_id}; IMS also GET /v1/cloudimages/job/{job_id}; RDS, DDS, GaussDB, openGauss, GeminiDB: GET /v3/{project_id}/jobs?id={job_id}; DCS, CCE, ELB, SFS Turbo on their own paths) into Kubernetes.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Progress",
        type_ = "integer",
        json_path = ".status.progress",
        description = "percent done"
    ),
    printcolumn(
        name = "Resource",
        type_ = "string",
        json_path = ".status.outputs.primaryId",
        description = "id of the main produced resource (image, volume, server, instance, node...)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".spec.service",
        priority = 1
    ),
    printcolumn(
        name = "Job",
        type_ = "string",
        json_path = ".spec.jobId",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.imsJobPath) || self.service == 'ims'").message("spec.imsJobPath applies to IMS jobs only").field_path(".imsJobPath"))]
#[x_kube(validation = Rule::new("has(self.endpoint) == has(oldSelf.endpoint) && (!has(self.endpoint) || self.endpoint == oldSelf.endpoint)").message("spec.endpoint is immutable: create a new CloudJob for another endpoint").field_path(".endpoint"))]
pub struct CloudJobSpec {
    /// Cloud service that owns the job; picks the endpoint host and the error conventions. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.service is immutable: create a new CloudJob for another job"))]
    pub service: Service,

    /// Region of the service endpoint, e.g. `cn-north-4`, `eu-de`, `eu-nl`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z0-9]+)+$')").message("spec.region must be a region name such as eu-de or cn-north-4"))]
    #[schemars(length(min = 1, max = 63))]
    pub region: String,

    /// Project (tenant) id that owns the job: the `{project_id}` of the jobs API path. Immutable.
    #[x_kube(
        validation = Rule::new("self.matches('^[A-Za-z0-9_-]+$')").message("spec.projectId must be the project id (letters, digits, '-' or '_')"),
        validation = Rule::new("self == oldSelf").message("spec.projectId is immutable: create a new CloudJob for another job")
    )]
    #[schemars(length(min = 1, max = 64))]
    pub project_id: String,

    /// Job id returned by the cloud API for the asynchronous operation. Immutable.
    #[x_kube(
        validation = Rule::new("self.matches('^[A-Za-z0-9_-]+$')").message("spec.jobId must be the job id returned by the cloud API (letters, digits, '-' or '_')"),
        validation = Rule::new("self == oldSelf").message("spec.jobId is immutable: create a new CloudJob for another job")
    )]
    #[schemars(length(min = 1, max = 128))]
    pub job_id: String,

    /// Which cloud's endpoint templates to use when `endpoint` is not set; also picks IMS's job path.
    #[serde(default)]
    pub cloud: Cloud,

    /// IMS only: which job path to read. Default: `CloudImages` (`/v1/cloudimages/job/{jobId}`) on Huawei
    /// Cloud, `ProjectJobs` (`/v1/{projectId}/jobs/{jobId}`) on Open Telekom Cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ims_job_path: Option<ImsJobPath>,

    /// Base URL of the service endpoint, overriding the template (private clouds, proxies, tests).
    /// The service's job path (e.g. `/v1/{projectId}/jobs/{jobId}`) is appended to it. Its host must be on the
    /// operator's allow-list (`--allowed-endpoints`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''").message("spec.endpoint must be an absolute http or https URL, e.g. https://ims.eu-de.otc.t-systems.com"),
        validation = Rule::new("!self.matches('^[^:/?#]+://[^/?#]*@')").message("spec.endpoint must not carry a user name or password (user:password@): the credentials come from the Secret")
    )]
    #[schemars(length(max = 2048))]
    pub endpoint: Option<String>,

    /// Secret in the CloudJob's own namespace holding the AK/SK credentials.
    pub credentials_secret_ref: SecretReference,

    /// Bounds for the adaptive poll interval, and its trade-off between requests and detection delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling: Option<PollingSpec>,

    /// Seconds the operator waits for the job, counted from the CloudJob's creation. When exceeded the
    /// CloudJob becomes Failed with reason DeadlineExceeded and is no longer polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// Seconds a missing or unusable credentials Secret, or rejected credentials, are reported as a
    /// problem being retried (Reconciling) before the CloudJob reads as Stalled: Secrets made by External
    /// Secrets or Sealed Secrets arrive a little after the manifests that use them, and keys get rotated.
    /// Overrides the operator's --credentials-grace-period (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub credentials_grace_period_seconds: Option<i64>,

    /// Name of a ConfigMap in the CloudJob's namespace that the operator keeps filled with the job's phase
    /// and produced ids (keys `jobId`, `phase`, `primaryId`, `imageId`, `imageName`, `volumeId`,
    /// `serverId`, `resourceIds`), for Flux `postBuild.substituteFrom`, `envFrom` or kro. The operator
    /// creates it, owned by the CloudJob (deleted with it), and never takes over a ConfigMap it does not
    /// own. Never holds credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("spec.outputsConfigMap must be a ConfigMap name (lower-case letters, digits, '-' and '.')"))]
    #[schemars(length(min = 1, max = 253))]
    pub outputs_config_map: Option<String>,
}

/// The cloud service whose jobs API is polled.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    schemars::JsonSchema,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Service {
    /// Image Management Service.
    Ims,
    /// Elastic Volume Service.
    Evs,
    /// Elastic Cloud Server.
    Ecs,
    /// Bare Metal Server.
    Bms,
    /// Storage Disaster Recovery Service.
    Sdrs,
    /// Dedicated Host.
    Deh,
    /// Elastic IP (v2, yearly/monthly resources; on the `vpc` endpoint).
    Eip,
    /// Relational Database Service.
    Rds,
    /// Document Database Service.
    Dds,
    /// GaussDB (for MySQL) / TaurusDB.
    Gaussdb,
    /// GaussDB (openGauss).
    Opengauss,
    /// GeminiDB (GaussDB NoSQL).
    Geminidb,
    /// Distributed Cache Service.
    Dcs,
    /// Cloud Container Engine.
    Cce,
    /// Elastic Load Balance (v3).
    Elb,
    /// SFS Turbo (Scalable File Service Turbo).
    Sfsturbo,
}

/// Which of IMS's two job paths to read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum ImsJobPath {
    /// `GET /v1/cloudimages/job/{job_id}`: the newer path (Huawei Cloud's default).
    CloudImages,
    /// `GET /v1/{project_id}/jobs/{job_id}`: the older path (Open Telekom Cloud's default; deprecated on
    /// Huawei Cloud since 2026-04).
    ProjectJobs,
}

impl Service {
    /// The lower-case name used in host names and metrics.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The public cloud whose endpoint naming applies.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Huawei Cloud: `https://{service}.{region}.myhuaweicloud.com`.
    #[default]
    Huaweicloud,
    /// Open Telekom Cloud: `https://{service}.{region}.otc.t-systems.com`.
    Opentelekomcloud,
}

/// A Secret in the CloudJob's namespace and the keys to read from it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret (a DNS subdomain).
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("spec.credentialsSecretRef.name must be a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Not supported: the operator only reads Secrets from the CloudJob's own namespace, so that a CloudJob
    /// can never make it read another namespace's credentials. Present only to reject such requests clearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("false").message("spec.credentialsSecretRef.namespace is not allowed: the Secret must be in the CloudJob's own namespace"))]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    /// Key holding the access key id (default `accessKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[-._a-zA-Z0-9]+$')").message("must be a Secret key: letters, digits, '-', '.' and '_'"))]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_key: Option<String>,
    /// Key holding the secret access key (default `secretKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[-._a-zA-Z0-9]+$')").message("must be a Secret key: letters, digits, '-', '.' and '_'"))]
    #[schemars(length(min = 1, max = 253))]
    pub secret_key_key: Option<String>,
    /// Key holding the optional security token of temporary credentials (default `securityToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[-._a-zA-Z0-9]+$')").message("must be a Secret key: letters, digits, '-', '.' and '_'"))]
    #[schemars(length(min = 1, max = 253))]
    pub security_token_key: Option<String>,
}

/// Bounds for the adaptive poll interval and its trade-off between requests and delay, in seconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.minIntervalSeconds) || !has(self.maxIntervalSeconds) || self.minIntervalSeconds <= self.maxIntervalSeconds").message("spec.polling.minIntervalSeconds must not exceed spec.polling.maxIntervalSeconds"))]
pub struct PollingSpec {
    /// Shortest time between two polls (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub min_interval_seconds: Option<i64>,
    /// Longest time between two polls (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub max_interval_seconds: Option<i64>,
    /// The trade-off between requests and detection delay once the operator has learned how long jobs
    /// of this type run: how much detection delay one request is worth, in milliseconds (for a type whose
    /// median is a minute). Higher: fewer requests, the finish seen later. Default: the operator's
    /// `--poll-request-cost` (1250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 3600000))]
    pub request_cost_milliseconds: Option<i64>,
}

/// What the operator last saw of the job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudJobStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Succeeded, Failed or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The job's status exactly as the cloud reported it (INIT, RUNNING, SUCCESS, FAIL, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    /// The job's type as the cloud reported it, e.g. `imsCreateImageByInstance`, `batchCreateVolume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// Percent done, 0-100: from `process_percent`, or from finished sub-jobs out of all.
    // The bounds are in the schema because the API server does not enforce `format: int32`: a status
    // written out of range by anyone else would otherwise make the object undecodable for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub progress: Option<i32>,
    /// The step the job is executing now (`entities.current_task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task: Option<String>,
    /// When the job started: the cloud's `begin_time` where it parses, else when the operator first saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job finished, either way: the cloud's `end_time` where it parses, else when it was seen finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// When the job succeeded (absent on failure), as batch/v1 Job has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Ids of what the job produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// Sub-jobs of batch jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_jobs: Option<SubJobs>,
    /// Error code of the failed job, or of its first failed sub-job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Failure reason of the failed job, or of its first failed sub-job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    /// The last `cloudjob.io/reconcile-requested-at` annotation value acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// When the problem named by the Ready condition's reason was first seen; absent while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_since: Option<Time>,
    /// Ready, Reconciling, Stalled, Complete and Failed, as kstatus, Flux, Argo CD and batch/v1 Job read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The lifecycle phase shown in `kubectl get cloudjobs`.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    schemars::JsonSchema,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
pub enum Phase {
    /// Not started yet (INIT, PENDING_PAYMENT, or not observed yet).
    Pending,
    /// In progress.
    Running,
    /// Finished successfully. Terminal.
    Succeeded,
    /// Finished unsuccessfully, partly failed, or past its deadline. Terminal.
    Failed,
    /// Polling paused by the `cloudjob.io/paused` annotation.
    Paused,
}

impl Phase {
    /// Whether the job can no longer change: such a CloudJob is never polled again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    /// The name as it appears in status.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Ids of the resources a job produced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// The main produced id, for the printer column: the image, volume or server, else the first of
    /// `resources` (a database instance, a CCE node, an SDRS protected instance...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_id: Option<String>,
    /// The produced image (IMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The produced image's name (IMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// The produced volume (EVS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// The produced server (ECS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// Every produced resource, sub-jobs' included, in the order the cloud listed them. A sub-job's
    /// resource is listed only once that sub-job succeeded (see `status.subJobs.items` for each one's status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ProducedResource>,
    /// Existing resources the job acted on without producing them, e.g. the shared image of an IMS
    /// image-member job (imsAddImageMembersJob, imsUpdateImageMembersJob, imsDelImageMembersJob).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_resources: Vec<TargetResource>,
}

/// An existing resource a job acted on (it did not produce it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    /// image, or another resource kind.
    pub kind: String,
    /// The resource id.
    pub id: String,
    /// What the job did to it, as the cloud reports it (e.g. `success` for a member added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One resource produced by the job or one of its sub-jobs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducedResource {
    /// image, volume, server, nic, or the service's own kind (instance, node, cluster, protectedInstance,
    /// replicationPair, protectionGroup, nativeServer, dedicatedHost, publicip, bandwidth, resource).
    pub kind: String,
    /// The resource id.
    pub id: String,
    /// The resource name, where the cloud reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sub-job that produced it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_job_id: Option<String>,
}

/// Counts of a batch job's sub-jobs and a capped list of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubJobs {
    /// All sub-jobs (`sub_jobs_total` where the cloud reports it).
    // Bounded in the schema, as `progress` is: `format: int32` alone is not enforced.
    #[schemars(range(min = 0, max = 2_147_483_647))]
    pub total: i32,
    /// Sub-jobs in SUCCESS.
    #[schemars(range(min = 0, max = 2_147_483_647))]
    pub succeeded: i32,
    /// Sub-jobs in FAIL.
    #[schemars(range(min = 0, max = 2_147_483_647))]
    pub failed: i32,
    /// The first sub-jobs, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<SubJobStatus>,
}

/// One sub-job as the cloud reported it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubJobStatus {
    /// Sub-job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Sub-job type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// Raw status: INIT, RUNNING, SUCCESS, FAIL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Id of what this sub-job produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Error code when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Failure reason when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
}

/// The CRD as YAML, exactly as committed under `crds/` and the chart.
/// The CRD as installed: the one generated from the Rust types, with `status` defaulted so that a CloudJob
/// no operator has observed yet reads as in progress (kstatus treats an object without
/// `observedGeneration` and conditions as Current, that is, done), and with descriptions unwrapped so
/// that `kubectl explain` does not break sentences at the source's line ends.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = CloudJob::crd();
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        unwrap_descriptions(schema);
        if let Some(status) = schema.properties.as_mut().and_then(|p| p.get_mut("status")) {
            status.default = Some(JSON(serde_json::json!({ "observedGeneration": -1 })));
        }
    }
    crd
}

pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd())
}

/// Joins the lines of each paragraph of every description in `schema`, keeping blank-line paragraph breaks.
fn unwrap_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(description) = schema.description.as_mut() {
        *description = description
            .split("\n\n")
            .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.items.iter_mut().filter_map(|items| match items {
            JSONSchemaPropsOrArray::Schema(s) => Some(s.as_mut()),
            JSONSchemaPropsOrArray::Schemas(_) => None,
        }))
        .chain(
            schema
                .additional_properties
                .iter_mut()
                .filter_map(|a| match a {
                    JSONSchemaPropsOrBool::Schema(s) => Some(s.as_mut()),
                    JSONSchemaPropsOrBool::Bool(_) => None,
                }),
        );
    for child in children {
        unwrap_descriptions(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed CRD must be what the Rust types generate; regenerate with
    /// `cargo run -- crd > crds/cloudjobs.cloudjob.io.yaml` and copy it into the chart.
    #[test]
    fn committed_crd_matches_the_rust_types() {
        let generated = crd_yaml().expect("CRD serializes");
        let committed = include_str!("../crds/cloudjobs.cloudjob.io.yaml");
        assert!(
            generated == committed,
            "crds/cloudjobs.cloudjob.io.yaml is stale: run `cargo run -- crd > crds/cloudjobs.cloudjob.io.yaml` \
             and copy it to charts/cloudjob-operator/crds/"
        );
    }

    #[test]
    fn crd_has_status_subresource_short_name_and_cel_rules() {
        let json = serde_json::to_string(&crd()).expect("CRD serializes");
        assert!(
            json.contains("\"shortNames\":[\"cjob\"]"),
            "no `cj`: CronJob owns it"
        );
        assert!(json.contains("\"categories\":[\"cloud\"]"));
        assert!(json.contains("\"status\":{}"));
        assert!(json.contains("self == oldSelf"));
        assert!(json.contains("x-kubernetes-validations"));
    }
}

#[cfg(test)]
mod installed_crd_tests {
    use super::*;

    fn schema() -> JSONSchemaProps {
        crd().spec.versions[0]
            .schema
            .clone()
            .and_then(|s| s.open_api_v3_schema)
            .expect("schema")
    }

    #[test]
    fn an_unobserved_cloudjob_defaults_to_a_stale_observed_generation() {
        let status = schema().properties.expect("properties")["status"].clone();
        assert_eq!(
            status.default,
            Some(JSON(serde_json::json!({"observedGeneration": -1})))
        );
    }

    #[test]
    fn descriptions_keep_sentences_on_one_line() {
        let yaml = crd_yaml().expect("yaml");
        let json: serde_json::Value = serde_yaml::from_str(&yaml).expect("parses");
        let mut descriptions = Vec::new();
        collect_descriptions(&json, &mut descriptions);
        assert!(descriptions.len() > 30, "{}", descriptions.len());
        for d in descriptions {
            assert!(
                !d.replace("\n\n", "").contains('\n'),
                "a description breaks mid-paragraph: {d:?}"
            );
        }
    }

    fn collect_descriptions(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    match (key.as_str(), child) {
                        ("description", serde_json::Value::String(d)) => out.push(d.clone()),
                        _ => collect_descriptions(child, out),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|i| collect_descriptions(i, out))
            }
            _ => {}
        }
    }
}

//! The jobs API response, normalised.
//!
//! Responses differ by service and by age of the documentation (IMS `process_percent` as `0.20`, OTC times
//! like `04-Jun-2015 18:11:06:586`, `end_time: ""`, `null` codes, `entities` missing or `{}`), so parsing walks
//! a `serde_json::Value` and takes what is there instead of failing on a shape it did not expect. Nothing here
//! can panic on data from the network.
//!
//! A hostile answer (the body is capped at 4 MiB by the client) must not cost more than linear time, nor make
//! a status too large for etcd (1.5 MiB per object): every string copied out of the answer is cut to a
//! documented length (`MAX_*_LEN`, in bytes, control characters dropped), produced resources are
//! deduplicated with a set and capped at [`MAX_RESOURCES`], and sub-jobs are counted but only the first
//! [`crate::crd::MAX_LISTED_SUB_JOBS`] are kept. With these bounds a status stays below
//! [`MAX_STATUS_BYTES`] whatever the cloud sends.

use std::collections::HashSet;

use jiff::Timestamp;
use serde_json::Value;

/// Longest job status string kept (`SUCCESS`, `RUNNING`, ...).
pub const MAX_STATUS_LEN: usize = 64;
/// Longest id kept (job, image, volume, server, nic ids are UUIDs or 32 hex digits).
pub const MAX_ID_LEN: usize = 128;
/// Longest job type, resource name, error code or current task kept.
pub const MAX_NAME_LEN: usize = 128;
/// Longest failure reason or error message kept.
pub const MAX_MESSAGE_LEN: usize = 512;
/// Most produced resources kept in `status.outputs.resources` (an ECS batch creates at most 500 servers).
pub const MAX_RESOURCES: usize = 500;
/// What the bounds above guarantee: the JSON of a CloudJob's status stays below this size, whatever the
/// cloud answers (a third of etcd's 1.5 MiB object limit, leaving room for spec and metadata).
pub const MAX_STATUS_BYTES: usize = 512 * 1024;

use crate::cloud::catalogue::{self, Layout, ServiceApi};
use crate::crd::{ProducedResource, Service, SubJobStatus, SubJobs, TargetResource};

/// The job's state as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// `INIT`: accepted, not started.
    Init,
    /// `PENDING_PAYMENT` (Huawei ECS/BMS): waits for an order to be paid.
    PendingPayment,
    /// `RUNNING`.
    Running,
    /// `SUCCESS`. Terminal.
    Success,
    /// `FAIL` (also `FAILED`, `ERROR`). Terminal.
    Fail,
    /// `CANCELLED` (also `CANCELED`, `ABORTED`): stopped before it finished. Terminal, a failure.
    Cancelled,
    /// Any other string: treated as not finished, never as an error.
    Other(String),
}

impl JobState {
    /// `raw` in the ECS family's vocabulary (the default of [`JobObservation::parse`]).
    #[cfg(test)]
    fn parse(raw: &str) -> JobState {
        catalogue::api(Service::Ecs).state(raw)
    }

    /// Whether the job can no longer change.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Fail | JobState::Cancelled
        )
    }
}

/// One job as read from `GET /v1/{project_id}/jobs/{job_id}`.
#[derive(Clone, Debug, PartialEq)]
pub struct JobObservation {
    pub state: JobState,
    /// `status` exactly as sent.
    pub raw_status: String,
    pub job_id: Option<String>,
    pub job_type: Option<String>,
    pub begin_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub error_code: Option<String>,
    pub fail_reason: Option<String>,
    /// Percent done, 0-100, where the job reports it (directly or through sub-jobs).
    pub progress: Option<i32>,
    pub current_task: Option<String>,
    pub image_id: Option<String>,
    pub image_name: Option<String>,
    pub volume_id: Option<String>,
    pub server_id: Option<String>,
    /// Everything produced, the job's own ids first, then its successful sub-jobs', without duplicates.
    pub resources: Vec<ProducedResource>,
    /// Existing resources the job acted on without producing them (the image of an image-member job).
    pub targets: Vec<TargetResource>,
    pub sub_jobs: Option<SubJobs>,
}

/// Why a 200 response is not a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response is JSON but not a job object")]
    NotAnObject,
    #[error("cloud answered 200 with an error body: {0}")]
    ErrorBody(String),
    #[error("response has no job status field")]
    MissingStatus,
    /// The service answered a query by id with an empty list (GeminiDB): it has no such job.
    #[error("the service lists no job with this id")]
    NoSuchJob,
}

/// Why a body of a wrapped layout (`{"job": ...}`) holds no job: an error body, or something else.
fn not_a_job(value: &Value) -> ParseError {
    if !value.is_object() {
        return ParseError::NotAnObject;
    }
    match error_summary(value) {
        Some(summary) => ParseError::ErrorBody(summary),
        None => ParseError::MissingStatus,
    }
}

/// SFS Turbo lists `sub_jobs` beside `status`, not in `entities`: moved there, the rest kept.
fn flat_with_top_level_sub_jobs(value: &Value) -> Value {
    let mut flat = value.clone();
    if let Some(sub_jobs) = value.get("sub_jobs").cloned()
        && let Some(obj) = flat.as_object_mut()
    {
        let entities = obj
            .entry("entities")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(entities) = entities.as_object_mut() {
            entities.insert("sub_jobs".into(), sub_jobs);
        } else {
            *entities = serde_json::json!({ "sub_jobs": sub_jobs });
        }
    }
    flat
}

/// How deep CCE sub-jobs are followed, and how many are kept: they nest (`spec.subJobs` of a sub-job),
/// and a hostile answer must not cost more than linear time.
const CCE_MAX_DEPTH: usize = 4;
const CCE_MAX_SUB_JOBS: usize = 3000;

/// A CCE job (a Kubernetes-style `{kind: Job, metadata{uid, creationTimestamp, updateTimestamp},
/// spec{type, clusterUID, resourceID, resourceName, subJobs[]}, status{phase, reason}}`) in the flat
/// layout, its nested sub-jobs flattened in document order. A node's id is the `resourceID` of the
/// sub-job of type `CreateNodeVM`; a cluster's, the job's own `resourceID` when it creates the cluster.
fn flat_cce_job(job: &Value) -> Value {
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(job, |v, key| v.get(*key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut sub_jobs = Vec::new();
    collect_cce_sub_jobs(job, 0, &mut sub_jobs);
    let job_type = at(&["spec", "type"]);
    let creates_cluster = job_type.as_str() == Some("CreateCluster");
    serde_json::json!({
        "status": at(&["status", "phase"]),
        "job_id": at(&["metadata", "uid"]),
        "job_type": job_type,
        "begin_time": at(&["metadata", "creationTimestamp"]),
        // Only a finished job's last update is its end (status keeps `end_time` for terminal jobs only).
        "end_time": at(&["metadata", "updateTimestamp"]),
        "fail_reason": at(&["status", "reason"]),
        "entities": {
            "cluster_id": if creates_cluster { at(&["spec", "resourceID"]) } else { Value::Null },
            "sub_jobs": sub_jobs,
        },
    })
}

fn collect_cce_sub_jobs(job: &Value, depth: usize, out: &mut Vec<Value>) {
    if depth >= CCE_MAX_DEPTH {
        return;
    }
    let children = job
        .get("spec")
        .and_then(|s| s.get("subJobs"))
        .and_then(Value::as_array);
    for child in children.into_iter().flatten().filter(|c| c.is_object()) {
        if out.len() >= CCE_MAX_SUB_JOBS {
            return;
        }
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(child, |v, key| v.get(*key))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let node = field(&["spec", "type"]).as_str() == Some("CreateNodeVM");
        out.push(serde_json::json!({
            "status": field(&["status", "phase"]),
            "job_id": field(&["metadata", "uid"]),
            "job_type": field(&["spec", "type"]),
            "fail_reason": field(&["status", "reason"]),
            "entities": {
                "node_id": if node { field(&["spec", "resourceID"]) } else { Value::Null },
            },
        }));
        collect_cce_sub_jobs(child, depth + 1, out);
    }
}

/// An ELB v3 job (`{"job": {status, job_id, job_type, begin_time, end_time, error_code, error_msg,
/// resource_id, sub_jobs[]}}`) in the flat layout.
fn flat_elb_job(job: &Value) -> Value {
    let field = |v: &Value, name: &str| v.get(name).cloned().unwrap_or(Value::Null);
    let sub_jobs: Vec<Value> = job
        .get("sub_jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.is_object())
        .map(|sub| {
            serde_json::json!({
                "status": field(sub, "status"),
                "job_id": field(sub, "job_id"),
                "job_type": field(sub, "job_type"),
                "begin_time": field(sub, "begin_time"),
                "end_time": field(sub, "end_time"),
                "error_code": field(sub, "error_code"),
                "fail_reason": field(sub, "error_msg"),
                "entities": {"resource_id": field(sub, "resource_id")},
            })
        })
        .collect();
    serde_json::json!({
        "status": field(job, "status"),
        "job_id": field(job, "job_id"),
        "job_type": field(job, "job_type"),
        "begin_time": field(job, "begin_time"),
        "end_time": field(job, "end_time"),
        "error_code": field(job, "error_code"),
        "fail_reason": field(job, "error_msg"),
        "entities": {"resource_id": field(job, "resource_id"), "sub_jobs": sub_jobs},
    })
}

/// A database job (`{id, name, status, created, ended, <progress>: "60%", instance: {id, name},
/// fail_reason}`; GeminiDB: `start_time`, `end_time`) in the flat layout. The fields copied come from a
/// body already capped at 4 MiB, and are cut to their bounds by the flat reader.
fn flat_database_job(job: &Value, progress: &str) -> Value {
    let field = |name: &str| job.get(name).cloned().unwrap_or(Value::Null);
    let instance = job.get("instance");
    let instance_field = |name: &str| {
        instance
            .and_then(|i| i.get(name))
            .or_else(|| job.get(format!("instance_{name}").as_str()))
            .cloned()
            .unwrap_or(Value::Null)
    };
    serde_json::json!({
        "status": field("status"),
        "job_id": field("id"),
        "job_type": field("name"),
        // RDS, DDS, GaussDB and openGauss say `created`/`ended`; GeminiDB's list says `start_time`/`end_time`.
        "begin_time": job.get("created").or_else(|| job.get("start_time")).cloned().unwrap_or(Value::Null),
        "end_time": job.get("ended").or_else(|| job.get("end_time")).cloned().unwrap_or(Value::Null),
        "fail_reason": field("fail_reason"),
        "entities": {
            "process_percent": field(progress),
            "instance_id": instance_field("id"),
            "instance_name": instance_field("name"),
        },
    })
}

impl JobObservation {
    /// Parses a response body of the ECS family's layout and words. Fails only when there is no job in it.
    pub fn parse(body: &[u8]) -> Result<JobObservation, ParseError> {
        Self::parse_as(catalogue::api(Service::Ecs), body)
    }

    /// Parses a response body of `api`'s service.
    pub fn parse_as(api: &ServiceApi, body: &[u8]) -> Result<JobObservation, ParseError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ParseError::NotJson(json_error(&e)))?;
        Self::from_value_as(api, &value)
    }

    /// Parses an already decoded response of the ECS family's layout and words.
    pub fn from_value(value: &Value) -> Result<JobObservation, ParseError> {
        Self::from_value_as(catalogue::api(Service::Ecs), value)
    }

    /// Parses an already decoded response of `api`'s service: its layout is first brought to the flat
    /// one (`status`, `job_id`, ..., `entities`), so that one reader serves every service.
    pub fn from_value_as(api: &ServiceApi, value: &Value) -> Result<JobObservation, ParseError> {
        match api.layout {
            Layout::Flat => Self::from_flat(api, value),
            Layout::FlatTopLevelSubJobs => {
                if !value.is_object() {
                    return Err(ParseError::NotAnObject);
                }
                Self::from_flat(api, &flat_with_top_level_sub_jobs(value))
            }
            Layout::CceJob => match value.get("metadata") {
                Some(metadata) if metadata.is_object() => {
                    Self::from_flat(api, &flat_cce_job(value))
                }
                _ => Err(not_a_job(value)),
            },
            Layout::ElbJob => match value.get("job") {
                Some(job) if job.is_object() => Self::from_flat(api, &flat_elb_job(job)),
                _ => Err(not_a_job(value)),
            },
            Layout::DatabaseJob { progress } => match value.get("job") {
                Some(job) if job.is_object() => {
                    Self::from_flat(api, &flat_database_job(job, progress))
                }
                _ => Err(not_a_job(value)),
            },
            Layout::DatabaseJobList { progress } => {
                let Some(jobs) = value.get("jobs").and_then(Value::as_array) else {
                    return Err(not_a_job(value));
                };
                // The query names one job: an empty list is the service saying it has none by that id.
                let job = jobs
                    .iter()
                    .find(|j| j.is_object())
                    .ok_or(ParseError::NoSuchJob)?;
                Self::from_flat(api, &flat_database_job(job, progress))
            }
        }
    }

    fn from_flat(api: &ServiceApi, value: &Value) -> Result<JobObservation, ParseError> {
        let obj = value.as_object().ok_or(ParseError::NotAnObject)?;
        let Some(raw_status) = text(value.get("status"), MAX_STATUS_LEN) else {
            return Err(match error_summary(value) {
                Some(summary) => ParseError::ErrorBody(summary),
                None => ParseError::MissingStatus,
            });
        };
        let empty = Value::Object(Default::default());
        let entities = obj
            .get("entities")
            .filter(|e| e.is_object())
            .unwrap_or(&empty);

        let sub_job_values = sub_job_values(entities);
        let sub_jobs = summarize_sub_jobs(api, entities, &sub_job_values);

        let mut observation = JobObservation {
            state: api.state(&raw_status),
            raw_status,
            job_id: text(value.get("job_id"), MAX_ID_LEN),
            job_type: text(value.get("job_type"), MAX_NAME_LEN),
            begin_time: value.get("begin_time").and_then(parse_time),
            end_time: value.get("end_time").and_then(parse_time),
            error_code: first_text(
                &[
                    value.get("error_code"),
                    entities.get("error_code"),
                    entities.get("addition_error_code"),
                ],
                MAX_NAME_LEN,
            ),
            fail_reason: first_text(
                &[
                    value.get("fail_reason"),
                    entities.get("error"),
                    entities.get("addition_error_msg"),
                ],
                MAX_MESSAGE_LEN,
            ),
            progress: entities.get("process_percent").and_then(percent),
            current_task: text(entities.get("current_task"), MAX_NAME_LEN),
            image_id: text(entities.get("image_id"), MAX_ID_LEN),
            image_name: text(entities.get("image_name"), MAX_NAME_LEN)
                .or_else(|| text(entities.get("name"), MAX_NAME_LEN)),
            volume_id: text(entities.get("volume_id"), MAX_ID_LEN),
            server_id: text(entities.get("server_id"), MAX_ID_LEN),
            resources: Vec::new(),
            targets: Vec::new(),
            sub_jobs: None,
        };
        if entities.get("image_id").is_none() && entities.get("volume_id").is_some() {
            // EVS names its disk `name`, IMS its image `image_name`: keep image_name for images only.
            observation.image_name = None;
        }

        let member_job = observation
            .job_type
            .as_deref()
            .is_some_and(is_image_member_job);
        observation.resources = produced_resources(api, entities, &sub_job_values, member_job);
        if member_job {
            observation.targets = member_targets(entities);
        } else if observation.image_id.is_none() {
            observation.image_id = observation
                .resources
                .iter()
                .find(|r| r.kind == "image")
                .map(|r| r.id.clone());
        }
        if observation.volume_id.is_none() {
            observation.volume_id = observation
                .resources
                .iter()
                .find(|r| r.kind == "volume")
                .map(|r| r.id.clone());
        }
        if observation.server_id.is_none() {
            observation.server_id = observation
                .resources
                .iter()
                .find(|r| r.kind == "server")
                .map(|r| r.id.clone());
        }

        // Progress from sub-jobs measures how far a job still under way has come. A finished failure is
        // not "100 % done": it keeps the last progress it reported (status keeps the previous value).
        let derive_progress = !matches!(observation.state, JobState::Fail | JobState::Cancelled);
        if let Some(summary) = &sub_jobs {
            if derive_progress && observation.progress.is_none() && summary.total > 0 {
                let done = summary.succeeded + summary.failed;
                observation.progress = Some(((done as i64 * 100) / summary.total as i64) as i32);
            }
            // A job that failed because of a sub-job often carries no reason of its own.
            if observation.error_code.is_none()
                && observation.fail_reason.is_none()
                && let Some(failed) = summary.items.iter().find(|s| {
                    s.status
                        .as_deref()
                        .is_some_and(|raw| is_failure(&api.state(raw)))
                })
            {
                observation.error_code = failed.error_code.clone();
                observation.fail_reason = failed.fail_reason.clone();
            }
        }
        if matches!(observation.state, JobState::Success) {
            observation.progress = Some(100);
        }
        observation.sub_jobs = sub_jobs;
        Ok(observation)
    }

    /// The id shown in the printer column: the job's own image, volume or server.
    pub fn primary_id(&self) -> Option<&str> {
        self.image_id
            .as_deref()
            .or(self.volume_id.as_deref())
            .or(self.server_id.as_deref())
            .or_else(|| self.resources.first().map(|r| r.id.as_str()))
    }
}

/// Where and how a body is not JSON, without quoting any of it.
fn json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "cut off",
        serde_json::error::Category::Syntax => "invalid",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// A short `code: message` of one of the two documented error bodies, if `value` is one. Nothing else of an
/// answer is ever quoted: an endpoint that is not the cloud must not get its content into status.
pub fn error_summary(value: &Value) -> Option<String> {
    let code = error_code(value);
    let message = error_message(value);
    (code.is_some() || message.is_some()).then(|| join_code_message(code, message))
}

/// The error message of a documented error body: `{"error": {"code", "message"}}` (IMS, EVS, ECS) or
/// `{"error_code", "error_msg"}` (the API gateway). Cut to [`MAX_MESSAGE_LEN`].
pub fn error_message(value: &Value) -> Option<String> {
    match value.get("error") {
        Some(error) if error.is_object() => text(error.get("message"), MAX_MESSAGE_LEN),
        _ => text(value.get("error_msg"), MAX_MESSAGE_LEN),
    }
}

/// The error code of a documented error body, only when it looks like one (`APIGW.0301`, `Common.0011`:
/// letters, digits, `.`, `_`, `-`, at most [`MAX_NAME_LEN`]).
pub fn error_code(value: &Value) -> Option<String> {
    let code = match value.get("error") {
        Some(error) if error.is_object() => error.get("code"),
        _ => value.get("error_code"),
    };
    text(code, MAX_NAME_LEN).filter(|c| {
        c.len() <= 64
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
    })
}

fn join_code_message(code: Option<String>, message: Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        (None, Some(m)) => m,
        (None, None) => String::new(),
    }
}

/// A non-empty string, also from numbers (some gateways send numeric codes), cut to `max` bytes (with `…`
/// when cut) and without control characters.
fn text(value: Option<&Value>, max: usize) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(bounded(s.trim(), max)),
        Value::Number(n) => Some(bounded(&n.to_string(), max)),
        _ => None,
    }
}

/// `s` without control characters, cut to at most `max` bytes on a character boundary.
pub fn bounded(s: &str, max: usize) -> String {
    const CUT: char = '…';
    let mut out = String::with_capacity(s.len().min(max));
    for ch in s.chars().filter(|c| !c.is_control()) {
        if out.len() + ch.len_utf8() > max {
            while out.len() + CUT.len_utf8() > max {
                if out.pop().is_none() {
                    break;
                }
            }
            if out.len() + CUT.len_utf8() <= max {
                out.push(CUT);
            }
            break;
        }
        out.push(ch);
    }
    out
}

fn first_text(values: &[Option<&Value>], max: usize) -> Option<String> {
    values.iter().find_map(|v| text(*v, max))
}

/// `process_percent` as 0-100: the documented examples use a fraction (`0.20`), some services 0-100.
fn percent(value: &Value) -> Option<i32> {
    // "60%" (the database family) is a percentage whatever its size: "1%" is not 100 %.
    let (number, marked_percent) = match value {
        Value::Number(n) => (n.as_f64()?, false),
        Value::String(s) => {
            let s = s.trim();
            let marked = s.ends_with('%');
            (s.trim_end_matches('%').trim().parse::<f64>().ok()?, marked)
        }
        _ => return None,
    };
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let pct = if number <= 1.0 && !marked_percent {
        number * 100.0
    } else {
        number
    };
    Some(pct.round().clamp(0.0, 100.0) as i32)
}

/// Times as the cloud sends them: RFC 3339 (`2024-11-06T06:19:43.195Z`), the old IMS form
/// (`04-Jun-2015 18:11:06:586`), or empty. Anything else is treated as absent, never as an error.
pub fn parse_time(value: &Value) -> Option<Timestamp> {
    if let Some(millis) = value.as_i64() {
        return epoch_millis(millis);
    }
    let raw = value.as_str()?.trim();
    if raw.is_empty() {
        return None;
    }
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Some(ts);
    }
    // DCS sends epoch milliseconds as a string (`"1587349436000"`).
    if raw.len() >= 12 && raw.len() <= 14 && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse().ok().and_then(epoch_millis);
    }
    // The database family: `2018-08-06T10:41:14+0800` (an offset without colon).
    if let Ok(ts) = Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", raw) {
        return Some(ts);
    }
    // The old IMS form has milliseconds after a colon; jiff's strptime wants them after a dot.
    let normalized = match raw.rsplit_once(':') {
        Some((head, millis)) if millis.len() == 3 && head.len() == 20 => format!("{head}.{millis}"),
        _ => raw.to_string(),
    };
    for format in [
        "%d-%b-%Y %H:%M:%S%.f",
        "%d-%b-%Y %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(dt) = jiff::civil::DateTime::strptime(format, &normalized)
            && let Ok(zoned) = dt.to_zoned(jiff::tz::TimeZone::UTC)
        {
            return Some(zoned.timestamp());
        }
    }
    None
}

/// Epoch milliseconds, only in a plausible range (2000 to 2100) so that a small number is not a time.
fn epoch_millis(millis: i64) -> Option<Timestamp> {
    const FROM: i64 = 946_684_800_000;
    const UNTIL: i64 = 4_102_444_800_000;
    (FROM..UNTIL)
        .contains(&millis)
        .then(|| Timestamp::from_millisecond(millis).ok())
        .flatten()
}

/// Full sub-job objects: EVS/ECS `sub_jobs`, IMS `sub_jobs_result`.
fn sub_job_values(entities: &Value) -> Vec<&Value> {
    ["sub_jobs", "sub_jobs_result"]
        .iter()
        .filter_map(|key| entities.get(*key).and_then(Value::as_array))
        .flatten()
        .filter(|v| v.is_object())
        .collect()
}

fn summarize_sub_jobs(api: &ServiceApi, entities: &Value, values: &[&Value]) -> Option<SubJobs> {
    let listed_ids = entities
        .get("sub_jobs_list")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    let declared_total = entities
        .get("sub_jobs_total")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0);
    let total = (values.len() as i64)
        .max(listed_ids as i64)
        .max(declared_total);
    if total == 0 {
        return None;
    }
    // Count every sub-job, but build (and copy strings of) only the ones listed.
    let (mut succeeded, mut failed) = (0i32, 0i32);
    for value in values {
        match sub_job_state(api, value) {
            Some(JobState::Success) => succeeded = succeeded.saturating_add(1),
            Some(state) if is_failure(&state) => failed = failed.saturating_add(1),
            _ => {}
        }
    }
    Some(SubJobs {
        total: i32::try_from(total).unwrap_or(i32::MAX),
        succeeded,
        failed,
        items: values
            .iter()
            .take(crate::crd::MAX_LISTED_SUB_JOBS)
            .map(|v| sub_job_status(api, v))
            .collect(),
    })
}

fn sub_job_status(api: &ServiceApi, value: &Value) -> SubJobStatus {
    let entities = value.get("entities");
    let resource_id = entities.and_then(|e| {
        first_text(
            &[e.get("image_id"), e.get("volume_id"), e.get("server_id")],
            MAX_ID_LEN,
        )
        .or_else(|| {
            api.produced
                .iter()
                .find_map(|(field, _)| text(e.get(*field), MAX_ID_LEN))
        })
    });
    SubJobStatus {
        job_id: text(value.get("job_id"), MAX_ID_LEN),
        job_type: text(value.get("job_type"), MAX_NAME_LEN),
        status: text(value.get("status"), MAX_STATUS_LEN).map(|s| s.to_ascii_uppercase()),
        resource_id,
        error_code: first_text(
            &[
                value.get("error_code"),
                entities.and_then(|e| e.get("error_code")),
            ],
            MAX_NAME_LEN,
        ),
        fail_reason: first_text(
            &[
                value.get("fail_reason"),
                entities.and_then(|e| e.get("errorcode_message")),
                entities.and_then(|e| e.get("error")),
            ],
            MAX_MESSAGE_LEN,
        ),
    }
}

/// IMS job types that add, update or delete members of an existing (shared) image: their
/// `entities.results` name that image, which they act on and do not produce.
const IMAGE_MEMBER_JOB_TYPES: [&str; 3] = [
    "imsAddImageMembersJob",
    "imsUpdateImageMembersJob",
    "imsDelImageMembersJob",
];

fn is_image_member_job(job_type: &str) -> bool {
    IMAGE_MEMBER_JOB_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(job_type))
}

/// The images an image-member job acted on (`entities.results[].image_id`), with each one's status.
fn member_targets(entities: &Value) -> Vec<TargetResource> {
    let mut seen = HashSet::new();
    entities
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|result| {
            let id = text(result.get("image_id"), MAX_ID_LEN)?;
            seen.insert(id.clone()).then(|| TargetResource {
                kind: "image".into(),
                id,
                status: text(result.get("status"), MAX_STATUS_LEN),
            })
        })
        .take(MAX_RESOURCES)
        .collect()
}

/// A sub-job's status in its service's words (CCE sub-jobs say `Success`, SFS Turbo's `success`).
fn sub_job_state(api: &ServiceApi, sub_job: &Value) -> Option<JobState> {
    sub_job
        .get("status")
        .and_then(Value::as_str)
        .map(|raw| api.state(raw))
}

fn is_failure(state: &JobState) -> bool {
    matches!(state, JobState::Fail | JobState::Cancelled)
}

/// Whether a sub-job succeeded: only then is what it names something it produced.
fn succeeded(api: &ServiceApi, sub_job: &Value) -> bool {
    sub_job_state(api, sub_job) == Some(JobState::Success)
}

/// Every id the job and its successful sub-jobs report, in document order, each once. `results` of an
/// image-member job are targets, not produced images (see [`member_targets`]).
fn produced_resources(
    api: &ServiceApi,
    entities: &Value,
    sub_jobs: &[&Value],
    member_job: bool,
) -> Vec<ProducedResource> {
    let mut found = Resources {
        api_fields: api.produced,
        ..Resources::default()
    };
    found.add_own_ids(entities, None);
    let results = if member_job {
        None
    } else {
        entities.get("results").and_then(Value::as_array)
    };
    for result in results.into_iter().flatten() {
        found.add(
            "image",
            text(result.get("image_id"), MAX_ID_LEN),
            None,
            None,
        );
    }
    for data_image in entities
        .get("__data_images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if found.is_full() {
            break;
        }
        found.add(
            "image",
            text(data_image.get("image_id"), MAX_ID_LEN),
            text(data_image.get("image_name"), MAX_NAME_LEN),
            None,
        );
    }
    // A failed sub-job's id (a volume that errored, say) is not something the job produced, nor is a
    // running one's yet: each sub-job's own status is in `subJobs.items`.
    for sub_job in sub_jobs.iter().filter(|v| succeeded(api, v)) {
        if found.is_full() {
            break;
        }
        if let Some(e) = sub_job.get("entities") {
            found.add_own_ids(e, text(sub_job.get("job_id"), MAX_ID_LEN));
        }
    }
    found.list
}

/// Produced resources without duplicates, at most [`MAX_RESOURCES`]: a set makes the duplicate check
/// constant time, so a hostile list of thousands costs linear time, and nothing past the cap is kept.
#[derive(Default)]
struct Resources {
    list: Vec<ProducedResource>,
    seen: HashSet<(&'static str, String)>,
    /// The service's own id fields and their kinds ([`ServiceApi::produced`]).
    api_fields: &'static [(&'static str, &'static str)],
}

impl Resources {
    fn is_full(&self) -> bool {
        self.list.len() >= MAX_RESOURCES
    }

    fn add(
        &mut self,
        kind: &'static str,
        id: Option<String>,
        name: Option<String>,
        sub_job_id: Option<String>,
    ) {
        let Some(id) = id else { return };
        if self.is_full() || !self.seen.insert((kind, id.clone())) {
            return;
        }
        self.list.push(ProducedResource {
            kind: kind.to_string(),
            id,
            name,
            sub_job_id,
        });
    }

    /// The ids an `entities` object names about itself.
    fn add_own_ids(&mut self, e: &Value, sub_job_id: Option<String>) {
        self.add(
            "image",
            text(e.get("image_id"), MAX_ID_LEN),
            text(e.get("image_name"), MAX_NAME_LEN),
            sub_job_id.clone(),
        );
        self.add(
            "volume",
            text(e.get("volume_id"), MAX_ID_LEN),
            text(e.get("name"), MAX_NAME_LEN),
            sub_job_id.clone(),
        );
        self.add(
            "server",
            text(e.get("server_id"), MAX_ID_LEN),
            None,
            sub_job_id.clone(),
        );
        self.add(
            "nic",
            text(e.get("nic_id"), MAX_ID_LEN),
            None,
            sub_job_id.clone(),
        );
        for (field, kind) in self.api_fields {
            let name = (*kind == "instance")
                .then(|| text(e.get("instance_name"), MAX_NAME_LEN))
                .flatten();
            self.add(
                kind,
                text(e.get(*field), MAX_ID_LEN),
                name,
                sub_job_id.clone(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> JobObservation {
        let path = format!(
            "{}/tests/fixtures/seeds/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).expect("fixture exists");
        JobObservation::parse(&body).expect("fixture parses")
    }

    /// fixture (tests/fixtures/services), service, state, progress, produced (kind, id), sub-jobs
    /// (total, succeeded, failed), error code or failure reason.
    type ServiceRow = (
        &'static str,
        Service,
        JobState,
        Option<i32>,
        &'static [(&'static str, &'static str)],
        Option<(i32, i32, i32)>,
        Option<&'static str>,
    );

    #[rustfmt::skip]
    const SERVICE_FIXTURES: &[ServiceRow] = &[
        ("ims-success", Service::Ims, JobState::Success, Some(100), &[("image", "7a3b3d4e-5f60-4a1b-9c2d-3e4f5a6b7c01")], None, None),
        ("ims-fail", Service::Ims, JobState::Fail, Some(35), &[], None, Some("IMG.0170")),
        ("ims-running", Service::Ims, JobState::Running, Some(60), &[], None, None),
        ("bms-success", Service::Bms, JobState::Success, Some(100), &[("server", "b1a5c0de-0001-4a1b-9c2d-000000000001"), ("server", "b1a5c0de-0001-4a1b-9c2d-000000000002")], Some((2, 2, 0)), None),
        ("bms-fail", Service::Bms, JobState::Fail, None, &[("server", "b1a5c0de-0001-4a1b-9c2d-000000000003")], None, Some("BMS.0085")),
        ("bms-subjobs", Service::Bms, JobState::Running, Some(50), &[("server", "b1a5c0de-0001-4a1b-9c2d-000000000004")], Some((2, 1, 0)), None),
        ("bms-pending-payment", Service::Bms, JobState::PendingPayment, None, &[], None, None),
        ("sdrs-success", Service::Sdrs, JobState::Success, Some(100), &[("protectedInstance", "5d0e1f2a-0002-4b3c-8d4e-000000000001"), ("protectionGroup", "5d0e1f2a-0002-4b3c-8d4e-0000000000aa"), ("nativeServer", "5d0e1f2a-0002-4b3c-8d4e-0000000000bb")], None, None),
        ("sdrs-fail", Service::Sdrs, JobState::Fail, None, &[("protectionGroup", "5d0e1f2a-0002-4b3c-8d4e-0000000000aa")], None, Some("SDRS.1301")),
        ("sdrs-subjobs", Service::Sdrs, JobState::Running, Some(50), &[("protectionGroup", "5d0e1f2a-0002-4b3c-8d4e-0000000000aa"), ("replicationPair", "5d0e1f2a-0002-4b3c-8d4e-000000000002")], Some((2, 1, 0)), None),
        ("deh-success", Service::Deh, JobState::Success, Some(100), &[("dedicatedHost", "de11c0de-0003-4c5d-9e6f-000000000001")], None, None),
        ("deh-fail", Service::Deh, JobState::Fail, None, &[], None, Some("DEH.0008")),
        ("deh-subjobs", Service::Deh, JobState::Running, Some(100), &[("dedicatedHost", "de11c0de-0003-4c5d-9e6f-000000000002")], Some((2, 1, 1)), None),
        ("eip-success", Service::Eip, JobState::Success, Some(100), &[("publicip", "e1b0c0de-0004-4d5e-8f70-000000000001")], Some((1, 1, 0)), None),
        ("eip-fail", Service::Eip, JobState::Fail, None, &[], None, Some("VPC.0507")),
        ("eip-subjobs", Service::Eip, JobState::Running, Some(50), &[("publicip", "e1b0c0de-0004-4d5e-8f70-000000000003")], Some((2, 1, 0)), None),
        ("rds-success", Service::Rds, JobState::Success, Some(100), &[("instance", "rds0ffee000000000000000001in01")], None, None),
        ("rds-fail", Service::Rds, JobState::Fail, None, &[("instance", "rds0ffee000000000000000002in01")], None, Some("the instance is frozen")),
        ("rds-running", Service::Rds, JobState::Running, Some(60), &[("instance", "rds0ffee000000000000000003in01")], None, None),
        ("dds-running", Service::Dds, JobState::Running, Some(60), &[("instance", "dds0ffee000000000000000003in01")], None, None),
        ("gaussdb-fail", Service::Gaussdb, JobState::Fail, None, &[("instance", "gau0ffee000000000000000002in01")], None, Some("the instance is frozen")),
        ("opengauss-success", Service::Opengauss, JobState::Success, Some(100), &[("instance", "ope0ffee000000000000000001in01")], None, None),
        ("geminidb-running", Service::Geminidb, JobState::Running, Some(60), &[("instance", "gem0ffee0000000000000003in02")], None, None),
        ("dcs-success", Service::Dcs, JobState::Success, Some(100), &[], None, None),
        ("dcs-fail", Service::Dcs, JobState::Fail, None, &[], None, Some("the standby node is not in sync")),
        ("dcs-running", Service::Dcs, JobState::Running, None, &[], None, None),
        ("cce-success", Service::Cce, JobState::Success, Some(100), &[("node", "cce0n0de-0006-11f0-9a1b-000000000001")], Some((2, 2, 0)), None),
        ("cce-fail", Service::Cce, JobState::Fail, None, &[("cluster", "cce0c1a5-0006-11f0-9a1b-0255ac100002")], Some((1, 0, 1)), Some("subnet has no free IP address")),
        ("cce-subjobs", Service::Cce, JobState::Running, Some(50), &[("node", "cce0n0de-0006-11f0-9a1b-000000000002")], Some((2, 1, 0)), None),
        ("elb-success", Service::Elb, JobState::Success, Some(100), &[("resource", "e1b01b00-0007-4f80-9a1b-000000000001"), ("resource", "e1b01157-0007-4f80-9a1b-000000000001")], Some((1, 1, 0)), None),
        ("elb-fail", Service::Elb, JobState::Fail, None, &[], None, Some("ELB.8907")),
        ("elb-subjobs", Service::Elb, JobState::Running, Some(50), &[("resource", "e1b01b00-0007-4f80-9a1b-000000000002"), ("resource", "e1b01157-0007-4f80-9a1b-000000000002")], Some((2, 1, 0)), None),
        ("sfsturbo-success", Service::Sfsturbo, JobState::Success, Some(100), &[], Some((1, 1, 0)), None),
        ("sfsturbo-fail", Service::Sfsturbo, JobState::Fail, None, &[], None, Some("SFS.TURBO.9000")),
        ("sfsturbo-running", Service::Sfsturbo, JobState::Running, Some(50), &[], Some((2, 1, 0)), None),
        ("geminidb-fail", Service::Geminidb, JobState::Fail, None, &[("instance", "gem0ffee0000000000000002in02")], None, Some("the instance is frozen")),
    ];

    #[test]
    fn every_services_fixture_reads_as_its_sdk_model_says() {
        for (name, service, state, progress, produced, sub, failure) in SERVICE_FIXTURES {
            let path = format!(
                "{}/tests/fixtures/services/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let body = std::fs::read(&path).expect("fixture");
            let api = catalogue::api(*service);
            let job = JobObservation::parse_as(api, &body).expect(name);
            assert_eq!(&job.state, state, "{name}");
            assert_eq!(job.progress, *progress, "{name}: progress");
            let ids: Vec<_> = job
                .resources
                .iter()
                .map(|r| (r.kind.as_str(), r.id.as_str()))
                .collect();
            assert_eq!(ids, *produced, "{name}: produced");
            assert_eq!(
                job.sub_jobs
                    .as_ref()
                    .map(|s| (s.total, s.succeeded, s.failed)),
                *sub,
                "{name}: sub-jobs"
            );
            if let Some(failure) = failure {
                assert!(
                    job.error_code.as_deref() == Some(*failure)
                        || job.fail_reason.as_deref() == Some(*failure),
                    "{name}: {:?} {:?}",
                    job.error_code,
                    job.fail_reason
                );
            }
            assert!(job.job_id.is_some() && job.job_type.is_some(), "{name}");
            assert!(job.begin_time.is_some(), "{name}: begin time");
        }
        let rds = fixture_of(Service::Rds, "rds-success");
        assert_eq!(
            rds.begin_time,
            Some("2026-04-02T08:00:00Z".parse().expect("ts")),
            "+0800 offsets"
        );
        assert_eq!(rds.resources[0].name.as_deref(), Some("rds-prod-1"));
        let dcs = fixture_of(Service::Dcs, "dcs-success");
        assert_eq!(
            (dcs.begin_time, dcs.end_time),
            (
                Some("2026-04-02T08:00:00Z".parse().expect("ts")),
                Some("2026-04-02T08:00:41Z".parse().expect("ts"))
            ),
            "epoch milliseconds"
        );
        let sfs = fixture_of(Service::Sfsturbo, "sfsturbo-success");
        assert_eq!(
            sfs.end_time,
            Some("2026-04-02T08:03:00Z".parse().expect("ts"))
        );
        // CCE sub-jobs nest; every level is listed, each with its own phase.
        let cce = fixture_of(Service::Cce, "cce-success");
        let types: Vec<_> = cce
            .sub_jobs
            .expect("sub-jobs")
            .items
            .into_iter()
            .map(|s| (s.job_type, s.status))
            .collect();
        assert_eq!(
            types,
            [
                (Some("CreateNodeVM".into()), Some("SUCCESS".into())),
                (Some("InstallNodeSoftware".into()), Some("SUCCESS".into()))
            ]
        );
    }

    fn fixture_of(service: Service, name: &str) -> JobObservation {
        let path = format!(
            "{}/tests/fixtures/services/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        JobObservation::parse_as(catalogue::api(service), &std::fs::read(path).expect("read"))
            .expect("parses")
    }

    #[test]
    fn database_answers_without_a_job_and_odd_values() {
        let rds = catalogue::api(Service::Rds);
        assert_eq!(
            JobObservation::from_value_as(rds, &json!({"error_code": "DBS.1", "error_msg": "m"})),
            Err(ParseError::ErrorBody("DBS.1: m".into()))
        );
        assert_eq!(
            JobObservation::from_value_as(rds, &json!({"jobs": []})),
            Err(ParseError::MissingStatus)
        );
        let gemini = catalogue::api(Service::Geminidb);
        assert_eq!(
            JobObservation::from_value_as(gemini, &json!({"jobs": [], "total_count": 0})),
            Err(ParseError::NoSuchJob)
        );
        let job = JobObservation::from_value_as(
            rds,
            &json!({"job": {"id": "j", "status": "Queued", "process": "1%"}}),
        )
        .expect("job");
        assert_eq!(
            job.state,
            JobState::Other("Queued".into()),
            "unknown words run"
        );
        assert_eq!(job.progress, Some(1), "1% is not a fraction");
    }

    #[test]
    fn elb_rollbacks_and_cancels_are_not_successes() {
        let elb = catalogue::api(Service::Elb);
        for (word, state) in [
            ("ROLLBACKING", JobState::Running),
            ("COMPLETE", JobState::Fail),
            ("ROLLBACK_FAIL", JobState::Fail),
            ("CANCEL", JobState::Cancelled),
        ] {
            let job = JobObservation::from_value_as(
                elb,
                &json!({"job": {"status": word, "job_id": "j", "sub_jobs": "not a list"}}),
            )
            .expect("job");
            assert_eq!(job.state, state, "{word}");
        }
        let sfs = catalogue::api(Service::Sfsturbo);
        let waiting =
            JobObservation::from_value_as(sfs, &json!({"status": "waiting", "job_id": "j"}))
                .expect("job");
        assert_eq!(waiting.state, JobState::Init);
    }

    #[test]
    fn cce_sub_jobs_nested_without_end_are_bounded() {
        // A chain nested 100 deep is read 4 levels deep, in linear time.
        let mut job = json!({"metadata": {"uid": "leaf"}, "spec": {"type": "CreateNodeVM"}, "status": {"phase": "Running"}});
        for i in 0..100 {
            job = json!({"metadata": {"uid": format!("j{i}")}, "spec": {"type": "T", "subJobs": [job]}, "status": {"phase": "Running"}});
        }
        let parsed =
            JobObservation::from_value_as(catalogue::api(Service::Cce), &job).expect("job");
        assert_eq!(parsed.sub_jobs.expect("sub-jobs").total, 4);
    }

    #[test]
    fn times_in_epoch_milliseconds_and_numeric_offsets() {
        assert_eq!(
            parse_time(&json!("1587349436000")),
            Some("2020-04-20T02:23:56Z".parse().expect("ts"))
        );
        assert_eq!(
            parse_time(&json!(1587349436000_i64)),
            Some("2020-04-20T02:23:56Z".parse().expect("ts"))
        );
        assert_eq!(parse_time(&json!(17)), None);
        assert_eq!(
            parse_time(&json!("2018-08-06T10:41:14+0800")),
            Some("2018-08-06T02:41:14Z".parse().expect("ts"))
        );
    }

    #[test]
    fn every_seed_example_parses_as_a_finished_job() {
        let dir = format!("{}/tests/fixtures/seeds", env!("CARGO_MANIFEST_DIR"));
        let mut parsed = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if path.extension().and_then(|e| e.to_str()) != Some("json")
                || name.contains("error-body")
            {
                continue;
            }
            let job = JobObservation::parse(&std::fs::read(&path).expect("read")).expect(&name);
            assert!(job.job_id.is_some() && job.job_type.is_some(), "{name}");
            parsed += 1;
        }
        assert!(parsed >= 19, "only {parsed} fixtures parsed");
    }

    #[test]
    fn ims_create_image_reports_image_and_times() {
        let job = fixture("huawei-ims-imsCreateImageByInstance");
        assert_eq!(job.state, JobState::Success);
        assert_eq!(
            job.image_id.as_deref(),
            Some("3f7185de-b59a-4bb8-aa1d-7a513528b0e9")
        );
        assert_eq!(job.image_name.as_deref(), Some("test"));
        assert_eq!(
            job.begin_time,
            Some("2024-11-06T06:19:43.195Z".parse().expect("ts"))
        );
        assert_eq!(
            job.end_time,
            Some("2024-11-06T06:23:25.158Z".parse().expect("ts"))
        );
        assert_eq!(job.progress, Some(100));
        assert_eq!(job.error_code, None);
    }

    #[test]
    fn legacy_otc_shape_parses_old_time_format_and_fraction_progress() {
        let job = fixture("otc-ims-legacy-createImageByInstance");
        assert_eq!(
            job.begin_time,
            Some("2015-06-04T18:11:06.586Z".parse().expect("ts"))
        );
        assert_eq!(job.end_time, None, "empty end_time is absent");
        assert_eq!(
            job.current_task.as_deref(),
            Some("CreateImageByInstanceTask")
        );
        assert_eq!(
            job.image_id.as_deref(),
            Some("e9e91bff-14b6-4a0b-8377-4ed0813e3360")
        );
        let ids: Vec<_> = job.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "e9e91bff-14b6-4a0b-8377-4ed0813e3360",
                "49e9447f-7dff-41e0-8036-f66fe5488c8b"
            ]
        );
    }

    #[test]
    fn running_job_keeps_fractional_progress() {
        let job = JobObservation::from_value(&json!({
            "status": "RUNNING", "job_id": "j", "job_type": "t",
            "entities": {"process_percent": 0.2, "current_task": "Copy"}
        }))
        .expect("parses");
        assert_eq!(job.progress, Some(20));
        assert_eq!(job.state, JobState::Running);
    }

    #[test]
    fn ims_ova_sub_jobs_results_list_the_image() {
        let job = fixture("huawei-ims-imsImportOvaImageJob");
        assert_eq!(
            job.image_id.as_deref(),
            Some("fc496c19-40c2-4220-8b1a-eba9d53fca7b")
        );
        let sub = job.sub_jobs.expect("sub-jobs");
        assert_eq!((sub.total, sub.succeeded, sub.failed), (1, 1, 0));
        assert_eq!(
            job.resources[0].sub_job_id.as_deref(),
            Some("9a175ac892fa13420193006c29e133f0")
        );
    }

    #[test]
    fn evs_batch_lists_every_volume() {
        let job = fixture("huawei-evs-batchCreateVolume");
        let ids: Vec<_> = job
            .resources
            .iter()
            .filter(|r| r.kind == "volume")
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "0b549095-4937-4849-8e4c-52aa027d64f7",
                "e7bca1a2-d3ed-434f-86f4-a1f11aa80072"
            ]
        );
        assert_eq!(
            job.volume_id.as_deref(),
            Some("0b549095-4937-4849-8e4c-52aa027d64f7")
        );
        assert_eq!(job.sub_jobs.expect("sub-jobs").total, 2);
    }

    #[test]
    fn ecs_create_server_reports_server_from_sub_job() {
        let job = fixture("huawei-ecs-createServer");
        assert_eq!(
            job.server_id.as_deref(),
            Some("bae51750-0089-41a1-9b18-5c777978ec2d")
        );
        assert_eq!(job.sub_jobs.expect("sub-jobs").total, 1);
    }

    #[test]
    fn member_jobs_report_the_shared_image_as_a_target_not_as_produced() {
        for (name, image) in [
            (
                "huawei-ims-imsAddImageMembersJob",
                "30e55148-deb9-4923-adb9-91618de16ba0",
            ),
            (
                "huawei-ims-imsUpdateImageMembersJob",
                "6596628c-42d4-4ff1-8660-8ea5ae61f243",
            ),
        ] {
            let job = fixture(name);
            assert_eq!(job.image_id, None, "{name}: no produced image");
            assert!(job.resources.is_empty(), "{name}: {:?}", job.resources);
            assert_eq!(job.primary_id(), None, "{name}");
            assert_eq!(
                job.targets,
                [TargetResource {
                    kind: "image".into(),
                    id: image.into(),
                    status: Some("success".into()),
                }],
                "{name}"
            );
        }
        let deleted = fixture("huawei-ims-imsDelImageMembersJob");
        assert_eq!(deleted.image_id, None);
        assert!(deleted.resources.is_empty() && deleted.targets.is_empty());
        // Other jobs' `results` are images they made (the old OTC example).
        let legacy = fixture("otc-ims-legacy-createImageByInstance");
        assert!(legacy.targets.is_empty());
    }

    #[test]
    fn a_failed_job_keeps_its_last_real_progress() {
        let failed = JobObservation::from_value(&json!({
            "status": "FAIL", "job_id": "j", "job_type": "batchCreateVolume",
            "entities": {"sub_jobs": [
                {"status": "SUCCESS", "job_id": "a", "entities": {"volume_id": "v1"}},
                {"status": "FAIL", "job_id": "b", "entities": {"volume_id": "v2"}}
            ]}
        }))
        .expect("parses");
        assert_eq!(failed.progress, None, "not 100: it did not complete");
        // What the cloud itself reported on the failed job is kept.
        let reported = JobObservation::from_value(&json!({
            "status": "FAIL", "job_id": "j", "entities": {"process_percent": 0.4}
        }))
        .expect("parses");
        assert_eq!(reported.progress, Some(40));
        // While it runs, finished sub-jobs still measure how far it has come.
        let running = JobObservation::from_value(&json!({
            "status": "RUNNING", "job_id": "j",
            "entities": {"sub_jobs": [{"status": "FAIL"}, {"status": "RUNNING"}]}
        }))
        .expect("parses");
        assert_eq!(running.progress, Some(50));
    }

    #[test]
    fn only_successful_sub_jobs_produce_resources_and_each_status_is_listed() {
        let job = JobObservation::from_value(&json!({
            "status": "RUNNING", "job_id": "j", "job_type": "createServer",
            "entities": {"sub_jobs_total": 3, "sub_jobs": [
                {"status": "SUCCESS", "job_id": "a", "entities": {"server_id": "s1"}},
                {"status": "RUNNING", "job_id": "b", "entities": {"server_id": "s2"}},
                {"status": "INIT", "job_id": "c", "entities": {"server_id": "s3"}}
            ]}
        }))
        .expect("parses");
        let ids: Vec<_> = job.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["s1"]);
        let sub = job.sub_jobs.expect("sub-jobs");
        let statuses: Vec<_> = sub
            .items
            .iter()
            .map(|s| (s.resource_id.as_deref(), s.status.as_deref()))
            .collect();
        assert_eq!(
            statuses,
            [
                (Some("s1"), Some("SUCCESS")),
                (Some("s2"), Some("RUNNING")),
                (Some("s3"), Some("INIT"))
            ]
        );
    }

    #[test]
    fn failed_batch_takes_reason_from_failed_sub_job() {
        let job = JobObservation::from_value(&json!({
            "status": "FAIL", "job_id": "j", "job_type": "batchCreateVolume", "error_code": null, "fail_reason": null,
            "entities": {"sub_jobs": [
                {"status": "SUCCESS", "job_id": "a", "entities": {"volume_id": "v1"}},
                {"status": "FAIL", "job_id": "b", "entities": {"volume_id": "v2"}, "error_code": "EVS.2024", "fail_reason": "quota exceeded"}
            ]}
        }))
        .expect("parses");
        assert_eq!(job.error_code.as_deref(), Some("EVS.2024"));
        let ids: Vec<_> = job.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["v1"],
            "the failed sub-job's volume is not a produced resource"
        );
        assert_eq!(job.fail_reason.as_deref(), Some("quota exceeded"));
        let sub = job.sub_jobs.expect("sub-jobs");
        assert_eq!((sub.total, sub.succeeded, sub.failed), (2, 1, 1));
        assert_eq!(job.progress, None, "a failure is not 100 % done");
    }

    #[test]
    fn error_bodies_and_garbage_are_errors_not_panics() {
        assert!(matches!(
            JobObservation::parse(br#"{"error": {"message": "XXXX", "code": "XXX"}}"#),
            Err(ParseError::ErrorBody(m)) if m == "XXX: XXXX"
        ));
        assert!(matches!(
            JobObservation::parse(
                br#"{"error_msg": "throttled", "error_code": "APIGW.0308", "request_id": "r"}"#
            ),
            Err(ParseError::ErrorBody(_))
        ));
        assert!(matches!(
            JobObservation::parse(b"{\"status\": \"RUNN"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            JobObservation::parse(b"[1,2]"),
            Err(ParseError::NotAnObject)
        ));
        assert!(matches!(
            JobObservation::parse(b"{}"),
            Err(ParseError::MissingStatus)
        ));
    }

    #[test]
    fn odd_values_are_tolerated() {
        let job = JobObservation::from_value(&json!({
            "status": "QUEUED", "entities": null, "begin_time": "not a time", "end_time": 17,
            "error_code": 42
        }))
        .expect("parses");
        assert_eq!(job.state, JobState::Other("QUEUED".into()));
        assert_eq!(job.begin_time, None);
        assert_eq!(job.error_code.as_deref(), Some("42"));
        assert_eq!(percent(&json!("45%")), Some(45));
        assert_eq!(percent(&json!(f64::MAX)), Some(100));
        assert_eq!(percent(&json!(-1)), None);
    }

    /// A hostile answer just under the client's 4 MiB cap: thousands of produced resources (duplicates
    /// included), huge strings everywhere, quotes and control characters that JSON escaping inflates.
    pub(crate) fn hostile_body(status: &str) -> Vec<u8> {
        let huge = |c: &str, n: usize| c.repeat(n);
        let sub_jobs: Vec<Value> = (0..3000)
            .map(|i| {
                json!({
                    "status": if i % 7 == 0 { "FAIL" } else { "SUCCESS" },
                    "job_id": format!("{i}{}", "j".repeat(200)),
                    "job_type": huge("\"", 20),
                    "fail_reason": huge("\u{1}", 20),
                    // Every id twice: the duplicate check runs on all of them.
                    "entities": {"volume_id": format!("{}{}", i / 2, "v".repeat(150)), "name": huge("\"", 150)}
                })
            })
            .collect();
        let body = json!({
            "status": status,
            "job_id": huge("j", 100_000),
            "job_type": huge("\"", 100_000),
            "error_code": huge("e", 50_000),
            "fail_reason": huge("\u{1}", 50_000),
            "entities": {
                "current_task": huge("t", 100_000),
                "image_name": huge("n", 100_000),
                "sub_jobs": sub_jobs,
            }
        });
        let bytes = serde_json::to_vec(&body).expect("json");
        assert!(
            bytes.len() > 3 * 1024 * 1024 && bytes.len() < 4 * 1024 * 1024,
            "{}",
            bytes.len()
        );
        bytes
    }

    #[test]
    fn a_hostile_answer_is_bounded_in_what_it_keeps_and_the_status_stays_small() {
        let cj = crate::test_support::cloudjob("hostile");
        let mut largest = 0;
        for status in [
            "RUNNING",
            "SUCCESS",
            "FAIL",
            "\u{1}".repeat(10_000).as_str(),
        ] {
            let job = JobObservation::parse(&hostile_body(status)).expect("a job");
            assert!(
                job.resources.len() <= MAX_RESOURCES,
                "{}",
                job.resources.len()
            );
            assert!(job.raw_status.len() <= MAX_STATUS_LEN);
            assert!(
                job.job_type
                    .as_ref()
                    .is_some_and(|t| t.len() <= MAX_NAME_LEN)
            );
            assert!(
                job.current_task
                    .as_ref()
                    .is_some_and(|t| t.len() <= MAX_NAME_LEN)
            );
            assert!(
                job.fail_reason
                    .as_ref()
                    .is_none_or(|t| t.len() <= MAX_MESSAGE_LEN)
            );
            let sub = job.sub_jobs.as_ref().expect("sub-jobs");
            assert_eq!(sub.total, 3000, "every sub-job is counted");
            assert_eq!(sub.items.len(), crate::crd::MAX_LISTED_SUB_JOBS);
            let next = crate::status::next_status(
                &cj,
                &crate::status::Outcome::Observed(&job),
                "2026-01-01T00:00:00Z".parse().expect("ts"),
            );
            let size = serde_json::to_vec(&next).expect("json").len();
            largest = largest.max(size);
        }
        assert!(
            largest < MAX_STATUS_BYTES,
            "status of {largest} bytes from a hostile answer"
        );
    }

    #[test]
    fn duplicates_are_dropped_in_linear_time() {
        // 50,000 distinct ids listed twice: quadratic dedup would compare 10^9 pairs.
        let sub_jobs: Vec<Value> = (0..100_000)
            .map(|i| json!({"status": "SUCCESS", "entities": {"server_id": format!("s{}", i % 50_000)}}))
            .collect();
        let started = std::time::Instant::now();
        let job = JobObservation::from_value(
            &json!({"status": "SUCCESS", "entities": {"sub_jobs": sub_jobs}}),
        )
        .expect("job");
        assert_eq!(job.resources.len(), MAX_RESOURCES);
        let ids: HashSet<_> = job.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), MAX_RESOURCES, "no duplicates");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn terminal_failure_strings_are_terminal() {
        for (raw, want) in [
            ("FAIL", JobState::Fail),
            ("failed", JobState::Fail),
            ("ERROR", JobState::Fail),
            ("CANCELLED", JobState::Cancelled),
            ("canceled", JobState::Cancelled),
            ("ABORTED", JobState::Cancelled),
        ] {
            let job = JobObservation::from_value(&json!({"status": raw})).expect("job");
            assert_eq!(job.state, want, "{raw}");
            assert!(job.state.is_terminal());
        }
        assert!(!JobState::parse("QUEUED").is_terminal());
    }

    #[test]
    fn only_the_documented_error_shapes_are_quoted() {
        let gw = json!({"error_code": "APIGW.0301", "error_msg": "bad", "request_id": "r"});
        assert_eq!(error_summary(&gw).as_deref(), Some("APIGW.0301: bad"));
        let svc = json!({"error": {"code": "IMG.0024", "message": "gone"}});
        assert_eq!(error_summary(&svc).as_deref(), Some("IMG.0024: gone"));
        for other in [
            json!({"message": "internal detail"}),
            json!({"code": "X", "message": "internal detail"}),
            json!({"status": 404, "path": "/internal"}),
        ] {
            assert_eq!(error_summary(&other), None, "{other}");
        }
        // A code that is not shaped like one is dropped, the message is cut.
        let odd = json!({"error": {"code": "<html>", "message": "m".repeat(10_000)}});
        assert_eq!(error_code(&odd), None);
        assert!(error_message(&odd).is_some_and(|m| m.len() <= MAX_MESSAGE_LEN));
    }

    #[test]
    fn bounded_cuts_on_a_boundary_and_drops_control_characters() {
        assert_eq!(bounded("a\u{1}b\nc", 10), "abc");
        let cut = bounded(&"é".repeat(100), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
        assert_eq!(bounded("short", 5), "short");
        assert_eq!(bounded("toolong", 2), "");
    }
}

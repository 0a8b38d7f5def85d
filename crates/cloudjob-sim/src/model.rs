//! Job specifications and the pure rendering of a job's JSON from its timeline and the current
//! simulated time. Nothing here does I/O or reads a clock, so a job costs nothing while idle and
//! every state is reproducible from `(timeline, now)`.

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::{add, secs};

/// A cloud service whose jobs API the simulator serves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    #[default]
    Ims,
    Evs,
    Ecs,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Ims, Service::Evs, Service::Ecs];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ims => "ims",
            Service::Evs => "evs",
            Service::Ecs => "ecs",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The service name is not one of `ims`, `evs`, `ecs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service {0:?} (expected ims, evs or ecs)")]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ims" => Ok(Service::Ims),
            "evs" => Ok(Service::Evs),
            "ecs" => Ok(Service::Ecs),
            _ => Err(UnknownService(s.to_owned())),
        }
    }
}

/// How `process_percent` (IMS only, a fraction 0..1 as in the docs' `0.20`) rises while RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProgressCurve {
    #[default]
    Linear,
    /// Smoothstep: slow start, fast middle, slow end.
    Ease,
    /// `n` equal jumps, like a job reporting per finished phase.
    Steps(u32),
    /// No `process_percent` field at all (the 2024 Huawei and 2022 OTC examples have none).
    None,
}

impl ProgressCurve {
    /// Progress at running fraction `t` in 0..=1, rounded to two decimals like the docs.
    fn at(self, t: f64) -> Option<f64> {
        let t = t.clamp(0.0, 1.0);
        let p = match self {
            ProgressCurve::Linear => t,
            ProgressCurve::Ease => t * t * (3.0 - 2.0 * t),
            ProgressCurve::Steps(n) if n > 0 => (t * f64::from(n)).floor() / f64::from(n),
            ProgressCurve::Steps(_) => t,
            ProgressCurve::None => return None,
        };
        Some((p * 100.0).round() / 100.0)
    }
}

/// The terminal state a job reaches at the end of its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "status")]
pub enum Outcome {
    #[default]
    #[serde(rename = "SUCCESS")]
    Success,
    #[serde(rename = "FAIL")]
    Fail {
        error_code: String,
        fail_reason: String,
    },
}

/// Sub-jobs of batch jobs (ECS `sub_jobs`, EVS `entities.sub_jobs`, IMS `sub_jobs_result`).
/// Sub-job `i` finishes at `(i + 1) / count` of the parent's running window (slightly before the
/// parent); the last `failing` ones end in FAIL. Sub-job failures do not change the parent's
/// [`Outcome`], which stays as configured (the clouds differ here, so tests choose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubJobs {
    pub count: u32,
    pub failing: u32,
    /// Defaults to the documented sub-job type of the parent (`createSingleServer`, ...).
    pub job_type: Option<String>,
    pub error_code: String,
    pub fail_reason: String,
}

impl Default for SubJobs {
    fn default() -> Self {
        Self {
            count: 1,
            failing: 0,
            job_type: None,
            error_code: "SIM.0001".into(),
            fail_reason: "simulated sub-job failure".into(),
        }
    }
}

/// Which documentation era the job imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeStyle {
    /// RFC 3339 with milliseconds (`2024-11-06T06:19:43.195Z`), `end_time: ""` until terminal.
    #[default]
    Huawei,
    /// The old OTC IMS form: times like `04-Jun-2015 18:11:06:586`, `end_time` always `""` (both
    /// OTC examples show `""` on a SUCCESS job), and IMS progress fields kept after the end.
    OtcLegacy,
}

/// A job to create, with its timeline. Times are simulated seconds (see the global time scale).
///
/// Timeline: `initial_status` (default `INIT`) for `start_delay_secs`, then `RUNNING` for
/// `duration_secs` with `process_percent` following `progress` and `current_task` walking
/// through `tasks`, then `outcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSpec {
    pub service: Service,
    pub project_id: String,
    pub job_type: String,
    /// Defaults to 32 random lowercase hex digits, like the clouds' ids.
    pub job_id: Option<String>,
    /// Status shown before RUNNING; any string (e.g. `PENDING_PAYMENT`) is allowed.
    pub initial_status: String,
    pub start_delay_secs: f64,
    pub duration_secs: f64,
    pub progress: ProgressCurve,
    pub tasks: Vec<String>,
    pub outcome: Outcome,
    pub sub_jobs: Option<SubJobs>,
    /// Ids of the produced resources (image/volume/server), one per sub-job for batch jobs;
    /// missing ones are generated UUIDs.
    pub produced_ids: Vec<String>,
    /// `image_name` for IMS image jobs (defaults to `test`, as in the docs' examples).
    pub name: Option<String>,
    pub time_style: TimeStyle,
    /// Merged verbatim into `entities` (e.g. EVS `size`/`volume_type`, IMS `__data_images`).
    pub extra_entities: Map<String, Value>,
    /// Overrides the global expiry (simulated seconds after the end).
    pub expiry_secs: Option<f64>,
}

impl Default for JobSpec {
    fn default() -> Self {
        Self {
            service: Service::Ims,
            project_id: String::new(),
            job_type: String::new(),
            job_id: None,
            initial_status: "INIT".into(),
            start_delay_secs: 0.0,
            duration_secs: 60.0,
            progress: ProgressCurve::Linear,
            tasks: Vec::new(),
            outcome: Outcome::Success,
            sub_jobs: None,
            produced_ids: Vec::new(),
            name: None,
            time_style: TimeStyle::Huawei,
            extra_entities: Map::new(),
            expiry_secs: None,
        }
    }
}

impl JobSpec {
    /// A job of `job_type` that runs 60 simulated seconds and succeeds.
    pub fn new(
        service: Service,
        project_id: impl Into<String>,
        job_type: impl Into<String>,
    ) -> Self {
        Self {
            service,
            project_id: project_id.into(),
            job_type: job_type.into(),
            ..Self::default()
        }
    }
    pub fn job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }
    pub fn start_delay_secs(mut self, secs: f64) -> Self {
        self.start_delay_secs = secs;
        self
    }
    pub fn duration_secs(mut self, secs: f64) -> Self {
        self.duration_secs = secs;
        self
    }
    pub fn progress(mut self, curve: ProgressCurve) -> Self {
        self.progress = curve;
        self
    }
    pub fn tasks<S: Into<String>>(mut self, tasks: impl IntoIterator<Item = S>) -> Self {
        self.tasks = tasks.into_iter().map(Into::into).collect();
        self
    }
    pub fn fail(mut self, error_code: impl Into<String>, fail_reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Fail {
            error_code: error_code.into(),
            fail_reason: fail_reason.into(),
        };
        self
    }
    pub fn sub_jobs(mut self, count: u32, failing: u32) -> Self {
        self.sub_jobs = Some(SubJobs {
            count,
            failing,
            ..SubJobs::default()
        });
        self
    }
    pub fn time_style(mut self, style: TimeStyle) -> Self {
        self.time_style = style;
        self
    }

    /// Checks what serde cannot: non-empty identifiers and sane durations.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.project_id.is_empty() || self.project_id.contains('/') {
            return Err("project_id must be non-empty and contain no '/'".into());
        }
        if self.job_type.is_empty() {
            return Err("job_type must be non-empty".into());
        }
        if let Some(id) = &self.job_id
            && (id.is_empty() || id.contains('/'))
        {
            return Err("job_id must be non-empty and contain no '/'".into());
        }
        for (name, v) in [
            ("start_delay_secs", self.start_delay_secs),
            ("duration_secs", self.duration_secs),
            ("expiry_secs", self.expiry_secs.unwrap_or(0.0)),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a finite number >= 0"));
            }
        }
        if let Some(s) = &self.sub_jobs
            && s.failing > s.count
        {
            return Err("sub_jobs.failing must be <= sub_jobs.count".into());
        }
        Ok(())
    }
}

/// The documented shape family of a job type: decides which `entities` fields appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `image_name` + `image_id`.
    ImageNamed,
    /// `image_id` only.
    ImageId,
    /// `results: [{image_id, status}]`.
    Members,
    /// `results: []`.
    MembersEmpty,
    /// `sub_jobs_result` + `sub_jobs_list`, sub-job entities `image_name` + `image_id`.
    ImsSubJobs,
    /// `volume_id`.
    Volume,
    /// `sub_jobs` of volume jobs.
    EvsSubJobs,
    /// `server_id`.
    Server,
    /// `sub_jobs_total` + `sub_jobs` of server jobs.
    EcsSubJobs,
}

/// Classifies `(service, job_type)` per the seed pages; returns the shape and the documented
/// sub-job type for batch jobs.
fn shape_of(service: Service, job_type: &str) -> (Shape, &'static str) {
    match (service, job_type) {
        (
            Service::Ims,
            "imsCreateImageByInstance"
            | "imsImportImageJob"
            | "imsVolumeCreateImageJob"
            | "imsImportDataImageJob"
            | "imsCreateWholeImageByInstanceJob"
            | "imsCreateWholeImageByBackupJob"
            | "imsCopyImageInRegionJob"
            | "imsCrossRegionCopyImageJob",
        ) => (Shape::ImageNamed, "imsImportImageJob"),
        (Service::Ims, "imsAddImageMembersJob" | "imsUpdateImageMembersJob") => {
            (Shape::Members, "")
        }
        (Service::Ims, "imsDelImageMembersJob") => (Shape::MembersEmpty, ""),
        (Service::Ims, "imsImportOvaImageJob") => (Shape::ImsSubJobs, "imsImportImageJob"),
        (Service::Ims, "imsVolumesToSysDataImagesJob") => {
            (Shape::ImsSubJobs, "imsCopyVolumeToImageJob")
        }
        // imsNativeImportImageJob, imsNativeExportImageJob, OTC createImageByInstance, others.
        (Service::Ims, _) => (Shape::ImageId, "imsImportImageJob"),
        (Service::Evs, "batchCreateVolume") => (Shape::EvsSubJobs, "createVolume"),
        (Service::Evs, "bulkDeleteVolume") => (Shape::EvsSubJobs, "deleteSingleVolume"),
        (Service::Evs, _) => (Shape::Volume, "createVolume"),
        (Service::Ecs, "createServer") => (Shape::EcsSubJobs, "createSingleServer"),
        (Service::Ecs, "deleteServer") => (Shape::EcsSubJobs, "deleteSingleServer"),
        (Service::Ecs, _) => (Shape::Server, "createSingleServer"),
    }
}

/// The job types of the seed pages, per service; used by tests and `GET /admin/job-types`.
pub const DOCUMENTED_JOB_TYPES: &[(Service, &str)] = &[
    (Service::Ims, "imsCreateImageByInstance"),
    (Service::Ims, "imsImportImageJob"),
    (Service::Ims, "imsImportOvaImageJob"),
    (Service::Ims, "imsVolumeCreateImageJob"),
    (Service::Ims, "imsVolumesToSysDataImagesJob"),
    (Service::Ims, "imsImportDataImageJob"),
    (Service::Ims, "imsCreateWholeImageByInstanceJob"),
    (Service::Ims, "imsCreateWholeImageByBackupJob"),
    (Service::Ims, "imsNativeImportImageJob"),
    (Service::Ims, "imsNativeExportImageJob"),
    (Service::Ims, "imsAddImageMembersJob"),
    (Service::Ims, "imsDelImageMembersJob"),
    (Service::Ims, "imsUpdateImageMembersJob"),
    (Service::Ims, "imsCopyImageInRegionJob"),
    (Service::Ims, "imsCrossRegionCopyImageJob"),
    (Service::Ims, "createImageByInstance"),
    (Service::Evs, "createVolume"),
    (Service::Evs, "batchCreateVolume"),
    (Service::Evs, "deleteVolume"),
    (Service::Evs, "extendVolume"),
    (Service::Evs, "bulkDeleteVolume"),
    (Service::Evs, "deleteSingleVolume"),
    (Service::Ecs, "createServer"),
];

/// 32 lowercase hex digits, the format of the clouds' job ids.
pub(crate) fn random_hex32() -> String {
    let v: u128 = rand::rng().random();
    format!("{v:032x}")
}

/// A random version-4 UUID, the format of image, volume and server ids.
pub(crate) fn random_uuid() -> String {
    let mut v: u128 = rand::rng().random();
    v = (v & !(0xf << 76)) | (0x4 << 76); // version 4
    v = (v & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A job spec with everything random resolved once, so every GET renders the same ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub spec: JobSpec,
    pub job_id: String,
    /// Simulated creation time (`begin_time`).
    pub created: Timestamp,
    pub run_start: Timestamp,
    pub end: Timestamp,
    pub produced_ids: Vec<String>,
    pub sub_job_ids: Vec<String>,
}

/// Where a job is on its timeline at a given time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Phase {
    Initial,
    /// Fraction of the running window elapsed, 0..1.
    Running(f64),
    Terminal,
}

impl Timeline {
    pub(crate) fn new(spec: JobSpec, created: Timestamp) -> Self {
        let job_id = spec.job_id.clone().unwrap_or_else(random_hex32);
        let run_start = add(created, secs(spec.start_delay_secs));
        let end = add(run_start, secs(spec.duration_secs));
        let (shape, _) = shape_of(spec.service, &spec.job_type);
        let subs = sub_count(&spec, shape);
        let wanted = subs.max(1) as usize;
        let mut produced_ids = spec.produced_ids.clone();
        while produced_ids.len() < wanted {
            produced_ids.push(random_uuid());
        }
        let sub_job_ids = (0..subs).map(|_| random_hex32()).collect();
        Self {
            spec,
            job_id,
            created,
            run_start,
            end,
            produced_ids,
            sub_job_ids,
        }
    }

    pub(crate) fn phase(&self, now: Timestamp) -> Phase {
        if now < self.run_start {
            Phase::Initial
        } else if now < self.end {
            let total = self.end.duration_since(self.run_start).as_secs_f64();
            let done = now.duration_since(self.run_start).as_secs_f64();
            Phase::Running(done / total)
        } else {
            Phase::Terminal
        }
    }

    /// Ends the job at `now` with `outcome` (keeps whatever already happened).
    pub(crate) fn finish_at(&mut self, now: Timestamp, outcome: Outcome) {
        if now < self.run_start {
            self.run_start = now;
        }
        if now < self.end {
            self.end = now;
        }
        self.spec.outcome = outcome;
    }

    /// The status string at `now`.
    pub fn status(&self, now: Timestamp) -> &str {
        match self.phase(now) {
            Phase::Initial => &self.spec.initial_status,
            Phase::Running(_) => "RUNNING",
            Phase::Terminal => match self.spec.outcome {
                Outcome::Success => "SUCCESS",
                Outcome::Fail { .. } => "FAIL",
            },
        }
    }

    /// Renders the job as the cloud would return it at simulated time `now`.
    pub fn render(&self, now: Timestamp) -> Value {
        serde_json::to_value(self.rendered(now)).unwrap_or(Value::Null)
    }

    /// The response body bytes, top-level fields in the order of the 2024 Huawei examples
    /// (a `Value` would sort them).
    pub fn render_json(&self, now: Timestamp) -> Vec<u8> {
        serde_json::to_vec(&self.rendered(now)).unwrap_or_default()
    }

    fn rendered(&self, now: Timestamp) -> RenderedJob<'_> {
        let spec = &self.spec;
        let phase = self.phase(now);
        let style = spec.time_style;
        let (shape, default_sub_type) = shape_of(spec.service, &spec.job_type);
        let status = self.status(now).to_owned();
        let failed =
            matches!(phase, Phase::Terminal) && matches!(spec.outcome, Outcome::Fail { .. });
        let (error_code, fail_reason) = match (&spec.outcome, failed) {
            (
                Outcome::Fail {
                    error_code,
                    fail_reason,
                },
                true,
            ) => (json!(error_code), json!(fail_reason)),
            _ => (Value::Null, Value::Null),
        };
        let end_time = match (phase, style) {
            (Phase::Terminal, TimeStyle::Huawei) => fmt_time(self.end, style),
            _ => String::new(),
        };

        let mut entities = Map::new();
        let name = spec.name.clone().unwrap_or_else(|| "test".into());
        let first_id = self.produced_ids.first().cloned().unwrap_or_default();
        let succeeded = matches!(phase, Phase::Terminal) && !failed;
        let started = !matches!(phase, Phase::Initial);

        if spec.service == Service::Ims {
            // Progress fields are IMS-only in the docs; the 2024 examples drop them once done,
            // the old OTC example keeps them on a SUCCESS job.
            let keep = !matches!(phase, Phase::Terminal) || style == TimeStyle::OtcLegacy;
            if keep {
                let t = match phase {
                    Phase::Initial => 0.0,
                    Phase::Running(t) => t,
                    Phase::Terminal if failed => 0.999,
                    Phase::Terminal => 1.0,
                };
                if let Some(p) = spec.progress.at(t) {
                    entities.insert("process_percent".into(), json!(p));
                }
                if started && !spec.tasks.is_empty() {
                    let i = ((t * spec.tasks.len() as f64) as usize).min(spec.tasks.len() - 1);
                    entities.insert("current_task".into(), json!(spec.tasks[i]));
                }
            }
        }

        match shape {
            Shape::ImageNamed => {
                entities.insert("image_name".into(), json!(name));
                if succeeded {
                    entities.insert("image_id".into(), json!(first_id));
                }
                if succeeded && style == TimeStyle::OtcLegacy {
                    entities.insert(
                        "results".into(),
                        json!([{"image_id": first_id, "project_id": spec.project_id, "status": "success"}]),
                    );
                }
            }
            Shape::ImageId => {
                if style == TimeStyle::OtcLegacy && spec.name.is_some() {
                    entities.insert("image_name".into(), json!(name));
                }
                if succeeded {
                    entities.insert("image_id".into(), json!(first_id));
                }
            }
            Shape::Members if succeeded => {
                entities.insert(
                    "results".into(),
                    json!([{"image_id": first_id, "status": "success"}]),
                );
            }
            Shape::MembersEmpty | Shape::Members => {
                if succeeded || matches!(shape, Shape::MembersEmpty) {
                    entities.insert("results".into(), json!([]));
                }
            }
            Shape::Volume if started => {
                entities.insert("volume_id".into(), json!(first_id));
            }
            Shape::Server if started => {
                entities.insert("server_id".into(), json!(first_id));
            }
            Shape::Volume | Shape::Server => {}
            Shape::ImsSubJobs | Shape::EvsSubJobs | Shape::EcsSubJobs if started => {
                let subs = self.render_sub_jobs(now, shape, default_sub_type);
                match shape {
                    Shape::ImsSubJobs => {
                        entities.insert("sub_jobs_result".into(), Value::Array(subs));
                        entities.insert("sub_jobs_list".into(), json!(self.sub_job_ids));
                    }
                    Shape::EcsSubJobs => {
                        entities.insert("sub_jobs_total".into(), json!(self.sub_job_ids.len()));
                        entities.insert("sub_jobs".into(), Value::Array(subs));
                    }
                    _ => {
                        entities.insert("sub_jobs".into(), Value::Array(subs));
                    }
                }
            }
            Shape::ImsSubJobs | Shape::EvsSubJobs | Shape::EcsSubJobs => {}
        }
        if failed
            && spec.service == Service::Ims
            && let Outcome::Fail {
                error_code,
                fail_reason,
            } = &spec.outcome
        {
            // "If the status is abnormal, an error code and details will be returned."
            entities.insert("error_code".into(), json!(error_code));
            entities.insert("error".into(), json!(fail_reason));
        }
        for (k, v) in &spec.extra_entities {
            entities.insert(k.clone(), v.clone());
        }

        RenderedJob {
            job_id: &self.job_id,
            job_type: &spec.job_type,
            begin_time: fmt_time(self.created, style),
            end_time,
            status,
            error_code,
            fail_reason,
            entities: Value::Object(entities),
        }
    }

    fn render_sub_jobs(&self, now: Timestamp, shape: Shape, default_type: &str) -> Vec<Value> {
        let spec = &self.spec;
        let sub = spec.sub_jobs.clone().unwrap_or_default();
        let n = self.sub_job_ids.len().max(1);
        let window = self.end.duration_since(self.run_start);
        let sub_type = sub
            .job_type
            .clone()
            .unwrap_or_else(|| default_type.to_owned());
        let name = spec.name.clone().unwrap_or_else(|| "test".into());
        self.sub_job_ids
            .iter()
            .enumerate()
            .map(|(i, sub_id)| {
                // Staggered starts and ends, all a little before the parent's end.
                let begin = add(self.run_start, SignedDuration::from_millis(17 * i as i64));
                let share = 0.95 * (i + 1) as f64 / n as f64;
                let end = add(self.run_start, secs(window.as_secs_f64() * share));
                let end = end.max(begin);
                let fails = i >= n - sub.failing as usize;
                let done = now >= end;
                let status = match (done, fails) {
                    (false, _) => "RUNNING",
                    (true, false) => "SUCCESS",
                    (true, true) => "FAIL",
                };
                let resource = self.produced_ids.get(i).cloned().unwrap_or_default();
                let mut ent = Map::new();
                match shape {
                    Shape::ImsSubJobs => {
                        ent.insert("image_name".into(), json!(name));
                        if done && !fails {
                            ent.insert("image_id".into(), json!(resource));
                        }
                    }
                    Shape::EvsSubJobs => {
                        ent.insert("volume_id".into(), json!(resource));
                    }
                    _ => {
                        ent.insert("server_id".into(), json!(resource));
                        if done && fails {
                            ent.insert("errorcode_message".into(), json!(sub.fail_reason));
                        }
                    }
                }
                let (code, reason) = if done && fails {
                    (json!(sub.error_code), json!(sub.fail_reason))
                } else {
                    (Value::Null, Value::Null)
                };
                json!({
                    "status": status,
                    "entities": ent,
                    "job_id": sub_id,
                    "job_type": sub_type,
                    "begin_time": fmt_time(begin, spec.time_style),
                    "end_time": if done { fmt_time(end, spec.time_style) } else { String::new() },
                    "error_code": code,
                    "fail_reason": reason,
                })
            })
            .collect()
    }
}

fn sub_count(spec: &JobSpec, shape: Shape) -> u32 {
    match (&spec.sub_jobs, shape) {
        (Some(s), _) => s.count,
        (None, Shape::ImsSubJobs | Shape::EvsSubJobs | Shape::EcsSubJobs) => 1,
        (None, _) => 0,
    }
}

#[derive(Serialize)]
struct RenderedJob<'a> {
    job_id: &'a str,
    job_type: &'a str,
    begin_time: String,
    end_time: String,
    status: String,
    error_code: Value,
    fail_reason: Value,
    entities: Value,
}

/// Formats a time as the given documentation era does.
pub fn fmt_time(t: Timestamp, style: TimeStyle) -> String {
    match style {
        TimeStyle::Huawei => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        TimeStyle::OtcLegacy => t.strftime("%d-%b-%Y %H:%M:%S:%3f").to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    fn t0() -> Timestamp {
        "2024-11-06T06:19:43.195Z".parse().unwrap()
    }

    fn after(secs: i64) -> Timestamp {
        add(t0(), SignedDuration::from_secs(secs))
    }

    #[test]
    fn times_use_both_documented_formats() {
        assert_eq!(
            fmt_time(t0(), TimeStyle::Huawei),
            "2024-11-06T06:19:43.195Z"
        );
        let legacy: Timestamp = "2015-06-04T18:11:06.586999Z".parse().unwrap();
        assert_eq!(
            fmt_time(legacy, TimeStyle::OtcLegacy),
            "04-Jun-2015 18:11:06:586"
        );
    }

    #[test]
    fn timeline_goes_init_running_success_with_rising_progress() {
        let spec = JobSpec::new(Service::Ims, "p", "imsCreateImageByInstance")
            .start_delay_secs(10.0)
            .duration_secs(100.0)
            .tasks(["A", "B"]);
        let tl = Timeline::new(spec, t0());
        let at = |s: i64| tl.render(after(s));
        let init = at(5);
        assert_eq!(init["status"], "INIT");
        assert_eq!(init["end_time"], "");
        assert_eq!(init["error_code"], Value::Null);
        assert_eq!(init["entities"]["process_percent"], json!(0.0));
        let r1 = at(30);
        let r2 = at(90);
        assert_eq!(r1["status"], "RUNNING");
        assert_eq!(r1["entities"]["process_percent"], json!(0.2));
        assert_eq!(r1["entities"]["current_task"], "A");
        assert_eq!(r2["entities"]["process_percent"], json!(0.8));
        assert_eq!(r2["entities"]["current_task"], "B");
        let done = at(111);
        assert_eq!(done["status"], "SUCCESS");
        assert_eq!(done["end_time"], "2024-11-06T06:21:33.195Z");
        assert_eq!(done["entities"]["image_id"], json!(tl.produced_ids[0]));
        assert!(done["entities"].get("process_percent").is_none());
    }

    #[test]
    fn failed_ims_job_reports_codes_top_level_and_in_entities() {
        let spec = JobSpec::new(Service::Ims, "p", "imsImportImageJob")
            .duration_secs(1.0)
            .fail("IMG.0024", "boom");
        let v = Timeline::new(spec, t0()).render(after(2));
        assert_eq!(v["status"], "FAIL");
        assert_eq!(v["error_code"], "IMG.0024");
        assert_eq!(v["fail_reason"], "boom");
        assert_eq!(v["entities"]["error_code"], "IMG.0024");
        assert!(v["entities"].get("image_id").is_none());
    }

    #[test]
    fn ecs_batch_reports_sub_jobs_total_and_failing_sub_jobs() {
        let spec = JobSpec::new(Service::Ecs, "p", "createServer")
            .duration_secs(100.0)
            .sub_jobs(3, 1);
        let tl = Timeline::new(spec, t0());
        let mid = tl.render(after(40));
        assert_eq!(mid["entities"]["sub_jobs_total"], 3);
        let subs = mid["entities"]["sub_jobs"].as_array().unwrap();
        assert_eq!(subs[0]["status"], "SUCCESS");
        assert_eq!(subs[1]["status"], "RUNNING");
        assert_eq!(subs[1]["end_time"], "");
        let end = tl.render(after(100));
        let subs = end["entities"]["sub_jobs"].as_array().unwrap();
        assert_eq!(subs[2]["status"], "FAIL");
        assert_eq!(subs[2]["error_code"], "SIM.0001");
        assert_eq!(subs[2]["job_type"], "createSingleServer");
        assert_eq!(end["status"], "SUCCESS");
    }

    #[test]
    fn wire_body_keeps_the_documented_top_level_field_order() {
        let tl = Timeline::new(JobSpec::new(Service::Ims, "p", "imsImportImageJob"), t0());
        let body = String::from_utf8(tl.render_json(t0())).unwrap();
        let order = [
            "job_id",
            "job_type",
            "begin_time",
            "end_time",
            "status",
            "error_code",
            "fail_reason",
            "entities",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|k| body.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{body}");
    }

    #[test]
    fn steps_and_ease_curves() {
        assert_eq!(ProgressCurve::Steps(4).at(0.3), Some(0.25));
        assert_eq!(ProgressCurve::Ease.at(0.5), Some(0.5));
        assert!(ProgressCurve::Ease.at(0.1).unwrap() < 0.1);
        assert_eq!(ProgressCurve::None.at(0.5), None);
    }

    #[test]
    fn legacy_style_keeps_empty_end_time_and_progress_after_success() {
        let spec = JobSpec::new(Service::Ims, "p", "createImageByInstance")
            .duration_secs(1.0)
            .progress(ProgressCurve::None)
            .time_style(TimeStyle::OtcLegacy);
        let v = Timeline::new(spec, t0()).render(after(5));
        assert_eq!(v["end_time"], "");
        assert_eq!(v["status"], "SUCCESS");
        let keys: Vec<_> = v["entities"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["image_id"]);
    }

    #[test]
    fn generated_ids_look_like_the_clouds() {
        let id = random_hex32();
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn spec_deserializes_from_admin_json_with_defaults() {
        let spec: JobSpec = serde_json::from_value(json!({
            "service": "evs", "project_id": "p", "job_type": "batchCreateVolume",
            "progress": {"steps": 4},
            "outcome": {"status": "FAIL", "error_code": "EVS.1", "fail_reason": "x"},
            "sub_jobs": {"count": 2, "failing": 1}
        }))
        .unwrap();
        assert_eq!(spec.progress, ProgressCurve::Steps(4));
        assert_eq!(spec.initial_status, "INIT");
        assert_eq!(spec.sub_jobs.unwrap().error_code, "SIM.0001");
        assert!(serde_json::from_value::<JobSpec>(json!({"bogus": 1})).is_err());
    }
}

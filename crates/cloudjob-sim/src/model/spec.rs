//! What a job should do: the [`JobSpec`] given through the admin API or in Rust, and its parts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Map;
use serde_json::Value;

/// A cloud service whose jobs API the simulator serves. What differs between them (path, layout, host
/// names, the answer for an unknown job) is in one table, `model::services`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    #[default]
    Ims,
    Evs,
    Ecs,
    Bms,
    Sdrs,
    Deh,
    Eip,
    Rds,
    Dds,
    Gaussdb,
    Opengauss,
    Geminidb,
    Dcs,
    Cce,
    Elb,
    Sfsturbo,
}

impl Service {
    /// The services whose jobs can follow a timeline ([`JobSpec`]); the others serve fixtures only.
    pub const ALL: [Service; 3] = [Service::Ims, Service::Evs, Service::Ecs];

    /// Every service the simulator answers for.
    pub const EVERY: [Service; 16] = [
        Service::Ims,
        Service::Evs,
        Service::Ecs,
        Service::Bms,
        Service::Sdrs,
        Service::Deh,
        Service::Eip,
        Service::Rds,
        Service::Dds,
        Service::Gaussdb,
        Service::Opengauss,
        Service::Geminidb,
        Service::Dcs,
        Service::Cce,
        Service::Elb,
        Service::Sfsturbo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ims => "ims",
            Service::Evs => "evs",
            Service::Ecs => "ecs",
            Service::Bms => "bms",
            Service::Sdrs => "sdrs",
            Service::Deh => "deh",
            Service::Eip => "eip",
            Service::Rds => "rds",
            Service::Dds => "dds",
            Service::Gaussdb => "gaussdb",
            Service::Opengauss => "opengauss",
            Service::Geminidb => "geminidb",
            Service::Dcs => "dcs",
            Service::Cce => "cce",
            Service::Elb => "elb",
            Service::Sfsturbo => "sfsturbo",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The service name is not one the simulator serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown service {0:?} (expected one of ims, evs, ecs, bms, sdrs, deh, eip, rds, dds, gaussdb, opengauss, geminidb, dcs, cce, elb, sfsturbo)"
)]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::EVERY
            .into_iter()
            .find(|svc| svc.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownService(s.to_owned()))
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
    pub fn at(self, t: f64) -> Option<f64> {
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
        if !Service::ALL.contains(&self.service) {
            return Err(format!(
                "{} jobs are served from fixtures only (create_fixture_job): timelines exist for ims, evs and ecs",
                self.service
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_and_ease_curves() {
        assert_eq!(ProgressCurve::Steps(4).at(0.3), Some(0.25));
        assert_eq!(ProgressCurve::Ease.at(0.5), Some(0.5));
        assert!(ProgressCurve::Ease.at(0.1).unwrap() < 0.1);
        assert_eq!(ProgressCurve::None.at(0.5), None);
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

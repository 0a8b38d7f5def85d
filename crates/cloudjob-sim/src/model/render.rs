//! The pure rendering of a job's JSON from its timeline and the current simulated time. Nothing
//! here does I/O or reads a clock, so a job costs nothing while idle and every state is
//! reproducible from `(timeline, now)`.

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::catalogue::{Shape, shape_of};
use super::spec::Service;
use super::spec::{JobSpec, Outcome, TimeStyle};
use crate::clock::{add, secs};

/// 32 lowercase hex digits, the format of the clouds' job ids.
pub(crate) fn random_hex32() -> String {
    let v: u128 = rand::rng().random();
    format!("{v:032x}")
}

/// A random version-4 UUID, the format of image, volume and server ids.
fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
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

        let entities = self.entities(now, phase, failed);

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

    /// The `entities` object at `now`.
    fn entities(&self, now: Timestamp, phase: Phase, failed: bool) -> Map<String, Value> {
        let spec = &self.spec;
        let mut entities = Map::new();
        if spec.service == Service::Ims {
            self.insert_progress(&mut entities, phase, failed);
        }
        self.insert_results(&mut entities, now, phase, failed);
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

        entities
    }

    /// `process_percent` and `current_task`, which the docs show on IMS jobs only. The 2024
    /// examples drop them once done; the old OTC example keeps them on a SUCCESS job.
    fn insert_progress(&self, entities: &mut Map<String, Value>, phase: Phase, failed: bool) {
        let spec = &self.spec;
        let t = match phase {
            Phase::Initial => 0.0,
            Phase::Running(t) => t,
            Phase::Terminal if spec.time_style != TimeStyle::OtcLegacy => return,
            Phase::Terminal if failed => 0.999,
            Phase::Terminal => 1.0,
        };
        if let Some(p) = spec.progress.at(t) {
            entities.insert("process_percent".into(), json!(p));
        }
        if phase != Phase::Initial && !spec.tasks.is_empty() {
            let i = ((t * spec.tasks.len() as f64) as usize).min(spec.tasks.len() - 1);
            entities.insert("current_task".into(), json!(spec.tasks[i]));
        }
    }

    /// What the job produced or works on (image, members, volume, server, sub-jobs), in the shape
    /// of its type.
    fn insert_results(
        &self,
        entities: &mut Map<String, Value>,
        now: Timestamp,
        phase: Phase,
        failed: bool,
    ) {
        let spec = &self.spec;
        let style = spec.time_style;
        let (shape, sub_job_type) = shape_of(spec.service, &spec.job_type);
        let name = spec.name.clone().unwrap_or_else(|| "test".into());
        let first_id = self.produced_ids.first().cloned().unwrap_or_default();
        let succeeded = phase == Phase::Terminal && !failed;
        let started = phase != Phase::Initial;
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
                let subs = self.render_sub_jobs(now, shape, sub_job_type);
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
    }

    fn render_sub_jobs(&self, now: Timestamp, shape: Shape, sub_job_type: &str) -> Vec<Value> {
        let spec = &self.spec;
        let sub = spec.sub_jobs.clone().unwrap_or_default();
        let n = self.sub_job_ids.len().max(1);
        let window = self.end.duration_since(self.run_start);
        let sub_type = sub
            .job_type
            .clone()
            .unwrap_or_else(|| sub_job_type.to_owned());
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
        (None, shape) if shape.has_sub_jobs() => 1,
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
    use crate::model::ProgressCurve;
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
}

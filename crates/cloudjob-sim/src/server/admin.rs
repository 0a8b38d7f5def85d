//! The admin API under `/admin/`: plain JSON over the [`SimState`] control methods. Errors are
//! `{"error": "..."}`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::faults::{Fault, FaultScope};
use crate::model::{JobSpec, Outcome, Service, documented_job_types};
use crate::sync::lock;
use crate::{SimError, SimState};

pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/admin/health", get(health))
        .route("/admin/jobs", post(create_job).get(list_jobs))
        .route("/admin/jobs/{job_id}", get(get_job).delete(delete_job))
        .route("/admin/jobs/{job_id}/stats", get(job_stats))
        .route("/admin/jobs/{job_id}/finish", post(finish_job))
        .route("/admin/fixtures", post(create_fixture))
        .route("/admin/job-types", get(job_types))
        .route("/admin/stats", get(global_stats))
        .route("/admin/stats/reset", post(reset_stats))
        .route(
            "/admin/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/admin/clock", get(clock).put(set_clock))
        .route("/admin/reset", post(reset_all))
}

/// The answer to an admin request from a non-loopback peer.
pub(super) fn local_only() -> Response {
    error_json(StatusCode::FORBIDDEN, "the admin API is local only")
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match &self {
            SimError::NotFound(_) => StatusCode::NOT_FOUND,
            SimError::DuplicateJobId(_) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        error_json(status, &self.to_string())
    }
}

fn error_json(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

fn bad_json(rejection: JsonRejection) -> Response {
    error_json(StatusCode::BAD_REQUEST, &rejection.body_text())
}

/// `Json<T>` whose rejection has the admin API's error shape.
struct AdminJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AdminJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(AdminJson(value)),
            Err(rejection) => Err(bad_json(rejection)),
        }
    }
}

type Sim = State<Arc<SimState>>;

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn create_job(State(s): Sim, AdminJson(spec): AdminJson<JobSpec>) -> Response {
    match s.create_job(spec) {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureRequest {
    service: Service,
    project_id: String,
    /// The response body as JSON...
    body: Option<Value>,
    /// ...or as verbatim text (served byte for byte).
    raw: Option<String>,
}

async fn create_fixture(State(s): Sim, AdminJson(req): AdminJson<FixtureRequest>) -> Response {
    let created = match (req.body, req.raw) {
        (Some(body), None) => s.create_fixture_job(req.service, &req.project_id, body),
        (None, Some(raw)) => s.create_fixture_job_raw(req.service, &req.project_id, raw),
        _ => Err(SimError::InvalidSpec(
            "give exactly one of body or raw".into(),
        )),
    };
    match created {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_jobs(State(s): Sim) -> Response {
    Json(s.list_jobs()).into_response()
}

async fn get_job(State(s): Sim, Path(id): Path<String>) -> Response {
    match (s.job_body(&id), s.job_stats(&id)) {
        (Some(body), Some(stats)) => Json(json!({"body": body, "stats": stats})).into_response(),
        _ => SimError::NotFound(id).into_response(),
    }
}

async fn delete_job(State(s): Sim, Path(id): Path<String>) -> Response {
    if s.delete_job(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        SimError::NotFound(id).into_response()
    }
}

async fn job_stats(State(s): Sim, Path(id): Path<String>) -> Response {
    match s.job_stats(&id) {
        Some(stats) => Json(stats).into_response(),
        None => SimError::NotFound(id).into_response(),
    }
}

async fn finish_job(
    State(s): Sim,
    Path(id): Path<String>,
    body: Result<Json<Outcome>, JsonRejection>,
) -> Response {
    let outcome = match body {
        Ok(Json(outcome)) => outcome,
        // No body means "succeed now".
        Err(JsonRejection::MissingJsonContentType(_)) => Outcome::Success,
        Err(e) => return bad_json(e),
    };
    match s.finish_job(&id, outcome) {
        Ok(()) => Json(s.job_body(&id)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn job_types() -> Response {
    let types: Vec<Value> = documented_job_types()
        .map(|t| json!({"service": t.service, "job_type": t.job_type}))
        .collect();
    Json(types).into_response()
}

async fn global_stats(State(s): Sim) -> Response {
    Json(s.global_stats()).into_response()
}

async fn reset_stats(State(s): Sim) -> StatusCode {
    s.reset_stats();
    StatusCode::NO_CONTENT
}

// No `deny_unknown_fields`: serde does not support it together with `flatten`.
#[derive(Deserialize)]
struct FaultRequest {
    #[serde(default = "global_scope")]
    scope: FaultScope,
    #[serde(flatten)]
    fault: Fault,
}

fn global_scope() -> FaultScope {
    FaultScope::Global
}

async fn add_fault(State(s): Sim, AdminJson(req): AdminJson<Value>) -> Response {
    // Parsed in two steps so that a bad fault gets serde's message rather than axum's generic one.
    match serde_json::from_value::<FaultRequest>(req) {
        Ok(r) => {
            s.set_fault(r.scope, r.fault);
            StatusCode::CREATED.into_response()
        }
        Err(e) => error_json(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn list_faults(State(s): Sim) -> Response {
    let faults = lock(&s.faults);
    Json(json!({"global": faults.global, "jobs": faults.per_job})).into_response()
}

#[derive(Deserialize)]
struct ClearFaults {
    job: Option<String>,
}

async fn clear_faults(State(s): Sim, Query(q): Query<ClearFaults>) -> StatusCode {
    s.clear_faults(q.job.map(FaultScope::Job));
    StatusCode::NO_CONTENT
}

fn clock_json(s: &SimState) -> Json<Value> {
    Json(json!({
        "time_scale": s.clock.scale(),
        "sim_now": s.clock.sim_now(),
        "real_now": s.clock.real_now(),
    }))
}

async fn clock(State(s): Sim) -> Json<Value> {
    clock_json(&s)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    time_scale: f64,
}

async fn set_clock(State(s): Sim, AdminJson(req): AdminJson<SetClock>) -> Response {
    match s.set_time_scale(req.time_scale) {
        Ok(()) => clock_json(&s).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn reset_all(State(s): Sim) -> StatusCode {
    s.reset_all();
    StatusCode::NO_CONTENT
}

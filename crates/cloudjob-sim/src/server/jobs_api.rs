//! The jobs API: `GET /{service}/v1/{project_id}/jobs/{job_id}` (or unprefixed), answered as the
//! API gateway and the services would, after AK/SK verification and fault injection.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use jiff::Timestamp;
use serde_json::json;

use super::transport::{ConnControl, RequestId, UnsizedBody};
use crate::SimState;
use crate::faults::FaultKind;
use crate::job::{Job, JobBody};
use crate::model::Service;
use crate::model::services::{Family, UnknownJob, row_of, service_of_host_label};
use crate::stats::RequestRecord;
use crate::sync::lock;

const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// Jobs GETs have no body; the limit only protects against abuse.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Answers one request, in the gateway's order: the path, the signature, then a fault, then the
/// job as this request may see it. Every answer is counted once (see [`Exchange::answer`]).
pub(super) async fn handle(
    State(state): State<Arc<SimState>>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Extension(conn): Extension<ConnControl>,
    req: Request,
) -> Response {
    let arrived = state.clock.real_now();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return gateway_error(
            StatusCode::BAD_REQUEST,
            "APIGW.0201",
            "Request body too large",
            &rid,
        );
    };
    let route = parse_route(parts.uri.path(), parts.uri.query())
        .filter(|_| parts.method == Method::GET)
        // A host or prefix of one service on another family's path: that API does not exist there.
        .filter(|r| {
            r.service_for(&parts.headers)
                .is_none_or(|s| row_of(s).family == r.family)
        });
    let Some(route) = route else {
        lock(&state.global).record("unknown", 404, None, arrived);
        return gateway_error(
            StatusCode::NOT_FOUND,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment",
            &rid,
        );
    };
    let mut exchange = Exchange::new(&state, &parts.headers, route, arrived);
    exchange.path = parts
        .uri
        .path_and_query()
        .map_or_else(String::new, |p| p.as_str().to_owned());
    if let Err(e) = verify_signature(&state, &parts, &body, arrived) {
        return exchange.answer(unauthorized(&e, &rid), None, None);
    }

    let fault = injected_fault(&state, &exchange.route.job_id).await;
    let fault_name = fault.as_ref().map(FaultKind::name);
    if let Some(FaultKind::ConnectionReset) = fault {
        exchange.record(0, None, fault_name);
        conn.reset();
        // The connection task drops this future together with the connection.
        return std::future::pending().await;
    }
    if let Some(response) = fault.as_ref().and_then(|f| error_instead_of_job(f, &rid)) {
        return exchange.answer(response, None, fault_name);
    }

    let sim_now = state.clock.sim_now();
    match exchange.visible_job(sim_now) {
        Ok(job) => {
            let job_status = job.status_at(sim_now);
            let response = job_response(job, sim_now, fault.as_ref());
            exchange.answer(response, Some(job_status), fault_name)
        }
        Err(hidden) => exchange.answer(exchange.refusal(hidden), None, fault_name),
    }
}

/// One request to the jobs API: what it asks for, and where its outcome is counted.
struct Exchange<'a> {
    state: &'a SimState,
    route: Route,
    /// The job named by the path, whether or not this request may see it.
    job: Option<Arc<Job>>,
    /// From the path, else the Host header, else the job's own record.
    service: Option<Service>,
    arrived: Timestamp,
    /// The path and query asked, as recorded.
    path: String,
}

impl<'a> Exchange<'a> {
    fn new(state: &'a SimState, headers: &HeaderMap, route: Route, arrived: Timestamp) -> Self {
        let job = state.get_job(&route.job_id);
        // Without a prefix or a service host name (a client pointed at the bare address), a job of the
        // path's family answers as its own service's; another family's job stays unknown.
        let service = route.service_for(headers).or(job
            .as_ref()
            .map(|j| j.service)
            .filter(|s| row_of(*s).family == route.family));
        Self {
            state,
            route,
            job,
            service,
            arrived,
            path: String::new(),
        }
    }

    fn service_name(&self) -> &'static str {
        self.service.map_or("unknown", Service::as_str)
    }

    /// Counts the outcome globally and, if the job exists, on the job.
    fn record(&self, status: u16, job_status: Option<String>, fault: Option<&str>) {
        lock(&self.state.global).record(self.service_name(), status, fault, self.arrived);
        if let Some(job) = &self.job {
            lock(&job.counters).record(RequestRecord {
                at: self.arrived,
                status,
                job_status,
                fault: fault.map(str::to_owned),
                path: self.path.clone(),
            });
        }
    }

    /// Counts `response` under its own HTTP status and returns it.
    fn answer(
        &self,
        response: Response,
        job_status: Option<String>,
        fault: Option<&str>,
    ) -> Response {
        self.record(response.status().as_u16(), job_status, fault);
        response
    }

    /// The job, if this request may see it: it exists, has not expired, and belongs to the
    /// service asked and to the project in the path.
    fn visible_job(&self, sim_now: Timestamp) -> Result<&Job, Hidden> {
        match &self.job {
            Some(job)
                if job.is_expired(sim_now)
                    || self.service != Some(job.service)
                    || (self.route.ims_only && job.service != Service::Ims) =>
            {
                Err(Hidden::Unknown)
            }
            // IMS's newer path has no project in it: the credentials' project is the gateway's business.
            Some(job)
                if self
                    .route
                    .project_id
                    .as_ref()
                    .is_some_and(|p| *p != job.project_id) =>
            {
                Err(Hidden::OtherProject)
            }
            Some(job) => Ok(job),
            None => Err(Hidden::Unknown),
        }
    }

    /// The service's answer for a job this request may not see.
    fn refusal(&self, hidden: Hidden) -> Response {
        match hidden {
            Hidden::Unknown => not_found(self.service, &self.route.job_id),
            Hidden::OtherProject => service_error(
                StatusCode::FORBIDDEN,
                &format!("{}.0403", self.service_name().to_ascii_uppercase()),
                "You do not have the rights to perform the operation.",
            ),
        }
    }
}

/// Why a request may not see the job it names.
enum Hidden {
    /// Unknown, expired, or of another service.
    Unknown,
    OtherProject,
}

/// The fault to inject into this request, once its `slow` delays have passed.
async fn injected_fault(state: &SimState, job_id: &str) -> Option<FaultKind> {
    let decision = lock(&state.faults).decide(Some(job_id));
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    decision.fault
}

/// The error response of a fault that replaces the job altogether (throttling, server errors).
fn error_instead_of_job(fault: &FaultKind, rid: &str) -> Option<Response> {
    match fault {
        FaultKind::Throttle { retry_after_secs } => {
            let mut r = gateway_error(
                StatusCode::TOO_MANY_REQUESTS,
                "APIGW.0308",
                "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second",
                rid,
            );
            if let Some(secs) = retry_after_secs {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            Some(r)
        }
        FaultKind::ServerError { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(service_error(
                status,
                &format!("SIM.{}", status.as_u16()),
                status.canonical_reason().unwrap_or("error"),
            ))
        }
        _ => None,
    }
}

/// The 200 answer with the job's body at `sim_now`, damaged as a body fault says.
fn job_response(job: &Job, sim_now: Timestamp, fault: Option<&FaultKind>) -> Response {
    let full: Bytes = match &job.body {
        JobBody::Timeline(t) => Bytes::from(t.render_json(sim_now)),
        JobBody::Fixture { raw, .. } => raw.clone(),
    };
    let half = full.slice(..full.len() / 2);
    match fault {
        Some(FaultKind::MalformedJson) => json_response(
            StatusCode::OK,
            r#"{"status": "RUNNING", "entities": {"process_percent": 0.5,}, "job_id": }"#,
        ),
        Some(FaultKind::CutJson) => json_response(StatusCode::OK, half),
        Some(FaultKind::TruncatedBody) => {
            let mut r = json_response(StatusCode::OK, Body::new(UnsizedBody::new(half)));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
            r
        }
        Some(FaultKind::ErrorBodyOk) => service_error(
            StatusCode::OK,
            "SIM.0200",
            "An error body returned with status 200",
        ),
        _ => json_response(StatusCode::OK, full),
    }
}

/// A jobs API request: `[/{service}]/v1/{project}/jobs/{job}`, `[/{service}]/v1/cloudimages/job/{job}`
/// (IMS) or `[/{service}]/v3/{project}/jobs?id={job}` (the database family). The prefix is the
/// simulator's (one address for every service); official SDK clients drop it and name the service in
/// the Host header instead.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    /// From the path prefix.
    service: Option<Service>,
    family: Family,
    /// `None` on IMS's `/v1/cloudimages/job/{job}`, which has no project in the path.
    project_id: Option<String>,
    job_id: String,
    /// Only IMS answers this path (`/v1/cloudimages/job/{job}`).
    ims_only: bool,
}

impl Route {
    /// The service the request is for: the path prefix, else the Host header's first label.
    fn service_for(&self, headers: &HeaderMap) -> Option<Service> {
        let service = self.service.or_else(|| host_service(headers));
        if self.ims_only {
            return service
                .filter(|s| *s == Service::Ims)
                .or(Some(Service::Ims));
        }
        service
    }
}

fn parse_route(path: &str, query: Option<&str>) -> Option<Route> {
    let all: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (service, segs) = match all.split_first() {
        Some((first, rest)) if !matches!(*first, "v1" | "v2" | "v3" | "api") => {
            (Some(first.parse::<Service>().ok()?), rest)
        }
        _ => (None, all.as_slice()),
    };
    let id = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (family, project_id, job_id, ims_only) = match segs {
        ["v1", "cloudimages", "job", j] => (Family::ProjectJobsV1, None, id(j)?, true),
        ["v1", p, "sfs-turbo", "jobs", j] => (Family::SfsTurboJobs, Some(id(p)?), id(j)?, false),
        ["v2", p, "jobs", j] => (Family::ProjectJobsV2, Some(id(p)?), id(j)?, false),
        ["api", "v3", "projects", p, "jobs", j] => (Family::CceJobs, Some(id(p)?), id(j)?, false),
        ["v3", p, "elb", "jobs", j] => (Family::ElbJobs, Some(id(p)?), id(j)?, false),
        ["v1", p, "jobs", j] => (Family::ProjectJobsV1, Some(id(p)?), id(j)?, false),
        ["v3", p, "jobs"] => {
            let job = query?
                .split('&')
                .find_map(|pair| pair.strip_prefix("id="))
                .filter(|j| !j.is_empty() && !j.contains('%'))?;
            (Family::DatabaseQuery, Some(id(p)?), job.to_owned(), false)
        }
        _ => return None,
    };
    if ims_only && service.is_some_and(|s| s != Service::Ims) {
        return None;
    }
    Some(Route {
        service,
        family,
        project_id,
        job_id,
        ims_only,
    })
}

/// The service named by the Host header's first label (`ims.eu-de.otc.t-systems.com`,
/// `vpc.cn-north-4.myhuaweicloud.com` for EIP, `gaussdb-nosql...` for GeminiDB).
fn host_service(headers: &HeaderMap) -> Option<Service> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    service_of_host_label(host.split(['.', ':']).next()?)
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    r
}

fn gateway_error(status: StatusCode, code: &str, msg: &str, rid: &str) -> Response {
    let body = json!({"error_msg": msg, "error_code": code, "request_id": rid});
    json_response(status, body.to_string())
}

fn service_error(status: StatusCode, code: &str, msg: &str) -> Response {
    json_response(
        status,
        json!({"error": {"message": msg, "code": code}}).to_string(),
    )
}

/// What the service itself returns for a job id it does not know (the table in `model::services`).
fn not_found(service: Option<Service>, job_id: &str) -> Response {
    let message = format!("The job {job_id} does not exist.");
    match service.map(|s| row_of(s).unknown_job) {
        Some(UnknownJob::ServiceError { status, code }) if code == "Common.0011" => service_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            &format!("Query job failed, job id {job_id} is invalid."),
        ),
        Some(UnknownJob::ServiceError { status, code }) => service_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND),
            code,
            &message,
        ),
        Some(UnknownJob::FlatError { status, code }) => json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND),
            json!({"error_code": code, "error_msg": message}).to_string(),
        ),
        Some(UnknownJob::EmptyList) => json_response(
            StatusCode::OK,
            json!({"jobs": [], "total_count": 0}).to_string(),
        ),
        None => service_error(StatusCode::NOT_FOUND, "Common.0404", &message),
    }
}

fn unauthorized(err: &aksk::VerifyError, rid: &str) -> Response {
    use aksk::VerifyError as E;
    // Messages modelled on the real gateway's; the signature one echoes the canonical request so
    // client authors can diff it against theirs.
    let msg = match err {
        E::SignatureMismatch { canonical_request } => format!(
            "Incorrect IAM authentication information: verify aksk signature fail, canonicalRequest: {canonical_request}"
        ),
        E::ClockSkew { skew_seconds } => format!(
            "Incorrect IAM authentication information: x-sdk-date is out of range ({skew_seconds}s from server time, max 15 minutes)"
        ),
        E::MissingAuthorization => {
            "Incorrect IAM authentication information: Authorization not found in header".to_owned()
        }
        E::UnknownAccessKey => "Incorrect IAM authentication information: ak not found".to_owned(),
        other => format!("Incorrect IAM authentication information: {other}"),
    };
    gateway_error(StatusCode::UNAUTHORIZED, "APIGW.0301", &msg, rid)
}

/// `aksk::verify` against the simulator's clock (which may be a manual one) and configured skew.
fn verify_signature(
    state: &SimState,
    parts: &http::request::Parts,
    body: &[u8],
    now: Timestamp,
) -> Result<(), aksk::VerifyError> {
    aksk::verify(
        &parts.method,
        &parts.uri,
        &parts.headers,
        body,
        |ak| state.credentials.get(ak).cloned(),
        now,
        state.max_clock_skew,
    )
    .map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_service_prefix() {
        let route = |path, query| parse_route(path, query);
        let r = route("/ims/v1/p/jobs/j", None).unwrap();
        assert_eq!(
            (r.service, r.project_id.as_deref(), r.job_id.as_str()),
            (Some(Service::Ims), Some("p"), "j")
        );
        let r = route("/v1/p/jobs/j/", None).unwrap();
        assert_eq!((r.service, r.family), (None, Family::ProjectJobsV1));
        let r = route("/v1/cloudimages/job/j", None).unwrap();
        assert!(r.ims_only && r.project_id.is_none());
        assert!(route("/ecs/v1/cloudimages/job/j", None).is_none());
        let r = route("/rds/v3/p/jobs", Some("id=j1")).unwrap();
        assert_eq!(
            (r.service, r.family, r.job_id.as_str()),
            (Some(Service::Rds), Family::DatabaseQuery, "j1")
        );
        let r = route("/v3/p/jobs", Some("limit=1&id=j2")).unwrap();
        assert_eq!(r.job_id, "j2");
        assert_eq!(route("/v3/p/jobs", None), None);
        assert_eq!(route("/nope/v1/p/jobs/j", None), None);
        for (path, family) in [
            ("/dcs/v2/p/jobs/j", Family::ProjectJobsV2),
            ("/api/v3/projects/p/jobs/j", Family::CceJobs),
            ("/v3/p/elb/jobs/j", Family::ElbJobs),
            ("/sfsturbo/v1/p/sfs-turbo/jobs/j", Family::SfsTurboJobs),
        ] {
            let r = route(path, None).unwrap();
            assert_eq!((r.family, r.job_id.as_str()), (family, "j"), "{path}");
        }
        assert_eq!(route("/v1/p/jobs/", None), None);
        assert_eq!(route("/v3/p/jobs/j", None), None);
    }

    #[test]
    fn host_first_label_names_the_service() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("ims.eu-de.otc.t-systems.com"),
        );
        assert_eq!(host_service(&h), Some(Service::Ims));
        h.insert(header::HOST, HeaderValue::from_static("ecs:8443"));
        assert_eq!(host_service(&h), Some(Service::Ecs));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert_eq!(host_service(&h), None);
        h.insert(
            header::HOST,
            HeaderValue::from_static("vpc.cn-north-4.myhuaweicloud.com"),
        );
        assert_eq!(host_service(&h), Some(Service::Eip));
    }

    #[test]
    fn ecs_unknown_job_is_400_common_0011_others_404() {
        assert_eq!(
            not_found(Some(Service::Ecs), "x").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            not_found(Some(Service::Ims), "x").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            not_found(Some(Service::Evs), "x").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            not_found(Some(Service::Bms), "x").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            not_found(Some(Service::Rds), "x").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            not_found(Some(Service::Geminidb), "x").status(),
            StatusCode::OK
        );
    }
}

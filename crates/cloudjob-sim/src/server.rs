//! HTTP serving: the accept loop (hyper, so a fault can kill a connection), the jobs API with
//! AK/SK verification and fault injection, and the admin API.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower_service::Service as _;

use crate::model::{DOCUMENTED_JOB_TYPES, JobSpec, Outcome, Service};
use crate::state::{Fault, FaultKind, FaultScope, JobBody, RequestRecord, lock};
use crate::{SimError, SimState};

/// The request id of the current request, also sent as `X-Request-Id`.
#[derive(Clone)]
struct RequestId(String);

/// Lets a handler drop its connection without a response.
#[derive(Clone)]
struct ConnControl {
    kill: Arc<Notify>,
    reset: Arc<AtomicBool>,
}

const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// Accepts connections until the task is aborted (dropping the `JoinSet` aborts every connection).
pub(crate) async fn serve(listener: TcpListener, router: Router) {
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let control = ConnControl {
            kill: Arc::new(Notify::new()),
            reset: Arc::new(AtomicBool::new(false)),
        };
        let io = KillableStream {
            inner: stream,
            reset: control.reset.clone(),
        };
        let router = router.clone();
        conns.spawn(serve_connection(io, peer, control, router));
    }
}

async fn serve_connection(
    io: KillableStream,
    peer: SocketAddr,
    control: ConnControl,
    router: Router,
) {
    let kill = control.kill.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let control = control.clone();
        async move {
            let rid = crate::model::random_hex32();
            let mut req = req.map(Body::new);
            if req.uri().path().starts_with("/admin") && !peer.ip().is_loopback() {
                let mut resp = error_json(StatusCode::FORBIDDEN, "the admin API is local only");
                set_request_id(&mut resp, &rid);
                return Ok::<_, Infallible>(resp);
            }
            req.extensions_mut().insert(RequestId(rid.clone()));
            req.extensions_mut().insert(control);
            let mut resp = match router.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            set_request_id(&mut resp, &rid);
            Ok(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        // Dropping `conn` drops the socket; KillableStream turns that into an RST.
        () = kill.notified() => {}
    }
}

fn set_request_id(resp: &mut Response, rid: &str) {
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
}

/// A TCP stream that, once marked for reset, closes with SO_LINGER=0 (an RST) so the client sees
/// "connection reset" rather than a clean EOF. Normal connections close gracefully.
struct KillableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A body of unknown length (no size hint), so hyper trusts our `Content-Length` header even when
/// it lies; hyper then aborts the connection when the body ends early. The pause before the end
/// lets hyper flush the partial body first, so the client sees headers and a short body rather
/// than nothing.
struct UnsizedBody {
    chunk: Option<Bytes>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl UnsizedBody {
    fn new(chunk: Bytes) -> Self {
        Self {
            chunk: Some(chunk),
            pause: Some(Box::pin(tokio::time::sleep(
                std::time::Duration::from_millis(50),
            ))),
        }
    }
}

impl http_body::Body for UnsizedBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if let Some(chunk) = self.chunk.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
        }
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        Poll::Ready(None)
    }
}

pub(crate) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route(
            "/admin/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/admin/jobs", post(admin_create_job).get(admin_list_jobs))
        .route(
            "/admin/jobs/{job_id}",
            get(admin_get_job).delete(admin_delete_job),
        )
        .route("/admin/jobs/{job_id}/stats", get(admin_job_stats))
        .route("/admin/jobs/{job_id}/finish", post(admin_finish_job))
        .route("/admin/fixtures", post(admin_create_fixture))
        .route("/admin/job-types", get(admin_job_types))
        .route("/admin/stats", get(admin_global_stats))
        .route("/admin/stats/reset", post(admin_reset_stats))
        .route(
            "/admin/faults",
            get(admin_list_faults)
                .post(admin_add_fault)
                .delete(admin_clear_faults),
        )
        .route("/admin/clock", get(admin_clock).put(admin_set_clock))
        .route("/admin/reset", post(admin_reset_all))
        .fallback(jobs_api)
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Jobs API

/// `/{service}/v1/{project}/jobs/{job}` or `/v1/{project}/jobs/{job}`.
#[derive(Debug, PartialEq, Eq)]
struct Route<'a> {
    service: Option<Service>,
    project_id: &'a str,
    job_id: &'a str,
}

fn parse_route(path: &str) -> Option<Route<'_>> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        [svc, "v1", p, "jobs", j] if !p.is_empty() && !j.is_empty() => Some(Route {
            service: Some(svc.parse().ok()?),
            project_id: p,
            job_id: j,
        }),
        ["v1", p, "jobs", j] if !p.is_empty() && !j.is_empty() => Some(Route {
            service: None,
            project_id: p,
            job_id: j,
        }),
        _ => None,
    }
}

/// The service named by the Host header's first label (`ims.eu-de.otc.t-systems.com`).
fn host_service(headers: &HeaderMap) -> Option<Service> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    host.split(['.', ':']).next()?.parse().ok()
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

/// What the service itself returns for a job id it does not know.
fn not_found(service: Option<Service>, job_id: &str) -> Response {
    match service {
        Some(Service::Ecs) => service_error(
            StatusCode::BAD_REQUEST,
            "Common.0011",
            &format!("Query job failed, job id {job_id} is invalid."),
        ),
        Some(Service::Evs) => service_error(
            StatusCode::NOT_FOUND,
            "EVS.0404",
            &format!("The job {job_id} does not exist."),
        ),
        Some(Service::Ims) => service_error(
            StatusCode::NOT_FOUND,
            "IMG.0024",
            &format!("The job {job_id} does not exist."),
        ),
        None => service_error(
            StatusCode::NOT_FOUND,
            "Common.0404",
            &format!("The job {job_id} does not exist."),
        ),
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

/// `aksk::verify`, with `X-Sdk-Date` judged against the simulator's clock (which may be a manual
/// one) and its configured skew. aksk is given the request's own date as "now", so its own skew
/// check passes; the order of the checks stays the gateway's: header syntax, skew, key, signature.
fn verify_signature(
    state: &SimState,
    parts: &http::request::Parts,
    body: &[u8],
    now: Timestamp,
) -> Result<(), aksk::VerifyError> {
    use aksk::VerifyError as E;
    let signed_at = sdk_date(&parts.headers);
    let verified = aksk::verify(
        &parts.method,
        &parts.uri,
        &parts.headers,
        body,
        |ak| state.credentials.get(ak).cloned(),
        SystemTime::from(signed_at.unwrap_or(now)).into(),
        aksk::MAX_CLOCK_SKEW,
    );
    match (verified, signed_at) {
        (
            Err(
                e @ (E::MissingAuthorization
                | E::MalformedAuthorization(_)
                | E::UnsupportedAlgorithm(_)
                | E::MissingDate
                | E::MalformedDate(_)),
            ),
            _,
        ) => Err(e),
        (verified, Some(signed_at)) => {
            let skew = now.duration_since(signed_at);
            if skew.abs() > state.max_clock_skew {
                return Err(E::ClockSkew {
                    skew_seconds: skew.as_secs(),
                });
            }
            verified.map(drop)
        }
        (verified, None) => verified.map(drop),
    }
}

/// The `X-Sdk-Date` header (`20241106T061943Z`) as a time.
fn sdk_date(headers: &HeaderMap) -> Option<Timestamp> {
    let value = headers.get(aksk::SDK_DATE_HEADER)?.to_str().ok()?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", value).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

async fn jobs_api(
    State(state): State<Arc<SimState>>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Extension(control): Extension<ConnControl>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let arrived = state.clock.real_now();
    // Jobs GETs have no body; the limit only protects against abuse.
    let body = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return gateway_error(
                StatusCode::BAD_REQUEST,
                "APIGW.0201",
                "Request body too large",
                &rid,
            );
        }
    };
    let route = match parse_route(parts.uri.path()) {
        Some(r) if parts.method == Method::GET => r,
        _ => {
            lock(&state.global).record("unknown", 404, None, arrived);
            return gateway_error(
                StatusCode::NOT_FOUND,
                "APIGW.0101",
                "The API does not exist or has not been published in the environment",
                &rid,
            );
        }
    };
    let job = state.get_job(route.job_id);
    let service = route
        .service
        .or_else(|| host_service(&parts.headers))
        .or(job.as_ref().map(|j| j.service));
    let service_name = service.map_or("unknown", Service::as_str);

    // Every outcome below is recorded once, per job (if it exists) and globally.
    let record = |status: u16, job_status: Option<String>, fault: Option<&str>| {
        lock(&state.global).record(service_name, status, fault, arrived);
        if let Some(job) = &job {
            lock(&job.counters).record(RequestRecord {
                at: arrived,
                status,
                job_status,
                fault: fault.map(str::to_owned),
            });
        }
    };

    if let Err(e) = verify_signature(&state, &parts, &body, arrived) {
        record(401, None, None);
        return unauthorized(&e, &rid);
    }

    let decision = lock(&state.faults).decide(Some(route.job_id));
    if decision.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(decision.delay_ms)).await;
    }
    let fault_name = decision.fault.as_ref().map(FaultKind::name);
    match &decision.fault {
        Some(FaultKind::Throttle { retry_after_secs }) => {
            record(429, None, fault_name);
            let mut r = gateway_error(
                StatusCode::TOO_MANY_REQUESTS,
                "APIGW.0308",
                "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second",
                &rid,
            );
            if let Some(s) = retry_after_secs {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*s));
            }
            return r;
        }
        Some(FaultKind::ServerError { status }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            record(status.as_u16(), None, fault_name);
            return service_error(
                status,
                &format!("SIM.{}", status.as_u16()),
                status.canonical_reason().unwrap_or("error"),
            );
        }
        Some(FaultKind::ConnectionReset) => {
            record(0, None, fault_name);
            control.reset.store(true, Ordering::Relaxed);
            control.kill.notify_one();
            // The connection task drops this future together with the connection.
            return std::future::pending().await;
        }
        _ => {}
    }

    let Some(job) = job.as_ref() else {
        record(
            not_found(service, route.job_id).status().as_u16(),
            None,
            fault_name,
        );
        return not_found(service, route.job_id);
    };
    let sim_now = state.clock.sim_now();
    if job.is_expired(sim_now) || service.is_some_and(|s| s != job.service) {
        let r = not_found(service, route.job_id);
        record(r.status().as_u16(), None, fault_name);
        return r;
    }
    if job.project_id != route.project_id {
        record(403, None, fault_name);
        return service_error(
            StatusCode::FORBIDDEN,
            &format!("{}.0403", service_name.to_ascii_uppercase()),
            "You do not have the rights to perform the operation.",
        );
    }

    let job_status = job.status_at(sim_now);
    let full: Bytes = match &job.body {
        JobBody::Timeline(t) => Bytes::from(t.render_json(sim_now)),
        JobBody::Fixture { raw, .. } => raw.clone(),
    };
    let resp = match &decision.fault {
        Some(FaultKind::MalformedJson) => json_response(
            StatusCode::OK,
            r#"{"status": "RUNNING", "entities": {"process_percent": 0.5,}, "job_id": }"#,
        ),
        Some(FaultKind::CutJson) => json_response(StatusCode::OK, full.slice(..full.len() / 2)),
        Some(FaultKind::TruncatedBody) => {
            let mut r = json_response(
                StatusCode::OK,
                Body::new(UnsizedBody::new(full.slice(..full.len() / 2))),
            );
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
    };
    record(200, Some(job_status), fault_name);
    resp
}

// ---------------------------------------------------------------------------------------------
// Admin API

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

/// Axum's JSON rejection as our error shape.
fn bad_json(e: axum::extract::rejection::JsonRejection) -> Response {
    error_json(StatusCode::BAD_REQUEST, &e.body_text())
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

async fn admin_create_job(State(s): State<Arc<SimState>>, spec: JsonBody<JobSpec>) -> Response {
    let Json(spec) = match spec {
        Ok(j) => j,
        Err(e) => return bad_json(e),
    };
    match s.create_job(spec) {
        Ok(c) => (StatusCode::CREATED, Json(c)).into_response(),
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

async fn admin_create_fixture(
    State(s): State<Arc<SimState>>,
    req: JsonBody<FixtureRequest>,
) -> Response {
    let Json(req) = match req {
        Ok(j) => j,
        Err(e) => return bad_json(e),
    };
    let created = match (req.body, req.raw) {
        (Some(body), None) => s.create_fixture_job(req.service, &req.project_id, body),
        (None, Some(raw)) => s.create_fixture_job_raw(req.service, &req.project_id, raw),
        _ => Err(SimError::InvalidSpec(
            "give exactly one of body or raw".into(),
        )),
    };
    match created {
        Ok(c) => (StatusCode::CREATED, Json(c)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn admin_list_jobs(State(s): State<Arc<SimState>>) -> Response {
    Json(s.list_jobs()).into_response()
}

async fn admin_get_job(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match (s.job_body(&id), s.job_stats(&id)) {
        (Some(body), Some(stats)) => Json(json!({"body": body, "stats": stats})).into_response(),
        _ => SimError::NotFound(id).into_response(),
    }
}

async fn admin_delete_job(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    if s.delete_job(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        SimError::NotFound(id).into_response()
    }
}

async fn admin_job_stats(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match s.job_stats(&id) {
        Some(st) => Json(st).into_response(),
        None => SimError::NotFound(id).into_response(),
    }
}

async fn admin_finish_job(
    State(s): State<Arc<SimState>>,
    Path(id): Path<String>,
    body: Result<Json<Outcome>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let outcome = match body {
        Ok(Json(o)) => o,
        // An empty body means "succeed now".
        Err(axum::extract::rejection::JsonRejection::MissingJsonContentType(_)) => Outcome::Success,
        Err(e) => return bad_json(e),
    };
    match s.finish_job(&id, outcome) {
        Ok(()) => Json(s.job_body(&id)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn admin_job_types() -> Response {
    let types: Vec<Value> = DOCUMENTED_JOB_TYPES
        .iter()
        .map(|(s, t)| json!({"service": s, "job_type": t}))
        .collect();
    Json(types).into_response()
}

async fn admin_global_stats(State(s): State<Arc<SimState>>) -> Response {
    Json(s.global_stats()).into_response()
}

async fn admin_reset_stats(State(s): State<Arc<SimState>>) -> Response {
    s.reset_stats();
    StatusCode::NO_CONTENT.into_response()
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

async fn admin_add_fault(
    State(s): State<Arc<SimState>>,
    req: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    // Parsed in two steps so that a bad fault gets serde's message rather than axum's generic one.
    let v = match req {
        Ok(Json(v)) => v,
        Err(e) => return bad_json(e),
    };
    let parsed: Result<FaultRequest, _> = serde_json::from_value(v);
    match parsed {
        Ok(r) => {
            s.set_fault(r.scope, r.fault);
            StatusCode::CREATED.into_response()
        }
        Err(e) => error_json(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn admin_list_faults(State(s): State<Arc<SimState>>) -> Response {
    let t = lock(&s.faults);
    Json(json!({"global": t.global, "jobs": t.per_job})).into_response()
}

#[derive(Deserialize)]
struct ClearFaults {
    job: Option<String>,
}

async fn admin_clear_faults(
    State(s): State<Arc<SimState>>,
    Query(q): Query<ClearFaults>,
) -> Response {
    s.clear_faults(q.job.map(FaultScope::Job));
    StatusCode::NO_CONTENT.into_response()
}

fn clock_json(s: &SimState) -> Value {
    json!({
        "time_scale": s.clock.scale(),
        "sim_now": s.clock.sim_now(),
        "real_now": s.clock.real_now(),
    })
}

async fn admin_clock(State(s): State<Arc<SimState>>) -> Response {
    Json(clock_json(&s)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    time_scale: f64,
}

async fn admin_set_clock(State(s): State<Arc<SimState>>, req: JsonBody<SetClock>) -> Response {
    let Json(req) = match req {
        Ok(j) => j,
        Err(e) => return bad_json(e),
    };
    match s.set_time_scale(req.time_scale) {
        Ok(()) => Json(clock_json(&s)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn admin_reset_all(State(s): State<Arc<SimState>>) -> Response {
    s.reset_all();
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_service_prefix() {
        assert_eq!(
            parse_route("/ims/v1/p/jobs/j"),
            Some(Route {
                service: Some(Service::Ims),
                project_id: "p",
                job_id: "j"
            })
        );
        assert_eq!(
            parse_route("/v1/p/jobs/j/"),
            Some(Route {
                service: None,
                project_id: "p",
                job_id: "j"
            })
        );
        assert_eq!(parse_route("/rds/v1/p/jobs/j"), None);
        assert_eq!(parse_route("/v1/p/jobs/"), None);
        assert_eq!(parse_route("/v3/p/jobs/j"), None);
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
    }
}

//! Signed GETs of the jobs API through one shared HTTP client (the per-endpoint rate limit is `rate`).
//!
//! What an answer may put into status and Events (readable by whoever may read the CloudJob) is limited on
//! purpose, since `spec.endpoint` is the author's choice: the HTTP status, and the code and message of the
//! two documented cloud error bodies, cut short. Never another body, never a redirect's target (redirects
//! are not followed), never transport details (they would map internal ports; they go to the log), never
//! the gateway's echo of the canonical request (it holds the security token).

use std::{sync::Arc, time::Duration};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use url::Url;

use super::{
    catalogue::{self, JobPath, ServiceApi},
    endpoint,
    model::{self, JobObservation},
};

/// Largest response body read; a jobs API answer is a few KiB even for big batches.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Bodies larger than this are parsed on a blocking thread, off the async workers that serve every other
/// CloudJob and `/healthz`.
pub const PARSE_INLINE_MAX_BYTES: usize = 64 * 1024;
/// What status says of a 401, whatever the gateway answered: its message echoes the canonical request,
/// which carries the security token.
pub const UNAUTHORIZED_TEXT: &str = "the signature was not accepted: wrong access key or secret key, expired temporary credentials, or a clock more than 15 minutes off";
/// What status says when no answer came: one category for refused, reset, timed out, TLS and protocol
/// failures, so that an author cannot map which ports of an allowed host are open. Details go to the log.
pub const TRANSPORT_TEXT: &str = "no usable answer from the endpoint (connection refused, reset or timed out, or a TLS or HTTP protocol error); the operator's log has the details";
/// What status says of an error answer without a recognised cloud error body.
pub const UNRECOGNISED_BODY_TEXT: &str = "the answer is not a cloud error body";
/// Longest `Retry-After` honoured; a larger value is capped so a job is not forgotten for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Shortest `Retry-After` honoured: `0` (or a date in the past) must not make a job re-poll at once.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What went wrong talking to the cloud, in the categories the controller acts on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    #[error("throttled by the cloud API ({code}): {message}")]
    Throttled {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("the cloud API rejected the credentials (HTTP 401 {code}): {message}")]
    Unauthorized { code: String, message: String },
    #[error("the credentials may not read this job (HTTP 403 {code}): {message}")]
    Forbidden { code: String, message: String },
    #[error("the cloud API does not know this job (HTTP {status} {code}): {message}")]
    NotFound {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the cloud API rejected the request (HTTP {status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the cloud API is unavailable (HTTP {status} {code}): {message}")]
    Unavailable {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No usable answer. The text is [`TRANSPORT_TEXT`] in status; the details are only logged.
    #[error("cannot reach the cloud API: {0}")]
    Transport(String),
    #[error("the cloud API sent an invalid response: {0}")]
    InvalidResponse(String),
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
    /// `spec.endpoint` is not on the operator's allow-list; no request was sent.
    #[error(transparent)]
    EndpointNotAllowed(#[from] endpoint::NotAllowed),
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

impl CloudError {
    /// A bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            CloudError::Throttled { .. } => "throttled",
            CloudError::Unauthorized { .. } => "unauthorized",
            CloudError::Forbidden { .. } => "forbidden",
            CloudError::NotFound { .. } => "not_found",
            CloudError::Rejected { .. } => "rejected",
            CloudError::Unavailable { .. } => "server_error",
            CloudError::Transport(_) => "transport_error",
            CloudError::InvalidResponse(_) => "invalid_response",
            CloudError::Endpoint(_)
            | CloudError::EndpointNotAllowed(_)
            | CloudError::Signing(_) => "config_error",
        }
    }

    /// How long the cloud asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CloudError::Throttled { retry_after, .. }
            | CloudError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Longest wait for a connection to the cloud.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole request, body included: a reconcile slot is held this long at most by an
/// endpoint that never answers, so such endpoints cannot starve the other CloudJobs for long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the shared client.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Which internal addresses a resolved name may lead to (see [`endpoint::AllowList::may_connect`]).
    pub allowed_endpoints: endpoint::AllowList,
    /// `--endpoint-template`, whose host may resolve to an internal address.
    pub endpoint_template: Option<String>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            allowed_endpoints: endpoint::AllowList::default(),
            endpoint_template: None,
        }
    }
}

/// Which job to read and where.
#[derive(Clone, Debug)]
pub struct JobRequest<'a> {
    pub base_url: &'a Url,
    pub project_id: &'a str,
    pub job_id: &'a str,
    /// The service's job API: how its answer reads.
    pub api: &'static ServiceApi,
    /// The job path below `base_url` (IMS has two).
    pub path: JobPath,
}

/// The one HTTP client of the process.
#[derive(Clone)]
pub struct CloudClient {
    http: reqwest::Client,
}

impl CloudClient {
    pub fn new(settings: &ClientSettings) -> Result<CloudClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cloudjob-operator/", env!("CARGO_PKG_VERSION")))
            // A redirect would send the signed headers (X-Security-Token included) to wherever the
            // endpoint points, past the allow-list: a 3xx is an error instead.
            .redirect(reqwest::redirect::Policy::none())
            // A name that passed the allow-list must not lead to an internal address either.
            .dns_resolver(Arc::new(GuardedResolver {
                allowed: settings.allowed_endpoints.clone(),
                template: settings.endpoint_template.clone(),
            }))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(CloudClient { http })
    }

    /// One signed GET of the job, on the service's path.
    pub async fn get_job(
        &self,
        req: JobRequest<'_>,
        creds: &aksk::Credentials,
    ) -> Result<JobObservation, CloudError> {
        let url = req.path.url(req.base_url, req.project_id, req.job_id);
        let api = req.api;

        let headers = signed_headers(&url, req.project_id, creds, jiff::Timestamp::now())?;
        let endpoint = endpoint::rate_limit_key(&url);
        let response = self
            .http
            .get(url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(|e| transport_error(&endpoint, &describe_transport_error(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(parse_retry_after);
        if status.is_redirection() {
            tracing::info!(%endpoint, status = status.as_u16(), "the endpoint answered a redirect; not followed");
            return Err(redirect_error(status));
        }
        let body = read_body(response)
            .await
            .map_err(|e| read_error(&endpoint, &e))?;
        let job_id = req.job_id.to_string();
        let result = if body.len() > PARSE_INLINE_MAX_BYTES {
            tokio::task::spawn_blocking(move || {
                classify_for(api, status, retry_after, &body, &job_id)
            })
            .await
            .unwrap_or_else(|_| {
                Err(CloudError::InvalidResponse(
                    "the answer could not be parsed".into(),
                ))
            })
        } else {
            classify_for(api, status, retry_after, &body, &job_id)
        };
        result.map_err(|e| scrub(e, creds))
    }
}

/// The system resolver, without the internal addresses the allow-list does not name (DNS rebinding, or a
/// public name pointing at the metadata service).
struct GuardedResolver {
    allowed: endpoint::AllowList,
    template: Option<String>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allowed = self.allowed.clone();
        let template = self.template.clone();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<std::net::SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allowed.may_connect(&host, a.ip(), template.as_deref()))
                .collect();
            if kept.is_empty() && !found.is_empty() {
                return Err(format!(
                    "{host} resolves only to internal addresses that --allowed-endpoints does not name"
                )
                .into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why a body could not be read.
enum ReadError {
    TooLarge,
    Cut(reqwest::Error),
}

/// Logs the details of a failed exchange and returns its one generic category.
fn transport_error(endpoint: &str, detail: &str) -> CloudError {
    tracing::info!(%endpoint, error = %detail, "no usable answer from the cloud endpoint");
    CloudError::Transport(TRANSPORT_TEXT.into())
}

/// An oversized body is an invalid response (the endpoint answered, with something that is not a job).
fn read_error(endpoint: &str, e: &ReadError) -> CloudError {
    match e {
        ReadError::TooLarge => {
            CloudError::InvalidResponse(format!("body larger than {MAX_BODY_BYTES} bytes"))
        }
        ReadError::Cut(e) => transport_error(
            endpoint,
            &format!("response cut off: {}", describe_transport_error(e)),
        ),
    }
}

fn redirect_error(status: StatusCode) -> CloudError {
    CloudError::Rejected {
        status: status.as_u16(),
        code: String::new(),
        message: "the endpoint answered with a redirect, which is not followed: point spec.endpoint at the jobs API itself".into(),
    }
}

/// Removes any credential a body echoed back from an error's text (defence in depth: the texts are already
/// limited to the documented error fields).
fn scrub(e: CloudError, creds: &aksk::Credentials) -> CloudError {
    let secrets: Vec<&str> = [
        Some(creds.secret_key.as_str()),
        creds.security_token.as_deref(),
        Some(creds.access_key.as_str()),
    ]
    .into_iter()
    .flatten()
    .filter(|s| s.len() >= 4)
    .collect();
    let clean = |text: String| {
        secrets
            .iter()
            .fold(text, |t, secret| t.replace(secret, "[redacted]"))
    };
    match e {
        CloudError::Throttled {
            code,
            message,
            retry_after,
        } => CloudError::Throttled {
            code: clean(code),
            message: clean(message),
            retry_after,
        },
        CloudError::Unauthorized { code, message } => CloudError::Unauthorized {
            code: clean(code),
            message: clean(message),
        },
        CloudError::Forbidden { code, message } => CloudError::Forbidden {
            code: clean(code),
            message: clean(message),
        },
        CloudError::NotFound {
            status,
            code,
            message,
        } => CloudError::NotFound {
            status,
            code: clean(code),
            message: clean(message),
        },
        CloudError::Rejected {
            status,
            code,
            message,
        } => CloudError::Rejected {
            status,
            code: clean(code),
            message: clean(message),
        },
        CloudError::Unavailable {
            status,
            code,
            message,
            retry_after,
        } => CloudError::Unavailable {
            status,
            code: clean(code),
            message: clean(message),
            retry_after,
        },
        CloudError::Transport(m) => CloudError::Transport(clean(m)),
        CloudError::InvalidResponse(m) => CloudError::InvalidResponse(clean(m)),
        other @ (CloudError::Endpoint(_)
        | CloudError::EndpointNotAllowed(_)
        | CloudError::Signing(_)) => other,
    }
}

/// The gateway's 401 message with its echo of the canonical request (which holds the security token and
/// the signed headers) cut off, for the debug log.
pub fn redact_canonical_request(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    match lower.find("canonical") {
        Some(at) => format!(
            "{}[canonical request redacted]",
            crate::text::prefix(message, at)
        ),
        None => message.to_string(),
    }
}

/// The headers the SDKs send, signed: Host, X-Project-Id, X-Sdk-Date, Authorization (+ X-Security-Token).
pub fn signed_headers(
    url: &Url,
    project_id: &str,
    creds: &aksk::Credentials,
    now: jiff::Timestamp,
) -> Result<HeaderMap, CloudError> {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(CloudError::Signing("URL has no host".into())),
    };
    let mut headers = HeaderMap::new();
    let value = |v: &str| HeaderValue::from_str(v).map_err(|e| CloudError::Signing(e.to_string()));
    headers.insert(http::header::HOST, value(&host)?);
    headers.insert(aksk::PROJECT_ID_HEADER, value(project_id)?);
    let uri: http::Uri = url
        .as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| CloudError::Signing(e.to_string()))?;
    aksk::sign(creds, &Method::GET, &uri, &mut headers, b"", now)
        .map_err(|e| CloudError::Signing(e.to_string()))?;
    Ok(headers)
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ReadError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            // A connection cut mid-body: the server or a proxy failed, so try again later.
            Err(e) => return Err(ReadError::Cut(e)),
        }
    }
}

/// Maps an HTTP answer for job `job_id` to the job or to an error category. A 200 is a job only when it
/// names this job (`job_id`), so that an endpoint that is not the jobs API cannot get its fields copied
/// into status as if they were the job's.
pub fn classify_for(
    api: &ServiceApi,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    job_id: &str,
) -> Result<JobObservation, CloudError> {
    let job = classify_as(api, status, retry_after, body)?;
    match job.job_id.as_deref() {
        Some(id) if id == job_id => Ok(job),
        Some(_) => Err(CloudError::InvalidResponse(
            "the answer is about another job".into(),
        )),
        None => Err(CloudError::InvalidResponse(
            "the answer has no job_id: it is not a job".into(),
        )),
    }
}

/// Maps an HTTP answer of the ECS family to a job or to an error category (without checking which job it
/// is about).
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<JobObservation, CloudError> {
    classify_as(
        catalogue::api(crate::crd::Service::Ecs),
        status,
        retry_after,
        body,
    )
}

/// Maps an HTTP answer of `api`'s service to a job or to an error category.
pub fn classify_as(
    api: &ServiceApi,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<JobObservation, CloudError> {
    if status.is_success() {
        return JobObservation::parse_as(api, body).map_err(|e| match e {
            model::ParseError::NoSuchJob => CloudError::NotFound {
                status: status.as_u16(),
                code: String::new(),
                message: e.to_string(),
            },
            other => CloudError::InvalidResponse(other.to_string()),
        });
    }
    if status.is_redirection() {
        return Err(redirect_error(status));
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let code = json
        .as_ref()
        .and_then(model::error_code)
        .unwrap_or_default();
    // The code is shown separately by CloudError's message, so only the text goes here, and only from a
    // documented error body: never a page or another service's JSON.
    let message = json
        .as_ref()
        .and_then(model::error_message)
        .unwrap_or_else(|| UNRECOGNISED_BODY_TEXT.to_string());
    let status_u16 = status.as_u16();
    // Throttling is 429 with APIGW.0308 / APIG.0308; some gateways send the code with another status.
    if status == StatusCode::TOO_MANY_REQUESTS || code.ends_with(".0308") {
        return Err(CloudError::Throttled {
            code,
            message,
            retry_after,
        });
    }
    match status_u16 {
        401 => {
            tracing::debug!(code, message = %redact_canonical_request(&message), "the cloud rejected the signature");
            Err(CloudError::Unauthorized {
                code,
                message: UNAUTHORIZED_TEXT.into(),
            })
        }
        403 => Err(CloudError::Forbidden { code, message }),
        // 404, or the service's documented answer for an unknown job (ECS: 400 Common.0011).
        _ if api.is_unknown_job(status_u16, &code) => Err(CloudError::NotFound {
            status: status_u16,
            code,
            message,
        }),
        408 | 500..=599 => Err(CloudError::Unavailable {
            status: status_u16,
            code,
            message,
            retry_after,
        }),
        _ => Err(CloudError::Rejected {
            status: status_u16,
            code,
            message,
        }),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, clamped into [`MIN_RETRY_AFTER`, `MAX_RETRY_AFTER`].
/// Any number the cloud sends (`1e300`, `-5`, `NaN`) is handled; an unreadable value is ignored.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    parse_retry_after_at(value, jiff::Timestamp::now())
}

fn parse_retry_after_at(value: &HeaderValue, now: jiff::Timestamp) -> Option<Duration> {
    let raw = value.to_str().ok()?.trim();
    let clamp = |d: Duration| d.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER);
    if let Ok(seconds) = raw.parse::<f64>() {
        if seconds.is_nan() {
            return None;
        }
        // Clamp as a float first: Duration::from_secs_f64 panics on values it cannot hold.
        let seconds = seconds.clamp(0.0, MAX_RETRY_AFTER.as_secs_f64());
        return Some(clamp(Duration::from_secs_f64(seconds)));
    }
    // HTTP-date form (RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`).
    let date = jiff::fmt::rfc2822::parse(raw).ok()?.timestamp();
    let wait = Duration::try_from(date.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(clamp(wait))
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The source chain says "connection reset" etc.; the URL is left out as it carries nothing secret
    // but makes messages long.
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", truncate(&detail, 200))
    }
}

fn truncate(s: &str, max: usize) -> String {
    model::bounded(s, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_recognised_with_and_without_retry_after() {
        let body = br#"{"error_msg":"The throttling threshold has been reached","error_code":"APIGW.0308","request_id":"r"}"#;
        let err = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            body,
        )
        .unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(err.category(), "throttled");
        let err = classify(StatusCode::TOO_MANY_REQUESTS, None, b"").unwrap_err();
        assert!(matches!(
            err,
            CloudError::Throttled {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn status_codes_map_to_categories() {
        let gw = br#"{"error_msg":"Incorrect IAM authentication information","error_code":"APIGW.0301","request_id":"r"}"#;
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, None, gw)
                .unwrap_err()
                .category(),
            "unauthorized"
        );
        let svc = br#"{"error":{"message":"no permission","code":"IMG.0003"}}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, None, svc)
                .unwrap_err()
                .category(),
            "forbidden"
        );
        assert_eq!(
            classify(StatusCode::NOT_FOUND, None, svc)
                .unwrap_err()
                .category(),
            "not_found"
        );
        let ecs = br#"{"error":{"message":"job not found","code":"Common.0011"}}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, ecs)
                .unwrap_err()
                .category(),
            "not_found"
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, svc)
                .unwrap_err()
                .category(),
            "rejected"
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, None, b"<html>")
                .unwrap_err()
                .category(),
            "server_error"
        );
        assert_eq!(
            classify(
                StatusCode::OK,
                None,
                br#"{"error":{"code":"X","message":"m"}}"#
            )
            .unwrap_err()
            .category(),
            "invalid_response"
        );
        assert_eq!(
            classify(StatusCode::OK, None, b"{\"status\":")
                .unwrap_err()
                .category(),
            "invalid_response"
        );
    }

    #[test]
    fn error_message_names_code_and_text() {
        let gw = br#"{"error_msg":"Incorrect IAM authentication information","error_code":"APIGW.0301","request_id":"r"}"#;
        let err = classify(StatusCode::FORBIDDEN, None, gw).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the credentials may not read this job (HTTP 403 APIGW.0301): Incorrect IAM authentication information"
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_caps_them() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("5")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("999999")),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn hostile_retry_after_values_are_clamped_never_panic() {
        let parse = |raw: &'static str| parse_retry_after(&HeaderValue::from_static(raw));
        for huge in ["1e300", "inf", "1.8e19", "18446744073709551616"] {
            assert_eq!(parse(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for tiny in ["0", "-5", "-inf", "0.0001"] {
            assert_eq!(parse(tiny), Some(MIN_RETRY_AFTER), "{tiny}");
        }
        assert_eq!(parse("NaN"), None);
    }

    #[test]
    fn retry_after_dates_count_from_now() {
        let now: jiff::Timestamp = "1994-11-06T08:49:00Z".parse().expect("ts");
        let at = |raw: &'static str| parse_retry_after_at(&HeaderValue::from_static(raw), now);
        assert_eq!(
            at("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::from_secs(37))
        );
        assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(MIN_RETRY_AFTER));
        assert_eq!(at("Mon, 07 Nov 1994 08:49:37 GMT"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn signed_headers_carry_host_project_and_signature() {
        let creds = aksk::Credentials {
            access_key: "AK".into(),
            secret_key: "SK".into(),
            security_token: Some("tok".into()),
        };
        let url = Url::parse("http://127.0.0.1:8080/ims/v1/p1/jobs/j1").expect("url");
        let ts: jiff::Timestamp = "2024-01-02T03:04:05Z".parse().expect("ts");
        let headers = signed_headers(&url, "p1", &creds, ts).expect("signed");
        assert_eq!(headers["host"], "127.0.0.1:8080");
        assert_eq!(headers["x-project-id"], "p1");
        assert_eq!(headers["x-sdk-date"], "20240102T030405Z");
        assert_eq!(headers["x-security-token"], "tok");
        let auth = headers["authorization"].to_str().expect("ascii");
        assert!(
            auth.starts_with("SDK-HMAC-SHA256 Access=AK, SignedHeaders="),
            "{auth}"
        );
        assert!(
            !auth.contains("SK"),
            "the secret key never appears in a header"
        );
    }

    #[test]
    fn a_401_never_carries_the_gateways_echo_of_the_canonical_request() {
        let body = br#"{"error_msg":"Incorrect IAM authentication information: verify aksk signature fail, canonicalRequest: GET\n/v1/p/jobs/j/\n\nx-security-token:TOKEN-123\n","error_code":"APIGW.0301","request_id":"r"}"#;
        let err = classify(StatusCode::UNAUTHORIZED, None, body).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("APIGW.0301") && text.contains(UNAUTHORIZED_TEXT),
            "{text}"
        );
        assert!(
            !text.contains("TOKEN-123") && !text.contains("canonical"),
            "{text}"
        );
        let redacted = redact_canonical_request(
            "verify aksk signature fail, canonicalRequest: x-security-token:T",
        );
        assert_eq!(
            redacted,
            "verify aksk signature fail, [canonical request redacted]"
        );
    }

    #[test]
    fn unrecognised_bodies_are_never_quoted() {
        for (status, body) in [
            (
                StatusCode::NOT_FOUND,
                &b"<html><title>INTERNAL-PAGE</title></html>"[..],
            ),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"message":"INTERNAL-PAGE"}"#,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"code":"X","message":"INTERNAL-PAGE"}"#,
            ),
            (StatusCode::IM_A_TEAPOT, b"INTERNAL-PAGE"),
        ] {
            let text = classify(status, None, body).unwrap_err().to_string();
            assert!(!text.contains("INTERNAL-PAGE"), "{text}");
            assert!(text.contains(&status.as_u16().to_string()), "{text}");
            assert!(text.contains(UNRECOGNISED_BODY_TEXT), "{text}");
        }
        let text = classify(StatusCode::OK, None, b"<html>INTERNAL-PAGE")
            .unwrap_err()
            .to_string();
        assert!(!text.contains("INTERNAL-PAGE"), "{text}");
    }

    #[test]
    fn redirects_are_errors_without_their_target() {
        let err =
            classify(StatusCode::FOUND, None, b"moved to http://169.254.169.254/").unwrap_err();
        assert_eq!(err.category(), "rejected");
        assert!(!err.to_string().contains("169.254"), "{err}");
        assert!(err.to_string().contains("redirect"), "{err}");
    }

    #[test]
    fn a_200_is_a_job_only_when_it_names_the_job() {
        let other = br#"{"status":"RUNNING","job_type":"FIELD-OF-ANOTHER-SERVICE","entities":{"current_task":"X"}}"#;
        let ecs = catalogue::api(crate::crd::Service::Ecs);
        let err = classify_for(ecs, StatusCode::OK, None, other, "j1").unwrap_err();
        assert_eq!(err.category(), "invalid_response");
        assert!(!err.to_string().contains("FIELD-OF"), "{err}");
        let wrong = br#"{"status":"RUNNING","job_id":"j2"}"#;
        assert!(classify_for(ecs, StatusCode::OK, None, wrong, "j1").is_err());
        let right = br#"{"status":"RUNNING","job_id":"j1","job_type":"t"}"#;
        assert_eq!(
            classify_for(ecs, StatusCode::OK, None, right, "j1")
                .expect("job")
                .job_type
                .as_deref(),
            Some("t")
        );
    }

    #[test]
    fn echoed_credentials_are_scrubbed_from_error_texts() {
        let creds = aksk::Credentials {
            access_key: "AKVALUE1".into(),
            secret_key: "SKVALUE1".into(),
            security_token: Some("TOKVALUE1".into()),
        };
        let body = br#"{"error":{"code":"X.1","message":"AKVALUE1 SKVALUE1 TOKVALUE1"}}"#;
        let err = scrub(
            classify(StatusCode::FORBIDDEN, None, body).unwrap_err(),
            &creds,
        );
        let text = err.to_string();
        for secret in ["AKVALUE1", "SKVALUE1", "TOKVALUE1"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_not_connected_to() {
        use reqwest::dns::Resolve as _;
        let resolve = |list: &str| {
            GuardedResolver {
                allowed: endpoint::AllowList::parse(list).expect("list"),
                template: None,
            }
            .resolve("localhost".parse().expect("name"))
        };
        assert!(
            resolve("*").await.is_err(),
            "localhost is 127.0.0.1: refused"
        );
        let addrs: Vec<_> = resolve("localhost")
            .await
            .expect("named explicitly")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}

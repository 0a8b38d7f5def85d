//! Signed GETs of the jobs API through one shared HTTP client (the per-endpoint rate limit is `rate`).

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use url::Url;

use super::{
    endpoint,
    model::{self, JobObservation},
};

/// Largest response body read; a jobs API answer is a few KiB even for big batches.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
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
    #[error("cannot reach the cloud API: {0}")]
    Transport(String),
    #[error("the cloud API sent an invalid response: {0}")]
    InvalidResponse(String),
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
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
            CloudError::Endpoint(_) | CloudError::Signing(_) => "config_error",
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
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Which job to read and where.
#[derive(Clone, Debug)]
pub struct JobRequest<'a> {
    pub base_url: &'a Url,
    pub project_id: &'a str,
    pub job_id: &'a str,
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
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(CloudClient { http })
    }

    /// One signed `GET /v1/{project_id}/jobs/{job_id}`.
    pub async fn get_job(
        &self,
        req: JobRequest<'_>,
        creds: &aksk::Credentials,
    ) -> Result<JobObservation, CloudError> {
        let url = endpoint::job_url(req.base_url, req.project_id, req.job_id);

        let headers = signed_headers(&url, req.project_id, creds, jiff::Timestamp::now())?;
        let response = self
            .http
            .get(url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(|e| CloudError::Transport(describe_transport_error(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(parse_retry_after);
        let body = read_body(response).await?;
        classify(status, retry_after, &body)
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

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, CloudError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(CloudError::InvalidResponse(format!(
                        "body larger than {MAX_BODY_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            // A connection cut mid-body: the server or a proxy failed, so try again later.
            Err(e) => {
                return Err(CloudError::Transport(format!(
                    "response cut off: {}",
                    describe_transport_error(&e)
                )));
            }
        }
    }
}

/// Maps an HTTP answer to a job or to an error category.
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<JobObservation, CloudError> {
    if status.is_success() {
        return JobObservation::parse(body).map_err(|e| CloudError::InvalidResponse(e.to_string()));
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let code = json
        .as_ref()
        .and_then(model::error_code)
        .unwrap_or_default();
    // The code is shown separately by CloudError's message, so only the text goes here.
    let message = json
        .as_ref()
        .and_then(model::error_message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    let message = truncate(&message, 300);
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
        401 => Err(CloudError::Unauthorized { code, message }),
        403 => Err(CloudError::Forbidden { code, message }),
        404 => Err(CloudError::NotFound {
            status: status_u16,
            code,
            message,
        }),
        // OTC/Huawei ECS answer an unknown job id with 400 Common.0011.
        400 if code == "Common.0011" => Err(CloudError::NotFound {
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
    let cut = crate::text::prefix(s, max);
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut.to_string()
    }
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
        let err = classify(StatusCode::UNAUTHORIZED, None, gw).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cloud API rejected the credentials (HTTP 401 APIGW.0301): Incorrect IAM authentication information"
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
}

//! Shared helpers: a client that signs requests exactly as the SDKs do.
#![allow(dead_code, clippy::unwrap_used)]

use aksk::Credentials;
use chrono::{DateTime, Utc};
use http::header::{HOST, HeaderMap, HeaderValue};

pub fn creds() -> Credentials {
    Credentials::new("sim-ak", "sim-sk")
}

/// Signed GET of `url` at client time `now`, signing `host` and `x-project-id` like the SDKs.
pub fn signed_request(
    client: &reqwest::Client,
    url: &str,
    creds: &Credentials,
    now: DateTime<Utc>,
) -> reqwest::RequestBuilder {
    let uri: http::Uri = url.parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        HOST,
        HeaderValue::from_str(uri.authority().unwrap().as_str()).unwrap(),
    );
    if let Some(project) = uri.path().split('/').skip_while(|s| *s != "v1").nth(1) {
        headers.insert(
            aksk::PROJECT_ID_HEADER,
            HeaderValue::from_str(project).unwrap(),
        );
    }
    let now = jiff::Timestamp::try_from(std::time::SystemTime::from(now)).unwrap();
    aksk::sign(creds, &http::Method::GET, &uri, &mut headers, b"", now).unwrap();
    client.get(url).headers(headers)
}

pub async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    signed_request(client, url, &creds(), Utc::now())
        .send()
        .await
        .unwrap()
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = get(client, url).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

//! Shared helpers: a simulator on a manual clock, and a client that signs requests exactly as the
//! SDKs do, at the simulator's time.
#![allow(dead_code, clippy::unwrap_used)]

use std::ops::Deref;
use std::time::Duration;

use aksk::Credentials;
use cloudjob_sim::{Clock, ManualClock, SimConfig, Simulator};
use http::header::{HOST, HeaderMap, HeaderValue};
use jiff::Timestamp;

/// Where the tests' manual clocks start.
pub const T0: &str = "2024-11-06T06:19:43.195Z";

pub fn creds() -> Credentials {
    Credentials::new("sim-ak", "sim-sk")
}

/// A simulator whose time moves only by `clock.advance`/`clock.set`.
pub async fn manual_sim(config: SimConfig) -> (Simulator, ManualClock) {
    let (clock, handle) = Clock::manual(T0.parse().unwrap());
    let sim = Simulator::start(SimConfig { clock, ..config })
        .await
        .unwrap();
    (sim, handle)
}

/// A reqwest client that signs (in [`get`]) at the time of the simulator's manual clock.
pub struct Client {
    http: reqwest::Client,
    pub clock: ManualClock,
}

impl Client {
    pub fn new(clock: &ManualClock) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            clock: clock.clone(),
        }
    }
}

impl Deref for Client {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.http
    }
}

/// Signed GET of `url` at client time `now`, signing `host` and `x-project-id` like the SDKs.
pub fn signed_request(
    client: &reqwest::Client,
    url: &str,
    creds: &Credentials,
    now: Timestamp,
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
    sign(creds, &uri, &mut headers, now);
    client.get(url).headers(headers)
}

/// `aksk::sign` of a body-less GET at `now`.
pub fn sign(creds: &Credentials, uri: &http::Uri, headers: &mut HeaderMap, now: Timestamp) {
    aksk::sign(creds, &http::Method::GET, uri, headers, b"", now).unwrap();
}

pub async fn get(client: &Client, url: &str) -> reqwest::Response {
    signed_request(client, url, &creds(), client.clock.now())
        .send()
        .await
        .unwrap()
}

pub async fn get_json(client: &Client, url: &str) -> (u16, serde_json::Value) {
    let r = get(client, url).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

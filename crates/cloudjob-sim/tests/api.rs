//! End-to-end tests of the simulator over HTTP, with requests signed by the `aksk` crate.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cloudjob_sim::{
    Fault, FaultKind, FaultScope, JobSpec, JobType, ProgressCurve, Service, SimConfig, Simulator,
    TimeStyle, documented_job_types,
};
use common::{Client, creds, get, get_json, manual_sim, sign, signed_request};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// A simulator on a manual clock, and a client signing at its time.
async fn sim() -> (Simulator, Client) {
    sim_with(SimConfig::default()).await
}

async fn sim_with(config: SimConfig) -> (Simulator, Client) {
    let (sim, clock) = manual_sim(config).await;
    (sim, Client::new(&clock))
}

fn url(sim: &Simulator, path: &str) -> String {
    format!("{}{}", sim.base_url(), path)
}

fn fixtures() -> Vec<(String, Service, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/seeds");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let service = name.split('-').nth(1).unwrap().parse().unwrap();
        out.push((name, service, std::fs::read_to_string(&path).unwrap()));
    }
    out.sort();
    assert!(
        out.len() >= 20,
        "expected the seed fixtures, found {}",
        out.len()
    );
    out
}

#[tokio::test]
async fn every_seed_fixture_is_served_verbatim_and_parses_back_to_the_same_json() {
    let (sim, c) = sim().await;
    for (name, service, raw) in job_fixtures() {
        let expected: Value = serde_json::from_str(&raw).unwrap();
        let job = sim
            .create_fixture_job_raw(service, "proj", raw.clone())
            .unwrap();
        let r = get(&c, &url(&sim, &job.path)).await;
        assert_eq!(r.status(), 200, "{name}");
        let text = r.text().await.unwrap();
        assert_eq!(text, raw, "{name} not served byte for byte");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, expected, "{name}");

        // The same through the admin API, with the body given as JSON.
        assert!(sim.delete_job(&job.job_id));
        let created: Value = c
            .post(url(&sim, "/admin/fixtures"))
            .json(&json!({"service": service, "project_id": "proj", "body": expected}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (status, back) = get_json(&c, &url(&sim, created["path"].as_str().unwrap())).await;
        assert_eq!(status, 200);
        assert_eq!(back, expected, "{name} via admin");
        assert!(sim.delete_job(&job.job_id));
    }
}

#[tokio::test]
async fn unknown_job_error_body_has_the_documented_error_shape() {
    let (sim, c) = sim().await;
    let (_, _, raw) = fixtures()
        .into_iter()
        .find(|(n, _, _)| n.contains("error-body"))
        .unwrap();
    let documented: Value = serde_json::from_str(&raw).unwrap();
    let (status, body) = get_json(&c, &url(&sim, "/evs/v1/proj/jobs/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(shape(&body), shape(&documented));
}

/// The seed fixtures that are job bodies (all but the error body).
fn job_fixtures() -> impl Iterator<Item = (String, Service, String)> {
    fixtures()
        .into_iter()
        .filter(|(name, _, _)| !name.contains("error-body"))
}

/// The structure of a JSON value: object keys, array element shape, and leaf kinds.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

#[tokio::test]
async fn generated_job_of_each_documented_type_carries_the_documented_field_set() {
    let (sim, c) = sim().await;
    for (name, service, raw) in job_fixtures() {
        let documented: Value = serde_json::from_str(&raw).unwrap();
        let job_type = documented["job_type"].as_str().unwrap();
        let mut spec = JobSpec::new(service, "proj", job_type)
            .duration_secs(0.0)
            .progress(ProgressCurve::None);
        if documented["status"] == "RUNNING" {
            spec = spec.duration_secs(3600.0);
        }
        if let Some(subs) = documented["entities"]["sub_jobs"].as_array() {
            spec = spec.sub_jobs(subs.len() as u32, 0);
        }
        if name.starts_with("otc-") {
            spec = spec.time_style(TimeStyle::OtcLegacy);
        }
        if name.starts_with("otc-ims-legacy") {
            spec = spec
                .progress(ProgressCurve::Linear)
                .tasks(["CreateImageByInstanceTask"]);
            spec.name = Some("asdfasdfasdfas".into());
            spec.extra_entities.insert(
                "results".into(),
                json!([{"image_id": "x", "project_id": "proj", "status": "success"}]),
            );
        }
        let job = sim.create_job(spec).unwrap();
        let (status, body) = get_json(&c, &url(&sim, &job.path)).await;
        assert_eq!(status, 200);
        assert_eq!(shape(&body), shape(&documented), "{name}: {body}");
        if documented["begin_time"].as_str().unwrap().contains('-') && name.starts_with("otc-") {
            // `04-Jun-2015 18:11:06:586`
            let t = body["begin_time"].as_str().unwrap();
            assert_eq!(t.len(), "04-Jun-2015 18:11:06:586".len(), "{t}");
        }
    }
    // Types without a documented example still carry the top-level field set.
    let top: Vec<&str> = vec![
        "begin_time",
        "end_time",
        "entities",
        "error_code",
        "fail_reason",
        "job_id",
        "job_type",
        "status",
    ];
    for &JobType {
        service, job_type, ..
    } in documented_job_types()
    {
        let job = sim
            .create_job(JobSpec::new(service, "proj", job_type).duration_secs(0.0))
            .unwrap();
        let (status, body) = get_json(&c, &url(&sim, &job.path)).await;
        assert_eq!(status, 200);
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, top, "{job_type}");
        assert_eq!(body["job_type"], job_type);
    }
}

async fn admin_get(c: &Client, sim: &Simulator, path: &str) -> Value {
    c.get(url(sim, path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn admin_create(c: &reqwest::Client, sim: &Simulator, spec: Value) -> Value {
    let r = c
        .post(url(sim, "/admin/jobs"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn job_driven_init_running_with_rising_progress_then_success_via_admin_api() {
    let (sim, c) = sim().await;
    // 20x: 10 simulated seconds of INIT = 0.5 s real, 40 s RUNNING = 2 s real.
    let r = c
        .put(url(&sim, "/admin/clock"))
        .json(&json!({"time_scale": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created = admin_create(
        &c,
        &sim,
        json!({
            "service": "ims", "project_id": "proj", "job_type": "imsCreateImageByInstance",
            "start_delay_secs": 10, "duration_secs": 40, "progress": "linear",
            "tasks": ["PrepareTask", "CreateImageTask", "UploadTask"],
            "produced_ids": ["3f7185de-b59a-4bb8-aa1d-7a513528b0e9"]
        }),
    )
    .await;
    let job_url = url(&sim, created["path"].as_str().unwrap());
    let mut statuses = Vec::new();
    let mut progress = Vec::new();
    let mut last = Value::Null;
    for _ in 0..100 {
        let (code, body) = get_json(&c, &job_url).await;
        assert_eq!(code, 200);
        let status = body["status"].as_str().unwrap().to_owned();
        if statuses.last() != Some(&status) {
            statuses.push(status.clone());
        }
        if status == "RUNNING" {
            progress.push(body["entities"]["process_percent"].as_f64().unwrap());
            assert_eq!(body["end_time"], "");
        }
        last = body;
        if status == "SUCCESS" {
            break;
        }
        c.clock.advance(Duration::from_millis(100));
    }
    assert_eq!(statuses, ["INIT", "RUNNING", "SUCCESS"]);
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(progress.first() < progress.last(), "{progress:?}");
    assert_eq!(
        last["entities"]["image_id"],
        "3f7185de-b59a-4bb8-aa1d-7a513528b0e9"
    );
    assert_eq!(last["error_code"], Value::Null);
    assert_ne!(last["end_time"], "");

    let stats: Value = admin_get(
        &c,
        &sim,
        &format!("/admin/jobs/{}/stats", created["job_id"].as_str().unwrap()),
    )
    .await;
    assert!(stats["total_requests"].as_u64().unwrap() >= 3);
    assert_eq!(stats["by_http_status"]["200"], stats["total_requests"]);
    let terminal_at: Timestamp = serde_json::from_value(stats["terminal_at"].clone()).unwrap();
    let served: Timestamp =
        serde_json::from_value(stats["first_terminal_served_at"].clone()).unwrap();
    assert!(served >= terminal_at);
    // Polled every 100 ms: the terminal state was seen within a poll period (plus slack).
    assert!(served.duration_since(terminal_at).as_millis() < 1000);
}

#[tokio::test]
async fn job_driven_to_fail_reports_error_code_and_fail_reason() {
    let (sim, c) = sim_with(SimConfig {
        time_scale: 100.0,
        ..SimConfig::default()
    })
    .await;
    let created = admin_create(
        &c,
        &sim,
        json!({
            "service": "ecs", "project_id": "proj", "job_type": "createServer",
            "duration_secs": 30,
            "sub_jobs": {"count": 2, "failing": 1, "error_code": "Ecs.0039", "fail_reason": "quota"},
            "outcome": {"status": "FAIL", "error_code": "Ecs.0039", "fail_reason": "quota exceeded"}
        }),
    )
    .await;
    let job_url = url(&sim, created["path"].as_str().unwrap());
    let (_, first) = get_json(&c, &job_url).await;
    assert_eq!(first["status"], "RUNNING");
    // 30 simulated seconds at 100x are 300 ms.
    c.clock.advance(Duration::from_millis(400));
    let (code, body) = get_json(&c, &job_url).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "FAIL");
    assert_eq!(body["error_code"], "Ecs.0039");
    assert_eq!(body["fail_reason"], "quota exceeded");
    assert_eq!(body["entities"]["sub_jobs_total"], 2);
    assert_eq!(body["entities"]["sub_jobs"][0]["status"], "SUCCESS");
    assert_eq!(body["entities"]["sub_jobs"][1]["status"], "FAIL");
    assert_eq!(body["entities"]["sub_jobs"][1]["error_code"], "Ecs.0039");

    // A long job forced to fail now through the admin API.
    let long = admin_create(
        &c,
        &sim,
        json!({"service": "evs", "project_id": "proj", "job_type": "createVolume", "duration_secs": 1e6}),
    )
    .await;
    let r = c
        .post(url(
            &sim,
            &format!("/admin/jobs/{}/finish", long["job_id"].as_str().unwrap()),
        ))
        .json(&json!({"status": "FAIL", "error_code": "EVS.2024", "fail_reason": "no capacity"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, body) = get_json(&c, &url(&sim, long["path"].as_str().unwrap())).await;
    assert_eq!(body["status"], "FAIL");
    assert_eq!(body["fail_reason"], "no capacity");
}

#[tokio::test]
async fn missing_and_wrong_signatures_get_gateway_401_with_request_id() {
    let (sim, c) = sim().await;
    let job = sim
        .create_job(JobSpec::new(Service::Ims, "proj", "imsImportImageJob"))
        .unwrap();
    let u = url(&sim, &job.path);

    let r = c.get(&u).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "APIGW.0301");
    assert_eq!(body["request_id"], rid.as_str());
    assert!(body["error_msg"].is_string());

    let wrong = aksk::Credentials::new("sim-ak", "not-the-sk");
    let r = signed_request(&c, &u, &wrong, c.clock.now())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    let msg = body["error_msg"].as_str().unwrap();
    assert!(
        msg.contains(&format!("GET\n{}/\n", job.path)),
        "message should echo the canonical request: {msg}"
    );

    let unknown = aksk::Credentials::new("other-ak", "sim-sk");
    let r = signed_request(&c, &u, &unknown, c.clock.now())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let stats = sim.job_stats(&job.job_id).unwrap();
    assert_eq!(stats.by_http_status.get(&401), Some(&3));
}

#[tokio::test]
async fn sdk_date_more_than_fifteen_minutes_off_is_rejected() {
    let (sim, c) = sim().await;
    let job = sim
        .create_job(JobSpec::new(Service::Evs, "proj", "createVolume"))
        .unwrap();
    let u = url(&sim, &job.path);
    for minutes in [-16, 16] {
        let t = c.clock.now() + SignedDuration::from_mins(minutes);
        let r = signed_request(&c, &u, &creds(), t).send().await.unwrap();
        assert_eq!(r.status(), 401, "{minutes} min");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_code"], "APIGW.0301");
    }
    let t = c.clock.now() - SignedDuration::from_mins(14);
    let r = signed_request(&c, &u, &creds(), t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The clock stands still, so the limit itself can be checked: 15 minutes pass, one more
    // second does not.
    for (offset, status) in [(15 * 60, 200), (15 * 60 + 1, 401)] {
        let t = c.clock.now() + SignedDuration::from_secs(offset);
        let r = signed_request(&c, &u, &creds(), t).send().await.unwrap();
        assert_eq!(r.status(), status, "{offset} s ahead");
    }
}

#[tokio::test]
async fn wrong_project_is_403_and_unknown_jobs_get_each_services_answer() {
    let (sim, c) = sim().await;
    let job = sim
        .create_job(JobSpec::new(Service::Ims, "owner", "imsImportImageJob"))
        .unwrap();
    let (code, body) = get_json(
        &c,
        &url(&sim, &format!("/ims/v1/intruder/jobs/{}", job.job_id)),
    )
    .await;
    assert_eq!(code, 403);
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["code"].is_string());

    let (code, body) = get_json(
        &c,
        &url(&sim, "/ims/v1/owner/jobs/ffffffffffffffffffffffffffffffff"),
    )
    .await;
    assert_eq!(code, 404);
    assert!(body["error"]["code"].is_string());
    let (code, _) = get_json(&c, &url(&sim, "/evs/v1/owner/jobs/ffff")).await;
    assert_eq!(code, 404);
    let (code, body) = get_json(&c, &url(&sim, "/ecs/v1/owner/jobs/ffff")).await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["code"], "Common.0011");
    // An IMS job is unknown to ECS.
    let (code, _) = get_json(
        &c,
        &url(&sim, &format!("/ecs/v1/owner/jobs/{}", job.job_id)),
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn unprefixed_path_takes_service_from_host_or_job() {
    let (sim, c) = sim().await;
    let job = sim
        .create_job(JobSpec::new(Service::Ecs, "proj", "createServer"))
        .unwrap();
    // No service in path or host (127.0.0.1): the job's own record decides.
    let (code, body) = get_json(&c, &url(&sim, &format!("/v1/proj/jobs/{}", job.job_id))).await;
    assert_eq!(code, 200);
    assert_eq!(body["job_id"], job.job_id.as_str());

    // Host `ims.eu-de...` names IMS, which does not know this ECS job: IMS's 404.
    let path = format!("/v1/proj/jobs/{}", job.job_id);
    let uri: http::Uri = url(&sim, &path).parse().unwrap();
    let mut h = http::HeaderMap::new();
    h.insert(
        "host",
        http::HeaderValue::from_static("ims.eu-de.otc.t-systems.com"),
    );
    sign(&creds(), &uri, &mut h, c.clock.now());
    let r = c.get(url(&sim, &path)).headers(h).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn terminal_job_expires_into_not_found() {
    let (sim, c) = sim().await;
    let mut spec = JobSpec::new(Service::Ecs, "proj", "createServer").duration_secs(0.0);
    spec.expiry_secs = Some(0.3);
    let job = sim.create_job(spec).unwrap();
    let (code, _) = get_json(&c, &url(&sim, &job.path)).await;
    assert_eq!(code, 200);
    c.clock.advance(Duration::from_millis(400));
    let (code, body) = get_json(&c, &url(&sim, &job.path)).await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["code"], "Common.0011");
    assert!(sim.job_stats(&job.job_id).unwrap().expired);
}

// ---------------------------------------------------------------------------------------------
// Faults, each observed by a client.

async fn fault_setup() -> (Simulator, Client, String, String) {
    let (sim, c) = sim().await;
    let job = sim
        .create_job(JobSpec::new(Service::Ims, "proj", "imsImportImageJob"))
        .unwrap();
    let u = url(&sim, &job.path);
    (sim, c, job.job_id, u)
}

#[tokio::test]
async fn throttle_fault_gives_429_apigw_0308_with_and_without_retry_after() {
    let (sim, c, _, u) = fault_setup().await;
    sim.set_fault(
        FaultScope::Global,
        Fault::next(
            1,
            FaultKind::Throttle {
                retry_after_secs: Some(3),
            },
        ),
    );
    let r = get(&c, &u).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "APIGW.0308");

    // Through the admin API, without Retry-After.
    let r = c
        .post(url(&sim, "/admin/faults"))
        .json(&json!({"kind": "throttle", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = get(&c, &u).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(get(&c, &u).await.status(), 200);
    assert_eq!(sim.global_stats().faults_injected["throttle"], 1);
}

#[tokio::test]
async fn server_error_bursts_of_500_and_503_then_recovery() {
    let (sim, c, id, u) = fault_setup().await;
    sim.set_fault(
        FaultScope::Job(id.clone()),
        Fault::next(2, FaultKind::ServerError { status: 500 }),
    );
    sim.set_fault(
        FaultScope::Job(id.clone()),
        Fault::next(3, FaultKind::ServerError { status: 503 }),
    );
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(get(&c, &u).await.status().as_u16());
    }
    assert_eq!(seen, [500, 500, 503, 503, 503, 200]);
    let stats = sim.job_stats(&id).unwrap();
    assert_eq!(stats.by_http_status[&503], 3);
}

#[tokio::test]
async fn slow_fault_delays_the_response() {
    let (sim, c, _, u) = fault_setup().await;
    sim.set_fault(
        FaultScope::Global,
        Fault::next(1, FaultKind::Slow { delay_ms: 400 }),
    );
    let t = std::time::Instant::now();
    assert_eq!(get(&c, &u).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
    // A client with a shorter timeout sees a timeout. The delay is far longer than the timeout
    // so that no scheduling hiccup can let the response win; dropping `sim` ends the wait.
    sim.set_fault(
        FaultScope::Global,
        Fault::next(1, FaultKind::Slow { delay_ms: 600_000 }),
    );
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = signed_request(&short, &u, &creds(), c.clock.now())
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn connection_reset_drops_the_connection_without_a_response() {
    let (sim, c, id, u) = fault_setup().await;
    sim.set_fault(
        FaultScope::Job(id.clone()),
        Fault::next(1, FaultKind::ConnectionReset),
    );
    let err = signed_request(&c, &u, &creds(), c.clock.now())
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    // The next request (on a new connection) works.
    assert_eq!(get(&c, &u).await.status(), 200);
    assert_eq!(sim.job_stats(&id).unwrap().by_http_status[&0], 1);

    // At the socket level: no byte of response, then EOF or ECONNRESET.
    sim.set_fault(
        FaultScope::Job(id),
        Fault::next(1, FaultKind::ConnectionReset),
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let uri: http::Uri = u.parse().unwrap();
    let mut h = http::HeaderMap::new();
    h.insert(
        "host",
        http::HeaderValue::from_str(uri.authority().unwrap().as_str()).unwrap(),
    );
    sign(&creds(), &uri, &mut h, c.clock.now());
    let mut req = format!("GET {} HTTP/1.1\r\n", uri.path());
    for (k, v) in &h {
        req.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
    }
    req.push_str("\r\n");
    let mut s = tokio::net::TcpStream::connect(sim.local_addr())
        .await
        .unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let res = s.read_to_end(&mut buf).await;
    assert!(
        buf.is_empty(),
        "got bytes: {:?}",
        String::from_utf8_lossy(&buf)
    );
    if let Err(e) = res {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    }
}

#[tokio::test]
async fn malformed_json_fault_is_a_200_that_does_not_parse() {
    let (sim, c, _, u) = fault_setup().await;
    sim.set_fault(FaultScope::Global, Fault::next(1, FaultKind::MalformedJson));
    let r = get(&c, &u).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn truncated_body_fault_breaks_the_body_read() {
    let (sim, c, _, u) = fault_setup().await;
    sim.set_fault(FaultScope::Global, Fault::next(1, FaultKind::TruncatedBody));
    let r = get(&c, &u).await;
    assert_eq!(r.status(), 200);
    let declared: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(declared > 0);
    let err = r.bytes().await.unwrap_err();
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    assert_eq!(get(&c, &u).await.status(), 200);
}

#[tokio::test]
async fn cut_json_fault_sends_half_a_document() {
    let (sim, c, _, u) = fault_setup().await;
    sim.set_fault(FaultScope::Global, Fault::next(1, FaultKind::CutJson));
    let r = get(&c, &u).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with('{'));
    let err = serde_json::from_str::<Value>(&text).unwrap_err();
    assert!(err.is_eof(), "{err}");
}

#[tokio::test]
async fn error_body_with_status_200_fault() {
    let (sim, c, _, u) = fault_setup().await;
    sim.set_fault(FaultScope::Global, Fault::next(1, FaultKind::ErrorBodyOk));
    let (code, body) = get_json(&c, &u).await;
    assert_eq!(code, 200);
    assert!(body["error"]["code"].is_string());
    assert!(body.get("status").is_none());
}

#[tokio::test]
async fn probabilistic_and_job_scoped_faults_hit_only_their_share() {
    let (sim, c, id, u) = fault_setup().await;
    let other = sim
        .create_job(JobSpec::new(Service::Ims, "proj", "imsImportImageJob"))
        .unwrap();
    sim.set_fault(
        FaultScope::Job(id.clone()),
        Fault::with_probability(0.5, FaultKind::ServerError { status: 503 }),
    );
    let mut counts: BTreeMap<u16, u32> = BTreeMap::new();
    for _ in 0..100 {
        *counts
            .entry(get(&c, &u).await.status().as_u16())
            .or_default() += 1;
        assert_eq!(get(&c, &url(&sim, &other.path)).await.status(), 200);
    }
    assert!(counts[&503] > 20 && counts[&200] > 20, "{counts:?}");
    let r = c
        .delete(url(&sim, &format!("/admin/faults?job={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&c, &u).await.status(), 200);
}

#[tokio::test]
async fn global_stats_count_requests_and_peak_rate_per_service_and_reset() {
    let (sim, c, _, u) = fault_setup().await;
    for _ in 0..10 {
        get(&c, &u).await;
    }
    let g: Value = admin_get(&c, &sim, "/admin/stats").await;
    assert_eq!(g["total_requests"], 10);
    assert_eq!(g["by_service"]["ims"]["total_requests"], 10);
    assert!(
        g["by_service"]["ims"]["max_requests_per_second"]
            .as_u64()
            .unwrap()
            >= 5
    );
    assert_eq!(g["live_jobs"], 1);
    let r = c
        .post(url(&sim, "/admin/stats/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sim.global_stats().total_requests, 0);
}

#[tokio::test]
async fn admin_api_lists_inspects_and_validates() {
    let (sim, c) = sim().await;
    let created = admin_create(
        &c,
        &sim,
        json!({"service": "evs", "project_id": "p", "job_type": "batchCreateVolume",
               "job_id": "4010a32d535527910153552b492c0002", "sub_jobs": {"count": 3}}),
    )
    .await;
    assert_eq!(
        created["path"],
        "/evs/v1/p/jobs/4010a32d535527910153552b492c0002"
    );
    let dup = c
        .post(url(&sim, "/admin/jobs"))
        .json(
            &json!({"service": "evs", "project_id": "p", "job_type": "x",
                      "job_id": "4010a32d535527910153552b492c0002"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let bad = c
        .post(url(&sim, "/admin/jobs"))
        .json(&json!({"service": "rds", "project_id": "p", "job_type": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let list: Value = admin_get(&c, &sim, "/admin/jobs").await;
    assert_eq!(list[0]["status"], "RUNNING");
    let one: Value = admin_get(&c, &sim, "/admin/jobs/4010a32d535527910153552b492c0002").await;
    assert_eq!(
        one["body"]["entities"]["sub_jobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(one["stats"]["total_requests"], 0);
    let types: Value = admin_get(&c, &sim, "/admin/job-types").await;
    assert_eq!(
        types.as_array().unwrap().len(),
        documented_job_types().count()
    );
    let r = c.post(url(&sim, "/admin/reset")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sim.list_jobs().len(), 0);
    let r = c.get(url(&sim, "/admin/jobs/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

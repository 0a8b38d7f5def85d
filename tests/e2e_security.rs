//! Hostile input against the real control plane (issue 12): endpoints outside the allow-list, internal
//! answers, redirects and port probes (SSRF); credentials on every problem path; a hostile 3.5 MB answer;
//! idle connections to the metrics port; terminal failure strings; Secret references and immutable fields
//! validated at admission. Hostile servers bind 127.0.0.1 only and serve a bounded number of connections.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use cloudjob_operator::{
    cloud::{client::TRANSPORT_TEXT, model::MAX_STATUS_BYTES},
    crd::Phase,
    server::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS},
};
use cloudjob_sim::{Fault, FaultKind, FaultScope, JobSpec, Service};
use cloudjob_testenv::{free_port, wait_for};
use cloudjob_testkit::{Operator, ProcessOptions, e2e::*};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FAST_RETRIES: &[&str] = &["--error-backoff-min", "300ms", "--error-backoff-max", "2s"];

/// A server on 127.0.0.1 that answers at most `max_connections` connections with `respond(request head)`
/// (an empty answer closes the connection without a byte), then stops listening.
struct Hostile {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    async fn start(
        max_connections: usize,
        respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    ) -> Hostile {
        let respond = Arc::new(respond);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            for _ in 0..max_connections {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                            .await
                        {
                            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                            _ => break,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let answer = respond(&head);
                    if let Ok(mut all) = seen.lock() {
                        all.push(head);
                    }
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Hostile { port, heads, task }
    }

    fn requests(&self) -> usize {
        self.heads.lock().map(|h| h.len()).unwrap_or_default()
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/ims", self.port)
    }
}

fn http(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A marker that must never appear in status or events: it stands for an internal service's content.
const MARKER: &str = "INTERNAL-CONTENT-7f3a";

async fn everything_visible(env: &Env, ns: &str) -> String {
    let jobs = env
        .cloudjobs(ns)
        .list(&ListParams::default())
        .await
        .expect("list");
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(env.client.clone(), ns);
    let events = events.list(&ListParams::default()).await.expect("events");
    format!(
        "{}\n{}",
        serde_json::to_string(&jobs.items).expect("json"),
        serde_json::to_string(&events.items).expect("json")
    )
}

fn ready_message(status: &cloudjob_operator::crd::CloudJobStatus) -> String {
    condition(status, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_are_allowed_not_just_accepted_and_no_internal_answer_reaches_status_or_events() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "ssrf").await;
    let job_id = "ff8080814dbd65d7014dbe0d84db0013";

    // Refused before any request: the harness allows 127.0.0.1 only.
    let target = Hostile::start(50, |_| http("200 OK", "", MARKER)).await;
    let port = target.port;
    let refused = [
        (
            "metadata",
            "http://169.254.169.254/latest".to_string(),
            "link-local",
        ),
        (
            "apiserver",
            "https://kubernetes.default.svc".to_string(),
            "Kubernetes API",
        ),
        ("decimal", format!("http://2130706434:{port}/"), "loopback"),
        ("hex", format!("http://0x7f.0.0.2:{port}/"), "loopback"),
        ("ipv6-loopback", format!("http://[::1]:{port}/"), "loopback"),
        ("localhost", format!("http://localhost:{port}/"), "loopback"),
        ("private", "http://10.0.0.1/".to_string(), "private"),
        ("public", "https://example.com/".to_string(), "allow-list"),
    ];
    for (name, endpoint, _) in &refused {
        let mut manifest = env.cloudjob_manifest(name, "ims", job_id);
        manifest["spec"]["endpoint"] = endpoint.clone().into();
        env.create_cloudjob_from(&ns, manifest).await;
    }

    // Allowed host, hostile answers.
    let redirect_target = Hostile::start(50, |_| http("200 OK", "", MARKER)).await;
    let location = format!(
        "location: http://127.0.0.1:{}/ims/v1/p/jobs/j\r\n",
        redirect_target.port
    );
    let redirecting = Hostile::start(200, move |_| http("302 Found", &location, MARKER)).await;
    let not_found_page = Hostile::start(200, |_| {
        http(
            "404 Not Found",
            "",
            &format!("<html><body>{MARKER} admin console</body></html>"),
        )
    })
    .await;
    let internal_json = Hostile::start(200, |_| {
        let body = format!(r#"{{"error":"x","message":"{MARKER}","code":"{MARKER}"}}"#);
        http("500 Internal Server Error", "", &body)
    })
    .await;
    let not_a_job = Hostile::start(200, |_| {
        let body = format!(
            r#"{{"status":"RUNNING","job_type":"{MARKER}","entities":{{"current_task":"{MARKER}","process_percent":0.5}}}}"#
        );
        http("200 OK", "", &body)
    })
    .await;
    let garbage = Hostile::start(200, |_| b"\x15\x03\x03\x00\x02\x02\x50".to_vec()).await;
    let hang_up = Hostile::start(200, |_| Vec::new()).await;
    let closed = format!("http://127.0.0.1:{}/ims", free_port());
    let cases = [
        ("redirect", redirecting.endpoint(), "RequestRejected"),
        ("html-404", not_found_page.endpoint(), "JobNotFound"),
        ("json-500", internal_json.endpoint(), "CloudUnavailable"),
        ("not-a-job", not_a_job.endpoint(), "InvalidResponse"),
        ("closed-port", closed, "CloudUnavailable"),
        ("garbage-port", garbage.endpoint(), "CloudUnavailable"),
        ("hang-up-port", hang_up.endpoint(), "CloudUnavailable"),
    ];
    for (name, endpoint, _) in &cases {
        let mut manifest = env.cloudjob_manifest(name, "ims", job_id);
        manifest["spec"]["endpoint"] = endpoint.clone().into();
        env.create_cloudjob_from(&ns, manifest).await;
    }

    for (name, _, why) in &refused {
        let status = env
            .wait_status(&operator, &ns, name, "EndpointNotAllowed", |s| {
                condition_is(s, "Stalled", "True", "EndpointNotAllowed")
            })
            .await;
        let message = ready_message(&status);
        assert!(
            message.contains(why) && message.contains("--allowed-endpoints"),
            "{name}: the message says why and what to do: {message}"
        );
    }
    let mut transport_messages = std::collections::BTreeSet::new();
    for (name, _, reason) in &cases {
        let status = env
            .wait_status(&operator, &ns, name, reason, |s| {
                condition(s, "Ready").is_some_and(|c| c.reason == *reason)
            })
            .await;
        if *reason == "CloudUnavailable" && !name.starts_with("json") {
            transport_messages.insert(ready_message(&status));
        }
        if *name == "redirect" {
            assert!(ready_message(&status).contains("redirect"), "{status:?}");
        }
        assert!(
            status.job_type.is_none() && status.current_task.is_none(),
            "{name}: {status:?}"
        );
    }
    assert_eq!(
        transport_messages.len(),
        1,
        "refused, garbage and hung-up ports read the same: {transport_messages:?}"
    );
    assert!(
        transport_messages
            .iter()
            .all(|m| m.contains(TRANSPORT_TEXT)),
        "{transport_messages:?}"
    );
    assert_eq!(target.requests(), 0, "refused endpoints get no request");
    assert_eq!(
        redirect_target.requests(),
        0,
        "the redirect was not followed (no signed request, no X-Security-Token, went there)"
    );
    assert!(redirecting.requests() > 0);
    let visible = everything_visible(&env, &ns).await;
    assert!(
        !visible.contains(MARKER),
        "an internal answer reached status or events"
    );
}

/// The operator binary with `RUST_LOG=trace`, logging everything it does to one file.
struct TracedOperator {
    operator: Operator,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TracedOperator {
    async fn start(env: &Env) -> TracedOperator {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("operator.log");
        let mut options =
            ProcessOptions::new(operator_binary(), env.cp.kubeconfig_path()).args(FAST_RETRIES);
        options.rust_log = "trace".into();
        options.log = Some(log.clone());
        let operator = Operator::process(options).await.expect("operator ready");
        TracedOperator {
            operator,
            log,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_credential_reaches_logs_events_status_or_metrics_on_any_problem_path() {
    const TOKEN: &str = "TOKEN-5e1f9c-never-shown";
    const WRONG_SK: &str = "WRONG-SK-b7d2-never-shown";
    let env = Env::start().await;
    let operator = TracedOperator::start(&env).await;
    let ns = env.namespace("creds").await;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.client.clone(), &ns);
    let b64 = |v: &[u8]| {
        serde_json::to_value(k8s_openapi::ByteString(v.to_vec()))
            .expect("base64")
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let token = TOKEN.as_bytes();
    for (name, data) in [
        (
            "good",
            vec![
                ("accessKey", AK.as_bytes()),
                ("secretKey", SK.as_bytes()),
                ("securityToken", token),
            ],
        ),
        (
            "wrong-sk",
            vec![
                ("accessKey", AK.as_bytes()),
                ("secretKey", WRONG_SK.as_bytes()),
                ("securityToken", token),
            ],
        ),
        (
            "bad-bytes",
            vec![
                ("accessKey", b"sim-\x01ak".as_slice()),
                ("secretKey", SK.as_bytes()),
                ("securityToken", token),
            ],
        ),
        (
            "no-sk",
            vec![("accessKey", AK.as_bytes()), ("securityToken", token)],
        ),
    ] {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }

    let job = |duration| {
        env.job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(duration),
        )
    };
    let throttled = job(2.0);
    env.sim.set_fault(
        FaultScope::Job(throttled.job_id.clone()),
        Fault::next(
            2,
            FaultKind::Throttle {
                retry_after_secs: Some(1),
            },
        ),
    );
    let failing = job(2.0);
    env.sim.set_fault(
        FaultScope::Job(failing.job_id.clone()),
        Fault::next(2, FaultKind::ServerError { status: 503 }),
    );
    let plain = job(1.0);
    let cases = [
        (
            "bad-signature",
            "wrong-sk",
            plain.job_id.clone(),
            "AuthenticationFailed",
        ),
        ("throttled", "good", throttled.job_id.clone(), "Succeeded"),
        ("server-error", "good", failing.job_id.clone(), "Succeeded"),
        (
            "not-found",
            "good",
            "0000000000000000000000000000dead".into(),
            "JobNotFound",
        ),
        (
            "bad-bytes",
            "bad-bytes",
            plain.job_id.clone(),
            "SecretInvalid",
        ),
        (
            "missing-key",
            "no-sk",
            plain.job_id.clone(),
            "SecretInvalid",
        ),
    ];
    for (name, secret, job_id, _) in &cases {
        let mut manifest = env.cloudjob_manifest(name, "ims", job_id);
        manifest["spec"]["credentialsSecretRef"]["name"] = (*secret).into();
        env.create_cloudjob_from(&ns, manifest).await;
    }
    for (name, _, _, reason) in &cases {
        wait_reason(&env, &ns, name, reason, &operator.log).await;
    }
    // The throttling path was taken.
    env.wait_event(&ns, "throttled", None, "Throttled").await;
    let metrics = reqwest::get(format!(
        "http://{}/metrics",
        operator.operator.metrics_address()
    ))
    .await
    .expect("metrics")
    .text()
    .await
    .expect("metrics body");
    let log = std::fs::read_to_string(&operator.log).expect("log");
    assert!(log.contains("TRACE"), "the operator logged at trace level");
    let outputs = [
        ("log", log),
        ("status and events", everything_visible(&env, &ns).await),
        ("metrics", metrics),
    ];
    // The gateway's 401 echoes the canonical request (it holds the token): never passed on, nor logged.
    for (what, text) in &outputs {
        assert!(
            !text.contains("canonicalRequest"),
            "the gateway's echo of the canonical request appears in the {what}"
        );
    }
    for secret in [AK, SK, TOKEN, WRONG_SK] {
        for needle in [secret.to_string(), b64(secret.as_bytes())] {
            for (what, text) in &outputs {
                assert!(
                    !text.contains(&needle),
                    "{needle:?} (a credential) appears in the {what}"
                );
            }
        }
    }
}

/// Waits until the CloudJob's Ready condition has `reason` (watching its status), or fails with the log.
async fn wait_reason(env: &Env, ns: &str, name: &str, reason: &str, log: &std::path::Path) {
    let api = env.cloudjobs(ns);
    let mut watch = env.watch(ns, name).await;
    let found = watch
        .until(WAIT, &format!("{ns}/{name}: Ready reason {reason}"), |cj| {
            cj.status
                .clone()
                .filter(|s| condition(s, "Ready").is_some_and(|c| c.reason == reason))
        })
        .await;
    if let Err(e) = found {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        panic!(
            "{e}\nlast status: {:?}\nlog tail: {}",
            api.get(name).await.ok().and_then(|c| c.status),
            tail.join("\n")
        );
    }
}

/// A 200 answer of about 3.5 MB for `job_id`: thousands of produced resources, duplicates among them, and
/// huge strings (quotes and control characters, which JSON escaping inflates) in every field.
fn hostile_job(job_id: &str, status: &str) -> serde_json::Value {
    let sub_jobs: Vec<serde_json::Value> = (0..3000)
        .map(|i| {
            json!({
                "status": "SUCCESS",
                "job_id": format!("{i}-{}", "s".repeat(200)),
                "job_type": "\"".repeat(20),
                "entities": {"volume_id": format!("{}-{}", i / 2, "v".repeat(150)), "name": "\"".repeat(150)}
            })
        })
        .collect();
    json!({
        "status": status,
        "job_id": job_id,
        "job_type": "\"".repeat(100_000),
        "fail_reason": "\u{1}".repeat(50_000),
        "error_code": "e".repeat(50_000),
        "entities": {
            "current_task": "t".repeat(100_000),
            "image_name": "n".repeat(100_000),
            "image_id": "i".repeat(100_000),
            "sub_jobs": sub_jobs,
        }
    })
}

/// Running jobs answered with 3.5 MB hostile bodies, polled again and again.
const HOSTILE_RUNNING: usize = 8;
/// Probes of `/healthz`, two seconds apart as the chart's liveness probe is, each answered within its 2 s
/// timeout.
const HEALTH_PROBES: usize = 10;
/// Peak resident memory allowed while they are polled: far below the chart's 256 Mi limit (one such answer
/// used to cost 210 MB).
const HOSTILE_PEAK_LIMIT_KIB: u64 = 128 * 1024;

/// Eight running jobs whose every answer is a 3.5 MB hostile body: the operator keeps answering its
/// liveness probe in time and its memory stays far below the chart's limit, because bodies are capped,
/// parsed off the async workers, and only a bounded status is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_answers_polled_again_and_again_keep_memory_bounded_and_healthz_in_time() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "hostile-running").await;
    let mut job_ids = Vec::new();
    for i in 0..HOSTILE_RUNNING {
        let job_id = format!("{i:0>31}r");
        env.sim
            .create_fixture_job(Service::Ims, PROJECT, hostile_job(&job_id, "RUNNING"))
            .expect("fixture");
        env.create_cloudjob(&ns, &format!("hostile-running-{i}"), "ims", &job_id)
            .await;
        job_ids.push(job_id);
    }
    let client = reqwest::Client::new();
    let health = format!("http://{}/healthz", operator.metrics_address());
    for probe in 0..HEALTH_PROBES {
        // The probes are the measurement: paced as the kubelet paces them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let answer = tokio::time::timeout(Duration::from_secs(2), client.get(&health).send())
            .await
            .unwrap_or_else(|_| panic!("probe {probe}: /healthz took longer than 2 s"))
            .expect("healthz");
        assert!(
            answer.status().is_success(),
            "probe {probe}: {}",
            answer.status()
        );
    }
    for job_id in &job_ids {
        let polls = env.job_requests(job_id);
        assert!(
            polls >= 3,
            "{job_id} was polled during the probes ({polls} GETs)"
        );
    }
    let peak = operator.peak_resident_kib().expect("the operator runs");
    println!(
        "{HOSTILE_RUNNING} running jobs with 3.5 MB hostile answers: peak RSS {} MiB, /healthz in time on {HEALTH_PROBES} probes",
        peak / 1024
    );
    assert!(
        peak < HOSTILE_PEAK_LIMIT_KIB,
        "peak RSS {peak} KiB is over {HOSTILE_PEAK_LIMIT_KIB} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_answer_ends_the_job_with_a_status_far_below_etcds_limit() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "hostile").await;
    let mut names = Vec::new();
    for (i, status) in ["SUCCESS", "FAIL"].into_iter().enumerate() {
        let job_id = format!("{i:0>31}h");
        let body = hostile_job(&job_id, status);
        let size = serde_json::to_vec(&body).expect("json").len();
        assert!(size > 3_000_000 && size < 4 * 1024 * 1024, "{size}");
        env.sim
            .create_fixture_job(Service::Ims, PROJECT, body)
            .expect("fixture");
        let name = format!("hostile-{}", status.to_ascii_lowercase());
        env.create_cloudjob(&ns, &name, "ims", &job_id).await;
        names.push(name);
    }
    for name in &names {
        let status = env
            .wait_status(&operator, &ns, name, "finished", |s| {
                s.phase.is_some_and(Phase::is_terminal)
            })
            .await;
        let status_size = serde_json::to_vec(&status).expect("json").len();
        assert!(
            status_size < MAX_STATUS_BYTES,
            "{name}: status of {status_size} bytes"
        );
        let stored = env.cloudjobs(&ns).get(name).await.expect("get");
        let object_size = serde_json::to_vec(&stored).expect("json").len();
        assert!(
            object_size < 1536 * 1024 / 2,
            "{name}: the stored object has {object_size} bytes"
        );
    }
    let health = reqwest::get(format!("http://{}/healthz", operator.metrics_address()))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_to_the_metrics_port_neither_exhaust_descriptors_nor_stop_healthz() {
    let env = Env::start().await;
    let operator = env.operator(FAST_RETRIES).await;
    let pid = operator.pid().expect("pid");
    let before = open_fds(pid);
    let addr = operator.metrics_address().to_string();
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS + 200 {
        idle.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    let during = open_fds(pid);
    assert!(
        during <= before + MAX_CONNECTIONS + 16,
        "the operator holds {during} descriptors (was {before}) with {} idle connections",
        idle.len()
    );
    // The idle connections are closed within the header timeout; /healthz answers again meanwhile held.
    let started = std::time::Instant::now();
    let url = format!("http://{addr}/healthz");
    // Each attempt has a deadline of its own: an attempt that never hears back is one failed attempt, not
    // a hung test (one run hung here without a trace of where).
    let client = reqwest::Client::builder()
        .timeout(HEADER_READ_TIMEOUT)
        .build()
        .expect("client");
    wait_for(
        HEADER_READ_TIMEOUT * 3,
        "/healthz behind idle connections",
        || {
            let request = client.get(&url);
            async move {
                request
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        },
    )
    .await
    .expect("/healthz answers");
    println!(
        "/healthz answered {:?} after {} idle connections",
        started.elapsed(),
        idle.len()
    );
    // The operator still reads Secrets and polls: a new job completes while the connections are open.
    let ns = env.namespace("after-flood").await;
    let job =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(1.0));
    env.create_cloudjob(&ns, "after", "ims", &job.job_id).await;
    env.wait_status(&operator, &ns, "after", "Succeeded", |s| {
        s.phase == Some(Phase::Succeeded)
    })
    .await;
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_and_error_statuses_end_failed_instead_of_running_forever() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "terminal").await;
    for (i, (raw, reason)) in [("CANCELLED", "JobCancelled"), ("ERROR", "JobFailed")]
        .into_iter()
        .enumerate()
    {
        let job_id = format!("{i:0>31}c");
        env.sim
            .create_fixture_job(
                Service::Ims,
                PROJECT,
                json!({"job_id": job_id, "job_type": "imsCreateImageByInstance", "status": raw, "entities": {}}),
            )
            .expect("fixture");
        let name = raw.to_ascii_lowercase();
        env.create_cloudjob(&ns, &name, "ims", &job_id).await;
        let status = env
            .wait_status(&operator, &ns, &name, "Failed", |s| {
                s.phase == Some(Phase::Failed)
            })
            .await;
        assert!(
            condition_is(&status, "Failed", "True", reason),
            "{raw}: {status:?}"
        );
        assert!(
            condition_is(&status, "Stalled", "True", reason),
            "{raw}: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_references_userinfo_and_immutable_fields_are_checked_by_the_api_server() {
    let env = Env::start().await;
    let ns = env.namespace("admission").await;
    let valid = env.cloudjob_manifest("valid", "ims", "ff8080814dbd65d7014dbe0d84db0013");
    env.apply_accepted(&ns, &valid, "a valid CloudJob").await;

    let mut cases: Vec<(String, serde_json::Value, Vec<&str>)> = Vec::new();
    for name in [
        "?",
        "??",
        "UPPER",
        "a/b",
        "-creds",
        "creds.",
        "creds?watch=1",
    ] {
        let mut m = valid.clone();
        m["metadata"]["name"] = format!("secret-name-{}", cases.len()).into();
        m["spec"]["credentialsSecretRef"]["name"] = name.into();
        cases.push((
            format!("Secret name {name:?}"),
            m,
            vec!["spec.credentialsSecretRef.name", "must be a Secret name"],
        ));
    }
    for (field, key) in [
        ("accessKeyKey", "a/b"),
        ("secretKeyKey", "key?"),
        ("securityTokenKey", "key with space"),
    ] {
        let mut m = valid.clone();
        m["metadata"]["name"] = format!("key-{}", cases.len()).into();
        m["spec"]["credentialsSecretRef"][field] = key.into();
        cases.push((
            format!("{field} {key:?}"),
            m,
            vec!["spec.credentialsSecretRef", field, "must be a Secret key"],
        ));
    }
    let mut userinfo = valid.clone();
    userinfo["metadata"]["name"] = "userinfo".into();
    userinfo["spec"]["endpoint"] = "https://user:password@ims.eu-de.otc.t-systems.com".into();
    cases.push((
        "user:password@ endpoint".into(),
        userinfo,
        vec!["spec.endpoint", "user name or password"],
    ));
    for (what, manifest, needles) in cases {
        env.apply_refused(&ns, &manifest, &what, &needles).await;
    }

    // projectId, service and endpoint cannot change, like jobId.
    let mut edits: Vec<(&str, serde_json::Value)> = Vec::new();
    let mut project = valid.clone();
    project["spec"]["projectId"] = "fedcba9876543210fedcba9876543210".into();
    edits.push(("spec.projectId", project));
    let mut service = valid.clone();
    service["spec"]["service"] = "evs".into();
    edits.push(("spec.service", service));
    let mut endpoint = valid.clone();
    endpoint["spec"]["endpoint"] = "https://ims.eu-nl.otc.t-systems.com".into();
    edits.push(("spec.endpoint", endpoint));
    let mut removed = valid.clone();
    removed["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("endpoint");
    edits.push(("spec.endpoint", removed));
    for (field, manifest) in edits {
        env.apply_refused(
            &ns,
            &manifest,
            &format!("changing {field}"),
            &[field, "immutable"],
        )
        .await;
    }
    // Adding an endpoint to a CloudJob created without one is a change too.
    let mut without = valid.clone();
    without["metadata"]["name"] = "without-endpoint".into();
    without["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("endpoint");
    env.apply_accepted(&ns, &without, "a CloudJob without an endpoint")
        .await;
    without["spec"]["endpoint"] = "https://ims.eu-de.otc.t-systems.com".into();
    env.apply_refused(
        &ns,
        &without,
        "adding an endpoint",
        &["spec.endpoint", "immutable"],
    )
    .await;
    // The region may still be edited.
    let mut region = valid.clone();
    region["spec"]["region"] = "eu-nl".into();
    env.apply_accepted(&ns, &region, "editing the region").await;
}

//! End to end, per service: every job API of `spec.service` against the simulator on a real control plane,
//! and the PENDING_PAYMENT wait of an unpaid yearly/monthly order.

use cloudjob_operator::crd::{CloudJobStatus, Phase};
use cloudjob_sim::{Fault, FaultKind, FaultScope, JobSpec, Outcome, Service};
use cloudjob_testkit::{e2e::*, repo_root};
use serde_json::Value;

/// Quick retries, so that throttling ends within the test's wait.
const FAST_RETRIES: &[&str] = &["--error-backoff-min", "300ms", "--error-backoff-max", "2s"];

/// A fixture of tests/fixtures/services served by the simulator, and what its CloudJob must end in:
/// fixture, service, phase, primary id, progress, Ready reason, sub-jobs (total, succeeded, failed).
type Row = (
    &'static str,
    &'static str,
    Phase,
    Option<&'static str>,
    Option<i32>,
    &'static str,
    Option<(i32, i32, i32)>,
);

#[rustfmt::skip]
const ROWS: &[Row] = &[
    ("ims-success", "ims", Phase::Succeeded, Some("7a3b3d4e-5f60-4a1b-9c2d-3e4f5a6b7c01"), Some(100), "Succeeded", None),
    ("ims-fail", "ims", Phase::Failed, None, Some(35), "JobFailed", None),
    ("ims-running", "ims", Phase::Running, None, Some(60), "Progressing", None),
    ("bms-success", "bms", Phase::Succeeded, Some("b1a5c0de-0001-4a1b-9c2d-000000000001"), Some(100), "Succeeded", Some((2, 2, 0))),
    ("bms-fail", "bms", Phase::Failed, Some("b1a5c0de-0001-4a1b-9c2d-000000000003"), None, "JobFailed", None),
    ("bms-subjobs", "bms", Phase::Running, Some("b1a5c0de-0001-4a1b-9c2d-000000000004"), Some(50), "Progressing", Some((2, 1, 0))),
    ("bms-pending-payment", "bms", Phase::Pending, None, None, "PendingPayment", None),
    ("sdrs-success", "sdrs", Phase::Succeeded, Some("5d0e1f2a-0002-4b3c-8d4e-000000000001"), Some(100), "Succeeded", None),
    ("sdrs-fail", "sdrs", Phase::Failed, Some("5d0e1f2a-0002-4b3c-8d4e-0000000000aa"), None, "JobFailed", None),
    ("sdrs-subjobs", "sdrs", Phase::Running, Some("5d0e1f2a-0002-4b3c-8d4e-0000000000aa"), Some(50), "Progressing", Some((2, 1, 0))),
    ("deh-success", "deh", Phase::Succeeded, Some("de11c0de-0003-4c5d-9e6f-000000000001"), Some(100), "Succeeded", None),
    ("deh-fail", "deh", Phase::Failed, None, None, "JobFailed", None),
    ("deh-subjobs", "deh", Phase::Running, Some("de11c0de-0003-4c5d-9e6f-000000000002"), Some(100), "Progressing", Some((2, 1, 1))),
    ("eip-success", "eip", Phase::Succeeded, Some("e1b0c0de-0004-4d5e-8f70-000000000001"), Some(100), "Succeeded", Some((1, 1, 0))),
    ("eip-fail", "eip", Phase::Failed, None, None, "JobFailed", None),
    ("eip-subjobs", "eip", Phase::Running, Some("e1b0c0de-0004-4d5e-8f70-000000000003"), Some(50), "Progressing", Some((2, 1, 0))),
    ("rds-success", "rds", Phase::Succeeded, Some("rds0ffee000000000000000001in01"), Some(100), "Succeeded", None),
    ("rds-fail", "rds", Phase::Failed, Some("rds0ffee000000000000000002in01"), None, "JobFailed", None),
    ("rds-running", "rds", Phase::Running, Some("rds0ffee000000000000000003in01"), Some(60), "Progressing", None),
    ("dds-success", "dds", Phase::Succeeded, Some("dds0ffee000000000000000001in01"), Some(100), "Succeeded", None),
    ("dds-fail", "dds", Phase::Failed, Some("dds0ffee000000000000000002in01"), None, "JobFailed", None),
    ("dds-running", "dds", Phase::Running, Some("dds0ffee000000000000000003in01"), Some(60), "Progressing", None),
    ("gaussdb-success", "gaussdb", Phase::Succeeded, Some("gau0ffee000000000000000001in01"), Some(100), "Succeeded", None),
    ("gaussdb-fail", "gaussdb", Phase::Failed, Some("gau0ffee000000000000000002in01"), None, "JobFailed", None),
    ("gaussdb-running", "gaussdb", Phase::Running, Some("gau0ffee000000000000000003in01"), Some(60), "Progressing", None),
    ("opengauss-success", "opengauss", Phase::Succeeded, Some("ope0ffee000000000000000001in01"), Some(100), "Succeeded", None),
    ("opengauss-fail", "opengauss", Phase::Failed, Some("ope0ffee000000000000000002in01"), None, "JobFailed", None),
    ("opengauss-running", "opengauss", Phase::Running, Some("ope0ffee000000000000000003in01"), Some(60), "Progressing", None),
    ("geminidb-success", "geminidb", Phase::Succeeded, Some("gem0ffee0000000000000001in02"), Some(100), "Succeeded", None),
    ("geminidb-fail", "geminidb", Phase::Failed, Some("gem0ffee0000000000000002in02"), None, "JobFailed", None),
    ("geminidb-running", "geminidb", Phase::Running, Some("gem0ffee0000000000000003in02"), Some(60), "Progressing", None),
    ("dcs-success", "dcs", Phase::Succeeded, None, Some(100), "Succeeded", None),
    ("dcs-fail", "dcs", Phase::Failed, None, None, "JobFailed", None),
    ("dcs-running", "dcs", Phase::Running, None, None, "Progressing", None),
    ("cce-success", "cce", Phase::Succeeded, Some("cce0n0de-0006-11f0-9a1b-000000000001"), Some(100), "Succeeded", Some((2, 2, 0))),
    ("cce-fail", "cce", Phase::Failed, Some("cce0c1a5-0006-11f0-9a1b-0255ac100002"), None, "JobFailed", Some((1, 0, 1))),
    ("cce-subjobs", "cce", Phase::Running, Some("cce0n0de-0006-11f0-9a1b-000000000002"), Some(50), "Progressing", Some((2, 1, 0))),
    ("elb-success", "elb", Phase::Succeeded, Some("e1b01b00-0007-4f80-9a1b-000000000001"), Some(100), "Succeeded", Some((1, 1, 0))),
    ("elb-fail", "elb", Phase::Failed, None, None, "JobFailed", None),
    ("elb-subjobs", "elb", Phase::Running, Some("e1b01b00-0007-4f80-9a1b-000000000002"), Some(50), "Progressing", Some((2, 1, 0))),
    ("sfsturbo-success", "sfsturbo", Phase::Succeeded, None, Some(100), "Succeeded", Some((1, 1, 0))),
    ("sfsturbo-fail", "sfsturbo", Phase::Failed, None, None, "JobFailed", None),
    ("sfsturbo-running", "sfsturbo", Phase::Running, None, Some(50), "Progressing", Some((2, 1, 0))),
];

/// The services of [`ROWS`], each also tried with an unknown job and with throttling.
#[rustfmt::skip]
const SERVICES: &[&str] = &[
    "ims", "bms", "sdrs", "deh", "eip", "rds", "dds", "gaussdb", "opengauss", "geminidb", "dcs", "cce", "elb",
    "sfsturbo",
];

fn fixture(name: &str) -> Value {
    let path = repo_root()
        .expect("repository")
        .join(format!("tests/fixtures/services/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

/// Where a body of each layout keeps its job id.
fn job_id_of(body: &mut Value) -> &mut Value {
    if body.pointer("/job/job_id").is_some() {
        &mut body["job"]["job_id"]
    } else if body.get("job").is_some() {
        &mut body["job"]["id"]
    } else if body.get("metadata").is_some() {
        &mut body["metadata"]["uid"]
    } else if body.get("jobs").is_some() {
        &mut body["jobs"][0]["id"]
    } else {
        &mut body["job_id"]
    }
}

/// For every service: a success, a failure and sub-jobs or progress (from fixtures shaped like the official
/// SDK models), an unknown job (the service's documented answer) and throttling (429 APIGW.0308, then the
/// job) each end in the right phase, ids, progress and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_reads_success_failure_sub_jobs_unknown_jobs_and_throttling() {
    let (env, operator, ns) = Env::with_operator(FAST_RETRIES, "services").await;

    for (name, service, ..) in ROWS {
        let mut body = fixture(name);
        let job_id = job_id_of(&mut body).as_str().expect("id").to_string();
        let svc: Service = service.parse().expect("service");
        env.sim
            .create_fixture_job(svc, PROJECT, body)
            .expect("fixture served");
        env.create_cloudjob(&ns, name, service, &job_id).await;
    }
    let mut throttled_watches = Vec::new();
    for service in SERVICES {
        env.create_cloudjob(
            &ns,
            &format!("{service}-unknown"),
            service,
            "0000000000000000000000000000dead",
        )
        .await;
        // The success fixture again, under another id, throttled until the fault is cleared.
        let mut body = fixture(&format!("{service}-success"));
        let id = job_id_of(&mut body);
        let job_id = format!("{}-throttled", id.as_str().expect("id"));
        *id = job_id.clone().into();
        let svc: Service = service.parse().expect("service");
        env.sim
            .create_fixture_job(svc, PROJECT, body)
            .expect("fixture served");
        env.sim.set_fault(
            FaultScope::Job(job_id.clone()),
            Fault::always(FaultKind::Throttle {
                retry_after_secs: Some(1),
            }),
        );
        let name = format!("{service}-throttled");
        throttled_watches.push((job_id.clone(), name.clone(), env.watch(&ns, &name).await));
        env.create_cloudjob(&ns, &name, service, &job_id).await;
    }

    for (name, _, phase, primary, progress, reason, sub) in ROWS {
        let status = env
            .wait_status(&operator, &ns, name, &format!("{phase:?}"), |s| {
                s.phase == Some(*phase)
            })
            .await;
        let outputs = status.outputs.clone().unwrap_or_default();
        assert_eq!(
            outputs.primary_id.as_deref(),
            *primary,
            "{name}: primary id"
        );
        assert_eq!(status.progress, *progress, "{name}: progress");
        assert_eq!(ready_reason(&status), Some(*reason), "{name}: reason");
        let counts = status
            .sub_jobs
            .as_ref()
            .map(|s| (s.total, s.succeeded, s.failed));
        assert_eq!(counts, *sub, "{name}: sub-jobs");
        if let Some(sub_jobs) = &status.sub_jobs {
            // Only what a successful sub-job made is produced; each sub-job's status is listed beside it.
            let produced: Vec<_> = outputs
                .resources
                .iter()
                .filter_map(|r| r.sub_job_id.clone())
                .collect();
            let succeeded: Vec<_> = sub_jobs
                .items
                .iter()
                .filter(|i| i.status.as_deref() == Some("SUCCESS") && i.resource_id.is_some())
                .filter_map(|i| i.job_id.clone())
                .collect();
            assert_eq!(produced, succeeded, "{name}: produced by sub-jobs");
            assert!(sub_jobs.items.iter().all(|i| i.status.is_some()), "{name}");
        }
        if *phase == Phase::Failed {
            assert!(
                status.error_code.is_some() || status.fail_reason.is_some(),
                "{name}: the failure says why"
            );
        }
    }

    for service in SERVICES {
        let name = format!("{service}-unknown");
        let status = env
            .wait_status(&operator, &ns, &name, "JobNotFound", |s| {
                condition_is(s, "Stalled", "True", "JobNotFound")
            })
            .await;
        assert_eq!(status.phase, Some(Phase::Pending), "{name}");
    }

    for (job_id, name, mut watch) in throttled_watches {
        watch
            .until(WAIT, &format!("{name}: Throttled"), |cj| {
                let status = cj.status.clone().unwrap_or_default();
                condition_is(&status, "Reconciling", "True", "ProgressingWithRetry")
                    .then_some(())
                    .filter(|_| ready_reason(&status) == Some("Throttled"))
            })
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail()));
        env.sim.clear_faults(Some(FaultScope::Job(job_id)));
        let status = watch
            .until(WAIT, &format!("{name}: Succeeded"), |cj| {
                cj.status
                    .clone()
                    .filter(|s| s.phase == Some(Phase::Succeeded))
            })
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail()));
        // The same reading as the success fixture it copies.
        let success = name.replace("-throttled", "-success");
        let want = ROWS
            .iter()
            .find(|row| row.0 == success)
            .and_then(|row| row.3);
        assert_eq!(
            status.outputs.and_then(|o| o.primary_id).as_deref(),
            want,
            "{name}"
        );
    }
}

/// IMS reads the newer `/v1/cloudimages/job/{id}` on Huawei Cloud and the older path on OTC, and a CloudJob
/// can choose either; the simulator serves the job under both, and counts which path was asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ims_reads_either_job_path_as_the_cloud_or_the_cloudjob_says() {
    let (env, operator, ns) = Env::with_operator(&[], "ims-paths").await;
    let body = fixture("ims-success");
    let job_id = body["job_id"].as_str().expect("id").to_string();
    env.sim
        .create_fixture_job(Service::Ims, PROJECT, body)
        .expect("fixture served");
    let mut paths = Vec::new();
    for (name, cloud, choice) in [
        ("huawei-default", "huaweicloud", None),
        ("otc-default", "opentelekomcloud", None),
        ("huawei-project-path", "huaweicloud", Some("ProjectJobs")),
        (
            "otc-cloudimages-path",
            "opentelekomcloud",
            Some("CloudImages"),
        ),
    ] {
        let mut manifest = env.cloudjob_manifest(name, "ims", &job_id);
        manifest["spec"]["cloud"] = cloud.into();
        if let Some(choice) = choice {
            manifest["spec"]["imsJobPath"] = choice.into();
        }
        env.create_cloudjob_from(&ns, manifest).await;
        let status = env
            .wait_status(&operator, &ns, name, "Succeeded", |s| {
                s.phase == Some(Phase::Succeeded)
            })
            .await;
        assert_eq!(
            status.outputs.and_then(|o| o.primary_id).as_deref(),
            Some("7a3b3d4e-5f60-4a1b-9c2d-3e4f5a6b7c01"),
            "{name}"
        );
        // The request that read the job, as the simulator recorded it.
        let last = env
            .sim
            .job_stats(&job_id)
            .and_then(|s| s.recent_requests.last().map(|r| r.path.clone()))
            .expect("a request");
        paths.push(last);
    }
    assert_eq!(
        paths,
        [
            format!("/ims/v1/cloudimages/job/{job_id}"),
            format!("/ims/v1/{PROJECT}/jobs/{job_id}"),
            format!("/ims/v1/{PROJECT}/jobs/{job_id}"),
            format!("/ims/v1/cloudimages/job/{job_id}"),
        ]
    );

    // spec.imsJobPath is for IMS only: the API server refuses it elsewhere.
    let mut manifest = env.cloudjob_manifest("not-ims", "ecs", &job_id);
    manifest["spec"]["imsJobPath"] = "CloudImages".into();
    let cj: cloudjob_operator::crd::CloudJob = serde_json::from_value(manifest).expect("CloudJob");
    let err = env
        .cloudjobs(&ns)
        .create(&Default::default(), &cj)
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("imsJobPath applies to IMS jobs only"),
        "{err}"
    );
}

fn ready_reason(status: &CloudJobStatus) -> Option<&str> {
    condition(status, "Ready").map(|c| c.reason.as_str())
}

/// An unpaid order reads as Pending with reason PendingPayment and a message that says what to do; it is
/// never failed by the operator, and runs to its end once paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpaid_order_waits_as_pending_payment_until_paid() {
    let (env, operator, ns) = Env::with_operator(&[], "payment").await;
    let mut spec = JobSpec::new(Service::Ecs, PROJECT, "createServer")
        .start_delay_secs(30.0 * 86_400.0)
        .duration_secs(1.0);
    spec.initial_status = "PENDING_PAYMENT".into();
    let job = env.job(spec);
    env.create_cloudjob(&ns, "unpaid", "ecs", &job.job_id).await;

    let waiting = env
        .wait_status(&operator, &ns, "unpaid", "PendingPayment", |s| {
            condition_is(s, "Ready", "False", "PendingPayment")
        })
        .await;
    assert_eq!(waiting.phase, Some(Phase::Pending));
    assert_eq!(waiting.job_status.as_deref(), Some("PENDING_PAYMENT"));
    assert!(condition_is(
        &waiting,
        "Reconciling",
        "True",
        "PendingPayment"
    ));
    assert!(condition(&waiting, "Stalled").is_none());
    assert!(condition(&waiting, "Failed").is_none());
    let message = &condition(&waiting, "Ready").expect("Ready").message;
    for advice in ["pay the order", "cancel the order", "14 days"] {
        assert!(message.contains(advice), "{message}");
    }
    env.wait_events(
        &ns,
        "unpaid",
        "a PendingPayment event with the Ready message",
        |events| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some("PendingPayment")
                    && e.note.as_deref() == Some(message.as_str())
            })
        },
    )
    .await;

    // Paid: the job runs to its end; a reconcile request polls at once instead of at the slow pace.
    env.sim
        .finish_job(&job.job_id, Outcome::Success)
        .expect("finished");
    env.reconcile_and_wait(&operator, &ns, "unpaid").await;
    let done = env
        .wait_status(&operator, &ns, "unpaid", "Succeeded", |s| {
            s.phase == Some(Phase::Succeeded)
        })
        .await;
    assert!(condition_is(&done, "Ready", "True", "Succeeded"));
}

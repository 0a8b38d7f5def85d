//! End to end against a real kube-apiserver + etcd, the real kubectl, the operator binary and the simulator:
//! documented example responses, succeeding and failing jobs, batches, `kubectl wait`, printer columns,
//! events and metrics.

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, ProgressCurve, Service, SimConfig, Simulator};
use cloudjob_testkit::{e2e::*, repo_root};
use jiff::Timestamp;

/// fixture, service, phase, produced id, progress, startTime, finishTime (None: not finished, or the cloud's
/// end_time is empty so the observed time is used).
type Row = (
    &'static str,
    &'static str,
    Phase,
    Option<&'static str>,
    Option<i32>,
    &'static str,
    Option<&'static str>,
);

#[rustfmt::skip]
const SEEDS: &[Row] = &[
    ("huawei-ecs-createServer", "ecs", Phase::Succeeded, Some("bae51750-0089-41a1-9b18-5c777978ec2d"), Some(100), "2016-04-25T20:04:34.604Z", Some("2016-04-25T20:08:41.593Z")),
    ("huawei-evs-batchCreateVolume", "evs", Phase::Succeeded, Some("0b549095-4937-4849-8e4c-52aa027d64f7"), Some(100), "2016-02-04T01:43:37.193Z", Some("2016-02-04T01:44:08.283Z")),
    ("huawei-evs-createVolume", "evs", Phase::Running, Some("bdf1bb37-f20f-4266-9a04-f43e0a127376"), None, "2016-03-08T07:40:13.219Z", None),
    // A member job acts on a shared image (outputs.targetResources); it produces nothing.
    ("huawei-ims-imsAddImageMembersJob", "ims", Phase::Succeeded, None, Some(100), "2024-11-06T06:30:00.778Z", Some("2024-11-06T06:30:03.179Z")),
    ("huawei-ims-imsCopyImageInRegionJob", "ims", Phase::Succeeded, Some("30e55148-deb9-4923-adb9-91618de16ba0"), Some(100), "2024-11-06T06:14:27.168Z", Some("2024-11-06T06:16:38.446Z")),
    ("huawei-ims-imsCreateImageByInstance", "ims", Phase::Succeeded, Some("3f7185de-b59a-4bb8-aa1d-7a513528b0e9"), Some(100), "2024-11-06T06:19:43.195Z", Some("2024-11-06T06:23:25.158Z")),
    ("huawei-ims-imsCreateWholeImageByBackupJob", "ims", Phase::Succeeded, Some("ea0d5dce-ddb2-4f6f-83e3-55da065347fd"), Some(100), "2024-11-06T06:28:52.245Z", Some("2024-11-06T06:28:58.399Z")),
    ("huawei-ims-imsCreateWholeImageByInstanceJob", "ims", Phase::Succeeded, Some("17b7bdeb-2e72-43a0-a202-d36ce344e902"), Some(100), "2024-11-06T06:28:14.425Z", Some("2024-11-06T06:37:03.742Z")),
    ("huawei-ims-imsCrossRegionCopyImageJob", "ims", Phase::Succeeded, Some("d998b96f-b7e3-4be9-b0c2-9773e592977d"), Some(100), "2024-11-06T06:17:42.699Z", Some("2024-11-06T06:20:22.419Z")),
    ("huawei-ims-imsDelImageMembersJob", "ims", Phase::Succeeded, None, Some(100), "2024-11-06T06:33:32.781Z", Some("2024-11-06T06:33:34.181Z")),
    ("huawei-ims-imsImportDataImageJob", "ims", Phase::Succeeded, Some("aa5306f7-bc95-4fa3-aa40-dd38fbdf2031"), Some(100), "2024-11-06T06:27:03.742Z", Some("2024-11-06T06:37:03.742Z")),
    ("huawei-ims-imsImportImageJob", "ims", Phase::Succeeded, Some("431df7fd-a898-4dc0-86b1-22cfefb8a517"), Some(100), "2024-11-06T06:21:08.769Z", Some("2024-11-06T06:27:03.742Z")),
    ("huawei-ims-imsImportOvaImageJob", "ims", Phase::Succeeded, Some("fc496c19-40c2-4220-8b1a-eba9d53fca7b"), Some(100), "2024-11-06T07:39:45.814Z", Some("2024-11-06T07:49:45.814Z")),
    ("huawei-ims-imsNativeExportImageJob", "ims", Phase::Succeeded, Some("1ab4df10-fe18-48b7-91c9-53695fcd9df5"), Some(100), "2024-11-06T06:46:51.929Z", Some("2024-11-06T06:49:53.657Z")),
    ("huawei-ims-imsNativeImportImageJob", "ims", Phase::Succeeded, Some("af8ea1dc-02f2-4019-8fa9-c9952a0077ce"), Some(100), "2024-11-06T07:14:54.848Z", Some("2024-11-06T07:19:54.848Z")),
    ("huawei-ims-imsUpdateImageMembersJob", "ims", Phase::Succeeded, None, Some(100), "2024-11-06T07:24:22.925Z", Some("2024-11-06T07:24:23.773Z")),
    ("huawei-ims-imsVolumeCreateImageJob", "ims", Phase::Succeeded, Some("21b04ab5-e817-40ee-8d56-7ccdb8820335"), Some(100), "2024-11-06T06:44:40.545Z", Some("2024-11-06T06:47:40.545Z")),
    ("huawei-ims-imsVolumesToSysDataImagesJob", "ims", Phase::Succeeded, Some("bfb2de92-e7b9-4820-9522-416d8f2c812a"), Some(100), "2024-11-06T06:38:16.765Z", Some("2024-11-06T06:48:16.765Z")),
    ("otc-ims-createImageByInstance", "ims", Phase::Succeeded, Some("e9e91bff-14b6-4a0b-8377-4ed0813e3360"), Some(100), "2015-06-04T18:11:06.586Z", None),
    ("otc-ims-legacy-createImageByInstance", "ims", Phase::Succeeded, Some("e9e91bff-14b6-4a0b-8377-4ed0813e3360"), Some(100), "2015-06-04T18:11:06.586Z", None),
];

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_documented_example_ends_in_the_right_phase_with_ids_progress_and_times() {
    let env = Env::start().await;
    // The two OTC pages document the same job id; the second is served by a second simulator.
    let other_sim = Simulator::start(SimConfig::default())
        .await
        .expect("second simulator");
    let operator = env.operator(&[]).await;
    let ns = env.namespace("seeds").await;
    let started = Timestamp::now();

    for (i, (fixture, service, ..)) in SEEDS.iter().enumerate() {
        let raw = std::fs::read_to_string(
            repo_root()
                .expect("repository")
                .join(format!("tests/fixtures/seeds/{fixture}.json")),
        )
        .expect("fixture");
        let body: serde_json::Value = serde_json::from_str(&raw).expect("json");
        let job_id = body["job_id"].as_str().expect("job_id").to_string();
        let svc: Service = service.parse().expect("service");
        let sim = if env
            .sim
            .create_fixture_job_raw(svc, PROJECT, raw.clone())
            .is_ok()
        {
            &env.sim
        } else {
            other_sim
                .create_fixture_job_raw(svc, PROJECT, raw)
                .expect("served by the second simulator");
            &other_sim
        };
        let mut manifest = env.cloudjob_manifest(&format!("seed-{i}"), service, &job_id);
        manifest["spec"]["endpoint"] = format!("{}/{service}", sim.base_url()).into();
        env.create_cloudjob_from(&ns, manifest).await;
    }

    for (i, (fixture, _, phase, id, progress, start, finish)) in SEEDS.iter().enumerate() {
        let name = format!("seed-{i}");
        let status = env
            .wait_status(
                &operator,
                &ns,
                &name,
                &format!("{fixture} to be {phase:?}"),
                |s| s.phase == Some(*phase),
            )
            .await;
        let outputs = status.outputs.clone().unwrap_or_default();
        assert_eq!(outputs.primary_id.as_deref(), *id, "{fixture}: produced id");
        assert_eq!(status.progress, *progress, "{fixture}: progress");
        // metav1.Time keeps whole seconds.
        let secs = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.as_ref().map(|t| t.0.as_second())
        };
        assert_eq!(
            secs(&status.start_time),
            Some(ts(start).as_second()),
            "{fixture}: startTime"
        );
        match (phase, finish) {
            (Phase::Succeeded, Some(end)) => {
                assert_eq!(
                    secs(&status.finish_time),
                    Some(ts(end).as_second()),
                    "{fixture}: finishTime"
                );
                assert_eq!(
                    status.completion_time, status.finish_time,
                    "{fixture}: completionTime"
                );
            }
            (Phase::Succeeded, None) => {
                // end_time "" in the docs: the time the operator saw it finished.
                let seen = status.finish_time.as_ref().expect("finishTime").0;
                assert!(
                    seen.as_second() >= started.as_second() && seen <= Timestamp::now(),
                    "{fixture}: observed finishTime {seen}"
                );
                assert_eq!(status.completion_time, status.finish_time);
            }
            _ => assert_eq!(status.finish_time, None, "{fixture}: unfinished"),
        }
        let ready = condition(&status, "Ready").expect("Ready condition");
        assert_eq!(
            ready.status == "True",
            *phase == Phase::Succeeded,
            "{fixture}: Ready"
        );
        assert_eq!(
            condition(&status, "Reconciling").is_some(),
            *phase == Phase::Running,
            "{fixture}: Reconciling"
        );
    }

    // The batch lists every volume; the ECS job its server through the sub-job.
    let batch = env
        .cloudjobs(&ns)
        .get("seed-1")
        .await
        .expect("batch")
        .status
        .expect("status");
    let volumes = resource_ids(&batch);
    assert_eq!(
        volumes,
        [
            "0b549095-4937-4849-8e4c-52aa027d64f7",
            "e7bca1a2-d3ed-434f-86f4-a1f11aa80072"
        ]
    );
    assert_eq!(batch.sub_jobs.expect("sub-jobs").total, 2);

    // The member job names the shared image it acted on, apart from what jobs produce.
    let member = env
        .cloudjobs(&ns)
        .get("seed-3")
        .await
        .expect("member job")
        .status
        .expect("status")
        .outputs
        .expect("outputs");
    assert!(member.resources.is_empty() && member.image_id.is_none());
    let targets: Vec<_> = member
        .target_resources
        .iter()
        .map(|t| (t.kind.as_str(), t.id.as_str(), t.status.as_deref()))
        .collect();
    assert_eq!(
        targets,
        [(
            "image",
            "30e55148-deb9-4923-adb9-91618de16ba0",
            Some("success")
        )]
    );

    // kubectl get shows the useful columns.
    let mut get = env.cp.kubectl();
    get.args(["get", "cjob", "-n", &ns]);
    let out = output(get).await;
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "PHASE", "PROGRESS", "RESOURCE", "AGE"] {
        assert!(
            header.contains(column),
            "missing {column} in {header:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        table.contains("3f7185de-b59a-4bb8-aa1d-7a513528b0e9"),
        "{table}"
    );
    let mut get = env.cp.kubectl();
    get.args(["get", "cloudjobs", "-n", &ns, "-o", "wide"]);
    let out = output(get).await;
    let wide = String::from_utf8_lossy(&out.stdout);
    for column in ["SERVICE", "JOB", "REASON"] {
        assert!(
            wide.lines().next().unwrap_or_default().contains(column),
            "missing {column} in wide output"
        );
    }
    assert!(
        wide.contains("Succeeded") && wide.contains("ff8080814dbd65d7014dbe0d84db0013"),
        "{wide}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_wait_sees_complete_and_failed_jobs_and_a_failure_reads_as_stalled() {
    let (env, operator, ns) = Env::with_operator(&[], "waits").await;

    let ok = env.job(
        JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
            .duration_secs(4.0)
            .progress(ProgressCurve::Linear)
            .tasks(["CreateSnapshot", "ExportImage"]),
    );
    let bad = env.job(
        JobSpec::new(Service::Ims, PROJECT, "imsImportImageJob")
            .duration_secs(3.0)
            .fail("IMG.0024", "the image file is invalid"),
    );
    let batch = env.job(
        JobSpec::new(Service::Evs, PROJECT, "batchCreateVolume")
            .duration_secs(3.0)
            .sub_jobs(3, 0),
    );
    let partial = env.job(
        JobSpec::new(Service::Evs, PROJECT, "batchCreateVolume")
            .duration_secs(3.0)
            .sub_jobs(3, 1)
            .fail("EVS.2024", "one disk failed"),
    );
    let server = env.job(JobSpec::new(Service::Ecs, PROJECT, "createServer").duration_secs(3.0));
    env.create_cloudjob(&ns, "ok", "ims", &ok.job_id).await;
    env.create_cloudjob(&ns, "bad", "ims", &bad.job_id).await;
    env.create_cloudjob(&ns, "batch", "evs", &batch.job_id)
        .await;
    env.create_cloudjob(&ns, "partial", "evs", &partial.job_id)
        .await;
    env.create_cloudjob(&ns, "server", "ecs", &server.job_id)
        .await;

    let wait = |condition: &str, name: &str| {
        let mut cmd = env.cp.kubectl();
        cmd.args([
            "wait",
            "-n",
            &ns,
            &format!("--for=condition={condition}"),
            &format!("cloudjob/{name}"),
            "--timeout=60s",
        ]);
        output(cmd)
    };
    let out = wait("Complete", "ok").await;
    assert!(
        out.status.success(),
        "kubectl wait Complete: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        operator.log_tail()
    );
    let out = wait("Failed", "bad").await;
    assert!(
        out.status.success(),
        "kubectl wait Failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wait("Ready", "server").await;
    assert!(
        out.status.success(),
        "kubectl wait Ready: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ok_status = env
        .cloudjobs(&ns)
        .get("ok")
        .await
        .expect("ok")
        .status
        .expect("status");
    assert_eq!(ok_status.phase, Some(Phase::Succeeded));
    assert!(condition_is(&ok_status, "Ready", "True", "Succeeded"));
    assert!(
        condition(&ok_status, "Reconciling").is_none()
            && condition(&ok_status, "Stalled").is_none()
    );
    let image = ok_status
        .outputs
        .and_then(|o| o.image_id)
        .expect("image id");
    assert_eq!(
        env.sim.job_body(&ok.job_id).expect("body")["entities"]["image_id"],
        image.as_str()
    );

    let bad_status = env
        .cloudjobs(&ns)
        .get("bad")
        .await
        .expect("bad")
        .status
        .expect("status");
    assert!(
        condition_is(&bad_status, "Stalled", "True", "JobFailed"),
        "a failed job is Stalled for kstatus/Flux"
    );
    assert!(condition_is(&bad_status, "Failed", "True", "JobFailed"));
    assert_eq!(bad_status.error_code.as_deref(), Some("IMG.0024"));
    assert_eq!(
        bad_status.fail_reason.as_deref(),
        Some("the image file is invalid")
    );
    assert!(bad_status.finish_time.is_some() && bad_status.completion_time.is_none());

    let batch_status = env
        .wait_status(&operator, &ns, "batch", "batch to succeed", |s| {
            s.phase == Some(Phase::Succeeded)
        })
        .await;
    let volumes: Vec<String> = batch_status
        .outputs
        .expect("outputs")
        .resources
        .iter()
        .filter(|r| r.kind == "volume")
        .map(|r| r.id.clone())
        .collect();
    let served = env.sim.job_body(&batch.job_id).expect("body");
    let served_volumes: Vec<String> = served["entities"]["sub_jobs"]
        .as_array()
        .expect("sub_jobs")
        .iter()
        .map(|s| {
            s["entities"]["volume_id"]
                .as_str()
                .expect("volume id")
                .to_string()
        })
        .collect();
    assert_eq!(volumes, served_volumes, "every sub-job's volume is listed");
    assert_eq!(volumes.len(), 3);

    let partial_status = env
        .wait_status(&operator, &ns, "partial", "partial batch to fail", |s| {
            s.phase == Some(Phase::Failed)
        })
        .await;
    assert!(
        condition_is(&partial_status, "Failed", "True", "PartiallyFailed"),
        "{:?}",
        partial_status.conditions
    );
    let sub = partial_status.sub_jobs.expect("sub-jobs");
    assert_eq!((sub.total, sub.succeeded, sub.failed), (3, 2, 1));
    assert_eq!(
        partial_status
            .outputs
            .expect("outputs")
            .resources
            .iter()
            .filter(|r| r.kind == "volume")
            .count(),
        2
    );

    let server_status = env
        .cloudjobs(&ns)
        .get("server")
        .await
        .expect("server")
        .status
        .expect("status");
    let server_id = server_status
        .outputs
        .and_then(|o| o.server_id)
        .expect("server id");
    assert!(!server_id.is_empty());

    // Events: progress and success for the good job, a warning for the failed one.
    let events = env.wait_event(&ns, "ok", None, "Succeeded").await;
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(reasons.contains(&"Succeeded".to_string()), "{reasons:?}");
    let success = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("Succeeded"))
        .expect("success event");
    assert!(
        success.note.as_deref().unwrap_or_default().contains(&image),
        "success event names the image"
    );
    env.wait_event(&ns, "bad", Some("Warning"), "JobFailed")
        .await;

    // Metrics moved for real requests and reconciles.
    let metrics = operator.metrics().await.expect("metrics");
    assert!(
        metrics
            .sum(
                "cloudjob_cloud_requests_total",
                &[("service", "ims"), ("outcome", "success")]
            )
            .is_some(),
        "{metrics:?}"
    );
    assert!(
        metrics
            .sum("cloudjob_reconciles_total", &[("result", "success")])
            .is_some()
    );
    assert!(metrics.sum("cloudjob_status_patches_total", &[]).is_some());
}

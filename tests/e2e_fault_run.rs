//! The fault run: 200 CloudJobs through an etcd pause, a kube-apiserver restart (SIGKILL), a cloud outage,
//! endpoints that never answer and answers that are not JSON. Every job ends in its true phase, the
//! operator never panics and loses no CloudJob, no event is published twice, and no credential appears in
//! its log, the Events, the status or the metrics.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use cloudjob_operator::crd::{CloudJobStatus, Phase};
use cloudjob_sim::{Fault, FaultKind, FaultScope, JobSpec, ProgressCurve, Service};
use cloudjob_testkit::{Operator, ProcessOptions, e2e::*};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, api::ListParams};

/// Jobs the simulator answers normally (one in ten fails).
const NORMAL: usize = 150;
/// CloudJobs whose endpoint accepts connections and never answers.
const HUNG: usize = 25;
/// CloudJobs whose every answer is a 200 that is not JSON.
const HOSTILE: usize = 25;
/// How long etcd is stopped (SIGSTOP) and the cloud answers 503 to everything.
const ETCD_PAUSE: Duration = Duration::from_secs(15);
const CLOUD_OUTAGE: Duration = Duration::from_secs(20);
/// The longest the run may take to settle.
const SETTLE: Duration = Duration::from_secs(400);
/// Distinct credentials, so that finding them in any output means they leaked.
const FAULT_AK: &str = "FAULTRUNAK7Q2M9X";
const FAULT_SK: &str = "faultrun-secret-key-Zp4Lw8Rt";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Succeeded,
    Failed,
    /// Still being retried with this Ready reason, never Failed or Stalled.
    Retrying(&'static str),
}

impl Expect {
    fn holds(self, status: &CloudJobStatus) -> bool {
        match self {
            Expect::Succeeded => status.phase == Some(Phase::Succeeded),
            Expect::Failed => status.phase == Some(Phase::Failed),
            Expect::Retrying(reason) => {
                condition_is(status, "Ready", "False", reason)
                    && condition_is(status, "Reconciling", "True", "ProgressingWithRetry")
                    && condition(status, "Stalled").is_none()
                    && !status.phase.is_some_and(Phase::is_terminal)
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_jobs_through_every_fault_end_in_their_true_phase() {
    let mut env = Env::start_with(cloudjob_sim::SimConfig {
        credentials: vec![cloudjob_sim::Credentials::new(FAULT_AK, FAULT_SK)],
        ..Default::default()
    })
    .await;
    let log_dir = tempfile::tempdir().expect("log dir");
    let log = log_dir.path().join("operator.log");
    let mut options = ProcessOptions::new(operator_binary(), env.cp.kubeconfig_path()).args([
        "--rate-limit",
        "200",
        "--rate-limit-burst",
        "50",
        "--error-backoff-max",
        "5s",
    ]);
    options.rust_log = "debug".into();
    options.log = Some(log.clone());
    let operator = Operator::process(options).await.expect("operator ready");
    let ns = "fault-run";
    env.namespace(ns).await;
    env.secret(ns, "fault-creds", FAULT_AK, FAULT_SK).await;

    let mut expected: HashMap<String, Expect> = HashMap::new();
    let mut hostile_jobs = Vec::new();
    for i in 0..NORMAL + HOSTILE {
        let mut spec = JobSpec::new(Service::Evs, PROJECT, "batchCreateVolume")
            .duration_secs(60.0 + (i % 30) as f64)
            .progress(ProgressCurve::Linear)
            .sub_jobs(2, 0);
        let failing = i < NORMAL && i % 10 == 9;
        if failing {
            spec = spec.fail("EVS.2024", "volume quota exceeded");
        }
        let job = env.job(spec);
        let name = if i < NORMAL {
            format!("normal-{i}")
        } else {
            hostile_jobs.push(job.job_id.clone());
            format!("hostile-{i}")
        };
        let mut manifest = env.cloudjob_manifest(&name, "evs", &job.job_id);
        manifest["spec"]["credentialsSecretRef"]["name"] = "fault-creds".into();
        manifest["spec"]["polling"] =
            serde_json::json!({"minIntervalSeconds": 2, "maxIntervalSeconds": 5});
        env.create_cloudjob_from(ns, manifest).await;
        let expect = match (i < NORMAL, failing) {
            (true, false) => Expect::Succeeded,
            (true, true) => Expect::Failed,
            (false, _) => Expect::Retrying("InvalidResponse"),
        };
        expected.insert(name, expect);
    }
    for job_id in &hostile_jobs {
        env.sim.set_fault(
            FaultScope::Job(job_id.clone()),
            Fault::always(FaultKind::MalformedJson),
        );
    }
    let hung = hung_endpoint().await;
    for i in 0..HUNG {
        let name = format!("hung-{i}");
        let mut manifest = env.cloudjob_manifest(&name, "evs", &format!("hung{i}"));
        manifest["spec"]["endpoint"] = hung.clone().into();
        manifest["spec"]["credentialsSecretRef"]["name"] = "fault-creds".into();
        env.create_cloudjob_from(ns, manifest).await;
        expected.insert(name, Expect::Retrying("CloudUnavailable"));
    }
    let normal: HashSet<String> = (0..NORMAL).map(|i| format!("normal-{i}")).collect();
    env.wait_statuses(
        &operator,
        ns,
        SETTLE,
        "the normal jobs Running",
        |statuses| {
            normal.iter().all(|n| {
                statuses
                    .get(n)
                    .is_some_and(|s| s.phase == Some(Phase::Running))
            })
        },
    )
    .await;

    env.cp
        .pause_etcd(ETCD_PAUSE)
        .await
        .expect("etcd paused and resumed");
    env.cp
        .restart_api_server()
        .await
        .expect("kube-apiserver restarts");
    env.sim.set_fault(
        FaultScope::Global,
        Fault::always(FaultKind::ServerError { status: 503 }),
    );
    // The outage's length is the fault itself, not a wait for something to happen.
    tokio::time::sleep(CLOUD_OUTAGE).await;
    env.sim.clear_faults(Some(FaultScope::Global));

    let settled = env
        .wait_statuses(
            &operator,
            ns,
            SETTLE,
            "every job in its true phase",
            |statuses| {
                expected
                    .iter()
                    .all(|(name, expect)| statuses.get(name).is_some_and(|s| expect.holds(s)))
            },
        )
        .await;
    assert_eq!(settled.len(), NORMAL + HOSTILE + HUNG, "no CloudJob lost");

    // The operator is still the process it was, and never panicked.
    assert!(operator.resident_kib().is_some(), "the operator runs");
    let log_text = std::fs::read_to_string(&log).expect("operator log");
    assert!(
        !log_text.contains("panicked"),
        "the operator panicked:\n{}",
        operator.log_warnings()
    );

    let duplicated = duplicated_events(&env, ns).await;
    assert!(
        duplicated.is_empty(),
        "events published twice: {duplicated:#?}"
    );

    let events: Api<Event> = Api::namespaced(env.client.clone(), ns);
    let events = serde_json::to_string(
        &events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("events JSON");
    let statuses = serde_json::to_string(&settled).expect("status JSON");
    let metrics = reqwest::get(format!("http://{}/metrics", operator.metrics_address()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for (what, text) in [
        ("log", &log_text),
        ("events", &events),
        ("status", &statuses),
        ("metrics", &metrics),
    ] {
        for secret in [FAULT_AK, FAULT_SK] {
            assert!(
                !text.contains(secret),
                "a credential is in the operator's {what}"
            );
        }
    }
    println!(
        "fault run: {} CloudJobs settled ({NORMAL} normal, {HOSTILE} hostile, {HUNG} hung) through a \
         {ETCD_PAUSE:?} etcd pause, a kube-apiserver restart and a {CLOUD_OUTAGE:?} cloud outage; \
         0 panics, 0 lost, 0 duplicated events, no credential in {} log bytes",
        settled.len(),
        log_text.len()
    );
}

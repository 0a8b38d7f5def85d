//! Two operator processes with leader election on a coordination.k8s.io Lease: exactly one polls; when it
//! is killed the other takes over and the in-flight CloudJob completes.

mod common;

use std::time::{Duration, Instant};

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, ProgressCurve, Service};
use common::*;

const LEASE_SECONDS: u64 = 6;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn is_leader(operator: &Operator) -> bool {
    metric(&operator.metrics().await, "cloudjob_leader") == 1.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_polls_and_a_standby_takes_over_when_it_dies() {
    let env = Env::start().await;
    let ns = env.namespace("ha").await;
    let lease = LEASE_SECONDS.to_string();
    let args = [
        "--leader-election",
        "--leader-election-namespace",
        "default",
        "--leader-election-lease-seconds",
        &lease,
    ];
    let a = Operator::start(&env.cp, &args).await;
    let b = Operator::start(&env.cp, &args).await;

    let started = Instant::now();
    let (mut leader, standby) = loop {
        match (is_leader(&a).await, is_leader(&b).await) {
            (true, false) => break (a, b),
            (false, true) => break (b, a),
            (true, true) => panic!("two leaders at once"),
            (false, false) => {
                assert!(
                    started.elapsed() < Duration::from_secs(40),
                    "no leader elected"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    let job = env
        .sim
        .create_job(
            JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
                .duration_secs(25.0)
                .progress(ProgressCurve::Linear),
        )
        .expect("job");
    env.create_cloudjob(&ns, "ha-job", "ims", &job.job_id).await;
    env.wait_status(&leader, &ns, "ha-job", "running", |s| {
        s.phase == Some(Phase::Running)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader_requests = metric(&leader.metrics().await, "cloudjob_cloud_requests_total");
    let standby_requests = metric(&standby.metrics().await, "cloudjob_cloud_requests_total");
    assert!(leader_requests >= 1.0, "the leader polls");
    assert_eq!(standby_requests, 0.0, "the standby never polls the cloud");

    leader.kill().await;
    let killed = Instant::now();
    while !is_leader(&standby).await {
        assert!(
            killed.elapsed() < Duration::from_secs(LEASE_SECONDS * 4),
            "the standby did not take over\n{}",
            standby.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = killed.elapsed();
    println!(
        "takeover after the leader was killed: {:.1} s (lease {LEASE_SECONDS} s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS * 2),
        "takeover took {takeover:?}"
    );

    let done = env
        .wait_status(
            &standby,
            &ns,
            "ha-job",
            "Succeeded under the new leader",
            |s| s.phase == Some(Phase::Succeeded),
        )
        .await;
    assert!(done.outputs.and_then(|o| o.image_id).is_some());
    assert!(
        metric(&standby.metrics().await, "cloudjob_cloud_requests_total") >= 1.0,
        "the new leader polls"
    );
}

//! Two operator processes with leader election on a coordination.k8s.io Lease: exactly one polls; when it
//! is killed the other takes over and the in-flight CloudJob completes.

use std::time::{Duration, Instant};

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, ProgressCurve, Service};
use cloudjob_testenv::wait_for;
use cloudjob_testkit::{Operator, e2e::*};

const LEASE_SECONDS: u64 = 6;

async fn is_leader(operator: &Operator) -> bool {
    operator
        .metrics()
        .await
        .is_ok_and(|m| m.total("cloudjob_leader") == 1.0)
}

async fn cloud_requests(operator: &Operator) -> f64 {
    operator
        .metrics()
        .await
        .expect("metrics")
        .total("cloudjob_cloud_requests_total")
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
    let a = env.operator(&args).await;
    let b = env.operator(&args).await;

    let (a_ref, b_ref) = (&a, &b);
    let a_leads = wait_for(Duration::from_secs(40), "a leader", || async move {
        match (is_leader(a_ref).await, is_leader(b_ref).await) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            (true, true) => panic!("two leaders at once"),
            (false, false) => None,
        }
    })
    .await
    .expect("no leader elected");
    let (mut leader, standby) = if a_leads { (a, b) } else { (b, a) };

    let job = env.job(
        JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance")
            .duration_secs(25.0)
            .progress(ProgressCurve::Linear),
    );
    env.create_cloudjob(&ns, "ha-job", "ims", &job.job_id).await;
    env.wait_status(&leader, &ns, "ha-job", "running", |s| {
        s.phase == Some(Phase::Running)
    })
    .await;
    let leader_ref = &leader;
    wait_for(WAIT, "the leader's first poll", || async move {
        (cloud_requests(leader_ref).await >= 1.0).then_some(())
    })
    .await
    .expect("the leader polls");
    let standby_requests = cloud_requests(&standby).await;
    assert_eq!(standby_requests, 0.0, "the standby never polls the cloud");

    leader.kill().await;
    let killed = Instant::now();
    let standby_ref = &standby;
    if let Err(e) = wait_for(
        Duration::from_secs(LEASE_SECONDS * 4),
        "the standby to take over",
        || async move { is_leader(standby_ref).await.then_some(()) },
    )
    .await
    {
        panic!("{e}\n{}", standby.log_tail());
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
        cloud_requests(&standby).await >= 1.0,
        "the new leader polls"
    );
}

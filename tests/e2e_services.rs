//! End to end, per service: every job API of `spec.service` against the simulator on a real control plane,
//! and the PENDING_PAYMENT wait of an unpaid yearly/monthly order.

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, Outcome, Service};
use cloudjob_testkit::e2e::*;

/// An unpaid order reads as Pending with reason PendingPayment and a message that says what to do; it is
/// never failed by the operator, and runs to its end once paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpaid_order_waits_as_pending_payment_until_paid() {
    let env = Env::start().await;
    let operator = env.operator(&[]).await;
    let ns = env.namespace("payment").await;
    let mut spec = JobSpec::new(Service::Ecs, PROJECT, "createServer")
        .start_delay_secs(30.0 * 86_400.0)
        .duration_secs(1.0);
    spec.initial_status = "PENDING_PAYMENT".into();
    let job = env.sim.create_job(spec).expect("job");
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
    let events = env.events_for(&ns, "unpaid").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("PendingPayment")
                && e.note.as_deref() == Some(message.as_str())),
        "{events:#?}"
    );

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

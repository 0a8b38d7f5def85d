//! Memory does not grow with churn: five rounds of 5,000 CloudJobs created, each polled and written once,
//! and deleted, leave the operator's resident memory within 10 % of what the first round left. (What is
//! kept per CloudJob outside the watch cache is dropped on delete; Secrets are cached only when read.)

use std::time::Duration;

use cloudjob_operator::crd::Phase;
use cloudjob_sim::{JobSpec, Service};
use cloudjob_testkit::e2e::*;
use futures::{StreamExt as _, TryStreamExt as _};
use kube::{
    api::{DeleteParams, ListParams},
    runtime::{WatchStreamExt as _, watcher},
};

const ROUNDS: usize = 5;
const PER_ROUND: usize = 5_000;
/// Creations in flight at once.
const CREATING_AT_ONCE: usize = 32;
/// How much resident memory may grow over the first round's.
const GROWTH_LIMIT: f64 = 0.10;
/// The longest a round may take to be created, polled and written.
const ROUND_WAIT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_rounds_of_5000_cloudjobs_leave_memory_where_the_first_round_left_it() {
    // Every CloudJob is polled once: a rate limit and concurrency that let 5,000 through in seconds.
    let (env, operator, ns) = Env::with_operator(
        &[
            "--rate-limit",
            "2000",
            "--rate-limit-burst",
            "500",
            "--concurrency",
            "32",
        ],
        "churn",
    )
    .await;
    // One finished job for all of them: each CloudJob costs one GET and one status write.
    let job =
        env.job(JobSpec::new(Service::Ims, PROJECT, "imsCreateImageByInstance").duration_secs(0.0));
    let api = env.cloudjobs(&ns);

    let mut resident = Vec::new();
    for round in 0..ROUNDS {
        let label = format!("round-{round}");
        // Watch the round's CloudJobs from before their creation, so every write is seen.
        let succeeded = {
            let api = api.clone();
            let config = watcher::Config::default().labels(&format!("round={label}"));
            tokio::spawn(async move {
                let mut done = std::collections::HashSet::new();
                let mut stream = std::pin::pin!(watcher(api, config).applied_objects());
                while done.len() < PER_ROUND {
                    let Some(cj) = stream.try_next().await.expect("watch") else {
                        break;
                    };
                    if cj.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded) {
                        done.insert(cj.metadata.name.unwrap_or_default());
                    }
                }
                done.len()
            })
        };
        futures::stream::iter(0..PER_ROUND)
            .map(|i| {
                let mut manifest =
                    env.cloudjob_manifest(&format!("{label}-{i}"), "ims", &job.job_id);
                manifest["metadata"]["labels"] = serde_json::json!({"round": label});
                env.create_cloudjob_from(&ns, manifest)
            })
            .buffer_unordered(CREATING_AT_ONCE)
            .for_each(|_| async {})
            .await;
        let done = tokio::time::timeout(ROUND_WAIT, succeeded)
            .await
            .unwrap_or_else(|_| panic!("round {round}: not all Succeeded\n{}", operator.log_tail()))
            .expect("watch task");
        assert_eq!(done, PER_ROUND, "round {round}: every CloudJob succeeded");

        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .expect("CloudJobs deleted");
        // The operator reads one ordered watch: once it has written a status for a CloudJob created after
        // the deletions, it has seen every deletion before it (and dropped what it kept for them).
        let marker = format!("after-{label}");
        env.create_cloudjob(&ns, &marker, "ims", &job.job_id).await;
        env.wait_status(&operator, &ns, &marker, "Succeeded", |s| {
            s.phase == Some(Phase::Succeeded)
        })
        .await;
        let kib = operator.resident_kib().expect("the operator runs");
        println!("after round {round}: {} MiB resident", kib / 1024);
        resident.push(kib);
    }

    let first = resident[0] as f64;
    let grown: Vec<String> = resident
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, kib)| **kib as f64 > first * (1.0 + GROWTH_LIMIT))
        .map(|(round, kib)| format!("round {round}: {kib} KiB"))
        .collect();
    assert!(
        grown.is_empty(),
        "resident memory grew more than {:.0} % over the first round's {first} KiB: {grown:?} (all: {resident:?})",
        GROWTH_LIMIT * 100.0
    );
}

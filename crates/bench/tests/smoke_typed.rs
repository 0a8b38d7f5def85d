//! Smoke test of the typed workload: N = 80 of the 8 job types, the adaptive operator with a warm-up
//! history of finished CloudJobs (20 per type) beside a fixed 10 s one, durations divided by 20. Checks
//! that the operator learned the history from its cache at start and the measured jobs as they finished,
//! and the model-free properties; timings are not asserted (the machine is shared).

mod common;

use std::time::Duration;

use cloudjob_bench::{BenchConfig, Policy, Workload, run_n};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_typed_workload_with_history() {
    let (_out, base) = common::smoke_config().await;
    let cfg = BenchConfig {
        workload: Workload::Typed,
        policies: vec![
            Policy::adaptive(true),
            Policy::fixed(Duration::from_secs(10)),
        ],
        history_per_type: 20,
        ..base
    };
    let (run, records) = run_n(&cfg, 80).await.expect("benchmark run");

    assert_eq!(run.workload, Workload::Typed);
    assert_eq!(run.history_per_type, 20);
    let names: Vec<&str> = run.modes.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["adaptive", "fixed-10s"]);
    for m in &run.modes {
        let what = m.name();
        assert_eq!(
            m.jobs_terminal, 80,
            "{what}: all terminal, the history not counted"
        );
        assert_eq!(m.wrong_phase, 0, "{what}: {:?}", m.wrong_phase_examples);
        assert_eq!(
            m.requests_after_terminal, 0,
            "{what}: no GET after terminal"
        );
        assert_eq!(m.restart.requests_to_terminal_jobs, 0, "{what}: restart");
        assert_eq!(m.jobs_over_write_budget, 0, "{what}: status writes");
        assert!(m.rate_limit_held, "{what}");
        assert_eq!(m.detection_delay_secs.count, 80, "{what}");
    }
    let adaptive = &run.modes[0];
    // 8 × 20 history jobs from the cache at start, then the 80 measured ones as they finished.
    assert_eq!(adaptive.learned_types, 8, "{adaptive:?}");
    assert_eq!(adaptive.learned_jobs, Some(160.0 + 80.0), "{adaptive:?}");
    let fixed = &run.modes[1];
    assert_eq!(
        fixed.learned_jobs,
        Some(80.0),
        "no history: only the measured jobs"
    );
    assert!(records.iter().all(|set| set.jobs.len() == 80));
    let svg = cloudjob_bench::svg::frontier(&[(
        "typed".into(),
        cloudjob_bench::svg::FrontierPoint::of_run(&run),
    )]);
    assert!(svg.contains("adaptive:") && svg.contains("fixed-10s:"));
}

//! Smoke test of the benchmark: N = 100 in both modes, durations divided by 20 (0.25 s to 60 s), checking
//! that the results are correct and complete. Timings are not asserted: the machine is shared.
//!
//! Runs the debug operator build (built here if missing), since only correctness is checked.

mod common;

use cloudjob_bench::{BenchConfig, Mode, run_n};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_100_jobs_both_modes() {
    let (_out, base) = common::smoke_config().await;
    let cfg = BenchConfig {
        // Low enough that the adaptive mode's first polls (100 jobs every 2 s, half of them IMS) press
        // against it, so "the limit held" is a real check.
        rate_limit: 20,
        rate_limit_burst: 5,
        ..base
    };
    let (run, records) = run_n(&cfg, 100).await.expect("benchmark run");

    assert_eq!(run.jobs, 100);
    assert!(
        (3..=25).contains(&run.failing_jobs),
        "about 10% failing, got {}",
        run.failing_jobs
    );
    assert_eq!(run.modes.len(), 2);
    assert_eq!(
        run.modes.iter().map(|m| m.mode).collect::<Vec<_>>(),
        [Mode::Adaptive, Mode::Fixed]
    );
    for m in &run.modes {
        let what = m.mode.as_str();
        assert_eq!(m.jobs_terminal, 100, "{what}: all terminal");
        assert_eq!(
            m.wrong_phase, 0,
            "{what}: phases as planned: {:?}",
            m.wrong_phase_examples
        );
        assert!(m.time_to_all_terminal_secs.is_some(), "{what}");
        assert_eq!(m.jobs_without_requests, 0, "{what}: every job was polled");
        assert!(m.requests.min >= 1.0, "{what}");
        assert_eq!(
            m.requests_after_terminal, 0,
            "{what}: no GET after terminal"
        );
        assert_eq!(m.restart.requests_to_terminal_jobs, 0, "{what}: restart");
        assert_eq!(
            m.writes_after_terminal, 0,
            "{what}: no write after terminal"
        );
        assert_eq!(
            m.jobs_over_write_budget, 0,
            "{what}: status writes ≤ distinct states + 1"
        );
        assert!(
            m.rate_limit_held,
            "{what}: rate limit: {:?}",
            m.max_requests_per_second
        );
        assert_eq!(
            m.max_requests_per_second.len(),
            3,
            "{what}: three endpoints"
        );
        assert_eq!(
            m.detection_delay_secs.count, 100,
            "{what}: every delay measured"
        );
        assert!(
            m.detection_delay_secs.min >= 0.0,
            "{what}: seen after the end"
        );
        assert!(
            m.usage.peak_rss_mib > 0.0 && m.usage.cpu_seconds > 0.0,
            "{what}"
        );
        assert_eq!(m.watch_listings, 1, "{what}: the watch never relisted");
        // The operator's own counters agree with the simulators' (the restart's process starts at zero).
        assert_eq!(
            m.operator_cloud_requests,
            Some(m.requests_total as f64),
            "{what}"
        );
    }
    for set in &records {
        assert_eq!(set.jobs.len(), 100);
        for job in &set.jobs {
            assert!(job.requests > 0, "{}: {job:?}", set.mode.as_str());
            assert!(
                job.status_writes >= 1 && job.distinct_states >= 1,
                "{job:?}"
            );
            let expected = if job.fails { "Failed" } else { "Succeeded" };
            assert_eq!(job.phase.as_deref(), Some(expected), "{job:?}");
        }
    }
    let table = cloudjob_bench::report::table(&run);
    assert!(table.contains("fixed 10 s / adaptive"), "{table}");
    let svg = cloudjob_bench::svg::plot(&[(run, records)]);
    assert!(svg.contains("<circle") && svg.contains("N = 100"));
}

//! Smoke test of the scale run (`--scale`): 300 CloudJobs, 30 of them running, through the initial list,
//! a relist forced by a kube-apiserver restart and a short quiet time. Memory figures are not asserted (a
//! debug build on a shared machine); that the run completes them all, and that the relist happened, is.

mod common;

use std::time::Duration;

use cloudjob_bench::scale::{ScaleConfig, scale_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_scale_run_lists_relists_and_measures() {
    let (_out, base) = common::smoke_config().await;
    let cfg = ScaleConfig {
        operator_bin: base.operator_bin.clone(),
        out: base.out.clone(),
        cloudjobs: 300,
        running: 30,
        seed: 6,
        create_concurrency: 16,
        operator_args: Vec::new(),
        steady: Duration::from_secs(5),
        endpoint_down: false,
    };
    let result = scale_run(&cfg).await.expect("scale run");
    assert_eq!((result.cloudjobs, result.running), (300, 30));
    assert!(
        result.relisted,
        "the kube-apiserver restart made the operator list again"
    );
    assert!(result.base_rss_mib > 0.0 && result.after_list_rss_mib > 0.0);
    assert!(result.peak_mib >= result.after_list_rss_mib);
    assert!(
        result.requests_per_cloudjob_fill >= 2.0,
        "every CloudJob was created (1 request) and got its status written (1 more): {}",
        result.requests_per_cloudjob_fill
    );
    let table = cloudjob_bench::scale::table(&result);
    assert!(
        table.contains("| CloudJobs (running) | 300 (30) |"),
        "{table}"
    );
}

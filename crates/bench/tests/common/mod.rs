//! What the benchmark's smoke tests share.

use std::time::Duration;

use cloudjob_bench::{BenchConfig, operator};
use tempfile::TempDir;

/// The set-up of a smoke run: the debug operator build (built here if missing, since only correctness is
/// checked), a temporary directory for the results (removed when dropped) and a configuration writing to
/// it, with durations divided by 20, a 5 s restart window and 60 s of grace.
pub async fn smoke_config() -> (TempDir, BenchConfig) {
    let bin = operator::build_operator(false)
        .await
        .expect("operator builds");
    let out = tempfile::tempdir().expect("temp dir");
    let cfg = BenchConfig {
        time_scale: 20.0,
        restart_window: Duration::from_secs(5),
        grace: Duration::from_secs(60),
        ..BenchConfig::new(bin, out.path().to_path_buf())
    };
    (out, cfg)
}

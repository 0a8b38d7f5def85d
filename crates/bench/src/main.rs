//! `cloudjob-bench`: runs issue 6's benchmark and writes the table, JSON, per-job CSV files and the plot.
//!
//! ```sh
//! cargo run --release -p cloudjob-bench -- --jobs 100,1000 --out bench-results
//! ```

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::Parser;
use cloudjob_bench::{
    BenchConfig, DEFAULT_CONCURRENCY, DEFAULT_RATE_LIMIT, DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_TIME_SCALE, Mode, operator,
    report::{self, BenchResults, Machine},
    run_n, svg,
};

#[derive(Parser, Debug)]
#[command(
    name = "cloudjob-bench",
    about = "Benchmarks cloudjob-operator (adaptive vs fixed 10 s polling) on a local control plane and cloudjob-sim"
)]
struct Args {
    /// Numbers of CloudJobs, one run each, comma-separated (e.g. 100,1000,10000).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    jobs: Vec<usize>,

    /// Divides the job durations (5 s to 20 min, log-uniform); the operator's poll intervals stay as they
    /// are. The default keeps a default run around 10 minutes; 1 is the faithful setting.
    #[arg(long, default_value_t = DEFAULT_TIME_SCALE)]
    time_scale: f64,

    /// Poll modes to run side by side.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "adaptive,fixed"
    )]
    modes: Vec<Mode>,

    /// Share of jobs that end in FAIL.
    #[arg(long, default_value_t = 0.1)]
    fail_ratio: f64,

    /// The operator's --rate-limit (requests per second per endpoint), for both modes. The default lets
    /// the fixed 10 s baseline poll 10,000 jobs unthrottled.
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT)]
    rate_limit: u32,

    /// The operator's --rate-limit-burst.
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT_BURST)]
    rate_limit_burst: u32,

    /// The operator's --concurrency (reconciles in flight), for both modes.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: u16,

    /// Interval of the fixed mode, in seconds (10: the Huawei Terraform waiter).
    #[arg(long, default_value_t = 10.0)]
    fixed_interval_secs: f64,

    /// Seconds to watch for requests to terminal jobs after restarting the operator.
    #[arg(long, default_value_t = 15)]
    restart_window_secs: u64,

    /// Workload seed: the same seed gives the same jobs.
    #[arg(long, default_value_t = 6)]
    seed: u64,

    /// Output directory for results.json, detection-vs-requests.svg, per-job CSV and operator logs
    /// (default: bench-results under the cargo target directory).
    #[arg(long)]
    out: Option<PathBuf>,

    /// Only redraw the plot and reprint the tables of earlier runs (no run): the results of these
    /// directories, comma-separated, in one plot written to --out (default: the first directory).
    #[arg(long, value_name = "DIR,...", value_delimiter = ',')]
    replot: Vec<PathBuf>,

    /// The operator binary to measure (default: `cargo build --release` of it, then target/release).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(first) = args.replot.first() {
        return replot(&args.replot, args.out.as_deref().unwrap_or(first));
    }
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        bail!("--time-scale must be a positive number");
    }
    if !(0.0..=1.0).contains(&args.fail_ratio) {
        bail!("--fail-ratio must be within 0..1");
    }
    if args.jobs.is_empty() || args.jobs.contains(&0) || args.modes.is_empty() {
        bail!("--jobs and --modes need at least one non-zero value");
    }
    if !(args.fixed_interval_secs.is_finite() && args.fixed_interval_secs > 0.0) {
        bail!("--fixed-interval-secs must be positive");
    }
    let operator_bin = match &args.operator_bin {
        Some(bin) => bin.clone(),
        None => {
            eprintln!("building the operator: cargo build --release -p cloudjob-operator");
            operator::build_operator(true).await?
        }
    };
    let out = args.out.clone().map_or_else(
        || operator::target_dir().map(|t| t.join("bench-results")),
        Ok,
    )?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut modes = args.modes.clone();
    modes.dedup();
    let cfg = BenchConfig {
        time_scale: args.time_scale,
        modes,
        fail_ratio: args.fail_ratio,
        rate_limit: args.rate_limit.max(1),
        rate_limit_burst: args.rate_limit_burst.max(1),
        concurrency: args.concurrency.max(1),
        fixed_interval: Duration::from_secs_f64(args.fixed_interval_secs),
        seed: args.seed,
        restart_window: Duration::from_secs(args.restart_window_secs),
        ..BenchConfig::new(operator_bin, out.clone())
    };

    let mut results = BenchResults {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_at: jiff::Timestamp::now().to_string(),
        machine: Machine::current(),
        runs: Vec::new(),
    };
    let mut plotted = Vec::new();
    for &n in &args.jobs {
        let (run, records) = run_n(&cfg, n).await?;
        println!("\n{}", report::table(&run));
        for set in &records {
            report::write_csv(
                &set.jobs,
                &out.join(format!("jobs-{n}-{}.csv", set.mode.as_str())),
            )?;
        }
        results.runs.push(run.clone());
        plotted.push((run, records));
        // Written after every run, so a long invocation leaves its finished runs behind if stopped.
        report::write_json(&results, &out.join("results.json"))?;
        std::fs::write(out.join("detection-vs-requests.svg"), svg::plot(&plotted))?;
    }
    eprintln!(
        "results: {0}/results.json, {0}/detection-vs-requests.svg, {0}/jobs-N-MODE.csv",
        out.display()
    );
    Ok(())
}

/// Redraws `detection-vs-requests.svg` and reprints the tables from `results.json` and the per-job CSVs.
fn replot(dirs: &[PathBuf], out: &std::path::Path) -> anyhow::Result<()> {
    let mut plotted = Vec::new();
    for dir in dirs {
        plotted.extend(load_runs(dir)?);
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("detection-vs-requests.svg"), svg::plot(&plotted))?;
    Ok(())
}

fn load_runs(
    dir: &std::path::Path,
) -> anyhow::Result<
    Vec<(
        cloudjob_bench::results::RunResult,
        Vec<cloudjob_bench::results::JobRecordSet>,
    )>,
> {
    let results = report::read_json(&dir.join("results.json"))?;
    let mut plotted = Vec::new();
    for run in results.runs {
        println!("\n{}", report::table(&run));
        let mut sets = Vec::new();
        for m in &run.modes {
            let csv = dir.join(format!("jobs-{}-{}.csv", run.jobs, m.mode.as_str()));
            sets.push(cloudjob_bench::results::JobRecordSet {
                mode: m.mode,
                jobs: report::read_csv(&csv)?,
            });
        }
        plotted.push((run, sets));
    }
    Ok(plotted)
}

//! `cloudjob-bench`: runs issues 6 and 14's benchmark and writes the table, JSON, per-job CSV files and
//! the plots.
//!
//! ```sh
//! cargo run --release -p cloudjob-bench -- --jobs 100,1000 --out bench-results
//! cargo run --release -p cloudjob-bench -- --workload typed --jobs 1000 --time-scale 1
//! cargo run --release -p cloudjob-bench -- --workload typed --jobs 1000 --virtual
//! cargo run --release -p cloudjob-bench -- --scale --jobs 100000
//! ```

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::Parser;
use cloudjob_bench::{
    BenchConfig, DEFAULT_CONCURRENCY, DEFAULT_HISTORY_PER_TYPE, DEFAULT_RATE_LIMIT,
    DEFAULT_RATE_LIMIT_BURST, DEFAULT_TIME_SCALE, Mode, Policy, Workload, operator,
    report::{self, BenchResults, Machine},
    run_n, scale,
    svg::{self, FrontierPoint},
    virtual_time::{self, VirtualPolicy},
    workload,
};

#[derive(Parser, Debug)]
#[command(
    name = "cloudjob-bench",
    about = "Benchmarks cloudjob-operator's poll policies (adaptive, fixed intervals) on a local control plane and cloudjob-sim"
)]
struct Args {
    /// Numbers of CloudJobs, one run each, comma-separated (e.g. 100,1000,10000).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    jobs: Vec<usize>,

    /// Divides the job durations; the operator's poll intervals stay as they are. The default keeps a
    /// default run around 10 minutes; 1 is the faithful setting.
    #[arg(long, default_value_t = DEFAULT_TIME_SCALE)]
    time_scale: f64,

    /// blind: issue 6's mix, durations log-uniform over 5 s..20 min whatever the job type; typed: 8 job
    /// types with their own log-normal durations (medians 10 s..15 min), a warm-up history of finished
    /// CloudJobs for the adaptive operator, and a second adaptive operator without it (the cold start).
    #[arg(long, value_enum, default_value_t = Workload::Blind)]
    workload: Workload,

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

    /// Intervals of the fixed mode, one operator each, in seconds (10: the Huawei Terraform waiter).
    /// Default: 10 on the blind workload, 2,5,10,30 on the typed one.
    #[arg(long, value_delimiter = ',')]
    fixed_interval_secs: Vec<f64>,

    /// Finished CloudJobs per job type in the typed workload's warm-up history.
    #[arg(long, default_value_t = DEFAULT_HISTORY_PER_TYPE)]
    history_per_type: usize,

    /// The adaptive operator's --poll-request-cost in milliseconds (default: the operator's own).
    #[arg(long)]
    request_cost_ms: Option<u64>,

    /// With --virtual: every CloudJob's `spec.polling.maxIntervalSeconds` (default: the operator's 60 s). The
    /// longest wait between two polls bounds what the adaptive policy can save on long jobs.
    #[arg(long, requires = "virtual_time", value_parser = clap::value_parser!(u64).range(1..=3600))]
    max_interval_secs: Option<u64>,

    /// No control plane: replay the policies in virtual time with the operator's own poll rule and
    /// print their frontier (seconds for 1,000 jobs; the figures leave out reconcile and write latency).
    #[arg(long = "virtual")]
    virtual_time: bool,

    /// The memory scale run instead of the polling benchmark: for each N of --jobs, N CloudJobs (most
    /// finished, --running of them running), the operator's RSS after its initial list, a relist and a
    /// quiet minute, and its requests to kube-apiserver (`crates/bench/src/scale.rs`).
    #[arg(long)]
    scale: bool,

    /// With --scale: how many of the CloudJobs are for jobs still running (default: 1 %).
    #[arg(long)]
    running: Option<usize>,

    /// With --scale: every CloudJob's endpoint refuses connections (the failure storm).
    #[arg(long)]
    endpoint_down: bool,

    /// With --scale: more operator arguments, e.g. `--operator-arg=--some-flag --operator-arg=value`.
    #[arg(long = "operator-arg", allow_hyphen_values = true)]
    operator_args: Vec<String>,

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
    let fixed_intervals: Vec<f64> = match (&args.fixed_interval_secs[..], args.workload) {
        ([], Workload::Blind) => vec![10.0],
        ([], Workload::Typed) => vec![2.0, 5.0, 10.0, 30.0],
        (given, _) => given.to_vec(),
    };
    if fixed_intervals.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("--fixed-interval-secs must be positive");
    }
    let mut policies = Vec::new();
    if args.modes.contains(&Mode::Adaptive) {
        policies.push(Policy::adaptive(args.workload == Workload::Typed));
        if args.workload == Workload::Typed {
            policies.push(Policy::adaptive(false));
        }
    }
    if args.modes.contains(&Mode::Fixed) {
        for secs in &fixed_intervals {
            policies.push(Policy::fixed(Duration::from_secs_f64(*secs)));
        }
    }
    if args.virtual_time {
        return replay(&args, &policies);
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
    if args.scale {
        return scale(&args, operator_bin, out).await;
    }
    let cfg = BenchConfig {
        time_scale: args.time_scale,
        workload: args.workload,
        policies,
        history_per_type: args.history_per_type,
        request_cost: args.request_cost_ms.map(Duration::from_millis),
        fail_ratio: args.fail_ratio,
        rate_limit: args.rate_limit.max(1),
        rate_limit_burst: args.rate_limit_burst.max(1),
        concurrency: args.concurrency.max(1),
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
            report::write_csv(&set.jobs, &out.join(format!("jobs-{n}-{}.csv", set.policy)))?;
        }
        results.runs.push(run.clone());
        plotted.push((run, records));
        // Written after every run, so a long invocation leaves its finished runs behind if stopped.
        report::write_json(&results, &out.join("results.json"))?;
        std::fs::write(out.join("detection-vs-requests.svg"), svg::plot(&plotted))?;
        std::fs::write(out.join("frontier.svg"), frontier(&plotted))?;
    }
    eprintln!(
        "results: {0}/results.json, {0}/frontier.svg, {0}/detection-vs-requests.svg, {0}/jobs-N-POLICY.csv",
        out.display()
    );
    Ok(())
}

fn frontier(
    runs: &[(
        cloudjob_bench::results::RunResult,
        Vec<cloudjob_bench::results::JobRecordSet>,
    )],
) -> String {
    let panels: Vec<(String, Vec<FrontierPoint>)> = runs
        .iter()
        .map(|(run, _)| {
            let title = format!(
                "N = {}, {} workload (time scale {})",
                run.jobs,
                run.workload.as_str(),
                run.time_scale
            );
            (title, FrontierPoint::of_run(run))
        })
        .collect();
    svg::frontier(&panels)
}

/// `--virtual`: the policies replayed in virtual time, each N, a table per N and `virtual-frontier.svg`.
fn replay(args: &Args, policies: &[Policy]) -> anyhow::Result<()> {
    // Lockstep: 10,000 jobs created together, from when they reach the longest interval (about 4.5
    // minutes) to an hour.
    let windows = virtual_time::lockstep(10_000, 300, 3600, args.seed);
    let worst = windows.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    let at = |secs: u64| {
        windows
            .iter()
            .find(|(s, _)| *s == secs)
            .map_or(0.0, |(_, r)| *r)
    };
    println!(
        "lockstep, 10,000 old jobs created together, busiest second over the mean in a 60 s window: worst {worst:.2} (minutes 5-60); at minute 5 {:.2}, 10 {:.2}, 20 {:.2}, 30 {:.2}, 60 {:.2}",
        at(300),
        at(600),
        at(1200),
        at(1800),
        at(3600)
    );
    let cost = args.request_cost_ms.map_or(
        cloudjob_operator::poll::DEFAULT_REQUEST_COST,
        Duration::from_millis,
    );
    let max_interval = args.max_interval_secs.map(Duration::from_secs);
    let mut panels = Vec::new();
    for &n in &args.jobs {
        let jobs = workload::plan_for(
            args.workload,
            n,
            args.seed,
            args.time_scale,
            args.fail_ratio,
        );
        let history = workload::history(
            args.history_per_type,
            args.seed,
            args.time_scale,
            args.fail_ratio,
        );
        let mut outcomes = Vec::new();
        let mut points = Vec::new();
        let mut all: Vec<(String, VirtualPolicy)> = policies
            .iter()
            .map(|p| {
                let played = match p.mode {
                    Mode::Adaptive => VirtualPolicy::Adaptive {
                        request_cost: cost,
                        warm: p.history,
                    },
                    Mode::Fixed => VirtualPolicy::Fixed(p.fixed_interval),
                };
                (p.name(args.workload), played)
            })
            .collect();
        // The operator before it learned durations, for comparison.
        if args.modes.contains(&Mode::Adaptive) {
            all.push(("age-rule".into(), VirtualPolicy::AgeRule));
        }
        for (name, policy) in all {
            let outcome =
                virtual_time::play_bounded(&jobs, &history, policy, args.seed, max_interval);
            points.push(FrontierPoint {
                name,
                gets_per_job: outcome.gets.mean,
                median_delay_secs: outcome.delay_secs.p50,
                p95_delay_secs: outcome.delay_secs.p95,
            });
            outcomes.push(outcome);
        }
        println!(
            "\nN = {n}, {} workload, time scale {}, maximum interval {} s, virtual time:\n{}",
            args.workload.as_str(),
            args.time_scale,
            args.max_interval_secs
                .unwrap_or(cloudjob_operator::poll::DEFAULT_MAX_INTERVAL.as_secs()),
            virtual_time::table(&outcomes)
        );
        panels.push((
            format!(
                "N = {n}, {} workload, virtual time (time scale {})",
                args.workload.as_str(),
                args.time_scale
            ),
            points,
        ));
    }
    let out = match &args.out {
        Some(out) => out.clone(),
        None => operator::target_dir()?.join("bench-results"),
    };
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("virtual-frontier.svg"), svg::frontier(&panels))?;
    eprintln!("plot: {}/virtual-frontier.svg", out.display());
    Ok(())
}

/// The scale runs: one per N, each on its own control plane; `scale-N.json` and the table.
async fn scale(args: &Args, operator_bin: PathBuf, out: PathBuf) -> anyhow::Result<()> {
    for &n in &args.jobs {
        let cfg = scale::ScaleConfig {
            operator_bin: operator_bin.clone(),
            out: out.clone(),
            cloudjobs: n,
            running: args.running.unwrap_or(n / 100),
            seed: args.seed,
            create_concurrency: 32,
            operator_args: args.operator_args.clone(),
            steady: Duration::from_secs(60),
            endpoint_down: args.endpoint_down,
        };
        let result = scale::scale_run(&cfg).await?;
        let json = serde_json::json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "machine": Machine::current(),
            "result": result,
        });
        let path = out.join(format!(
            "scale-{n}{}.json",
            if args.endpoint_down { "-down" } else { "" }
        ));
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
        println!("\nN = {n}, scale run:\n{}", scale::table(&result));
        eprintln!("results: {}", path.display());
    }
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
    std::fs::write(out.join("frontier.svg"), frontier(&plotted))?;
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
            let csv = dir.join(format!("jobs-{}-{}.csv", run.jobs, m.name()));
            sets.push(cloudjob_bench::results::JobRecordSet {
                mode: m.mode,
                policy: m.name().to_string(),
                jobs: report::read_csv(&csv)?,
            });
        }
        plotted.push((run, sets));
    }
    Ok(plotted)
}

//! The side-by-side table, the JSON results and the per-job CSV files.

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::{
    Mode,
    results::{JobRecord, ModeResult, RunResult},
};

/// Everything one invocation measured, as written to `results.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchResults {
    pub command: String,
    pub started_at: String,
    pub machine: Machine,
    pub runs: Vec<RunResult>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_gib: Option<f64>,
    pub load_average_at_start: Option<String>,
}

impl Machine {
    pub fn current() -> Machine {
        use procfs::Current as _;
        let gib = |bytes: u64| (bytes as f64 / 1024.0 / 1024.0 / 1024.0 * 10.0).round() / 10.0;
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: procfs::Meminfo::current().ok().map(|m| gib(m.mem_total)),
            load_average_at_start: procfs::LoadAverage::current()
                .ok()
                .map(|l| format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen)),
        }
    }
}

pub fn write_json(results: &BenchResults, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(results)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// One line per job, with a header (the field names of [`JobRecord`]).
pub fn write_csv(records: &[JobRecord], path: &Path) -> anyhow::Result<()> {
    let mut writer =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    for record in records {
        writer.serialize(record)?;
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn read_json(path: &Path) -> anyhow::Result<BenchResults> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a results file", path.display()))
}

/// Reads a per-job CSV written by [`write_csv`] (for re-plotting finished runs).
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<JobRecord>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    reader
        .deserialize()
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a per-job CSV file", path.display()))
}

/// A policy's column header: `adaptive`, `adaptive, cold start`, `fixed 10 s`.
pub fn policy_label(run: &RunResult, m: &ModeResult) -> String {
    match m.mode {
        Mode::Adaptive if m.name() == "adaptive-cold" => "adaptive, cold start".into(),
        Mode::Adaptive => "adaptive".into(),
        Mode::Fixed => format!(
            "fixed {} s",
            m.fixed_interval_secs.unwrap_or(run.fixed_interval_secs)
        ),
    }
}

/// The policies the ratio column compares: the adaptive one (with its history, if any) and the fixed
/// 10 s one (the Terraform waiter), else the first fixed one.
fn compared(run: &RunResult) -> Option<(&ModeResult, &ModeResult)> {
    let adaptive = run.modes.iter().find(|m| m.name() == "adaptive")?;
    let fixed = run.modes.iter().filter(|m| m.mode == Mode::Fixed);
    let ten = fixed
        .clone()
        .find(|m| m.fixed_interval_secs.unwrap_or(run.fixed_interval_secs) == 10.0);
    Some((adaptive, ten.or_else(|| fixed.clone().next())?))
}

fn ratio(fixed: f64, adaptive: f64) -> String {
    if adaptive > 0.0 && fixed.is_finite() {
        format!("{:.2}×", fixed / adaptive)
    } else {
        "–".into()
    }
}

/// A Markdown table of one run, the modes side by side, with fixed / adaptive ratios where both ran.
pub fn table(run: &RunResult) -> String {
    let mut out = String::new();
    let both = compared(run);
    let history = if run.history_per_type > 0 {
        format!(", history {} per type", run.history_per_type)
    } else {
        String::new()
    };
    let mut header = format!(
        "| N = {}, {} workload{history} (time scale {}: jobs {:.2}–{:.0} s, {} failing; rate limit {}+{} per endpoint) |",
        run.jobs,
        run.workload.as_str(),
        run.time_scale,
        run.duration_range_secs.0,
        run.duration_range_secs.1,
        run.failing_jobs,
        run.rate_limit,
        run.rate_limit_burst
    );
    let mut rule = String::from("|---|");
    for m in &run.modes {
        let _ = write!(header, " {} |", policy_label(run, m));
        rule.push_str("---:|");
    }
    if let Some((_, fixed)) = both {
        let _ = write!(header, " {} / adaptive |", policy_label(run, fixed));
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");

    let mut row = |label: &str, cell: &dyn Fn(&ModeResult) -> String, r: Option<(f64, f64)>| {
        let mut line = format!("| {label} |");
        for m in &run.modes {
            let _ = write!(line, " {} |", cell(m));
        }
        if both.is_some() {
            let _ = write!(line, " {} |", r.map_or(String::new(), |(f, a)| ratio(f, a)));
        }
        let _ = writeln!(out, "{line}");
    };
    let pick = |f: &dyn Fn(&ModeResult) -> f64| both.map(|(a, x)| (f(x), f(a)));

    row(
        "CloudJobs seen terminal / in the expected phase",
        &|m| {
            format!(
                "{}/{} / {}",
                m.jobs_terminal,
                m.jobs,
                m.jobs - m.wrong_phase
            )
        },
        None,
    );
    row(
        "time until all terminal (s; last job truly ended at)",
        &|m| {
            format!(
                "{} ({})",
                m.time_to_all_terminal_secs
                    .map_or("not all".into(), |s| format!("{s:.0}")),
                m.last_true_end_secs
                    .map_or("–".into(), |s| format!("{s:.0}"))
            )
        },
        None,
    );
    row(
        "cloud GETs per job: mean / p50 / p95",
        &|m| {
            format!(
                "{:.1} / {:.0} / {:.0}",
                m.requests.mean, m.requests.p50, m.requests.p95
            )
        },
        pick(&|m| m.requests.mean),
    );
    row(
        "cloud GETs in total",
        &|m| m.requests_total.to_string(),
        pick(&|m| m.requests_total as f64),
    );
    row(
        "status writes per job: mean / max",
        &|m| format!("{:.1} / {:.0}", m.status_writes.mean, m.status_writes.max),
        pick(&|m| m.status_writes.mean),
    );
    row(
        "distinct states per job: mean",
        &|m| format!("{:.1}", m.distinct_states.mean),
        None,
    );
    row(
        "jobs with status writes > distinct states + 1",
        &|m| m.jobs_over_write_budget.to_string(),
        None,
    );
    row(
        "detection delay p50 / p95 / max (s)",
        &|m| {
            let d = &m.detection_delay_secs;
            format!("{:.1} / {:.1} / {:.1}", d.p50, d.p95, d.max)
        },
        pick(&|m| m.detection_delay_secs.p50),
    );
    row(
        "operator peak RSS (MiB)",
        &|m| format!("{:.1}", m.usage.peak_rss_mib),
        pick(&|m| m.usage.peak_rss_mib),
    );
    row(
        "operator CPU (s)",
        &|m| format!("{:.1}", m.usage.cpu_seconds),
        pick(&|m| m.usage.cpu_seconds),
    );
    row(
        "max requests/s per endpoint (ims / evs / ecs)",
        &|m| {
            let get = |s: &str| m.max_requests_per_second.get(s).copied().unwrap_or(0);
            format!(
                "{} / {} / {}{}",
                get("ims"),
                get("evs"),
                get("ecs"),
                if m.rate_limit_held { "" } else { " (over!)" }
            )
        },
        None,
    );
    row(
        "jobs / types the duration model learned from",
        &|m| {
            format!(
                "{} / {}",
                m.learned_jobs.map_or("–".into(), |j| format!("{j:.0}")),
                m.learned_types
            )
        },
        None,
    );
    row(
        "GETs after a job's terminal status was served",
        &|m| m.requests_after_terminal.to_string(),
        None,
    );
    row(
        "GETs to terminal jobs after a restart (window)",
        &|m| {
            format!(
                "{} ({:.0} s)",
                m.restart.requests_to_terminal_jobs, m.restart.window_secs
            )
        },
        None,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{operator::ProcessUsage, results::RestartCheck, stats::Dist};

    fn mode(mode: Mode, requests: f64, delay: f64) -> ModeResult {
        ModeResult {
            mode,
            policy: String::new(),
            fixed_interval_secs: None,
            jobs: 10,
            jobs_terminal: 10,
            wrong_phase: 0,
            wrong_phase_examples: vec![],
            time_to_all_terminal_secs: Some(30.0),
            last_true_end_secs: Some(28.0),
            requests: Dist::of([requests]),
            requests_total: (requests * 10.0) as u64,
            jobs_without_requests: 0,
            status_writes: Dist::of([3.0]),
            distinct_states: Dist::of([3.0]),
            jobs_over_write_budget: 0,
            writes_after_terminal: 0,
            detection_delay_secs: Dist::of([delay]),
            usage: ProcessUsage {
                peak_rss_mib: 20.0,
                cpu_seconds: 1.0,
            },
            max_requests_per_second: [("ims".to_string(), 5)].into(),
            rate_limit_held: true,
            requests_after_terminal: 0,
            jobs_with_requests_after_terminal: 0,
            restart: RestartCheck::default(),
            operator_cloud_requests: None,
            operator_status_patches: None,
            learned_jobs: None,
            learned_types: 0,
            watch_listings: 1,
            watch_errors: 0,
        }
    }

    #[test]
    fn csv_round_trips() {
        let record = JobRecord {
            name: "job-00001".into(),
            kind: "ims-linear".into(),
            duration_secs: 12.5,
            fails: true,
            phase: Some("Failed".into()),
            requests: 7,
            status_writes: 4,
            distinct_states: 4,
            writes_after_terminal: 0,
            detection_delay_secs: Some(1.25),
            requests_after_terminal: 0,
        };
        let unseen = JobRecord {
            phase: None,
            detection_delay_secs: None,
            ..record.clone()
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("jobs.csv");
        write_csv(&[record, unseen], &path).expect("written");
        let back = read_csv(&path).expect("read");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].phase.as_deref(), Some("Failed"));
        assert_eq!(back[0].detection_delay_secs, Some(1.25));
        assert_eq!(
            (back[1].phase.clone(), back[1].detection_delay_secs),
            (None, None)
        );
        std::fs::write(&path, "header\nnot,enough\n").expect("written");
        assert!(read_csv(&path).is_err());
    }

    #[test]
    fn table_has_ratios() {
        let run = RunResult {
            jobs: 10,
            time_scale: 4.0,
            workload: crate::Workload::Blind,
            history_per_type: 0,
            duration_range_secs: (1.25, 300.0),
            failing_jobs: 1,
            rate_limit: 1000,
            rate_limit_burst: 100,
            concurrency: 64,
            fixed_interval_secs: 10.0,
            create_secs: 1.0,
            modes: vec![mode(Mode::Adaptive, 4.0, 2.0), mode(Mode::Fixed, 12.0, 5.0)],
        };
        let t = table(&run);
        assert!(t.contains("| fixed 10 s |"), "{t}");
        assert!(t.contains("| fixed 10 s / adaptive |"), "{t}");
        assert!(t.contains("3.00×"), "{t}");
        assert!(t.contains("2.50×"), "{t}");
    }
}

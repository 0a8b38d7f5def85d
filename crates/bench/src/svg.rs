//! The plots: completion detection delay against cloud GETs per job, one panel per N, one dot per job of
//! every policy ([`plot`]); and the frontier, one point per policy, its median and p95 delay
//! ([`frontier`]).
//! Hand-written SVG: text is left to the viewer's sans-serif font, so nothing is needed to render it here.
//! (plotters with its SVG backend and no default features was considered: without a font feature it lays
//! text out with guessed metrics, and the log axis, the jittered dots, the diamonds and the legend below
//! the panels would take as much code as writing the elements directly.)

use std::fmt::Write as _;

use crate::results::{JobRecord, JobRecordSet, RunResult};

const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 380.0;
const MARGIN_L: f64 = 56.0;
const MARGIN_R: f64 = 16.0;
const MARGIN_T: f64 = 56.0;
const MARGIN_B: f64 = 64.0;
/// Points drawn per mode and panel: enough to show the spread, few enough to keep the file small.
const MAX_POINTS: usize = 400;

/// The colour of the policy named `name`: blues for the adaptive ones, oranges to reds for the fixed
/// intervals, so that runs drawn together keep their colours.
fn color(name: &str) -> &'static str {
    match name {
        "adaptive" => "#1f77b4",
        "adaptive-cold" => "#6baed6",
        "fixed-2s" => "#fdae6b",
        "fixed-5s" => "#fd8d3c",
        "fixed" | "fixed-10s" => "#e6550d",
        "fixed-30s" => "#a63603",
        _ => "#636363",
    }
}

/// The smallest of 1, 2, 5 × 10^k that is at least `x`.
fn nice_ceil(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|v| *v >= x * 0.999_999)
        .unwrap_or(10.0 * base)
}

/// The start of an SVG document `width` × `height` on white, with `title` centred at the top.
fn document(width: f64, height: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{title}</text>"#,
        width / 2.0
    );
    s
}

/// The ticks of a log axis: 1, 2 and 5 × 10^k from `lo` (a power of ten) up to `hi`.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut tick = lo;
    while tick <= hi * 1.000_001 {
        for m in [1.0, 2.0, 5.0] {
            let v = tick * m;
            if v > hi * 1.000_001 {
                break;
            }
            ticks.push(v);
        }
        tick *= 10.0;
    }
    ticks
}

/// A vertical grid line at `x` across a plot `h` high from `top`, labelled `v` below it.
fn x_tick(s: &mut String, x: f64, v: f64, top: f64, h: f64) {
    let _ = writeln!(
        s,
        r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{v}</text>"##,
        top + h,
        top + h + 16.0
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every k-th record so that at most `MAX_POINTS` remain (deterministic, spread over the whole run).
fn sample(records: &[JobRecord]) -> impl Iterator<Item = &JobRecord> {
    let step = records.len().div_ceil(MAX_POINTS).max(1);
    records.iter().step_by(step)
}

/// The SVG document for all runs.
pub fn plot(runs: &[(RunResult, Vec<JobRecordSet>)]) -> String {
    let panels = runs.len().max(1) as f64;
    let width = PANEL_W * panels;
    let policies = runs.first().map_or(2, |(run, _)| run.modes.len());
    let height = PANEL_H + 30.0 + 18.0 * policies as f64;
    let mut s = document(
        width,
        height,
        "Completion detection delay vs cloud GETs per job",
    );
    for (i, (run, sets)) in runs.iter().enumerate() {
        panel(&mut s, i as f64 * PANEL_W, run, sets);
    }
    // Legend under the panels, one entry per line so that it fits a single panel too.
    let mut y = PANEL_H + 14.0;
    let mut names: Vec<&str> = Vec::new();
    for (run, _) in runs {
        for m in &run.modes {
            if !names.contains(&m.name()) {
                names.push(m.name());
            }
        }
    }
    for name in &names {
        let _ = writeln!(
            s,
            r#"<circle cx="24" cy="{y}" r="4" fill="{c}" fill-opacity="0.6"/><text x="34" y="{}">{}: one dot per job, ≤ {MAX_POINTS} per panel</text>"#,
            y + 4.0,
            escape(name),
            c = color(name)
        );
        y += 18.0;
    }
    let _ = writeln!(
        s,
        r#"<path d="M 24 {} l 6 6 l -6 6 l -6 -6 z" fill="white" stroke="black" stroke-width="1.5"/><text x="34" y="{}">diamond: the mode's mean GETs per job and median delay</text>"#,
        y - 6.0,
        y + 4.0
    );
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, x0: f64, run: &RunResult, sets: &[JobRecordSet]) {
    let (left, top) = (x0 + MARGIN_L, MARGIN_T);
    let (w, h) = (PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B);
    let all = || sets.iter().flat_map(|set| set.jobs.iter());
    let max_requests = all().map(|r| r.requests).max().unwrap_or(1).max(2) as f64;
    let max_delay = all()
        .filter_map(|r| r.detection_delay_secs)
        .fold(1.0, f64::max);
    let x_max = nice_ceil(max_requests);
    let y_max = nice_ceil(max_delay);
    // Requests per job span two orders of magnitude: a log axis, starting at 1.
    let px = |requests: f64| left + w * requests.max(1.0).log10() / x_max.log10();
    let py = |delay: f64| top + h - h * delay.clamp(0.0, y_max) / y_max;

    let _ = writeln!(
        s,
        r#"<text x="{}" y="44" text-anchor="middle" font-size="13">N = {} (time scale {})</text>"#,
        left + w / 2.0,
        run.jobs,
        run.time_scale
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##
    );
    // X ticks at 1, 2, 5 × 10^k.
    for v in log_ticks(1.0, x_max) {
        x_tick(s, px(v), v, top, h);
    }
    for k in 0..=5 {
        let v = y_max * f64::from(k) / 5.0;
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + w,
            left - 6.0,
            y + 4.0,
            if y_max >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">cloud GETs per job (log scale)</text>"#,
        left + w / 2.0,
        top + h + 36.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({} {}) rotate(-90)" text-anchor="middle">detection delay (s)</text>"#,
        x0 + 16.0,
        top + h / 2.0
    );
    for set in sets {
        let c = color(&set.policy);
        for (i, r) in sample(&set.jobs).enumerate() {
            let Some(delay) = r.detection_delay_secs else {
                continue;
            };
            // GET counts are integers: spread each column a little (±3 px) so stacked dots stay visible.
            let jitter = (i % 7) as f64 - 3.0;
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{c}" fill-opacity="0.45"/>"#,
                px(r.requests as f64) + jitter,
                py(delay)
            );
        }
        s.push('\n');
    }
    for m in &run.modes {
        let (x, y) = (px(m.requests.mean), py(m.detection_delay_secs.p50));
        let _ = writeln!(
            s,
            r#"<path d="M {x:.1} {:.1} l 8 8 l -8 8 l -8 -8 z" fill="{c}" stroke="black" stroke-width="1.5"><title>{}: mean {:.1} GETs, median delay {:.1} s</title></path>"#,
            y - 8.0,
            escape(m.name()),
            m.requests.mean,
            m.detection_delay_secs.p50,
            c = color(m.name())
        );
    }
}

/// One policy on the frontier plot.
#[derive(Clone, Debug)]
pub struct FrontierPoint {
    /// The policy's name (`adaptive`, `fixed-10s`), which also picks its colour.
    pub name: String,
    pub gets_per_job: f64,
    pub median_delay_secs: f64,
    pub p95_delay_secs: f64,
}

impl FrontierPoint {
    /// The points of a measured run, one per policy.
    pub fn of_run(run: &RunResult) -> Vec<FrontierPoint> {
        run.modes
            .iter()
            .map(|m| FrontierPoint {
                name: m.name().to_string(),
                gets_per_job: m.requests.mean,
                median_delay_secs: m.detection_delay_secs.p50,
                p95_delay_secs: m.detection_delay_secs.p95,
            })
            .collect()
    }
}

/// The frontier: mean GETs per job against detection delay (both log scales), one panel per title, each
/// policy a filled dot at its median delay and a hollow square at its p95, joined by a line, and listed
/// with its figures under the panel. A policy is beaten when another lies left of it and lower.
pub fn frontier(panels: &[(String, Vec<FrontierPoint>)]) -> String {
    let count = panels.len().max(1) as f64;
    let width = PANEL_W * count;
    let rows = panels.iter().map(|(_, p)| p.len()).max().unwrap_or(0) as f64;
    let height = PANEL_H + 48.0 + 16.0 * rows;
    let mut s = document(
        width,
        height,
        "Requests against detection delay, one point per policy",
    );
    for (i, (title, points)) in panels.iter().enumerate() {
        frontier_panel(&mut s, i as f64 * PANEL_W, title, points);
    }
    let _ = writeln!(
        s,
        r#"<circle cx="24" cy="{y}" r="5" fill="black"/><text x="34" y="{}">median detection delay</text><rect x="200" y="{}" width="9" height="9" fill="white" stroke="black" stroke-width="1.5"/><text x="216" y="{}">p95 detection delay</text>"#,
        PANEL_H + 24.0,
        PANEL_H + 15.5,
        PANEL_H + 24.0,
        y = PANEL_H + 20.0
    );
    for (i, (_, points)) in panels.iter().enumerate() {
        let x = i as f64 * PANEL_W + 24.0;
        for (row, p) in points.iter().enumerate() {
            let y = PANEL_H + 44.0 + 16.0 * row as f64;
            let _ = writeln!(
                s,
                r#"<circle cx="{x}" cy="{}" r="4" fill="{c}"/><text x="{}" y="{y}">{}: {:.1} GETs per job, delay median {:.1} s, p95 {:.1} s</text>"#,
                y - 4.0,
                x + 10.0,
                escape(&p.name),
                p.gets_per_job,
                p.median_delay_secs,
                p.p95_delay_secs,
                c = color(&p.name)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn frontier_panel(s: &mut String, x0: f64, title: &str, points: &[FrontierPoint]) {
    let (left, top) = (x0 + MARGIN_L, MARGIN_T);
    let (w, h) = (PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B);
    let x_min = points
        .iter()
        .map(|p| p.gets_per_job)
        .fold(f64::MAX, f64::min)
        .max(1.0);
    let x_lo = 10f64.powf(x_min.log10().floor());
    let x_hi = nice_ceil(points.iter().map(|p| p.gets_per_job).fold(2.0, f64::max));
    // Delays span from about a second (fast pollers' medians) to a minute (slow ones' p95): a log axis.
    let y_min = points
        .iter()
        .map(|p| p.median_delay_secs)
        .filter(|d| *d > 0.0)
        .fold(f64::MAX, f64::min)
        .clamp(0.1, 1.0);
    let y_lo = 10f64.powf(y_min.log10().floor());
    let y_hi = nice_ceil(points.iter().map(|p| p.p95_delay_secs).fold(2.0, f64::max));
    let px = |gets: f64| left + w * (gets.max(x_lo) / x_lo).log10() / (x_hi / x_lo).log10();
    let py = |delay: f64| {
        let d = delay.clamp(y_lo, y_hi);
        top + h - h * (d / y_lo).log10() / (y_hi / y_lo).log10()
    };
    let _ = writeln!(
        s,
        r##"<text x="{}" y="44" text-anchor="middle" font-size="13">{}</text><rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##,
        left + w / 2.0,
        escape(title)
    );
    for v in log_ticks(x_lo, x_hi) {
        x_tick(s, px(v), v, top, h);
    }
    for v in log_ticks(y_lo, y_hi) {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
            left + w,
            left - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">cloud GETs per job, mean (log scale)</text><text transform="translate({} {}) rotate(-90)" text-anchor="middle">detection delay (s, log scale)</text>"#,
        left + w / 2.0,
        top + h + 36.0,
        x0 + 16.0,
        top + h / 2.0
    );
    for p in points {
        let c = color(&p.name);
        let (x, y50, y95) = (
            px(p.gets_per_job),
            py(p.median_delay_secs),
            py(p.p95_delay_secs),
        );
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{y50:.1}" x2="{x:.1}" y2="{y95:.1}" stroke="{c}" stroke-width="1.5"/><rect x="{:.1}" y="{:.1}" width="9" height="9" fill="white" stroke="{c}" stroke-width="2"/><circle cx="{x:.1}" cy="{y50:.1}" r="5" fill="{c}"><title>{}: {:.1} GETs per job, median {:.1} s, p95 {:.1} s</title></circle>"#,
            x - 4.5,
            y95 - 4.5,
            escape(&p.name),
            p.gets_per_job,
            p.median_delay_secs,
            p.p95_delay_secs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_1_2_5_times_powers_of_ten() {
        assert_eq!(
            log_ticks(1.0, 120.0),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(log_ticks(0.1, 2.0), [0.1, 0.2, 0.5, 1.0, 2.0]);
    }

    #[test]
    fn nice_bounds() {
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(120.0), 200.0);
        assert_eq!(nice_ceil(10.0), 10.0);
        assert_eq!(nice_ceil(0.0), 1.0);
    }

    #[test]
    fn empty_plot_is_valid_svg() {
        let svg = plot(&[]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let svg = frontier(&[]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn frontier_has_one_point_per_policy() {
        let point = |name: &str, gets, p50, p95| FrontierPoint {
            name: name.into(),
            gets_per_job: gets,
            median_delay_secs: p50,
            p95_delay_secs: p95,
        };
        let svg = frontier(&[(
            "N = 1000".into(),
            vec![
                point("adaptive", 8.6, 5.0, 28.0),
                point("fixed-10s", 26.0, 5.0, 9.5),
                point("fixed-30s", 9.7, 15.6, 28.0),
            ],
        )]);
        assert_eq!(
            svg.matches("<circle").count(),
            3 + 1 + 3,
            "three policies, the legend and the three rows of figures"
        );
        assert!(svg.contains(">fixed-30s: 9.7 GETs per job") && svg.contains("N = 1000"));
    }
}

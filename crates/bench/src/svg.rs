//! The plot: completion detection delay against cloud GETs per job, one panel per N, both modes.
//! Hand-written SVG: text is left to the viewer's sans-serif font, so nothing is needed to render it here.
//! (plotters with its SVG backend and no default features was considered: without a font feature it lays
//! text out with guessed metrics, and the log axis, the jittered dots, the diamonds and the legend below
//! the panels would take as much code as writing the elements directly.)

use std::fmt::Write as _;

use crate::{
    Mode,
    results::{JobRecord, JobRecordSet, RunResult},
};

const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 380.0;
const MARGIN_L: f64 = 56.0;
const MARGIN_R: f64 = 16.0;
const MARGIN_T: f64 = 56.0;
const MARGIN_B: f64 = 64.0;
/// Points drawn per mode and panel: enough to show the spread, few enough to keep the file small.
const MAX_POINTS: usize = 400;

fn color(mode: Mode) -> &'static str {
    match mode {
        Mode::Adaptive => "#1f77b4",
        Mode::Fixed => "#e6550d",
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
    let height = PANEL_H + 66.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Completion detection delay vs cloud GETs per job</text>"#,
        width / 2.0
    );
    for (i, (run, sets)) in runs.iter().enumerate() {
        panel(&mut s, i as f64 * PANEL_W, run, sets);
    }
    // Legend under the panels, one entry per line so that it fits a single panel too.
    let mut y = PANEL_H + 14.0;
    for mode in [Mode::Adaptive, Mode::Fixed] {
        let label = match mode {
            Mode::Adaptive => "adaptive",
            Mode::Fixed => "fixed 10 s (Terraform waiter)",
        };
        let _ = writeln!(
            s,
            r#"<circle cx="24" cy="{y}" r="4" fill="{c}" fill-opacity="0.6"/><text x="34" y="{}">{label}: one dot per job, ≤ {MAX_POINTS} per panel</text>"#,
            y + 4.0,
            c = color(mode)
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
    let mut tick = 1.0;
    while tick <= x_max * 1.000_001 {
        for m in [1.0, 2.0, 5.0] {
            let v = tick * m;
            if v > x_max * 1.000_001 {
                break;
            }
            let x = px(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{v}</text>"##,
                top + h,
                top + h + 16.0
            );
        }
        tick *= 10.0;
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
        let c = color(set.mode);
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
            escape(m.mode.as_str()),
            m.requests.mean,
            m.detection_delay_secs.p50,
            c = color(m.mode)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}

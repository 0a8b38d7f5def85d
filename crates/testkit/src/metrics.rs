//! The operator's `/metrics`, parsed.
//!
//! The Prometheus text format is parsed here rather than with the `prometheus-parse` crate: that crate
//! brings chrono back into the workspace (issue 9 removes it), and `openmetrics-parser` is LGPL-3.0.
//! Only sample lines matter to the tests and the benchmark: `name{label="value",...} value [timestamp]`.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};

/// One sample: a series and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the Prometheus (or OpenMetrics) text format; comments, `# EOF` and blank lines are skipped.
    pub fn parse(text: &str) -> anyhow::Result<Metrics> {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_sample(line).with_context(|| format!("metrics line {line:?}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Metrics { samples })
    }

    /// The samples of `name` whose labels include every pair of `labels`.
    pub fn series<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
        })
    }

    /// The sum of those samples; `None` if there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name, labels)
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }

    /// The sum over every label set of `name`, 0 if it has none.
    pub fn total(&self, name: &str) -> f64 {
        self.sum(name, &[]).unwrap_or(0.0)
    }
}

fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("no value")?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next().context("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .with_context(|| format!("{other:?} is no number"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// `key="value",...}` (with `\\`, `\"` and `\n` escapes); returns the labels and what follows the `}`.
fn parse_labels(mut text: &str) -> anyhow::Result<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after) = text.split_once("=\"").context("a label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("an escape at the end"),
                },
                Some((_, c)) => value.push(c),
                None => bail!("an unterminated label value"),
            }
        };
        labels.insert(key.trim().to_string(), value);
        text = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP cloudjob_cloud_requests Jobs API requests.
# TYPE cloudjob_cloud_requests counter
cloudjob_cloud_requests_total{service="ims",outcome="success"} 10
cloudjob_cloud_requests_total{service="evs",outcome="throttled"} 5
cloudjob_status_patches_total 3
cloudjob_leader 1
odd{text="a \"quoted\", {braced} \\ value"} 2.5 1700000000000
# EOF
"#;

    #[test]
    fn sums_over_label_sets_and_selects_by_labels() {
        let m = Metrics::parse(TEXT).expect("parses");
        assert_eq!(m.total("cloudjob_cloud_requests_total"), 15.0);
        assert_eq!(
            m.sum("cloudjob_cloud_requests_total", &[("outcome", "throttled")]),
            Some(5.0)
        );
        assert_eq!(
            m.sum(
                "cloudjob_cloud_requests_total",
                &[("service", "ims"), ("outcome", "throttled")]
            ),
            None
        );
        assert_eq!(m.sum("cloudjob_status_patches_total", &[]), Some(3.0));
        assert_eq!(m.total("cloudjob_leader"), 1.0);
        assert_eq!(m.total("missing"), 0.0);
        let odd = m.series("odd", &[]).next().expect("odd");
        assert_eq!(odd.labels["text"], r#"a "quoted", {braced} \ value"#);
        assert_eq!(odd.value, 2.5);
    }

    #[test]
    fn broken_lines_are_errors() {
        assert!(Metrics::parse("x{a=\"b} 1").is_err());
        assert!(Metrics::parse("x one").is_err());
        assert!(Metrics::parse("x").is_err());
    }
}

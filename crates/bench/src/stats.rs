//! Summaries of per-job numbers.

use serde::{Deserialize, Serialize};

/// Mean, median, 95th percentile and extremes of a sample (nearest-rank percentiles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Dist {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i]
        };
        Dist {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: rank(0.50),
            p95: rank(0.95),
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Dist::of((1..=100).map(f64::from));
        assert_eq!((d.p50, d.p95, d.min, d.max), (50.0, 95.0, 1.0, 100.0));
        assert!((d.mean - 50.5).abs() < 1e-9);
        let one = Dist::of([7.0]);
        assert_eq!((one.p50, one.p95), (7.0, 7.0));
        assert_eq!(Dist::of([f64::NAN]).count, 0);
    }
}

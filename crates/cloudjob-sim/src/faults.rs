//! Faults to inject into jobs API responses, and the table that decides each request's fault.

use std::collections::HashMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A misbehaviour to inject into jobs API responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with the gateway body `APIGW.0308`, and a `Retry-After` header when set.
    Throttle { retry_after_secs: Option<u64> },
    /// 500 or 503 (or any status) with an error body.
    ServerError { status: u16 },
    /// Delay the (otherwise normal, or otherwise faulty) response.
    Slow { delay_ms: u64 },
    /// Drop the TCP connection (RST) without sending any response.
    ConnectionReset,
    /// 200 with a complete body that is not valid JSON.
    MalformedJson,
    /// 200 whose `Content-Length` promises more than is sent, then the connection closes.
    TruncatedBody,
    /// 200 with a consistent `Content-Length` but the JSON cut in half.
    CutJson,
    /// 200 carrying an error body `{"error": {"message", "code"}}` instead of a job.
    ErrorBodyOk,
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Throttle {
                retry_after_secs: Some(_),
            } => "throttle_retry_after",
            FaultKind::Throttle {
                retry_after_secs: None,
            } => "throttle",
            FaultKind::ServerError { status: 503 } => "server_error_503",
            FaultKind::ServerError { .. } => "server_error",
            FaultKind::Slow { .. } => "slow",
            FaultKind::ConnectionReset => "connection_reset",
            FaultKind::MalformedJson => "malformed_json",
            FaultKind::TruncatedBody => "truncated_body",
            FaultKind::CutJson => "cut_json",
            FaultKind::ErrorBodyOk => "error_body_ok",
        }
    }
}

/// A fault with how often it fires: for the next `count` matching requests (all if `None`),
/// each with `probability` (default 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default = "one")]
    pub probability: f64,
}

fn one() -> f64 {
    1.0
}

impl Fault {
    /// Fires on every request until cleared.
    pub fn always(kind: FaultKind) -> Self {
        Self {
            kind,
            count: None,
            probability: 1.0,
        }
    }
    /// Fires on the next `n` requests (a burst).
    pub fn next(n: u64, kind: FaultKind) -> Self {
        Self {
            kind,
            count: Some(n),
            probability: 1.0,
        }
    }
    /// Fires on each request with probability `p`.
    pub fn with_probability(p: f64, kind: FaultKind) -> Self {
        Self {
            kind,
            count: None,
            probability: p,
        }
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultScope {
    Global,
    Job(String),
}

#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    pub global: Vec<Fault>,
    pub per_job: HashMap<String, Vec<Fault>>,
}

/// What to do to one response.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct FaultDecision {
    pub delay_ms: u64,
    pub fault: Option<FaultKind>,
}

impl FaultTable {
    /// Job faults first, then global ones. Delays accumulate; the first other fault wins.
    pub(crate) fn decide(&mut self, job_id: Option<&str>) -> FaultDecision {
        let mut d = FaultDecision::default();
        let mut rng = rand::rng();
        let mut apply = |list: &mut Vec<Fault>, d: &mut FaultDecision| {
            for f in list.iter_mut() {
                if d.fault.is_some() && !matches!(f.kind, FaultKind::Slow { .. }) {
                    continue;
                }
                if f.count == Some(0)
                    || (f.probability < 1.0 && !rng.random_bool(f.probability.clamp(0.0, 1.0)))
                {
                    continue;
                }
                if let Some(c) = &mut f.count {
                    *c -= 1;
                }
                match &f.kind {
                    FaultKind::Slow { delay_ms } => d.delay_ms += delay_ms,
                    other => d.fault = Some(other.clone()),
                }
            }
            list.retain(|f| f.count != Some(0));
        };
        if let Some(id) = job_id
            && let Some(list) = self.per_job.get_mut(id)
        {
            apply(list, &mut d);
        }
        apply(&mut self.global, &mut d);
        d
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn burst_fault_fires_exactly_count_times_then_disappears() {
        let mut t = FaultTable::default();
        t.global
            .push(Fault::next(2, FaultKind::ServerError { status: 503 }));
        assert!(t.decide(None).fault.is_some());
        assert!(t.decide(Some("j")).fault.is_some());
        assert_eq!(t.decide(None), FaultDecision::default());
        assert!(t.global.is_empty());
    }

    #[test]
    fn job_fault_only_hits_its_job_and_slow_combines() {
        let mut t = FaultTable::default();
        t.per_job
            .insert("a".into(), vec![Fault::always(FaultKind::MalformedJson)]);
        t.global
            .push(Fault::always(FaultKind::Slow { delay_ms: 5 }));
        let d = t.decide(Some("a"));
        assert_eq!(d.fault, Some(FaultKind::MalformedJson));
        assert_eq!(d.delay_ms, 5);
        assert_eq!(t.decide(Some("b")).fault, None);
    }

    #[test]
    fn fault_json_is_flat_and_tagged() {
        let f: Fault =
            serde_json::from_str(r#"{"kind":"throttle","retry_after_secs":3,"count":1}"#).unwrap();
        assert_eq!(
            f,
            Fault::next(
                1,
                FaultKind::Throttle {
                    retry_after_secs: Some(3)
                }
            )
        );
        let f: Fault =
            serde_json::from_str(r#"{"kind":"connection_reset","probability":0.5}"#).unwrap();
        assert_eq!(f.probability, 0.5);
    }
}

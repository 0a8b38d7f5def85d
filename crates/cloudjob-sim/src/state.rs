//! The job records, their request counters and the fault table.
//! All of it sits behind short-held locks; nothing runs in the background.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::clock::add;
use crate::model::{Service, Timeline};

// A poisoned lock only means another request panicked mid-update of counters; the data is still
// usable, so recover instead of cascading the panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// What a job serves: a computed timeline, or a verbatim body.
#[derive(Debug, Clone)]
pub(crate) enum JobBody {
    Timeline(Box<Timeline>),
    Fixture { raw: Bytes, status: String },
}

#[derive(Debug)]
pub(crate) struct Job {
    pub id: String,
    pub service: Service,
    pub project_id: String,
    pub body: JobBody,
    pub expiry: Option<SignedDuration>,
    /// Shared with replacements of this job (see `finish_job`), so counters survive.
    pub counters: Arc<Mutex<JobCounters>>,
}

impl Job {
    /// Simulated end time, if the job has one (fixtures never end).
    pub(crate) fn end(&self) -> Option<Timestamp> {
        match &self.body {
            JobBody::Timeline(t) => Some(t.end),
            JobBody::Fixture { .. } => None,
        }
    }

    pub(crate) fn is_expired(&self, sim_now: Timestamp) -> bool {
        match (self.end(), self.expiry) {
            (Some(end), Some(expiry)) => sim_now >= add(end, expiry),
            _ => false,
        }
    }

    pub(crate) fn status_at(&self, sim_now: Timestamp) -> String {
        match &self.body {
            JobBody::Timeline(t) => t.status(sim_now).to_owned(),
            JobBody::Fixture { status, .. } => status.clone(),
        }
    }
}

pub(crate) fn is_terminal(status: &str) -> bool {
    status == "SUCCESS" || status == "FAIL"
}

/// One request seen for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Real wall-clock time the request arrived.
    pub at: Timestamp,
    pub status: u16,
    /// The job status served (`RUNNING`...), if a job body was served.
    pub job_status: Option<String>,
    /// The injected fault, if any (`throttle`, `connection_reset`...).
    pub fault: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct JobCounters {
    pub total: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub first_request_at: Option<Timestamp>,
    pub last_request_at: Option<Timestamp>,
    pub first_terminal_served_at: Option<Timestamp>,
    pub recent: VecDeque<RequestRecord>,
}

/// How many recent requests each job remembers.
pub const RECENT_REQUESTS: usize = 100;

impl JobCounters {
    pub(crate) fn record(&mut self, rec: RequestRecord) {
        self.total += 1;
        *self.by_status.entry(rec.status).or_default() += 1;
        self.first_request_at.get_or_insert(rec.at);
        self.last_request_at = Some(rec.at);
        if rec.status == 200
            && rec.fault.is_none()
            && rec.job_status.as_deref().is_some_and(is_terminal)
        {
            self.first_terminal_served_at.get_or_insert(rec.at);
        }
        if self.recent.len() == RECENT_REQUESTS {
            self.recent.pop_front();
        }
        self.recent.push_back(rec);
    }
}

/// Per-job request counters and timing, for tests and the benchmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStats {
    pub job_id: String,
    pub service: Service,
    pub project_id: String,
    /// Status at the current simulated time (`INIT`, `RUNNING`, `SUCCESS`, `FAIL`...).
    pub status: String,
    pub expired: bool,
    /// GETs of this job, whatever the outcome (401s and injected faults included).
    pub total_requests: u64,
    /// HTTP status -> count (0 = connection dropped without a response).
    pub by_http_status: BTreeMap<u16, u64>,
    pub first_request_at: Option<Timestamp>,
    pub last_request_at: Option<Timestamp>,
    /// Real wall-clock time at which the job became terminal ("true end time"); `None` while it is
    /// not terminal yet. Detection delay = (when the client noticed) - this.
    pub terminal_at: Option<Timestamp>,
    /// First time a terminal status was actually served (200, no fault) to a client.
    pub first_terminal_served_at: Option<Timestamp>,
    /// The last [`RECENT_REQUESTS`] requests, oldest first.
    pub recent_requests: Vec<RequestRecord>,
}

/// Per-service counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub total_requests: u64,
    /// Highest number of requests received within one wall-clock second.
    pub max_requests_per_second: u64,
    #[serde(skip)]
    current_second: i64,
    #[serde(skip)]
    current_count: u64,
}

impl ServiceStats {
    fn record(&mut self, at: Timestamp) {
        self.total_requests += 1;
        let sec = at.as_second();
        if sec != self.current_second {
            self.current_second = sec;
            self.current_count = 0;
        }
        self.current_count += 1;
        self.max_requests_per_second = self.max_requests_per_second.max(self.current_count);
    }
}

/// Counters over all requests to the jobs API (admin requests are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalStats {
    pub total_requests: u64,
    pub by_http_status: BTreeMap<u16, u64>,
    /// Keyed by service name; `unknown` when neither path, host nor job tells.
    pub by_service: BTreeMap<String, ServiceStats>,
    /// Fault name -> times injected.
    pub faults_injected: BTreeMap<String, u64>,
    pub live_jobs: usize,
    pub since: Option<Timestamp>,
}

impl GlobalStats {
    pub(crate) fn record(
        &mut self,
        service: &str,
        status: u16,
        fault: Option<&str>,
        at: Timestamp,
    ) {
        self.total_requests += 1;
        *self.by_http_status.entry(status).or_default() += 1;
        self.by_service
            .entry(service.to_owned())
            .or_default()
            .record(at);
        if let Some(f) = fault {
            *self.faults_injected.entry(f.to_owned()).or_default() += 1;
        }
    }
}

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

    #[test]
    fn service_stats_track_peak_per_second() {
        let mut s = ServiceStats::default();
        let t = Timestamp::UNIX_EPOCH;
        for _ in 0..5 {
            s.record(t);
        }
        s.record(add(t, SignedDuration::from_secs(1)));
        assert_eq!(s.max_requests_per_second, 5);
        assert_eq!(s.total_requests, 6);
    }
}

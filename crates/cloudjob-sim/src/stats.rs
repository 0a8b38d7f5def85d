//! Request counters, per job and global, for tests and the benchmark.

use std::collections::{BTreeMap, VecDeque};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::Service;

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
    /// The path (and query) asked, e.g. `/ims/v1/cloudimages/job/{id}`.
    #[serde(default)]
    pub path: String,
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

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::clock::add;

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

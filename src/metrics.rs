//! Prometheus metrics, every label from a bounded set (never object names or error text).

use std::time::Duration;
use strum::VariantArray as _;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::crd::Phase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloudRequestLabels {
    service: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// A job type. Bounded: the duration model keeps at most `durations::MAX_TYPES`, and a type it forgets
/// is removed from the metrics too.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobTypeLabels {
    service: &'static str,
    job_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    r#type: &'static str,
    reason: String,
}

/// All metrics of the process.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Histogram,
    cloud_requests: Family<CloudRequestLabels, Counter>,
    status_patches: Counter,
    events: Family<EventLabels, Counter>,
    jobs: Family<PhaseLabels, Gauge>,
    poll_interval: Histogram,
    leader: Gauge,
    job_type_samples: Family<JobTypeLabels, Gauge>,
    job_type_median: Family<JobTypeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    watch_lists: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cloudjob");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by result (success, error)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error category",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile took, cloud request included",
            reconcile_duration.clone(),
        );
        let cloud_requests = Family::<CloudRequestLabels, Counter>::default();
        registry.register(
            "cloud_requests",
            "Jobs API requests by service and outcome (success, throttled, unauthorized, forbidden, not_found, rejected, server_error, transport_error, invalid_response, config_error)",
            cloud_requests.clone(),
        );
        let status_patches = Counter::default();
        registry.register(
            "status_patches",
            "CloudJob status writes",
            status_patches.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Kubernetes Events published, by type and reason",
            events.clone(),
        );
        let jobs = Family::<PhaseLabels, Gauge>::default();
        registry.register("jobs", "CloudJobs watched, by phase", jobs.clone());
        let poll_interval = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "poll_interval_seconds",
            "Delay scheduled before the next poll of an unfinished job",
            poll_interval.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process holds the leader lease (or runs without leader election)",
            leader.clone(),
        );
        let job_type_samples = Family::<JobTypeLabels, Gauge>::default();
        registry.register(
            "job_type_duration_samples",
            "Finished jobs the poll model learned from, per job type (service and the cloud's job_type)",
            job_type_samples.clone(),
        );
        let job_type_median =
            Family::<JobTypeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "job_type_duration_median_seconds",
            "Median duration of the finished jobs of each job type, as the poll model holds it (recent jobs weigh more)",
            job_type_median.clone(),
        );
        let watch_lists = Counter::default();
        registry.register(
            "watch_lists",
            "Complete lists of the watched CloudJobs: one per watched namespace at start, one more after each watch expiry (a relist)",
            watch_lists.clone(),
        );
        Metrics {
            registry,
            watch_lists,
            job_type_samples,
            job_type_median,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            cloud_requests,
            status_patches,
            events,
            jobs,
            poll_interval,
            leader,
        }
    }

    pub fn reconciled(&self, duration: Duration, error: Option<&'static str>) {
        self.reconcile_duration.observe(duration.as_secs_f64());
        let result = if error.is_some() { "error" } else { "success" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels { error })
                .inc();
        }
    }

    pub fn cloud_request(&self, service: &'static str, outcome: &'static str) {
        self.cloud_requests
            .get_or_create(&CloudRequestLabels { service, outcome })
            .inc();
    }

    /// A list of the CloudJobs (initial or relist) is complete: the cache holds all of them.
    pub fn watch_listed(&self) {
        self.watch_lists.inc();
    }

    pub fn status_patched(&self) {
        self.status_patches.inc();
    }

    pub fn event_published(&self, warning: bool, reason: &str) {
        let r#type = if warning { "Warning" } else { "Normal" };
        self.events
            .get_or_create(&EventLabels {
                r#type,
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn poll_scheduled(&self, interval: Duration) {
        self.poll_interval.observe(interval.as_secs_f64());
    }

    /// The duration model learned another job of a type: its sample count and median now.
    pub fn job_type_learned(
        &self,
        service: &'static str,
        job_type: &str,
        samples: u64,
        median_secs: Option<f64>,
    ) {
        let labels = JobTypeLabels {
            service,
            job_type: job_type.to_string(),
        };
        self.job_type_samples
            .get_or_create(&labels)
            .set(i64::try_from(samples).unwrap_or(i64::MAX));
        if let Some(median) = median_secs {
            self.job_type_median.get_or_create(&labels).set(median);
        }
    }

    /// The duration model forgot a job type (to make room for another): so do the metrics.
    pub fn forget_job_type(&self, service: &'static str, job_type: &str) {
        let labels = JobTypeLabels {
            service,
            job_type: job_type.to_string(),
        };
        self.job_type_samples.remove(&labels);
        self.job_type_median.remove(&labels);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the jobs-by-phase gauge from a fresh count (phases absent from `counts` are set to 0).
    pub fn set_jobs_by_phase(&self, counts: &[(Option<Phase>, i64)]) {
        let phases = std::iter::once(None).chain(Phase::VARIANTS.iter().copied().map(Some));
        for phase in phases {
            let n = counts
                .iter()
                .filter(|(p, _)| *p == phase)
                .map(|(_, n)| n)
                .sum();
            let label = phase.map(Phase::as_str).unwrap_or("Unknown");
            self.jobs
                .get_or_create(&PhaseLabels { phase: label })
                .set(n);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lists_every_metric_with_bounded_labels() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(20), None);
        m.reconciled(Duration::from_millis(20), Some("status_patch"));
        m.cloud_request("ims", "throttled");
        m.status_patched();
        m.event_published(true, "Throttled");
        m.poll_scheduled(Duration::from_secs(4));
        m.set_leader(true);
        m.set_jobs_by_phase(&[(Some(Phase::Running), 3)]);
        m.job_type_learned("ims", "imsCreateImageByInstance", 42, Some(180.5));
        m.job_type_learned("evs", "createVolume", 3, Some(12.0));
        m.forget_job_type("evs", "createVolume");
        let text = m.encode().expect("encodes");
        assert!(!text.contains("createVolume"), "{text}");
        for needle in [
            "cloudjob_reconciles_total{result=\"success\"} 1",
            "cloudjob_reconcile_errors_total{error=\"status_patch\"} 1",
            "cloudjob_cloud_requests_total{service=\"ims\",outcome=\"throttled\"} 1",
            "cloudjob_status_patches_total 1",
            "cloudjob_events_total{type=\"Warning\",reason=\"Throttled\"} 1",
            "cloudjob_jobs{phase=\"Running\"} 3",
            "cloudjob_jobs{phase=\"Failed\"} 0",
            "cloudjob_leader 1",
            "cloudjob_poll_interval_seconds_count 1",
            "cloudjob_reconcile_duration_seconds_count 2",
            "cloudjob_job_type_duration_samples{service=\"ims\",job_type=\"imsCreateImageByInstance\"} 42",
            "cloudjob_job_type_duration_median_seconds{service=\"ims\",job_type=\"imsCreateImageByInstance\"} 180.5",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}

//! What the operator is told to do: the library's [`Config`], built by the binary from flags and
//! environment (`cli`), or directly by an embedding program (the demo, tests, the benchmark).

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use crate::{
    cloud::endpoint::AllowList,
    poll::{DEFAULT_REQUEST_COST, PollMode},
};

/// Default reconciles running at once, per watched namespace.
pub const DEFAULT_CONCURRENCY: u16 = 16;
/// Default cloud requests per second per endpoint.
pub const DEFAULT_RATE_LIMIT: NonZeroU32 = NonZeroU32::new(10).expect("non-zero");
/// Default requests allowed at once above the steady rate.
pub const DEFAULT_RATE_LIMIT_BURST: NonZeroU32 = NonZeroU32::new(10).expect("non-zero");
/// Default shortest delay before retrying a job whose poll failed.
pub const DEFAULT_ERROR_BACKOFF_MIN: Duration = Duration::from_secs(2);
/// Default longest delay before retrying a job whose poll failed.
pub const DEFAULT_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Default time a credentials problem reads as Reconciling before Stalled (`--credentials-grace-period`).
pub const DEFAULT_CREDENTIALS_GRACE_PERIOD: Duration = Duration::from_secs(300);
/// Default time between two reconciles of every CloudJob (a safety net for lost triggers).
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(600);
/// Default seconds a leader's lease lasts without renewal (controller-runtime's default).
pub const DEFAULT_LEASE_SECONDS: u64 = 15;

/// Everything [`crate::run`] needs besides a Kubernetes client.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// Only CloudJobs matching this label selector are handled.
    pub label_selector: Option<String>,
    /// Reconciles running at once, per watched namespace.
    pub concurrency: u16,
    pub poll_mode: PollMode,
    /// Seconds of detection delay one cloud request is worth, for the adaptive mode once it has learned
    /// a job type's durations; `spec.polling.requestCostMilliseconds` overrides it per CloudJob.
    pub poll_request_cost: Duration,
    /// `{service}`/`{region}` template for the endpoint of CloudJobs without `spec.endpoint`.
    pub endpoint_template: Option<String>,
    /// Hosts `spec.endpoint` may name (besides the template's); the official cloud domains by default.
    pub allowed_endpoints: AllowList,
    /// Shortest and longest delay after a failed poll or reconcile; the delay doubles with each failure.
    pub error_backoff_min: Duration,
    pub error_backoff_max: Duration,
    /// How long a missing or unusable credentials Secret, or rejected credentials, read as Reconciling
    /// before Stalled; `spec.credentialsGracePeriodSeconds` overrides it per CloudJob.
    pub credentials_grace_period: Duration,
    /// Every CloudJob is reconciled again this often, whatever the watch said: a safety net for a lost
    /// trigger. Finished and unchanged CloudJobs cost no API call.
    pub resync_interval: Duration,
    /// Cloud requests per second per endpoint (scheme, host, port), shared by all CloudJobs.
    pub rate_limit: NonZeroU32,
    /// Requests that may go out at once above the steady rate.
    pub rate_limit_burst: NonZeroU32,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` serves nothing (embedded use).
    pub listen_address: Option<SocketAddr>,
    /// Who this process is, in events (`reportingInstance`) and in the leader election Lease.
    pub identity: String,
    /// Compete for a Lease and poll only while holding it; `None` polls at once.
    pub leader_election: Option<LeaderElection>,
}

/// The Lease that decides which replica polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    /// A standby takes over at most this long after the leader stops renewing.
    pub lease_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespaces: Vec::new(),
            label_selector: None,
            concurrency: DEFAULT_CONCURRENCY,
            poll_mode: PollMode::Adaptive,
            poll_request_cost: DEFAULT_REQUEST_COST,
            endpoint_template: None,
            allowed_endpoints: AllowList::default(),
            error_backoff_min: DEFAULT_ERROR_BACKOFF_MIN,
            error_backoff_max: DEFAULT_ERROR_BACKOFF_MAX,
            credentials_grace_period: DEFAULT_CREDENTIALS_GRACE_PERIOD,
            resync_interval: DEFAULT_RESYNC_INTERVAL,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            listen_address: None,
            identity: format!("cloudjob-operator-{}", std::process::id()),
            leader_election: None,
        }
    }
}

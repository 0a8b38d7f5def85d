//! Command line: `run` (the controller) and `crd` (print the CRD). Every flag has an environment fallback.
//! `run`'s flags become the library's [`Config`]; nothing below this module reads the environment.

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    cloud::endpoint::{AllowList, HostPattern},
    config::{Config, LeaderElection},
    duration,
    poll::PollMode,
};

#[derive(Parser, Debug)]
#[command(
    name = "cloudjob-operator",
    version,
    about = "Mirrors Huawei Cloud / Open Telekom Cloud jobs into CloudJob objects"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print the CloudJob CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated; empty watches all namespaces.
    #[arg(
        long,
        env = "CLOUDJOB_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub namespaces: Vec<String>,

    /// Only handle CloudJobs matching this label selector.
    #[arg(long, env = "CLOUDJOB_LABEL_SELECTOR")]
    pub label_selector: Option<String>,

    /// Reconciles running at once (per watched namespace).
    #[arg(long, env = "CLOUDJOB_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Cloud requests per second per endpoint (scheme, host, port), shared by all CloudJobs.
    #[arg(long, env = "CLOUDJOB_RATE_LIMIT", default_value = "10")]
    pub rate_limit: NonZeroU32,

    /// Requests that may go out at once above the steady rate.
    #[arg(long, env = "CLOUDJOB_RATE_LIMIT_BURST", default_value = "10")]
    pub rate_limit_burst: NonZeroU32,

    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "CLOUDJOB_LISTEN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub listen_address: SocketAddr,

    /// Log format.
    #[arg(long, env = "CLOUDJOB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Compete for a Lease and poll only while holding it (for more than one replica).
    #[arg(long, env = "CLOUDJOB_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_election: bool,

    /// Namespace of the leader election Lease (default: --pod-namespace, else "default").
    #[arg(long, env = "CLOUDJOB_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of this pod: the identity in the leader election Lease and in events (default:
    /// cloudjob-operator-<process id>). The chart sets it from the downward API.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Namespace of this pod, where the leader election Lease lives unless
    /// --leader-election-namespace says otherwise. The chart sets it from the downward API.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,

    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "CLOUDJOB_LEADER_ELECTION_LEASE",
        default_value = "cloudjob-operator"
    )]
    pub leader_election_lease: String,

    /// Seconds a leader's lease lasts without renewal; a standby takes over within this time.
    #[arg(
        long,
        env = "CLOUDJOB_LEADER_ELECTION_LEASE_SECONDS",
        default_value_t = 15
    )]
    pub leader_election_lease_seconds: u64,

    /// How to space polls: adaptive (age and progress based) or fixed (every --fixed-poll-interval).
    #[arg(long, env = "CLOUDJOB_POLL_MODE", value_enum, default_value_t = PollModeArg::Adaptive)]
    pub poll_mode: PollModeArg,

    /// The adaptive mode's trade-off between requests and detection delay, once it has learned how long
    /// a job type runs: how much detection delay one cloud request is worth (for a type whose median is a
    /// minute; more for longer types). Higher: fewer requests, finished jobs seen later.
    /// spec.polling.requestCostMilliseconds overrides it per CloudJob.
    #[arg(long, env = "CLOUDJOB_POLL_REQUEST_COST", default_value = "1250ms", value_parser = parse_positive_duration)]
    pub poll_request_cost: Duration,

    /// Interval of --poll-mode fixed, e.g. 10s (what the Huawei Terraform waiter does).
    #[arg(long, env = "CLOUDJOB_FIXED_POLL_INTERVAL", default_value = "10s", value_parser = duration::parse)]
    pub fixed_poll_interval: Duration,

    /// Shortest delay before retrying a job whose poll failed (throttling without Retry-After, 5xx, a
    /// missing Secret...); it doubles with each failure in a row.
    #[arg(long, env = "CLOUDJOB_ERROR_BACKOFF_MIN", default_value = "2s", value_parser = duration::parse)]
    pub error_backoff_min: Duration,

    /// Longest delay before retrying a job whose poll failed.
    #[arg(long, env = "CLOUDJOB_ERROR_BACKOFF_MAX", default_value = "5m", value_parser = duration::parse)]
    pub error_backoff_max: Duration,

    /// How long a missing or unusable credentials Secret, or credentials the cloud rejects, read as
    /// Reconciling (retried) before the CloudJob reads as Stalled; spec.credentialsGracePeriodSeconds
    /// overrides it per CloudJob.
    #[arg(long, env = "CLOUDJOB_CREDENTIALS_GRACE_PERIOD", default_value = "5m", value_parser = duration::parse)]
    pub credentials_grace_period: Duration,

    /// Every CloudJob is reconciled again this often, whatever the watch said (a safety net for a lost
    /// trigger; finished and unchanged CloudJobs cost no API call).
    #[arg(long, env = "CLOUDJOB_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_positive_duration)]
    pub resync_interval: Duration,

    /// Endpoint for CloudJobs without spec.endpoint, with {service} (spec.service), {host} (the service's
    /// host label, e.g. vpc for eip) and {region} placeholders (e.g. a private cloud, a proxy, or the
    /// simulator: http://127.0.0.1:8443/{service}).
    #[arg(long, env = "CLOUDJOB_ENDPOINT_TEMPLATE")]
    pub endpoint_template: Option<String>,

    /// Hosts that spec.endpoint may name, comma-separated: `official` (the official cloud domains, the
    /// default), `*.example.com`, `api.example.com`, an IP address (`127.0.0.1`), a network (`10.0.0.0/8`)
    /// or `*` (any public name). The host --endpoint-template names is always allowed. Loopback,
    /// link-local, private and cluster-internal hosts are refused unless a pattern other than `*` names them.
    #[arg(long, env = "CLOUDJOB_ALLOWED_ENDPOINTS", value_delimiter = ',', value_parser = parse_host_pattern)]
    pub allowed_endpoints: Vec<HostPattern>,
}

fn parse_host_pattern(raw: &str) -> Result<HostPattern, String> {
    raw.parse()
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollModeArg {
    Adaptive,
    Fixed,
}

fn parse_positive_duration(raw: &str) -> Result<Duration, String> {
    match duration::parse(raw)? {
        Duration::ZERO => Err(format!("{raw:?} must be more than zero")),
        positive => Ok(positive),
    }
}

impl RunArgs {
    /// The library's configuration from these flags.
    pub fn config(&self) -> Config {
        let present = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let defaults = Config::default();
        Config {
            namespaces: self
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            label_selector: present(&self.label_selector),
            concurrency: self.concurrency,
            poll_mode: match self.poll_mode {
                PollModeArg::Adaptive => PollMode::Adaptive,
                PollModeArg::Fixed => PollMode::Fixed(self.fixed_poll_interval),
            },
            poll_request_cost: self.poll_request_cost,
            endpoint_template: present(&self.endpoint_template),
            allowed_endpoints: AllowList::new(self.allowed_endpoints.clone()),
            error_backoff_min: self.error_backoff_min,
            error_backoff_max: self.error_backoff_max.max(self.error_backoff_min),
            credentials_grace_period: self.credentials_grace_period,
            resync_interval: self.resync_interval,
            rate_limit: self.rate_limit,
            rate_limit_burst: self.rate_limit_burst,
            listen_address: Some(self.listen_address),
            identity: present(&self.pod_name).unwrap_or(defaults.identity),
            leader_election: self.leader_election.then(|| LeaderElection {
                namespace: present(&self.leader_election_namespace)
                    .or_else(|| present(&self.pod_namespace))
                    .unwrap_or_else(|| "default".into()),
                lease_name: self.leader_election_lease.clone(),
                lease_seconds: self.leader_election_lease_seconds,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags_parse() {
        let cli = Cli::try_parse_from(["cloudjob-operator", "run"]).expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected")
        };
        assert!(args.namespaces.iter().all(String::is_empty));
        assert_eq!(args.concurrency, 16);
        assert!(!args.leader_election);
        let cli = Cli::try_parse_from([
            "cloudjob-operator",
            "run",
            "--namespaces",
            "a,b",
            "--leader-election",
            "--poll-mode",
            "fixed",
            "--fixed-poll-interval",
            "500ms",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected")
        };
        assert_eq!(args.namespaces, ["a", "b"]);
        assert!(args.leader_election);
        assert_eq!(args.fixed_poll_interval, Duration::from_millis(500));
    }

    #[test]
    fn bad_durations_are_rejected() {
        assert!(
            Cli::try_parse_from(["cloudjob-operator", "run", "--error-backoff-min", "soon"])
                .is_err()
        );
    }

    #[test]
    fn flags_become_the_library_config() {
        let cli = Cli::try_parse_from([
            "cloudjob-operator",
            "run",
            "--namespaces",
            "a,,b",
            "--leader-election",
            "--pod-name",
            "op-1",
            "--pod-namespace",
            "ops",
            "--error-backoff-min",
            "10s",
            "--error-backoff-max",
            "1s",
            "--poll-request-cost",
            "500ms",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected")
        };
        let config = args.config();
        assert_eq!(config.namespaces, ["a", "b"]);
        assert_eq!(config.identity, "op-1");
        assert_eq!(
            config.leader_election,
            Some(LeaderElection {
                namespace: "ops".into(),
                lease_name: "cloudjob-operator".into(),
                lease_seconds: 15,
            })
        );
        assert_eq!(config.error_backoff_max, Duration::from_secs(10));
        assert_eq!(config.poll_request_cost, Duration::from_millis(500));
        let cli = Cli::try_parse_from(["cloudjob-operator", "run"]).expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected")
        };
        assert_eq!(args.config().leader_election, None);
    }
}

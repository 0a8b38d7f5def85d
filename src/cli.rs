//! Command line: `run` (the controller) and `crd` (print the CRD). Every flag has an environment fallback.

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

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

    /// Namespace of the leader election Lease (default: $POD_NAMESPACE, else "default").
    #[arg(long, env = "CLOUDJOB_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

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

    /// Interval of --poll-mode fixed, e.g. 10s (what the Huawei Terraform waiter does).
    #[arg(long, env = "CLOUDJOB_FIXED_POLL_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub fixed_poll_interval: Duration,

    /// Shortest delay before retrying a job whose poll failed (throttling without Retry-After, 5xx, a
    /// missing Secret...); it doubles with each failure in a row.
    #[arg(long, env = "CLOUDJOB_ERROR_BACKOFF_MIN", default_value = "2s", value_parser = parse_duration)]
    pub error_backoff_min: Duration,

    /// Longest delay before retrying a job whose poll failed.
    #[arg(long, env = "CLOUDJOB_ERROR_BACKOFF_MAX", default_value = "5m", value_parser = parse_duration)]
    pub error_backoff_max: Duration,

    /// Endpoint for CloudJobs without spec.endpoint, with {service} and {region} placeholders
    /// (e.g. a private cloud, a proxy, or the simulator: http://127.0.0.1:8443/{service}).
    #[arg(long, env = "CLOUDJOB_ENDPOINT_TEMPLATE")]
    pub endpoint_template: Option<String>,
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

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, scale) = if let Some(ms) = raw.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = raw.strip_suffix('s') {
        (s, 1.0)
    } else if let Some(m) = raw.strip_suffix('m') {
        (m, 60.0)
    } else {
        (raw, 1.0)
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 10s, 500ms or 2m"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("{raw:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(value * scale))
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
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }
}

//! cloudjob-operator: mirrors Huawei Cloud and Open Telekom Cloud asynchronous jobs (IMS, EVS, ECS) into
//! `CloudJob` objects, with status, conditions and events that people, scripts and GitOps tools can wait on.
//!
//! Layout: pure rules (`status`, `poll`, `events`, `cloud::model`) with I/O at the edges (`controller`,
//! `cloud::client`, `server`, `leader`), wired together by [`run`].

pub mod cli;
pub mod cloud;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod poll;
pub mod reason;
pub mod server;
pub mod status;
#[cfg(test)]
mod test_support;
pub mod text;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use anyhow::Context as _;
use kube::runtime::events::Reporter;

use crate::{
    cli::{PollModeArg, RunArgs},
    cloud::client::{ClientSettings, CloudClient},
    controller::{Settings, Shared},
    leader::{Leadership, LeaseSettings},
    metrics::Metrics,
    poll::PollMode,
};

/// Runs the operator until SIGTERM/Ctrl-C, or until leadership is lost (an error, so that the process
/// restarts as a standby rather than keep polling without the lease).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot configure a Kubernetes client")?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(server::serve(
        args.listen_address,
        metrics.clone(),
        ready.clone(),
    ));

    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("cloudjob-operator-{}", std::process::id()));
    let cloud = CloudClient::new(&ClientSettings {
        rate_limit: args.rate_limit,
        burst: args.rate_limit_burst,
        ..ClientSettings::default()
    })
    .context("cannot build the HTTP client")?;
    let settings = Settings {
        namespaces: args
            .namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect(),
        label_selector: args.label_selector.clone(),
        concurrency: args.concurrency,
        poll_mode: match args.poll_mode {
            PollModeArg::Adaptive => PollMode::Adaptive,
            PollModeArg::Fixed => PollMode::Fixed(args.fixed_poll_interval),
        },
        endpoint_template: args.endpoint_template.clone(),
        error_backoff_min: args.error_backoff_min,
        error_backoff_max: args.error_backoff_max.max(args.error_backoff_min),
    };
    let reporter = Reporter {
        controller: "cloudjob-operator".into(),
        instance: Some(identity.clone()),
    };
    let shared = Arc::new(Shared::new(
        client.clone(),
        cloud,
        metrics.clone(),
        settings,
        reporter,
    ));

    let controllers = async {
        if !args.leader_election {
            metrics.set_leader(true);
            ready.store(true, Ordering::Relaxed);
            controller::run(shared).await;
            return Ok(());
        }
        let lease = LeaseSettings {
            namespace: args
                .leader_election_namespace
                .clone()
                .or_else(|| {
                    std::env::var("POD_NAMESPACE")
                        .ok()
                        .filter(|s| !s.is_empty())
                })
                .unwrap_or_else(|| "default".into()),
            name: args.leader_election_lease.clone(),
            identity: identity.clone(),
            duration_seconds: args.leader_election_lease_seconds.max(2),
            grace_seconds: (args.leader_election_lease_seconds / 3).max(1),
        };
        let mut leadership = Leadership::start(client, &lease)
            .await
            .context("cannot start leader election")?;
        // A standby is healthy and ready: it is doing its job, which is to wait.
        ready.store(true, Ordering::Relaxed);
        tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %identity, "waiting for leadership");
        if !leadership.wait_until_leader().await {
            anyhow::bail!("leader election stopped before this process became leader");
        }
        tracing::info!(identity = %identity, "became leader");
        metrics.set_leader(true);
        tokio::select! {
            _ = controller::run(shared) => {
                leadership.release().await;
                Ok(())
            }
            _ = leadership.lost() => {
                metrics.set_leader(false);
                anyhow::bail!("lost the leader lease; exiting so that only the leader polls")
            }
        }
    };
    tokio::select! {
        result = controllers => result,
        result = server => match result {
            Ok(Ok(())) => anyhow::bail!("the metrics server stopped"),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("cannot serve on {}", args.listen_address))),
            Err(e) => Err(anyhow::Error::new(e).context("the metrics server panicked")),
        },
    }
}

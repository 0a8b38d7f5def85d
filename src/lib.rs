//! cloudjob-operator: mirrors Huawei Cloud and Open Telekom Cloud asynchronous jobs (IMS, EVS, ECS) into
//! `CloudJob` objects, with status, conditions and events that people, scripts and GitOps tools can wait on.
//!
//! The data path of one CloudJob: `controller` (the watch) → `controller::reconcile`, which runs
//! `controller::observe` (I/O) → [`plan`] (pure: status, events, next step) → `controller::apply` (I/O).
//! The pure rules the plan uses are `status`, `events`, `poll` and `cloud::model`. [`run`] wires the
//! controller to the metrics server and leader election; the binary builds its [`Config`] in `cli`.

pub mod cli;
pub mod cloud;
pub mod config;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod duration;
pub mod durations;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod plan;
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

pub use crate::config::{Config, LeaderElection};
use crate::{
    cloud::client::{ClientSettings, CloudClient},
    controller::Shared,
    leader::{Leadership, LeaseSettings},
    metrics::Metrics,
};

/// Runs the operator with `client` until SIGTERM/Ctrl-C, or until leadership is lost (an error, so that the
/// process restarts as a standby rather than keep polling without the lease). Dropping the future stops it.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listen_address = config.listen_address;
    let server = async {
        match listen_address {
            Some(address) => server::serve(address, metrics.clone(), ready.clone())
                .await
                .with_context(|| format!("cannot serve on {address}")),
            None => std::future::pending().await,
        }
    };
    let cloud = CloudClient::new(&ClientSettings {
        allowed_endpoints: config.allowed_endpoints.clone(),
        endpoint_template: config.endpoint_template.clone(),
        ..ClientSettings::default()
    })
    .context("cannot build the HTTP client")?;
    let leader_election = config.leader_election.clone();
    let identity = config.identity.clone();
    let shared = Arc::new(Shared::new(client.clone(), cloud, metrics.clone(), config));

    let controllers = async {
        let Some(election) = leader_election else {
            metrics.set_leader(true);
            ready.store(true, Ordering::Relaxed);
            controller::run(shared).await;
            return Ok(());
        };
        let lease = LeaseSettings {
            namespace: election.namespace,
            name: election.lease_name,
            identity: identity.clone(),
            duration_seconds: election.lease_seconds.max(2),
            grace_seconds: (election.lease_seconds / 3).max(1),
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
            Ok(()) => anyhow::bail!("the metrics server stopped"),
            Err(e) => Err(e),
        },
    }
}

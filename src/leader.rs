//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager), so that with several replicas
//! exactly one polls the cloud.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::{sync::watch, task::JoinHandle};

/// Lease timing. A standby takes over at most `duration_seconds` after the leader stops renewing.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration_seconds: u64,
    pub grace_seconds: u64,
}

/// A held or awaited lease: `wait_until_leader` returns once this process leads, `lost` once it stops.
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Starts competing for the lease in the background.
    pub async fn start(
        client: Client,
        settings: &LeaseSettings,
    ) -> Result<Leadership, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, &settings.name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(settings.duration_seconds)
            .with_grace(settings.grace_seconds)
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Leadership { state, task })
    }

    /// Waits until this process holds the lease.
    pub async fn wait_until_leader(&mut self) -> bool {
        self.state.wait_for(|leader| *leader).await.is_ok()
    }

    /// Resolves when the lease is lost (or the manager stopped).
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leader| !*leader).await;
    }

    /// Releases the lease so a standby takes over at once instead of after the lease duration.
    pub async fn release(self) {
        // Closing the channel makes the manager's task release the lease and end.
        drop(self.state);
        let _ = self.task.await;
    }
}

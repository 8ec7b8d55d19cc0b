//! Leader election on a coordination.k8s.io Lease, so two replicas never both write.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::{sync::watch, task::JoinHandle};
use tracing::info;

use crate::error::{Error, Result};

/// Lease validity in seconds, and how long before expiry the holder renews.
const LEASE_SECONDS: u64 = 15;
const RENEW_BEFORE_SECONDS: u64 = 5;

pub struct Leadership {
    is_leader: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Returns once this replica holds the lease; a standby waits here.
    pub async fn acquire(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
    ) -> Result<Leadership> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_parameters(
                LeaseParams::new(identity, LEASE_SECONDS, RENEW_BEFORE_SECONDS)
                    .with_field_manager("fluxtune-lease"),
            )
            .build()
            .await?;
        let (mut is_leader, task) = manager.watch().await;
        info!(identity, lease = name, "waiting for the leader lease");
        while !*is_leader.borrow_and_update() {
            is_leader
                .changed()
                .await
                .map_err(|_| Error::LostLeadership)?;
        }
        info!(identity, "acquired the leader lease");
        Ok(Leadership { is_leader, task })
    }

    /// Resolves when the lease is lost (another replica took it, or renewal failed).
    pub async fn lost(&mut self) {
        while *self.is_leader.borrow_and_update() {
            if self.is_leader.changed().await.is_err() {
                return;
            }
        }
    }

    /// Gives the lease up, so a standby takes over at once instead of after its expiry.
    pub async fn release(self) {
        drop(self.is_leader);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

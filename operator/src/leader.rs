//! Leader election on a coordination.k8s.io Lease, so two replicas never both write.
//!
//! As client-go's leader election: a lease duration (how long another replica waits after the
//! holder's last renewal before it may take the lease) and a shorter renew deadline (how long the
//! holder keeps writing without a successful renewal). A leader that cannot renew within the
//! deadline, say the API server is unreachable for it alone, stops its controller and exits
//! before the lease can pass to another replica: two replicas never write at once.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tracing::{info, warn};

use crate::error::{Error, Result};

/// The election's times: `--lease-duration` and `--renew-deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    lease_duration: Duration,
    renew_deadline: Duration,
}

impl Timing {
    /// client-go's defaults (LeaseDuration 15 s, RenewDeadline 10 s).
    pub const DEFAULT: Timing = Timing {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
    };

    /// Whole seconds (the Lease counts in seconds); the deadline at least 2 s and shorter than
    /// the lease, so a leader that cannot renew stops before another replica may take over.
    pub fn new(lease_duration: Duration, renew_deadline: Duration) -> Result<Timing, String> {
        if lease_duration.subsec_nanos() != 0 || renew_deadline.subsec_nanos() != 0 {
            return Err("--lease-duration and --renew-deadline are whole seconds".into());
        }
        if renew_deadline < Duration::from_secs(2) {
            return Err("--renew-deadline must be at least 2s".into());
        }
        if renew_deadline >= lease_duration {
            return Err(format!(
                "--renew-deadline ({}s) must be shorter than --lease-duration ({}s): the leader must stop writing before another replica may take the lease",
                renew_deadline.as_secs(),
                lease_duration.as_secs()
            ));
        }
        Ok(Timing {
            lease_duration,
            renew_deadline,
        })
    }

    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// The holder renews every half renew deadline, so one failed renewal is retried (with the
    /// lease manager's backoff of 1, 2, 4 s) before the deadline passes.
    fn renew_every(&self) -> u64 {
        (self.renew_deadline.as_secs() / 2).max(1)
    }

    /// kube-lease-manager renews `grace` seconds before the lease's expiry.
    fn grace(&self) -> u64 {
        self.lease_duration.as_secs() - self.renew_every()
    }
}

/// Why the leadership ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Lost {
    /// The lease manager saw another holder, or stopped.
    Taken,
    /// No renewal succeeded within the renew deadline.
    RenewDeadline,
}

pub struct Leadership {
    is_leader: watch::Receiver<bool>,
    /// When the last successful write of the Lease was sent (see [`Renewals`]).
    renewed: watch::Receiver<Instant>,
    timing: Timing,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Returns once this replica holds the lease; a standby waits here. `client` must serve the
    /// lease manager alone, with [`Renewals`] as a layer: its successful writes are the renewals.
    pub async fn acquire(
        client: Client,
        renewed: watch::Receiver<Instant>,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Result<Leadership> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_parameters(
                LeaseParams::new(identity, timing.lease_duration.as_secs(), timing.grace())
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
        info!(
            identity,
            lease_duration = ?timing.lease_duration,
            renew_deadline = ?timing.renew_deadline,
            "acquired the leader lease"
        );
        Ok(Leadership {
            is_leader,
            renewed,
            timing,
            task,
        })
    }

    /// Resolves when the leadership ends: another replica took the lease, or no renewal
    /// succeeded for the renew deadline (logged: the caller stops writing at once).
    pub async fn lost(&mut self) -> Lost {
        let lost = until_lost(&mut self.is_leader, &mut self.renewed, self.timing).await;
        if lost == Lost::RenewDeadline {
            warn!(
                renew_deadline = ?self.timing.renew_deadline,
                lease_duration = ?self.timing.lease_duration,
                "could not renew the leader lease within the renew deadline: stopping the controller and exiting before the lease can pass to another replica"
            );
        }
        lost
    }

    /// Gives the lease up, so a standby takes over at once instead of after its expiry.
    pub async fn release(self) {
        drop(self.is_leader);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The leadership's end: `is_leader` turning false (or its sender gone), or `renew_deadline`
/// passing since the last successful renewal in `renewed`.
async fn until_lost(
    is_leader: &mut watch::Receiver<bool>,
    renewed: &mut watch::Receiver<Instant>,
    timing: Timing,
) -> Lost {
    loop {
        if !*is_leader.borrow_and_update() {
            return Lost::Taken;
        }
        let deadline = *renewed.borrow_and_update() + timing.renew_deadline;
        tokio::select! {
            changed = is_leader.changed() => if changed.is_err() { return Lost::Taken },
            // The sender lives in the lease manager's client, as long as the task does.
            changed = renewed.changed() => if changed.is_err() { return Lost::Taken },
            () = tokio::time::sleep_until(deadline) => return Lost::RenewDeadline,
        }
    }
}

/// A layer for the lease manager's own client: records when each successful write (PATCH, the
/// only write it sends once the Lease exists) was sent. The Lease's renewTime is taken before
/// the request goes out, so the deadline counts from the send, never from the (later) answer.
#[derive(Clone)]
pub struct Renewals(watch::Sender<Instant>);

impl Renewals {
    pub fn new() -> (Renewals, watch::Receiver<Instant>) {
        let (sender, receiver) = watch::channel(Instant::now());
        (Renewals(sender), receiver)
    }
}

impl<S> tower::Layer<S> for Renewals {
    type Service = RenewalsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RenewalsService {
            inner,
            renewed: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RenewalsService<S> {
    inner: S,
    renewed: watch::Sender<Instant>,
}

impl<S, B, R> tower::Service<::http::Request<B>> for RenewalsService<S>
where
    S: tower::Service<::http::Request<B>, Response = ::http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<S::Response, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ::http::Request<B>) -> Self::Future {
        let write = req.method() == ::http::Method::PATCH;
        let sent = Instant::now();
        let renewed = self.renewed.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            if write && response.status().is_success() {
                renewed.send_replace(sent);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renew_deadline_is_shorter_than_the_lease_and_renewals_come_twice_within_it() {
        let t = Timing::DEFAULT;
        assert_eq!((t.renew_every(), t.grace()), (5, 10));
        let t = Timing::new(Duration::from_secs(8), Duration::from_secs(5)).unwrap();
        assert_eq!((t.renew_every(), t.grace()), (2, 6));
        assert!(Timing::new(Duration::from_secs(10), Duration::from_secs(10)).is_err());
        assert!(Timing::new(Duration::from_secs(10), Duration::from_secs(12)).is_err());
        assert!(Timing::new(Duration::from_secs(10), Duration::from_secs(1)).is_err());
        assert!(Timing::new(Duration::from_millis(10_500), Duration::from_secs(5)).is_err());
    }

    fn timing_ms(deadline: u64) -> Timing {
        // Sub-second times only here: Timing::new refuses them, the logic does not care.
        Timing {
            // Three deadlines: room for a late timer on a loaded machine.
            lease_duration: Duration::from_millis(deadline * 3),
            renew_deadline: Duration::from_millis(deadline),
        }
    }

    #[tokio::test]
    async fn a_leader_whose_renewals_stop_loses_at_the_renew_deadline_not_before() {
        let (_leader, mut is_leader) = watch::channel(true);
        let (renew, mut renewed) = watch::channel(Instant::now());
        let timing = timing_ms(400);
        let start = Instant::now();
        // Renewals every 100 ms for 600 ms: still the leader, well past one deadline.
        let renewing = async {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                renew.send_replace(Instant::now());
            }
            std::future::pending::<()>().await
        };
        let lost = tokio::select! {
            lost = until_lost(&mut is_leader, &mut renewed, timing) => lost,
            () = renewing => unreachable!(),
        };
        assert_eq!(lost, Lost::RenewDeadline);
        let last_renewal = *renewed.borrow();
        let after = Instant::now();
        assert!(
            after - start >= Duration::from_millis(1000),
            "{:?}",
            after - start
        );
        assert!(after >= last_renewal + timing.renew_deadline);
        assert!(
            after < last_renewal + timing.lease_duration,
            "stopped before the lease ran out"
        );
    }

    #[tokio::test]
    async fn a_leader_that_sees_another_holder_loses_at_once() {
        let (leader, mut is_leader) = watch::channel(true);
        let (_renew, mut renewed) = watch::channel(Instant::now());
        let lose = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            leader.send_replace(false);
            std::future::pending::<()>().await
        };
        let lost = tokio::select! {
            lost = until_lost(&mut is_leader, &mut renewed, timing_ms(10_000)) => lost,
            () = lose => unreachable!(),
        };
        assert_eq!(lost, Lost::Taken);
    }

    #[tokio::test]
    async fn only_successful_writes_count_as_renewals() {
        use tower::{Layer, ServiceExt};
        let (layer, renewed) = Renewals::new();
        let before = *renewed.borrow();
        let answer = |status: u16| {
            tower::service_fn(move |_req: ::http::Request<()>| async move {
                Ok::<_, std::convert::Infallible>(
                    ::http::Response::builder().status(status).body(()).unwrap(),
                )
            })
        };
        let request = |method: ::http::Method| {
            ::http::Request::builder()
                .method(method)
                .uri("/apis/coordination.k8s.io/v1/namespaces/x/leases/fluxtune-leader")
                .body(())
                .unwrap()
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        for (status, method) in [
            (409, ::http::Method::PATCH),
            (200, ::http::Method::GET),
            (500, ::http::Method::PATCH),
        ] {
            layer
                .layer(answer(status))
                .oneshot(request(method))
                .await
                .unwrap();
            assert_eq!(*renewed.borrow(), before, "{status}");
        }
        let sent = Instant::now();
        layer
            .layer(answer(200))
            .oneshot(request(::http::Method::PATCH))
            .await
            .unwrap();
        assert!(*renewed.borrow() >= sent);
    }
}

//! Prometheus metrics, served on /metrics.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use crate::render::budget::Budget;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Metric, Registry},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub namespace: String,
    pub profile: String,
    pub path: &'static str,
    pub bound: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProfileLabels {
    pub namespace: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub namespace: String,
    pub profile: String,
    /// `commit_to_deploy` or `image_to_deploy`, as in `latency_budget_seconds`.
    pub path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MissedLabels {
    pub namespace: String,
    pub profile: String,
    /// The source whose new revision or tags a poll found: GitRepository or ImageRepository.
    pub kind: &'static str,
}

/// Observed latencies: from a second to the hour-long backstops.
const LATENCY_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub struct Metrics {
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    pub applied: Family<KindLabels, Counter>,
    pub pruned: Family<KindLabels, Counter>,
    /// Every request the operator sends, by HTTP method: a no-op reconcile adds no write.
    pub kube_requests: Family<MethodLabels, Counter>,
    pub latency_budget: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// 1 while every Flux object of the profile is Ready (what it declares is delivered).
    pub delivered: Family<ProfileLabels, Gauge>,
    /// What really happened, from the Flux objects' own status: push or scan to applied.
    pub observed_latency: Family<PathLabels, Histogram, fn() -> Histogram>,
    /// New revisions or tags found by a poll while a Receiver exists: webhooks that never came.
    pub webhooks_missed: Family<MissedLabels, Counter>,
    /// 1 while the missed-webhook fallback polls at the Poll class's interval.
    pub webhook_fallback: Family<ProfileLabels, Gauge>,
    /// Reconciles running now; never above `max_concurrent_reconciles`.
    pub reconciles_in_flight: Gauge,
    /// The most reconciles that ran at once since the process started.
    pub reconciles_in_flight_max: Gauge,
    /// The bound of `--max-concurrent-reconciles`.
    pub max_concurrent_reconciles: Gauge,
    pub registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self::registered();
        // Every series a dashboard or test reads exists from the start, at zero: a missing series
        // then means a broken exporter, never "nothing happened yet".
        for result in ["ok", "error"] {
            let _ = metrics.reconciles.get_or_create(&ResultLabels { result });
        }
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let _ = metrics.kube_requests.get_or_create(&MethodLabels {
                method: method.into(),
            });
        }
        for kind in crate::flux::FluxKind::ALL {
            let labels = KindLabels { kind: kind.kind() };
            let _ = metrics.applied.get_or_create(&labels);
            let _ = metrics.pruned.get_or_create(&labels);
        }
        metrics
    }
}

impl Metrics {
    fn registered() -> Self {
        let mut registry = Registry::with_prefix("fluxtune");
        let r = &mut registry;
        Metrics {
            reconciles: registered(r, "reconciles", "FluxProfile reconciles by result"),
            errors: registered(r, "reconcile_errors", "Failed reconciles by reason"),
            duration: {
                let buckets = [
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ];
                let duration = Histogram::new(buckets);
                r.register(
                    "reconcile_duration_seconds",
                    "Reconcile duration",
                    duration.clone(),
                );
                duration
            },
            applied: registered(r, "children_applied", "Flux objects created or updated"),
            pruned: registered(
                r,
                "children_pruned",
                "Flux objects deleted because they left a profile",
            ),
            kube_requests: registered(
                r,
                "kube_requests",
                "Requests to the Kubernetes API by HTTP method",
            ),
            latency_budget: registered(
                r,
                "latency_budget_seconds",
                "Latency the profile's configuration should achieve, by path and bound",
            ),
            delivered: registered(
                r,
                "profile_delivered",
                "1 while every Flux object of the profile is Ready",
            ),
            observed_latency: {
                let family = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
                r.register(
                    "observed_latency_seconds",
                    "Observed latency from a push (commit or image) to its apply, by path",
                    family.clone(),
                );
                family
            },
            webhooks_missed: registered(
                r,
                "webhooks_missed",
                "New revisions or tags found by a poll although a Receiver exists, by source kind",
            ),
            webhook_fallback: registered(
                r,
                "webhook_fallback",
                "1 while missed webhooks have shortened the source's interval to the Poll class's",
            ),
            reconciles_in_flight: registered(
                r,
                "reconciles_in_flight",
                "FluxProfile reconciles running now",
            ),
            reconciles_in_flight_max: registered(
                r,
                "reconciles_in_flight_max",
                "The most FluxProfile reconciles that ran at once since the process started",
            ),
            max_concurrent_reconciles: registered(
                r,
                "max_concurrent_reconciles",
                "The bound on reconciles running at once (--max-concurrent-reconciles)",
            ),
            registry,
        }
    }
}

/// A new metric, registered: the registry keeps a clone, which shares its values.
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn observe_reconcile(&self, error: Option<&'static str>, took: Duration) {
        self.duration.observe(took.as_secs_f64());
        let result = if error.is_some() { "error" } else { "ok" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        if let Some(reason) = error {
            self.errors.get_or_create(&ReasonLabels { reason }).inc();
        }
    }

    /// Counts a reconcile as running until the returned guard is dropped (also when the reconcile
    /// is cancelled at shutdown).
    pub fn reconcile_started(self: &Arc<Self>) -> InFlight {
        let now = self.reconciles_in_flight.inc() + 1;
        self.reconciles_in_flight_max
            .inner()
            .fetch_max(now, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The profile's latency budget as gauges, one per path and bound.
    pub fn record_budget(&self, namespace: &str, profile: &str, budget: &Budget) {
        for (path, bound, value) in budget_series(budget) {
            self.latency_budget
                .get_or_create(&budget_labels(namespace, profile, path, bound))
                .set(value.as_secs_f64());
        }
    }

    /// Drops a deleted profile's series, so /metrics does not report it forever.
    pub fn forget_profile(&self, namespace: &str, profile: &str) {
        for (path, bound, _) in budget_series(&Budget::default()) {
            self.latency_budget
                .remove(&budget_labels(namespace, profile, path, bound));
        }
        let labels = profile_labels(namespace, profile);
        self.delivered.remove(&labels);
        self.webhook_fallback.remove(&labels);
        for path in PATHS {
            self.observed_latency
                .remove(&path_labels(namespace, profile, path));
        }
        for kind in MISSED_KINDS {
            self.webhooks_missed.remove(&MissedLabels {
                namespace: namespace.into(),
                profile: profile.into(),
                kind,
            });
        }
    }

    /// The profile's delivery and fallback state; creates its other series at zero, so a panel
    /// shows "none missed" rather than "no data".
    pub fn record_delivery(&self, namespace: &str, profile: &str, delivered: bool, fallback: bool) {
        let labels = profile_labels(namespace, profile);
        self.delivered.get_or_create(&labels).set(delivered.into());
        self.webhook_fallback
            .get_or_create(&labels)
            .set(fallback.into());
        for path in PATHS {
            let _ = self
                .observed_latency
                .get_or_create(&path_labels(namespace, profile, path));
        }
        for kind in MISSED_KINDS {
            let _ = self.webhooks_missed.get_or_create(&MissedLabels {
                namespace: namespace.into(),
                profile: profile.into(),
                kind,
            });
        }
    }

    pub fn observe_latency(
        &self,
        namespace: &str,
        profile: &str,
        path: &'static str,
        took: Duration,
    ) {
        self.observed_latency
            .get_or_create(&path_labels(namespace, profile, path))
            .observe(took.as_secs_f64());
    }

    pub fn missed_webhook(&self, namespace: &str, profile: &str, kind: &'static str) {
        self.webhooks_missed
            .get_or_create(&MissedLabels {
                namespace: namespace.into(),
                profile: profile.into(),
                kind,
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode to a String");
        out
    }
}

/// A running reconcile, for [`Metrics::reconcile_started`].
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.reconciles_in_flight.dec();
    }
}

const PATHS: [&str; 2] = ["commit_to_deploy", "image_to_deploy"];
const MISSED_KINDS: [&str; 2] = ["GitRepository", "ImageRepository"];

fn profile_labels(namespace: &str, profile: &str) -> ProfileLabels {
    ProfileLabels {
        namespace: namespace.into(),
        profile: profile.into(),
    }
}

fn path_labels(namespace: &str, profile: &str, path: &'static str) -> PathLabels {
    PathLabels {
        namespace: namespace.into(),
        profile: profile.into(),
        path,
    }
}

fn budget_labels(
    namespace: &str,
    profile: &str,
    path: &'static str,
    bound: &'static str,
) -> BudgetLabels {
    BudgetLabels {
        namespace: namespace.into(),
        profile: profile.into(),
        path,
        bound,
    }
}

fn budget_series(b: &Budget) -> [(&'static str, &'static str, Duration); 4] {
    [
        ("image_to_deploy", "expected", b.image_to_deploy.expected),
        ("image_to_deploy", "worst", b.image_to_deploy.worst),
        ("commit_to_deploy", "expected", b.commit_to_deploy.expected),
        ("commit_to_deploy", "worst", b.commit_to_deploy.worst),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_in_flight_and_their_high_water_mark() {
        let metrics = Arc::new(Metrics::default());
        let text = metrics.encode();
        for series in [
            "fluxtune_reconciles_in_flight 0",
            "fluxtune_reconciles_in_flight_max 0",
            "fluxtune_max_concurrent_reconciles 0",
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
        let a = metrics.reconcile_started();
        let b = metrics.reconcile_started();
        drop(a);
        let c = metrics.reconcile_started();
        assert_eq!(metrics.reconciles_in_flight.get(), 2);
        drop((b, c));
        assert_eq!(metrics.reconciles_in_flight.get(), 0);
        assert_eq!(metrics.reconciles_in_flight_max.get(), 2);
    }
}

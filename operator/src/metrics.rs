//! Prometheus metrics, served on /metrics.

use std::time::Duration;

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

pub struct Metrics {
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    pub applied: Family<KindLabels, Counter>,
    pub pruned: Family<KindLabels, Counter>,
    /// Every request the operator sends, by HTTP method: a no-op reconcile adds no write.
    pub kube_requests: Family<MethodLabels, Counter>,
    pub latency_budget: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
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
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode to a String");
        out
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

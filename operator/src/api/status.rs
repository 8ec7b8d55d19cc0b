//! The FluxProfile status, shaped for kstatus and Flux health checks.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::spec::PollingClass;

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxProfileStatus {
    /// The generation whose reconcile finished; -1 until the first one (a schema default, so kstatus
    /// reads a new object as in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, as kstatus reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The last reconcile.fluxcd.io/requestedAt value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// The polling class in effect (spec.pollingClass or its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_class: Option<PollingClass>,
    /// Where the Git host must send push events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookStatus>,
    /// Where the container registry must send push events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_webhook: Option<WebhookStatus>,
    /// The latency the rendered configuration should achieve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_budget: Option<LatencyBudget>,
    /// What the Flux objects report they delivered: the fetched and applied revisions and each
    /// ImagePolicy's latest image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// What the last new revision and the last new image really took, from the Flux objects'
    /// own status (reconcile/latency.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_latency: Option<ObservedLatency>,
    /// Webhooks found missing: a poll found what a Receiver should have announced. An entry stays
    /// until a change of that kind arrives by webhook again; while it is here the fallback
    /// interval applies (spec.webhook.fallback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed_webhooks: Vec<MissedWebhook>,
    /// Every object fluxtune owns for this profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The GitRepository's artifact revision, e.g. main@sha1:1a2b3c, as fluxtune last judged
    /// it: one fetched while a reconcile ran shows with the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    /// What brought the source revision: Webhook, WebhookRescan (fluxtune asked again after a
    /// webhook), Request, SpecChange or Poll. Judged once, when fluxtune first sees the revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_trigger: Option<String>,
    /// The revision the Kustomization last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// Each ImagePolicy's latest image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageDelivery>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageDelivery {
    /// The ImagePolicy's name.
    pub policy: String,
    /// repository:tag, as the policy selected it.
    pub latest_image: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ObservedLatency {
    /// The most recent of the two, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    /// A new revision: from what brought it (the webhook's arrival, a request, or the fetch) to
    /// the Kustomization applying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_to_deploy: Option<LatencySample>,
    /// A new image: from the scan that found it (or the registry webhook that asked for that
    /// scan) through the policy, the automation's push and the fetch, to the apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_to_deploy: Option<LatencySample>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LatencySample {
    /// The revision applied, or the image (repository:tag) deployed.
    pub revision: String,
    /// Go-style, like the budget: 1.2s, 1m3s. Flux's timestamps have whole seconds.
    pub duration: String,
    /// What started it: Webhook, WebhookRescan, Request, SpecChange or Poll (a new revision);
    /// Webhook or Scan (a new image).
    pub trigger: String,
    /// When the Kustomization applied it.
    pub applied_at: Time,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MissedWebhook {
    /// GitRepository (the Git host's webhook) or ImageRepository (the registry's).
    pub kind: String,
    /// What the poll found: the revision, or the image.
    pub revision: String,
    /// When the poll found it.
    pub found_at: Time,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WebhookStatus {
    /// /hook/<sha256(token+name+namespace)>, as notification-controller serves it.
    pub path: String,
    /// baseURL + path, when spec.webhook.baseURL is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Go-style durations (1m10s), like Flux's own status fields.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LatencyBudget {
    /// New image in the registry until the cluster applies it.
    pub image_to_deploy: LatencyRange,
    /// Commit pushed until the cluster applies it.
    pub commit_to_deploy: LatencyRange,
    /// Worst case when a webhook call is lost: the source backstop. Only with a webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_lost: Option<String>,
    /// Worst image-to-deploy case when a registry webhook call is lost: the backstop scan. Only
    /// with a registry webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_webhook_lost: Option<String>,
    /// The processing allowance added to every path.
    pub processing: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LatencyRange {
    pub expected: String,
    pub worst: String,
}

#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

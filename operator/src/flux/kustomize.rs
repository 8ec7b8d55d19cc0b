//! kustomize.toolkit.fluxcd.io/v1 Kustomization: only the fields fluxtune sets.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::CrossRef;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "kustomize.toolkit.fluxcd.io",
    version = "v1",
    kind = "Kustomization",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSpec {
    pub interval: String,
    pub retry_interval: String,
    pub timeout: String,
    pub source_ref: CrossRef,
    pub path: String,
    pub prune: bool,
    pub wait: bool,
    pub deletion_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
}

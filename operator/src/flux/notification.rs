//! notification.toolkit.fluxcd.io/v1 Receiver: only the fields fluxtune sets.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::LocalRef;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "notification.toolkit.fluxcd.io",
    version = "v1",
    kind = "Receiver",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    pub r#type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    pub secret_ref: LocalRef,
    pub resources: Vec<ReceiverResource>,
}

/// Flux fills apiVersion only for a few kinds; fluxtune always states it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverResource {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

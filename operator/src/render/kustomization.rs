//! The Kustomization: applies the cluster's folder whenever the source has a new revision.

use crate::{
    api::FluxProfile,
    flux::{CrossRef, Kustomization, KustomizationSpec},
};

use super::Context;

pub fn kustomization(cx: &Context, profile: &FluxProfile) -> Kustomization {
    let apply = profile.spec.apply.clone().unwrap_or_default();
    Kustomization {
        metadata: cx.meta(cx.source_name()),
        spec: KustomizationSpec {
            interval: cx.tuning.apply.clone(),
            retry_interval: cx.tuning.apply_retry.clone(),
            timeout: cx.tuning.apply_timeout.clone(),
            source_ref: CrossRef {
                kind: "GitRepository".into(),
                name: cx.source_name(),
            },
            path: format!("./{}", cx.cluster_path),
            prune: apply.prune.unwrap_or(true),
            wait: apply.wait.unwrap_or(true),
            deletion_policy: apply.deletion_policy.unwrap_or_default().as_str().into(),
            service_account_name: apply.service_account_name.clone(),
            target_namespace: apply.target_namespace.filter(|ns| !ns.is_empty()),
        },
    }
}

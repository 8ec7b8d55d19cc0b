//! Deletes the objects a profile no longer renders: those in its inventory or labelled for it.

use std::collections::BTreeSet;

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject},
};

use super::{Context, apply::is_ours};
use crate::{
    api::{FluxProfile, InventoryEntry},
    error::Result,
    flux::FluxKind,
    render::names,
};

pub async fn prune(
    ctx: &Context,
    profile: &FluxProfile,
    desired: &[InventoryEntry],
) -> Result<Vec<InventoryEntry>> {
    let namespace = profile.namespace().unwrap_or_default();
    let name = profile.name_any();
    let desired: BTreeSet<&InventoryEntry> = desired.iter().collect();

    let mut candidates: BTreeSet<InventoryEntry> = profile
        .status
        .as_ref()
        .map(|s| s.inventory.iter().cloned().collect())
        .unwrap_or_default();
    for (kind, store) in &ctx.children {
        let ar = kind.api_resource();
        candidates.extend(
            store
                .state()
                .iter()
                .filter(|o| {
                    o.namespace().as_deref() == Some(namespace.as_str())
                        && o.labels().get(names::PROFILE_LABEL) == Some(&name)
                })
                .map(|o| InventoryEntry {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                    name: o.name_any(),
                }),
        );
    }

    let mut pruned = Vec::new();
    for entry in candidates.iter().filter(|c| !desired.contains(c)) {
        let Some(kind) = FluxKind::from_kind(&entry.kind).filter(|k| ctx.children.contains_key(k))
        else {
            continue;
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &kind.api_resource());
        // Only what is still ours: an inventory entry may since have been replaced by a user's object.
        let Some(live) = api.get_opt(&entry.name).await? else {
            continue;
        };
        if !is_ours(&live, profile) {
            continue;
        }
        api.delete(&entry.name, &DeleteParams::background()).await?;
        ctx.metrics
            .pruned
            .get_or_create(&crate::metrics::KindLabels { kind: kind.kind() })
            .inc();
        pruned.push(entry.clone());
    }
    Ok(pruned)
}

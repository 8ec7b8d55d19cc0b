//! Deletes the objects a profile no longer renders, and only those proven its own.

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject, Preconditions},
};

use super::{Context, ownership};
use crate::{
    api::{FluxProfile, InventoryEntry},
    error::Result,
    flux::FluxKind,
};

/// Deletes every candidate (inventory or labelled) outside `keep` that a fresh read proves is
/// controlled by this profile. The delete carries that read's UID and resourceVersion as
/// preconditions: an object replaced or changed between the check and the delete is not deleted
/// (the API server answers 409, and the next reconcile looks again).
pub async fn prune(
    ctx: &Context,
    profile: &FluxProfile,
    keep: &[InventoryEntry],
) -> Result<Vec<InventoryEntry>> {
    let namespace = profile.namespace().unwrap_or_default();
    let mut pruned = Vec::new();
    for entry in ownership::candidates(ctx, profile)
        .iter()
        .filter(|c| !keep.contains(c))
    {
        let Some(kind) = FluxKind::from_kind(&entry.kind).filter(|k| ctx.children.contains_key(k))
        else {
            continue;
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &kind.api_resource());
        let Some(live) = api.get_opt(&entry.name).await? else {
            continue;
        };
        if !ownership::is_owned(&live, profile) {
            continue;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.uid(),
                resource_version: live.resource_version(),
            }),
            ..DeleteParams::background()
        };
        match api.delete(&entry.name, &params).await {
            Ok(_) => {}
            // Deleted by someone else meanwhile: nothing left to prune.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
        ctx.metrics
            .pruned
            .get_or_create(&crate::metrics::KindLabels { kind: kind.kind() })
            .inc();
        pruned.push(entry.clone());
    }
    Ok(pruned)
}

//! Deletes the objects a profile no longer renders, and only those proven its own.

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject, Preconditions},
};

use super::{Context, ownership};
use crate::{
    api::{FluxProfile, InventoryEntry},
    error::Error,
    flux::FluxKind,
};

/// What a prune pass did. It goes on past an object it may not delete; a transient error stops it.
#[derive(Debug, Default)]
pub struct Pruned {
    pub deleted: Vec<InventoryEntry>,
    /// Changed or replaced between the check and the delete (the preconditions failed): looked at
    /// again on the next pass.
    pub skipped: Vec<InventoryEntry>,
    /// Refused for good (RBAC, an admission policy), with the API server's message.
    pub rejected: Vec<(InventoryEntry, String)>,
    pub error: Option<Error>,
}

/// Deletes every candidate (inventory or labelled) outside `keep` that a fresh read proves is
/// controlled by this profile. The delete carries that read's UID and resourceVersion as
/// preconditions: an object replaced or changed between the check and the delete is not deleted.
pub async fn prune(ctx: &Context, profile: &FluxProfile, keep: &[InventoryEntry]) -> Pruned {
    let namespace = profile.namespace().unwrap_or_default();
    let mut pruned = Pruned::default();
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
        let live = match api.get_opt(&entry.name).await {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(e) => {
                pruned.error = Some(e.into());
                break;
            }
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
            Err(kube::Error::Api(s)) if s.code == 409 => {
                pruned.skipped.push(entry.clone());
                continue;
            }
            Err(e) => {
                let e = Error::from(e);
                if e.is_permanent() {
                    pruned.rejected.push((entry.clone(), e.user_message()));
                    continue;
                }
                pruned.error = Some(e);
                break;
            }
        }
        ctx.metrics
            .pruned
            .get_or_create(&crate::metrics::KindLabels { kind: kind.kind() })
            .inc();
        pruned.deleted.push(entry.clone());
    }
    pruned
}

//! The `reconcile.fluxcd.io/requestedAt` trigger: like `flux reconcile --with-source`, a request on
//! the profile is handed on to its sources (the GitRepository and ImageRepositories).

use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
};

use super::Context;
use crate::{
    api::FluxProfile,
    error::Result,
    flux::{FluxKind, FluxObject},
};

pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// The field manager of the hand-on: not `fluxtune`, whose applies must never own the annotation.
pub const REQUEST_MANAGER: &str = "fluxtune-request";

/// The request on the profile that status does not record as handled yet.
pub fn pending(profile: &FluxProfile) -> Option<String> {
    let requested = profile.annotations().get(REQUESTED_AT)?;
    let handled = profile
        .status
        .as_ref()
        .and_then(|s| s.last_handled_reconcile_at.as_ref());
    (handled != Some(requested)).then(|| requested.clone())
}

/// A merge patch of the annotation alone, so the request is not a field fluxtune keeps applying
/// (a later `flux reconcile` on the source would otherwise fight it).
pub async fn hand_on(
    ctx: &Context,
    profile: &FluxProfile,
    objects: &[FluxObject],
    requested: &str,
) -> Result<()> {
    let namespace = profile.namespace().unwrap_or_default();
    let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: requested}}});
    for object in objects {
        let kind = object.kind();
        if !matches!(kind, FluxKind::GitRepository | FluxKind::ImageRepository)
            || !ctx.children.contains_key(&kind)
        {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &kind.api_resource());
        api.patch(
            &object.name(),
            &PatchParams {
                field_manager: Some(REQUEST_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

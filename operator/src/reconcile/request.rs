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
    for object in objects {
        let kind = object.kind();
        if !matches!(kind, FluxKind::GitRepository | FluxKind::ImageRepository)
            || !ctx.children.contains_key(&kind)
        {
            continue;
        }
        request(ctx, profile, object, requested).await?;
    }
    Ok(())
}

/// Sets `requestedAt` on one object: a merge patch of that annotation alone, under its own
/// field manager.
pub(super) async fn request(
    ctx: &Context,
    profile: &FluxProfile,
    object: &FluxObject,
    value: &str,
) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &profile.namespace().unwrap_or_default(),
        &object.kind().api_resource(),
    );
    let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: value}}});
    api.patch(
        &object.name(),
        &PatchParams {
            field_manager: Some(REQUEST_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The automation's push, handed on to the GitRepository at once: Flux's ImageUpdateAutomation
/// never asks for it, so without a Git webhook for the bot's own push (or with it lost) the
/// commit would wait for the source's interval. Stateless: nothing is sent when the source already
/// has the commit or was already asked for it.
pub async fn hand_on_push(
    ctx: &Context,
    profile: &FluxProfile,
    owned: &[FluxObject],
) -> Result<()> {
    let namespace = profile.namespace().unwrap_or_default();
    let cached = |kind: FluxKind, name: &str| {
        crate::cache::get(ctx.children.get(&kind)?, kind, &namespace, name)
    };
    let (Some(automation), Some(source)) = (
        owned
            .iter()
            .find(|o| o.kind() == FluxKind::ImageUpdateAutomation),
        owned.iter().find(|o| o.kind() == FluxKind::GitRepository),
    ) else {
        return Ok(());
    };
    let Some(pushed) = cached(FluxKind::ImageUpdateAutomation, &automation.name())
        .and_then(|a| {
            a.data["status"]["lastPushCommit"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|c| !c.is_empty())
    else {
        return Ok(());
    };
    let Some(git) = cached(FluxKind::GitRepository, &source.name()) else {
        return Ok(());
    };
    let fetched = git.data["status"]["artifact"]["revision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&pushed));
    let value = format!("fluxtune-push-{pushed}");
    if fetched || git.annotations().get(REQUESTED_AT) == Some(&value) {
        return Ok(());
    }
    request(ctx, profile, source, &value).await?;
    tracing::info!(commit = %pushed, "handed the automation's push on to the GitRepository");
    Ok(())
}

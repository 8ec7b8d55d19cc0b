//! Dereferences the webhook Secret: the token decides the Receiver's path. The token itself never
//! leaves this module, neither into logs nor into status.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::{Blocker, Context};
use crate::{
    api::{FluxProfile, WebhookStatus},
    error::Result,
    render::receiver::webhook_path,
};

/// The webhook status, or why it cannot be known yet. `Ok(None)` when no Receiver is rendered.
pub async fn webhook_status(
    ctx: &Context,
    profile: &FluxProfile,
    receiver: Option<&str>,
) -> Result<Option<Result<WebhookStatus, Blocker>>> {
    let (Some(receiver), Some(webhook)) = (receiver, profile.spec.webhook.as_ref()) else {
        return Ok(None);
    };
    let namespace = profile.namespace().unwrap_or_default();
    let secret_name = &webhook.secret_ref.name;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(secret) = secrets.get_opt(secret_name).await? else {
        return Ok(Some(Err(Blocker::WebhookSecretNotFound(
            secret_name.clone(),
        ))));
    };
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|t| String::from_utf8_lossy(&t.0).into_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get("token").cloned())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Ok(Some(Err(Blocker::WebhookTokenMissing(secret_name.clone()))));
    };
    let path = webhook_path(&token, receiver, &namespace);
    let url = webhook
        .base_url
        .as_ref()
        .map(|base| format!("{}{path}", base.trim_end_matches('/')));
    Ok(Some(Ok(WebhookStatus { path, url })))
}

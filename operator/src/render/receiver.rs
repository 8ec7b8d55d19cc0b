//! The Receiver: the Git host's push webhook, which makes the GitRepository fetch at once.

use sha2::{Digest, Sha256};

use crate::{
    api::{FluxProfile, WebhookProvider},
    flux::{GitRepository, LocalRef, Receiver, ReceiverResource, ReceiverSpec},
};

use super::{Context, names};

/// Flux's Receiver types and the Git push events each host sends.
pub fn provider_type_and_events(
    provider: WebhookProvider,
) -> (&'static str, &'static [&'static str]) {
    match provider {
        WebhookProvider::Github => ("github", &["ping", "push"]),
        WebhookProvider::Gitlab => ("gitlab", &["Push Hook", "Tag Push Hook"]),
        // Bitbucket Cloud sends repo:push, Bitbucket Server repo:refs_changed.
        WebhookProvider::Bitbucket => ("bitbucket", &["repo:push", "repo:refs_changed"]),
        // generic-hmac cannot filter events.
        WebhookProvider::GenericHmac => ("generic-hmac", &[]),
    }
}

/// Receivers trigger sources, not appliers: the Kustomization follows the source's new revision.
pub fn receiver(cx: &Context, profile: &FluxProfile) -> Option<Receiver> {
    let webhook = profile
        .spec
        .webhook
        .as_ref()
        .filter(|_| cx.tuning.webhook)?;
    let (kind, events) = provider_type_and_events(webhook.provider);
    Some(Receiver {
        metadata: cx.meta(cx.source_name()),
        spec: ReceiverSpec {
            r#type: kind.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            secret_ref: LocalRef {
                name: webhook.secret_ref.name.clone(),
            },
            resources: vec![ReceiverResource {
                api_version: <GitRepository as kube::Resource>::api_version(&()).into_owned(),
                kind: "GitRepository".into(),
                name: cx.source_name(),
            }],
        },
    })
}

/// The path notification-controller serves a Receiver on: `/hook/` + hex(sha256(token + name +
/// namespace)), as in Flux's `Receiver.GetWebhookPath`.
pub fn webhook_path(token: &str, receiver_name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{token}{receiver_name}{namespace}").as_bytes());
    format!("/hook/{}", names::hex(&digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_path_is_sha256_of_token_name_namespace() {
        // printf '%s' 'tokencluster1flux-system' | sha256sum
        assert_eq!(
            webhook_path("token", "cluster1", "flux-system"),
            "/hook/c82d2fb96a8036cf8f6e771b497f5eada47fc61bf9c776af3e1d5fb3cd81ec09"
        );
    }
}

//! The Receiver: the Git host's push webhook, which makes the GitRepository fetch at once.

use sha2::{Digest, Sha256};

use crate::{
    api::{FluxProfile, WebhookProvider},
    flux::{GitRepository, ImageRepository, LocalRef, Receiver, ReceiverResource, ReceiverSpec},
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

/// The registry's Receiver: a push of any of the profile's images makes every one of its
/// ImageRepositories scan at once (a scan that finds nothing new changes nothing downstream).
/// One Receiver per profile, not per image: some registries cannot say which repository an event
/// is for in a way notification-controller's CEL filters can read.
pub fn registry_receiver(cx: &Context, profile: &FluxProfile) -> Option<Receiver> {
    let webhook = profile.spec.registry_webhook.as_ref()?;
    let (kind, events) = webhook.provider.receiver_type_and_events();
    Some(Receiver {
        metadata: cx.meta(names::child_name(&cx.profile, Some("registry"))),
        spec: ReceiverSpec {
            r#type: kind.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            secret_ref: LocalRef {
                name: webhook.secret_ref.name.clone(),
            },
            resources: profile
                .spec
                .images
                .iter()
                .map(|img| ReceiverResource {
                    api_version: <ImageRepository as kube::Resource>::api_version(&()).into_owned(),
                    kind: "ImageRepository".into(),
                    name: names::child_name(&cx.profile, Some(&img.name)),
                })
                .collect(),
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

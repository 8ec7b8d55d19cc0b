//! Where the Git host must send push events, as notification-controller publishes it: the
//! Receiver's `status.webhookPath`, computed there from the Secret's token. fluxtune never reads
//! the Secret (its ServiceAccount has no permission on Secrets at all); a missing Secret or token
//! shows on the Receiver's own Ready condition. notification-controller re-reads the Secret at once
//! when it carries the label `reconcile.fluxcd.io/watch: Enabled` (its default
//! --watch-configs-label-selector), otherwise on its retry backoff; the Receiver's status change
//! then wakes the profile.

use kube::{ResourceExt, api::DynamicObject};
use serde_json::Value;

use super::{Blocker, Context};
use crate::{
    api::{FluxProfile, WebhookStatus},
    flux::FluxKind,
    render::receiver::webhook_path,
};

/// notification-controller's Ready reason when it cannot read the token (TokenNotFoundReason).
const TOKEN_NOT_FOUND: &str = "TokenNotFound";

/// What the profile can say about its webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Webhook {
    /// No Receiver is rendered.
    None,
    /// The Receiver exists but notification-controller has not reported on its current spec yet.
    Pending,
    Ready(WebhookStatus),
    Blocked(Blocker),
}

/// The Git host's Receiver and the registry's: its name when rendered, its Secret and base URL.
pub struct Hook<'a> {
    pub receiver: Option<&'a str>,
    pub secret: &'a str,
    pub base_url: Option<&'a str>,
}

impl<'a> Hook<'a> {
    pub fn git(profile: &'a FluxProfile, receiver: Option<&'a str>) -> Option<Hook<'a>> {
        let spec = profile.spec.webhook.as_ref()?;
        Some(Hook {
            receiver,
            secret: &spec.secret_ref.name,
            base_url: spec.base_url.as_deref(),
        })
    }

    pub fn registry(profile: &'a FluxProfile, receiver: Option<&'a str>) -> Option<Hook<'a>> {
        let spec = profile.spec.registry_webhook.as_ref()?;
        Some(Hook {
            receiver,
            secret: &spec.secret_ref.name,
            base_url: spec.base_url.as_deref(),
        })
    }
}

/// From the cached Receiver (a watch keeps it current; no request).
pub fn webhook_status(ctx: &Context, profile: &FluxProfile, hook: Option<Hook>) -> Webhook {
    let Some(Hook {
        receiver: Some(receiver),
        secret,
        base_url,
    }) = hook
    else {
        return Webhook::None;
    };
    let Some(store) = ctx.children.get(&FluxKind::Receiver) else {
        return Webhook::Pending;
    };
    let namespace = profile.namespace().unwrap_or_default();
    match crate::cache::get(store, FluxKind::Receiver, &namespace, receiver) {
        Some(live) => from_receiver(&live, secret, base_url),
        None => Webhook::Pending,
    }
}

fn from_receiver(live: &DynamicObject, secret: &str, base_url: Option<&str>) -> Webhook {
    let status = &live.data["status"];
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    // A condition about an older spec (another Secret, say) says nothing about this one. The
    // condition carries its generation; status.observedGeneration moves only on success.
    let Some(ready) =
        ready.filter(|c| c["observedGeneration"].as_i64() == live.metadata.generation)
    else {
        return Webhook::Pending;
    };
    let path = status["webhookPath"].as_str().unwrap_or_default();
    // notification-controller accepts a `token` key with an empty value; the path is then
    // sha256(name + namespace), which anyone can compute, and most providers then accept unsigned
    // calls. That is no token.
    let empty_token = webhook_path("", &live.name_any(), &live.namespace().unwrap_or_default());
    match (ready["status"].as_str(), ready["reason"].as_str()) {
        (Some("True"), _) if path == empty_token => {
            Webhook::Blocked(Blocker::WebhookTokenMissing(secret.to_string()))
        }
        (Some("True"), _) if !path.is_empty() => Webhook::Ready(WebhookStatus {
            path: path.to_string(),
            url: base_url.map(|base| format!("{}{path}", base.trim_end_matches('/'))),
        }),
        (Some("False"), Some(TOKEN_NOT_FOUND)) => {
            // "unable to read token from secret 'ns/name' error: secrets "name" not found", or
            // "invalid 'ns/name' secret data: required fields 'token'".
            let message = ready["message"].as_str().unwrap_or_default();
            if message.contains("required fields 'token'") {
                Webhook::Blocked(Blocker::WebhookTokenMissing(secret.to_string()))
            } else if message.contains("not found") {
                Webhook::Blocked(Blocker::WebhookSecretNotFound(secret.to_string()))
            } else {
                // Anything else (a transient read error, say) is notification-controller's to
                // retry; the webhook is simply not known yet.
                Webhook::Pending
            }
        }
        _ => Webhook::Pending,
    }
}

/// The parts of a Receiver's status that change what the profile reports: they wake the profile
/// (controller.rs); nothing else in a child's status does.
pub fn status_that_matters(live: &DynamicObject) -> Option<(Option<i64>, [String; 4])> {
    let status = live.data.get("status")?;
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    // The message too: a missing Secret and a missing token share the reason TokenNotFound.
    Some((
        ready["observedGeneration"].as_i64(),
        [
            text(&status["webhookPath"]),
            text(&ready["status"]),
            text(&ready["reason"]),
            text(&ready["message"]),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn receiver(generation: i64, status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver",
            "metadata": {"name": "c1", "namespace": "ns", "generation": generation},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn the_path_is_the_receivers_once_it_is_ready_for_the_current_spec() {
        let ready = json!({"observedGeneration": 2, "webhookPath": "/hook/abc",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "observedGeneration": 2}]});
        assert_eq!(
            from_receiver(
                &receiver(2, ready.clone()),
                "hook",
                Some("https://h.example/")
            ),
            Webhook::Ready(WebhookStatus {
                path: "/hook/abc".into(),
                url: Some("https://h.example/hook/abc".into())
            })
        );
        assert_eq!(
            from_receiver(&receiver(3, ready), "hook", None),
            Webhook::Pending
        );
        assert_eq!(
            from_receiver(&receiver(1, json!({})), "hook", None),
            Webhook::Pending
        );
    }

    #[test]
    fn an_empty_token_is_no_token() {
        let path = webhook_path("", "c1", "ns");
        let ready = json!({"webhookPath": path,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "observedGeneration": 1}]});
        assert_eq!(
            from_receiver(&receiver(1, ready), "hook", None),
            Webhook::Blocked(Blocker::WebhookTokenMissing("hook".into()))
        );
    }

    #[test]
    fn a_missing_secret_or_token_is_read_from_the_receivers_ready_condition() {
        let failed = |message: &str| {
            json!({"conditions": [{"type": "Ready", "status": "False", "observedGeneration": 1,
                "reason": "TokenNotFound", "message": message}]})
        };
        assert_eq!(
            from_receiver(
                &receiver(
                    1,
                    failed(
                        "unable to read token from secret 'ns/hook' error: secrets \"hook\" not found"
                    )
                ),
                "hook",
                None
            ),
            Webhook::Blocked(Blocker::WebhookSecretNotFound("hook".into()))
        );
        assert_eq!(
            from_receiver(
                &receiver(
                    1,
                    failed("invalid 'ns/hook' secret data: required fields 'token'")
                ),
                "hook",
                None
            ),
            Webhook::Blocked(Blocker::WebhookTokenMissing("hook".into()))
        );
        assert_eq!(
            from_receiver(
                &receiver(
                    1,
                    failed("unable to read token from secret 'ns/hook' error: etcdserver: timeout")
                ),
                "hook",
                None
            ),
            Webhook::Pending,
            "a transient read error is not a missing Secret"
        );
    }
}

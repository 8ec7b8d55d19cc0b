//! Missed webhooks, noticed and healed. A new revision (or a new image) that a poll found while a
//! Receiver was listening is a webhook that never came: it is counted, reported in
//! `status.missedWebhooks` and the `WebhookDegraded` condition, and, unless the user turned the
//! fallback off, the source polls at the fallback interval (the Poll class's minute) instead of
//! the hour-long backstop. The first change of that kind that arrives by webhook again ends it.
//!
//! The previous revision and images are the ones status recorded (status.delivery), so each is
//! judged once, and the judgement survives a restart.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::api::DynamicObject;

use super::trigger::{self, Trigger, timestamp};
use crate::{
    api::{Delivery, MissedWebhook},
    flux::FluxKind,
};

/// What a Receiver listens for, per kind of source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listening {
    pub git: bool,
    pub registry: bool,
}

/// One new change and what brought it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    pub kind: FluxKind,
    pub revision: String,
    pub found_at: Timestamp,
    pub trigger: Trigger,
}

/// The new source revision and new images since status last recorded them, with their triggers.
pub fn judge(
    before: Option<&Delivery>,
    children: &[(FluxKind, String, Option<&DynamicObject>)],
) -> Vec<Judged> {
    let Some(before) = before else {
        return Vec::new();
    };
    let of = |kind: FluxKind| {
        children
            .iter()
            .filter(move |(k, _, _)| *k == kind)
            .filter_map(|(_, name, o)| Some((name.as_str(), (*o)?)))
    };
    let mut judged = Vec::new();
    for (_, source) in of(FluxKind::GitRepository) {
        let artifact = &source.data["status"]["artifact"];
        let (Some(revision), Some(fetched)) = (
            artifact["revision"].as_str(),
            timestamp(&artifact["lastUpdateTime"]),
        ) else {
            continue;
        };
        // The first revision (a new profile) is no change to judge.
        if before
            .source_revision
            .as_deref()
            .is_some_and(|r| r != revision)
        {
            judged.push(Judged {
                kind: FluxKind::GitRepository,
                revision: revision.into(),
                found_at: fetched,
                trigger: trigger::trigger(source, fetched).0,
            });
        }
    }
    let repositories: Vec<_> = of(FluxKind::ImageRepository).collect();
    for (name, policy) in of(FluxKind::ImagePolicy) {
        let status = &policy.data["status"];
        let latest = format!(
            "{}:{}",
            status["latestRef"]["name"].as_str().unwrap_or_default(),
            status["latestRef"]["tag"].as_str().unwrap_or_default()
        );
        let previous = before.images.iter().find(|i| i.policy == name);
        if previous.is_none_or(|p| p.latest_image == latest) {
            continue;
        }
        // The policy's Ready names the tag from the second the scan result selected it; the
        // ImageRepository's scan time moves on with every later scan.
        let Some(selected_at) = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| timestamp(&c["lastTransitionTime"]))
        else {
            continue;
        };
        let repository = policy.data["spec"]["imageRepositoryRef"]["name"].as_str();
        let Some((_, scanned)) = repositories.iter().find(|(n, _)| Some(*n) == repository) else {
            continue;
        };
        let found_at = trigger::found_by_scan(scanned, selected_at);
        judged.push(Judged {
            kind: FluxKind::ImageRepository,
            revision: latest,
            found_at,
            trigger: trigger::trigger(scanned, found_at).0,
        });
    }
    judged
}

/// What status records for the next reconcile to judge against: the source revision and images
/// of `before` (the children as `judge` saw them, before this reconcile's writes), with the
/// source's trigger when judged now or already recorded for that revision (the first revision is
/// no change and has none). A revision fetched while the reconcile ran is the next one's to judge
/// (the watch event that brought it queued that reconcile): recorded now, it would never be
/// judged, and a missed webhook would go unnoticed.
pub fn recorded(old: Option<&Delivery>, before: Delivery, judged: &[Judged]) -> Delivery {
    let source_trigger = match judged.iter().find(|j| j.kind == FluxKind::GitRepository) {
        Some(j) => Some(j.trigger.as_str().to_string()),
        None => old
            .filter(|d| d.source_revision.is_some() && d.source_revision == before.source_revision)
            .and_then(|d| d.source_trigger.clone()),
    };
    Delivery {
        source_revision: before.source_revision,
        source_trigger,
        applied_revision: None,
        images: before.images,
    }
}

/// What the judgement changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// status.missedWebhooks after this reconcile.
    pub missed: Vec<MissedWebhook>,
    /// Newly missed, for the counter and the Event.
    pub new: Vec<MissedWebhook>,
    /// Kinds whose webhooks came back.
    pub restored: Vec<FluxKind>,
}

/// Applies the judgements to what status recorded as missed. A kind nobody listens for any more
/// is no longer missed: there is no webhook to miss.
pub fn update(old: &[MissedWebhook], judged: &[Judged], listening: Listening) -> Outcome {
    let listens = |kind: &str| match FluxKind::from_kind(kind) {
        Some(FluxKind::GitRepository) => listening.git,
        Some(FluxKind::ImageRepository) => listening.registry,
        _ => false,
    };
    let mut outcome = Outcome {
        missed: old.iter().filter(|m| listens(&m.kind)).cloned().collect(),
        ..Default::default()
    };
    for j in judged {
        let kind = j.kind.kind();
        if !listens(kind) {
            continue;
        }
        if j.trigger == Trigger::Poll {
            let entry = MissedWebhook {
                kind: kind.into(),
                revision: j.revision.clone(),
                found_at: Time(j.found_at),
            };
            outcome.missed.retain(|m| m.kind != kind);
            outcome.missed.push(entry.clone());
            outcome.new.push(entry);
        } else if j.trigger.by_webhook() && outcome.missed.iter().any(|m| m.kind == kind) {
            outcome.missed.retain(|m| m.kind != kind);
            outcome.restored.push(j.kind);
        }
    }
    outcome.missed.sort_by(|a, b| a.kind.cmp(&b.kind));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ImageDelivery;
    use serde_json::json;

    const RECEIVER: &str = "2026-12-02 10:00:00.2 +0000 UTC m=+5.1";

    fn git(revision: &str, fetched: &str, handled: &str) -> DynamicObject {
        let mut o = DynamicObject::new("c", &FluxKind::GitRepository.api_resource());
        o.data = json!({"status": {
            "artifact": {"revision": revision, "lastUpdateTime": fetched},
            "lastHandledReconcileAt": handled}});
        o
    }

    fn before(revision: &str) -> Delivery {
        Delivery {
            source_revision: Some(revision.into()),
            ..Default::default()
        }
    }

    fn judged_git(o: &DynamicObject, previous: &str) -> Vec<Judged> {
        judge(
            Some(&before(previous)),
            &[(FluxKind::GitRepository, "c".into(), Some(o))],
        )
    }

    #[test]
    fn a_new_revision_is_judged_once_and_the_first_not_at_all() {
        let o = git("main@sha1:b", "2026-12-02T10:00:01Z", RECEIVER);
        let j = judged_git(&o, "main@sha1:a");
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].trigger, Trigger::Webhook);
        assert!(judged_git(&o, "main@sha1:b").is_empty(), "already recorded");
        assert!(
            judge(None, &[(FluxKind::GitRepository, "c".into(), Some(&o))]).is_empty(),
            "a new profile"
        );
    }

    #[test]
    fn a_poll_while_listening_is_a_miss_and_a_webhook_ends_it() {
        let polled = judged_git(
            &git("main@sha1:b", "2026-12-02T11:00:00Z", RECEIVER),
            "main@sha1:a",
        );
        let listening = Listening {
            git: true,
            registry: false,
        };
        let missed = update(&[], &polled, listening);
        assert_eq!(missed.new.len(), 1);
        assert_eq!(missed.missed[0].kind, "GitRepository");
        assert_eq!(missed.missed[0].revision, "main@sha1:b");

        // Still missed: a second poll replaces the entry and counts again.
        let again = judged_git(
            &git("main@sha1:c", "2026-12-02T11:01:00Z", RECEIVER),
            "main@sha1:b",
        );
        let still = update(&missed.missed, &again, listening);
        assert_eq!(still.new.len(), 1);
        assert_eq!(still.missed.len(), 1);
        assert_eq!(still.missed[0].revision, "main@sha1:c");

        let hooked = judged_git(
            &git(
                "main@sha1:d",
                "2026-12-02T11:05:00Z",
                "2026-12-02 11:04:59.9 +0000 UTC m=+1",
            ),
            "main@sha1:c",
        );
        let restored = update(&still.missed, &hooked, listening);
        assert!(restored.missed.is_empty());
        assert_eq!(restored.restored, [FluxKind::GitRepository]);
    }

    #[test]
    fn without_a_receiver_a_poll_is_no_miss() {
        let polled = judged_git(
            &git("main@sha1:b", "2026-12-02T11:00:00Z", ""),
            "main@sha1:a",
        );
        assert_eq!(
            update(&[], &polled, Listening::default()),
            Outcome::default()
        );
        let old = [MissedWebhook {
            kind: "GitRepository".into(),
            revision: "x".into(),
            found_at: Time(Timestamp::UNIX_EPOCH),
        }];
        assert!(
            update(&old, &[], Listening::default()).missed.is_empty(),
            "the webhook was removed: nothing to miss"
        );
    }

    #[test]
    fn a_request_or_spec_change_neither_misses_nor_restores() {
        let requested = judged_git(
            &git(
                "main@sha1:b",
                "2026-12-02T11:00:01Z",
                "2026-12-02T11:00:00Z",
            ),
            "main@sha1:a",
        );
        assert_eq!(requested[0].trigger, Trigger::Request);
        let old = [MissedWebhook {
            kind: "GitRepository".into(),
            revision: "x".into(),
            found_at: Time(Timestamp::UNIX_EPOCH),
        }];
        let listening = Listening {
            git: true,
            registry: true,
        };
        let o = update(&old, &requested, listening);
        assert_eq!(o.missed, old);
        assert!(o.new.is_empty() && o.restored.is_empty());
    }

    #[test]
    fn a_new_image_found_by_a_periodic_scan_is_a_missed_registry_webhook() {
        let judge_images =
            |before: &Delivery, repository: &DynamicObject, policy: &DynamicObject| {
                let children = [
                    (
                        FluxKind::ImageRepository,
                        "app".to_string(),
                        Some(repository),
                    ),
                    (FluxKind::ImagePolicy, "app".to_string(), Some(policy)),
                ];
                judge(Some(before), &children)
            };
        let mut policy = DynamicObject::new("app", &FluxKind::ImagePolicy.api_resource());
        policy.data = json!({
            "spec": {"imageRepositoryRef": {"name": "app"}},
            "status": {"latestRef": {"name": "reg/app", "tag": "2"},
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": "2026-12-02T12:00:00Z"}]}});
        let mut repository = DynamicObject::new("app", &FluxKind::ImageRepository.api_resource());
        repository.data = json!({"status": {"lastHandledReconcileAt": RECEIVER}});
        let before = Delivery {
            images: vec![ImageDelivery {
                policy: "app".into(),
                latest_image: "reg/app:1".into(),
            }],
            ..Default::default()
        };
        let j = judge_images(&before, &repository, &policy);
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].kind, FluxKind::ImageRepository);
        assert_eq!(j[0].revision, "reg/app:2");
        assert_eq!(j[0].trigger, Trigger::Poll);

        let listening = Listening {
            git: false,
            registry: true,
        };
        assert_eq!(update(&[], &j, listening).new[0].kind, "ImageRepository");

        // The Receiver's scan found the tag at once; the policy selected it 9 s later, more than
        // three quarters of a 10 s fallback interval after the request: still the webhook's.
        repository.data = json!({"spec": {"interval": "10s"},
            "status": {"lastHandledReconcileAt": "2026-12-02 11:59:50.9 +0000 UTC m=+1",
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": "2026-12-02T11:59:51Z"}]}});
        let j = judge_images(&before, &repository, &policy);
        assert_eq!(j[0].trigger, Trigger::Webhook);
        assert_eq!(j[0].found_at, "2026-12-02T11:59:51Z".parse().unwrap());
    }

    fn delivery(revision: &str, trigger: Option<&str>) -> Delivery {
        Delivery {
            source_revision: Some(revision.into()),
            source_trigger: trigger.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn status_records_what_was_judged_with_its_trigger() {
        let o = git("main@sha1:b", "2026-12-02T11:00:00Z", RECEIVER);
        let old = delivery("main@sha1:a", Some("Webhook"));
        let judged = judged_git(&o, "main@sha1:a");
        let r = recorded(Some(&old), delivery("main@sha1:b", None), &judged);
        assert_eq!(r, delivery("main@sha1:b", Some("Poll")));

        // Seen before: the trigger judged then stays.
        let again = recorded(Some(&r), delivery("main@sha1:b", None), &[]);
        assert_eq!(again, r);

        // The first revision is no change: recorded without a trigger, so the next is judged.
        let first = recorded(None, delivery("main@sha1:a", None), &[]);
        assert_eq!(first, delivery("main@sha1:a", None));
        let untriggered = delivery("main@sha1:a", None);
        assert_eq!(
            recorded(Some(&untriggered), delivery("main@sha1:a", None), &[]),
            untriggered
        );
    }

    #[test]
    fn a_revision_not_judged_is_not_recorded_with_an_old_trigger() {
        // The reconcile saw b unjudged (no previous revision to compare): b must not inherit a's
        // trigger, and the images are those it saw.
        let old = delivery("main@sha1:a", Some("Webhook"));
        let seen = Delivery {
            images: vec![ImageDelivery {
                policy: "app".into(),
                latest_image: "reg/app:1".into(),
            }],
            ..delivery("main@sha1:b", None)
        };
        let r = recorded(Some(&old), seen.clone(), &[]);
        assert_eq!(r, seen);
    }
}

//! Observed latency: what the last new revision and the last new image really took, read from the
//! Flux objects' own status (no logs, no clock of fluxtune's). Flux stamps each condition with
//! the second its message changed: the Kustomization's Ready says `Applied revision: <rev>` from
//! the moment it applied it, the ImagePolicy's Ready names the tag from the moment the scan
//! result selected it. The start is the earliest known cause: a webhook's request (Receivers write
//! the time they were called, to the nanosecond) or the fetch or scan itself.
//!
//! With spec.kustomizations the end is the last Kustomization's apply of the revision.
//!
//! A sample is taken once per revision or image: Flux re-applies the same revision at every
//! interval, which moves its Ready time but is no new delivery.

use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube::api::DynamicObject;
use serde_json::Value;

use super::trigger::{self, Trigger, timestamp};
use crate::{
    api::{LatencySample, ObservedLatency},
    flux::FluxKind,
    render::budget::go_duration,
};

/// One delivery, as measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub revision: String,
    pub took: Duration,
    pub trigger: &'static str,
    pub applied_at: Timestamp,
}

impl Sample {
    fn status(&self) -> LatencySample {
        LatencySample {
            revision: self.revision.clone(),
            duration: go_duration(self.took),
            trigger: self.trigger.into(),
            applied_at: Time(self.applied_at),
        }
    }
}

/// The samples the children show now; either may be absent (nothing applied yet, or the apply
/// of the latest change not done).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub commit: Option<Sample>,
    /// With the trigger of the scan that found it: Webhook or Scan.
    pub image: Option<Sample>,
}

/// Reads the samples from the profile's children (kind, name, cached object). `judged` is the
/// source revision's trigger as judged when it was new (status.delivery): the object may have
/// changed since (a fallback interval applied after the fetch is no spec change that caused it).
pub fn observe(
    children: &[(FluxKind, String, Option<&DynamicObject>)],
    judged: Option<(&str, &str)>,
) -> Observed {
    let of = |kind: FluxKind| {
        children
            .iter()
            .filter(move |(k, _, _)| *k == kind)
            .filter_map(|(_, _, o)| *o)
    };
    let Some(source) = of(FluxKind::GitRepository).next() else {
        return Observed::default();
    };
    let Some((applied, applied_at)) = applied_by_all(children) else {
        return Observed::default();
    };
    Observed {
        commit: commit(source, &applied, applied_at, judged),
        image: of(FluxKind::ImageUpdateAutomation)
            .next()
            .and_then(|automation| {
                image(
                    automation,
                    &of(FluxKind::ImagePolicy).collect::<Vec<_>>(),
                    &of(FluxKind::ImageRepository).collect::<Vec<_>>(),
                    &applied,
                    applied_at,
                )
            }),
    }
}

fn ready(object: &DynamicObject) -> Option<&Value> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The revision the Kustomization applied last, and when (its Ready condition's message names the
/// revision from the moment it applied it).
fn applied(kustomization: &DynamicObject) -> Option<(String, Timestamp)> {
    let revision = kustomization.data["status"]["lastAppliedRevision"].as_str()?;
    let ready = ready(kustomization)?;
    ready["message"].as_str()?.contains(revision).then(|| {
        Some((
            revision.to_string(),
            timestamp(&ready["lastTransitionTime"])?,
        ))
    })?
}

/// The revision every Kustomization has applied, and when the last of them applied it (with
/// spec.kustomizations a delivery ends with the last one, typically the apps after the
/// infrastructure they depend on). None until all have applied the same revision.
fn applied_by_all(
    children: &[(FluxKind, String, Option<&DynamicObject>)],
) -> Option<(String, Timestamp)> {
    let mut all = children
        .iter()
        .filter(|(kind, _, _)| *kind == FluxKind::Kustomization)
        .map(|(_, _, object)| object.and_then(applied));
    let (revision, mut at) = all.next()??;
    for next in all {
        let (r, t) = next?;
        if r != revision {
            return None;
        }
        at = at.max(t);
    }
    Some((revision, at))
}

/// Flux stamps conditions in whole seconds (truncated) while a Receiver's request time has
/// nanoseconds: measured from such a start, a whole-second end is taken at the middle of its
/// second, so a sub-second delivery does not read as zero (or less).
fn between(from: Timestamp, to: Timestamp) -> Duration {
    let to = if to.subsec_nanosecond() == 0 && from.subsec_nanosecond() != 0 {
        to + SignedDuration::from_millis(500)
    } else {
        to
    };
    Duration::try_from(to.duration_since(from).max(SignedDuration::ZERO)).unwrap_or_default()
}

/// The source's revision, from its trigger to the apply: only when the applied revision is the one
/// the source holds (an older one applied late would be measured from the wrong fetch).
fn commit(
    source: &DynamicObject,
    applied: &str,
    applied_at: Timestamp,
    judged: Option<(&str, &str)>,
) -> Option<Sample> {
    let artifact = &source.data["status"]["artifact"];
    if artifact["revision"].as_str()? != applied {
        return None;
    }
    let fetched = timestamp(&artifact["lastUpdateTime"])?;
    let (now, at) = trigger::trigger(source, fetched);
    let cause = match judged {
        Some((revision, cause)) if revision == applied => cause,
        _ => now.as_str(),
    };
    // A request older than the fetch's second started it; otherwise the fetch is the start.
    let requested = matches!(cause, "Webhook" | "WebhookRescan" | "Request");
    let start = at.filter(|at| requested && *at <= fetched + SignedDuration::from_secs(1));
    Some(Sample {
        revision: applied.into(),
        took: between(start.unwrap_or(fetched), applied_at),
        trigger: cause_str(cause),
        applied_at,
    })
}

/// The static name of a trigger read back from status.
fn cause_str(cause: &str) -> &'static str {
    [
        Trigger::Webhook,
        Trigger::Guard,
        Trigger::Request,
        Trigger::SpecChange,
        Trigger::Poll,
    ]
    .into_iter()
    .map(Trigger::as_str)
    .find(|t| *t == cause)
    .unwrap_or("Poll")
}

/// The automation's last push, when the applied revision is that push: from the scan that found
/// the image the policy selected (the repository's last change of tags, `trigger::found_by_scan`),
/// or the registry webhook that asked for that scan, to the apply.
fn image(
    automation: &DynamicObject,
    policies: &[&DynamicObject],
    repositories: &[&DynamicObject],
    applied: &str,
    applied_at: Timestamp,
) -> Option<Sample> {
    let status = &automation.data["status"];
    let pushed = status["lastPushCommit"]
        .as_str()
        .filter(|c| !c.is_empty())?;
    let pushed_at = timestamp(&status["lastPushTime"])?;
    if !applied.ends_with(pushed) {
        return None;
    }
    // The policy whose latest image changed last before the push: the one the push wrote.
    let (policy, selected_at) = policies
        .iter()
        .filter_map(|p| {
            let ready = ready(p)?;
            let tag = p.data["status"]["latestRef"]["tag"].as_str()?;
            let at = timestamp(&ready["lastTransitionTime"])?;
            (ready["message"].as_str()?.contains(tag) && at <= pushed_at).then_some((*p, at))
        })
        .max_by_key(|(_, at)| *at)?;
    let latest = &policy.data["status"]["latestRef"];
    let image = format!(
        "{}:{}",
        latest["name"].as_str().unwrap_or_default(),
        latest["tag"].as_str().unwrap_or_default()
    );
    let repository = policy.data["spec"]["imageRepositoryRef"]["name"].as_str();
    let scanned = repositories
        .iter()
        .find(|r| Some(r.metadata.name.as_deref().unwrap_or_default()) == repository);
    let found_at = scanned.map_or(selected_at, |r| trigger::found_by_scan(r, selected_at));
    let (cause, start) = match scanned.map(|r| trigger::trigger(r, found_at)) {
        Some((t, Some(at))) if t.by_webhook() && at <= found_at + SignedDuration::from_secs(1) => {
            (Trigger::Webhook, at)
        }
        _ => (Trigger::Poll, found_at),
    };
    Some(Sample {
        revision: image,
        took: between(start, applied_at),
        trigger: if cause == Trigger::Webhook {
            "Webhook"
        } else {
            "Scan"
        },
        applied_at,
    })
}

/// What status keeps, and which samples are new (for the histogram and the over-budget Event).
/// The stored sample of a revision or image stands: a later look at the same one measures Flux's
/// periodic re-apply, not the delivery.
pub fn merge(
    old: Option<&ObservedLatency>,
    now: &Observed,
) -> (ObservedLatency, Vec<(&'static str, Sample)>) {
    let mut merged = old.cloned().unwrap_or_default();
    let mut new = Vec::new();
    for (path, sample, slot) in [
        (
            "commit_to_deploy",
            &now.commit,
            &mut merged.commit_to_deploy,
        ),
        ("image_to_deploy", &now.image, &mut merged.image_to_deploy),
    ] {
        let Some(sample) = sample else { continue };
        if slot.as_ref().is_some_and(|s| s.revision == sample.revision) {
            continue;
        }
        *slot = Some(sample.status());
        new.push((path, sample.clone()));
    }
    merged.latest = [&merged.commit_to_deploy, &merged.image_to_deploy]
        .into_iter()
        .flatten()
        .max_by_key(|s| s.applied_at.0)
        .map(|s| s.duration.clone());
    (merged, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RECEIVER: &str = "2026-12-02 10:00:00.200000000 +0000 UTC m=+5.1";

    fn object(kind: FluxKind, name: &str, data: Value) -> DynamicObject {
        let mut o = DynamicObject::new(name, &kind.api_resource());
        o.data = data;
        o
    }

    fn ready_at(message: &str, at: &str) -> Value {
        json!([{"type": "Ready", "status": "True", "reason": "Succeeded",
                "message": message, "lastTransitionTime": at}])
    }

    fn git(revision: &str, fetched: &str, handled: &str) -> DynamicObject {
        object(
            FluxKind::GitRepository,
            "c",
            json!({"status": {
            "artifact": {"revision": revision, "lastUpdateTime": fetched},
            "lastHandledReconcileAt": handled}}),
        )
    }

    fn kustomization(revision: &str, at: &str) -> DynamicObject {
        named_kustomization("c", revision, at)
    }

    fn named_kustomization(name: &str, revision: &str, at: &str) -> DynamicObject {
        object(
            FluxKind::Kustomization,
            name,
            json!({"status": {
            "lastAppliedRevision": revision,
            "conditions": ready_at(&format!("Applied revision: {revision}"), at)}}),
        )
    }

    fn children(objects: &[DynamicObject]) -> Vec<(FluxKind, String, Option<&DynamicObject>)> {
        objects
            .iter()
            .map(|o| {
                let kind = FluxKind::ALL
                    .into_iter()
                    .find(|k| k.kind() == o.types.as_ref().unwrap().kind)
                    .unwrap();
                (kind, o.metadata.name.clone().unwrap(), Some(o))
            })
            .collect()
    }

    #[test]
    fn a_webhook_push_is_measured_from_the_webhooks_arrival() {
        let objects = [
            git("main@sha1:a", "2026-12-02T10:00:00Z", RECEIVER),
            kustomization("main@sha1:a", "2026-12-02T10:00:01Z"),
        ];
        let seen = observe(&children(&objects), None);
        let commit = seen.commit.unwrap();
        assert_eq!(commit.trigger, "Webhook");
        assert_eq!(
            commit.took,
            Duration::from_millis(1300),
            "the end's second, halved"
        );
        assert_eq!(seen.image, None);
    }

    #[test]
    fn the_trigger_judged_when_the_revision_was_new_stands() {
        let objects = [
            git("main@sha1:a", "2026-12-02T10:00:00Z", RECEIVER),
            kustomization("main@sha1:a", "2026-12-02T10:00:03Z"),
        ];
        let commit = observe(&children(&objects), Some(("main@sha1:a", "Poll")))
            .commit
            .unwrap();
        assert_eq!(commit.trigger, "Poll");
        assert_eq!(commit.took, Duration::from_secs(3), "from the fetch");
    }

    #[test]
    fn a_polled_revision_is_measured_from_the_fetch() {
        let objects = [
            git("main@sha1:b", "2026-12-02T11:00:00Z", RECEIVER),
            kustomization("main@sha1:b", "2026-12-02T11:00:03Z"),
        ];
        let commit = observe(&children(&objects), None).commit.unwrap();
        assert_eq!(commit.trigger, "Poll");
        assert_eq!(commit.took, Duration::from_secs(3));
    }

    #[test]
    fn several_kustomizations_are_measured_to_the_last_apply_once_all_agree() {
        let git = git("main@sha1:b", "2026-12-02T11:00:00Z", "");
        let infra = named_kustomization("c-infra", "main@sha1:b", "2026-12-02T11:00:02Z");
        let apps_old = named_kustomization("c-apps", "main@sha1:a", "2026-12-02T10:00:00Z");
        let apps = named_kustomization("c-apps", "main@sha1:b", "2026-12-02T11:00:07Z");
        let waiting = [git.clone(), infra.clone(), apps_old];
        assert_eq!(observe(&children(&waiting), None), Observed::default());
        let objects = [git, infra, apps];
        let commit = observe(&children(&objects), None).commit.unwrap();
        assert_eq!(commit.took, Duration::from_secs(7), "to the apps' apply");
        assert_eq!(commit.applied_at, "2026-12-02T11:00:07Z".parse().unwrap());
    }

    #[test]
    fn nothing_is_measured_until_the_source_revision_is_applied() {
        let objects = [
            git("main@sha1:c", "2026-12-02T11:00:00Z", ""),
            kustomization("main@sha1:b", "2026-12-02T10:00:03Z"),
        ];
        assert_eq!(observe(&children(&objects), None), Observed::default());
    }

    #[test]
    fn an_image_is_measured_from_the_scan_that_found_it_to_the_apply() {
        let policy = object(
            FluxKind::ImagePolicy,
            "app",
            json!({
            "spec": {"imageRepositoryRef": {"name": "app"}},
            "status": {"latestRef": {"name": "reg/app", "tag": "1.0.1"},
                       "conditions": ready_at("Latest image tag for reg/app resolved to 1.0.1", "2026-12-02T10:00:00Z")}}),
        );
        let repository = object(
            FluxKind::ImageRepository,
            "app",
            json!({"status": {
            "lastHandledReconcileAt": RECEIVER,
            "lastScanResult": {"scanTime": "2026-12-02T10:00:00Z"}}}),
        );
        let automation = object(
            FluxKind::ImageUpdateAutomation,
            "c",
            json!({"status": {
            "lastPushCommit": "d00d", "lastPushTime": "2026-12-02T10:00:01Z"}}),
        );
        let objects = [
            git(
                "main@sha1:d00d",
                "2026-12-02T10:00:01Z",
                "fluxtune-push-d00d",
            ),
            kustomization("main@sha1:d00d", "2026-12-02T10:00:02Z"),
            repository,
            policy,
            automation,
        ];
        let seen = observe(&children(&objects), None);
        let image = seen.image.unwrap();
        assert_eq!(image.revision, "reg/app:1.0.1");
        assert_eq!(image.trigger, "Webhook");
        assert_eq!(image.took, Duration::from_millis(2300));
        assert_eq!(
            seen.commit.unwrap().trigger,
            "Request",
            "the push handed on"
        );
    }

    #[test]
    fn a_sample_is_taken_once_per_revision() {
        let sample = |revision: &str, secs: u64, at: &str| Sample {
            revision: revision.into(),
            took: Duration::from_secs(secs),
            trigger: "Webhook",
            applied_at: at.parse().unwrap(),
        };
        let first = Observed {
            commit: Some(sample("a", 1, "2026-12-02T10:00:00Z")),
            image: None,
        };
        let (status, new) = merge(None, &first);
        assert_eq!(new.len(), 1);
        assert_eq!(status.latest.as_deref(), Some("1s"));
        // Flux re-applied the same revision an hour later: not a delivery.
        let again = Observed {
            commit: Some(sample("a", 3600, "2026-12-02T11:00:00Z")),
            image: None,
        };
        let (kept, new) = merge(Some(&status), &again);
        assert!(new.is_empty());
        assert_eq!(kept, status);
        let image = Observed {
            commit: None,
            image: Some(sample("reg/app:2", 2, "2026-12-02T12:00:00Z")),
        };
        let (both, new) = merge(Some(&status), &image);
        assert_eq!(new[0].0, "image_to_deploy");
        assert_eq!(both.latest.as_deref(), Some("2s"), "the most recent");
        assert!(both.commit_to_deploy.is_some());
    }
}

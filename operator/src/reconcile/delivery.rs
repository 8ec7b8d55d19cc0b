//! Delivered, not just applied: what the profile's Flux objects say of themselves. The profile is
//! Ready only when each is Ready for its current generation (every Kustomization, with
//! spec.kustomizations); otherwise the first one that is not, in apply order (a source before
//! what consumes it, a Kustomization after those it depends on), names the reason.

use kube::{ResourceExt, api::DynamicObject};
use serde_json::Value;

use crate::{
    api::{Delivery, ImageDelivery},
    flux::FluxKind,
};

/// One child that is not Ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// `SourceNotReady`, `ApplyFailed`, ...: the profile's Ready reason.
    pub reason: &'static str,
    /// `GitRepository/cluster1: FetchFailed: ...`, with the child's own reason and message.
    pub message: String,
    /// The child failed (Ready=False or Stalled) rather than still working on it.
    pub failed: bool,
    /// The child is Stalled: it will not progress without a change.
    pub stalled: bool,
}

/// What the children say, read from the caches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub delivery: Delivery,
    /// The first child that is not Ready, if any.
    pub not_ready: Option<NotReady>,
}

/// The profile's Ready reason when a child of this kind is not Ready.
pub fn reason(kind: FluxKind) -> &'static str {
    match kind {
        FluxKind::GitRepository => "SourceNotReady",
        FluxKind::Kustomization => "ApplyFailed",
        FluxKind::ImageRepository => "ImageRepositoryNotReady",
        FluxKind::ImagePolicy => "ImagePolicyNotReady",
        FluxKind::ImageUpdateAutomation => "AutomationNotReady",
        FluxKind::Receiver => "ReceiverNotReady",
    }
}

/// `children` in apply order: the cached object of each owned child, or None when the cache has
/// none yet (just created).
pub fn health(children: &[(FluxKind, String, Option<&DynamicObject>)]) -> Health {
    let mut health = Health::default();
    for (kind, name, object) in children {
        let k = kind.kind();
        let Some(object) = object else {
            health.not_ready.get_or_insert(NotReady {
                reason: reason(*kind),
                message: format!("{k}/{name}: not reported yet"),
                failed: false,
                stalled: false,
            });
            continue;
        };
        let status = &object.data["status"];
        record(&mut health.delivery, *kind, name, status);
        if health.not_ready.is_none() {
            health.not_ready = not_ready(*kind, name, object);
        }
    }
    health.delivery.applied_revision = applied_by_all(children);
    health
}

/// The revision every Kustomization has applied: None while any has applied none, or while
/// they disagree (one applied a new revision, another has not yet).
fn applied_by_all(children: &[(FluxKind, String, Option<&DynamicObject>)]) -> Option<String> {
    let mut applied = children
        .iter()
        .filter(|(kind, _, _)| *kind == FluxKind::Kustomization)
        .map(|(_, _, object)| object.and_then(|o| text(&o.data["status"]["lastAppliedRevision"])));
    let first = applied.next()??;
    applied.all(|r| r.as_ref() == Some(&first)).then_some(first)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn record(delivery: &mut Delivery, kind: FluxKind, name: &str, status: &Value) {
    match kind {
        FluxKind::GitRepository => delivery.source_revision = text(&status["artifact"]["revision"]),
        FluxKind::Kustomization => delivery.applied_revision = text(&status["lastAppliedRevision"]),
        FluxKind::ImagePolicy => {
            let latest = &status["latestRef"];
            if let (Some(image), Some(tag)) = (text(&latest["name"]), text(&latest["tag"])) {
                delivery.images.push(ImageDelivery {
                    policy: name.to_string(),
                    latest_image: format!("{image}:{tag}"),
                });
            }
        }
        _ => {}
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// kstatus's reading of one Flux object: Stalled, or Ready=False, is a failure; a generation not
/// observed yet, Reconciling, or a Ready that is missing or Unknown is still in progress.
fn not_ready(kind: FluxKind, name: &str, object: &DynamicObject) -> Option<NotReady> {
    let k = kind.kind();
    let status = &object.data["status"];
    let said = |c: &Value| {
        format!(
            "{k}/{name}: {}: {}",
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        )
    };
    let not = |message: String, failed: bool, stalled: bool| NotReady {
        reason: reason(kind),
        message,
        failed,
        stalled,
    };
    if let Some(stalled) = condition(status, "Stalled").filter(|c| c["status"] == "True") {
        return Some(not(said(stalled), true, true));
    }
    // The Ready condition's own observedGeneration: Flux leaves status.observedGeneration at -1
    // while a fetch fails, but stamps each condition with the generation it judged.
    let generation = object.metadata.generation;
    let ready = condition(status, "Ready");
    let observed = ready
        .and_then(|c| c["observedGeneration"].as_i64())
        .or_else(|| status["observedGeneration"].as_i64());
    if generation.is_some() && observed < generation {
        return Some(not(
            format!(
                "{k}/{name}: generation {} not observed yet",
                generation.unwrap_or_default()
            ),
            false,
            false,
        ));
    }
    // Ready with nothing delivered yet is not delivered (a Kustomization that never applied).
    let nothing = match kind {
        FluxKind::GitRepository => text(&status["artifact"]["revision"]).is_none(),
        FluxKind::Kustomization => text(&status["lastAppliedRevision"]).is_none(),
        _ => false,
    };
    match ready {
        Some(ready) if nothing && ready["status"] == "True" => Some(not(
            format!("{k}/{name}: nothing delivered yet"),
            false,
            false,
        )),
        Some(ready) if ready["status"] == "True" => None,
        Some(ready) if ready["status"] == "False" => Some(not(said(ready), true, false)),
        Some(ready) => Some(not(said(ready), false, false)),
        None => Some(not(
            format!("{k}/{name}: no Ready condition yet"),
            false,
            false,
        )),
    }
}

/// The parts of a child's status that delivery reads: a change of them wakes the profile. Not
/// transition times, scan times or anything else Flux rewrites on a no-op reconcile.
pub fn fingerprint(kind: FluxKind, child: &DynamicObject) -> String {
    let mut delivery = Delivery::default();
    record(
        &mut delivery,
        kind,
        &child.name_any(),
        &child.data["status"],
    );
    format!(
        "{delivery:?}{:?}",
        not_ready(kind, &child.name_any(), child)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: FluxKind, generation: i64, status: Value) -> DynamicObject {
        let mut o = DynamicObject::new("x", &kind.api_resource());
        o.metadata.generation = Some(generation);
        o.data = json!({ "status": status });
        o
    }

    fn ready(observed: i64) -> Value {
        json!({"observedGeneration": observed,
               "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok"}]})
    }

    #[test]
    fn every_child_ready_is_delivered_with_its_revisions() {
        let mut git = ready(1);
        git["artifact"] = json!({"revision": "main@sha1:abc"});
        let mut ks = ready(2);
        ks["lastAppliedRevision"] = json!("main@sha1:abc");
        let mut policy = ready(1);
        policy["latestRef"] = json!({"name": "ghcr.io/acme/app", "tag": "1.2.3"});
        let (g, k, p) = (
            object(FluxKind::GitRepository, 1, git),
            object(FluxKind::Kustomization, 2, ks),
            object(FluxKind::ImagePolicy, 1, policy),
        );
        let h = health(&[
            (FluxKind::GitRepository, "cluster1".into(), Some(&g)),
            (FluxKind::Kustomization, "cluster1".into(), Some(&k)),
            (FluxKind::ImagePolicy, "cluster1-app".into(), Some(&p)),
        ]);
        assert_eq!(h.not_ready, None);
        assert_eq!(h.delivery.source_revision.as_deref(), Some("main@sha1:abc"));
        assert_eq!(
            h.delivery.applied_revision.as_deref(),
            Some("main@sha1:abc")
        );
        assert_eq!(h.delivery.images[0].latest_image, "ghcr.io/acme/app:1.2.3");
    }

    #[test]
    fn the_first_failing_child_in_apply_order_names_the_reason() {
        let failing = json!({"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "False", "reason": "GitOperationFailed", "message": "authentication required"}]});
        let (g, k) = (
            object(FluxKind::GitRepository, 1, failing.clone()),
            object(FluxKind::Kustomization, 1, failing),
        );
        let h = health(&[
            (FluxKind::GitRepository, "cluster1".into(), Some(&g)),
            (FluxKind::Kustomization, "cluster1".into(), Some(&k)),
        ]);
        let n = h.not_ready.unwrap();
        assert_eq!(n.reason, "SourceNotReady");
        assert!(n.failed && !n.stalled);
        assert_eq!(
            n.message,
            "GitRepository/cluster1: GitOperationFailed: authentication required"
        );
    }

    fn applied(revision: &str) -> Value {
        let mut ks = ready(1);
        ks["lastAppliedRevision"] = json!(revision);
        ks
    }

    #[test]
    fn the_applied_revision_is_the_one_every_kustomization_applied() {
        let infra = object(FluxKind::Kustomization, 1, applied("main@sha1:new"));
        let apps_old = object(FluxKind::Kustomization, 1, applied("main@sha1:old"));
        let apps_new = object(FluxKind::Kustomization, 1, applied("main@sha1:new"));
        let of = |apps: Option<&DynamicObject>| {
            health(&[
                (FluxKind::Kustomization, "c-infra".into(), Some(&infra)),
                (FluxKind::Kustomization, "c-apps".into(), apps),
            ])
        };
        assert_eq!(of(Some(&apps_old)).delivery.applied_revision, None);
        assert_eq!(of(None).delivery.applied_revision, None);
        let all = of(Some(&apps_new));
        assert_eq!(
            all.delivery.applied_revision.as_deref(),
            Some("main@sha1:new")
        );
        assert_eq!(all.not_ready, None);
    }

    #[test]
    fn ready_waits_for_every_kustomization_and_names_the_first_failing_one() {
        let infra = object(FluxKind::Kustomization, 1, applied("main@sha1:a"));
        let failing = json!({"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "kustomize build failed"}]});
        let apps = object(FluxKind::Kustomization, 1, failing.clone());
        let web = object(FluxKind::Kustomization, 1, failing);
        let h = health(&[
            (FluxKind::Kustomization, "c-infra".into(), Some(&infra)),
            (FluxKind::Kustomization, "c-apps".into(), Some(&apps)),
            (FluxKind::Kustomization, "c-web".into(), Some(&web)),
        ]);
        let n = h.not_ready.unwrap();
        assert_eq!(n.reason, "ApplyFailed");
        assert_eq!(
            n.message,
            "Kustomization/c-apps: BuildFailed: kustomize build failed"
        );
    }

    #[test]
    fn in_progress_is_not_failed() {
        let unknown = json!({"observedGeneration": 2, "conditions": [
            {"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "reconciliation in progress"}]});
        let k = object(FluxKind::Kustomization, 2, unknown);
        let stale = object(FluxKind::ImagePolicy, 3, ready(2));
        for (kind, o) in [
            (FluxKind::Kustomization, &k),
            (FluxKind::ImagePolicy, &stale),
        ] {
            let n = health(&[(kind, "x".into(), Some(o))]).not_ready.unwrap();
            assert!(!n.failed, "{n:?}");
        }
        let n = health(&[(FluxKind::Receiver, "r".into(), None)])
            .not_ready
            .unwrap();
        assert_eq!(n.reason, "ReceiverNotReady");
        assert!(!n.failed);
    }

    #[test]
    fn a_failed_fetch_is_judged_by_the_conditions_generation() {
        // source-controller while the clone fails: status.observedGeneration stays -1.
        let failing = json!({"observedGeneration": -1, "conditions": [
            {"type": "Ready", "status": "False", "reason": "GitOperationFailed",
             "message": "repository not found", "observedGeneration": 1}]});
        let g = object(FluxKind::GitRepository, 1, failing);
        let n = health(&[(FluxKind::GitRepository, "c".into(), Some(&g))])
            .not_ready
            .unwrap();
        assert!(n.failed, "{n:?}");
        assert!(n.message.contains("repository not found"), "{}", n.message);
    }

    #[test]
    fn ready_with_nothing_applied_is_not_delivered() {
        let k = object(FluxKind::Kustomization, 1, ready(1));
        let n = health(&[(FluxKind::Kustomization, "c".into(), Some(&k))])
            .not_ready
            .unwrap();
        assert!(
            !n.failed && n.message.contains("nothing delivered yet"),
            "{n:?}"
        );
    }

    #[test]
    fn stalled_children_stall_the_profile() {
        let stalled = json!({"observedGeneration": 1, "conditions": [
            {"type": "Stalled", "status": "True", "reason": "InvalidURL", "message": "bad"},
            {"type": "Ready", "status": "False", "reason": "InvalidURL", "message": "bad"}]});
        let g = object(FluxKind::GitRepository, 1, stalled);
        let n = health(&[(FluxKind::GitRepository, "c".into(), Some(&g))])
            .not_ready
            .unwrap();
        assert!(n.stalled && n.failed);
    }

    #[test]
    fn the_fingerprint_ignores_what_flux_rewrites_on_a_no_op() {
        let mut a = ready(1);
        a["lastScanResult"] = json!({"scanTime": "2026-12-02T10:00:00Z", "tagCount": 3});
        a["conditions"][0]["lastTransitionTime"] = json!("2026-12-02T10:00:00Z");
        let mut b = a.clone();
        b["lastScanResult"]["scanTime"] = json!("2026-12-02T10:10:00Z");
        b["conditions"][0]["lastTransitionTime"] = json!("2026-12-02T10:10:00Z");
        let (a, b) = (
            object(FluxKind::ImageRepository, 1, a),
            object(FluxKind::ImageRepository, 1, b),
        );
        assert_eq!(
            fingerprint(FluxKind::ImageRepository, &a),
            fingerprint(FluxKind::ImageRepository, &b)
        );
    }
}

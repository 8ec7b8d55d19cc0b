//! The reconcile is safe on a real fleet: deletion never takes what it should not, ownership is
//! proven by UID, conflicts block what depends on them, status never claims what was not done.
//! Each test here fails against a reconcile that lacks the rule it names.

use std::time::{Duration, Instant};

use fluxtune::{api::FluxProfile, flux::FluxKind};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy},
};
use serde_json::{Value, json};

use crate::{
    operator::{
        annotate_profile, apply_profile, children, condition, get_profile, names, profile, setup,
        wait_applied, wait_ready, webhook_spec,
    },
    support::{self, Operator, PATIENCE, eventually},
};

fn poll_spec(cluster: &str) -> Value {
    json!({
        "cluster": {"name": cluster},
        "source": {"url": "https://git.example.com/acme/kubeconf.git"},
    })
}

fn named(ns: &str, name: &str, spec: Value) -> Value {
    let mut doc = profile(ns, spec);
    doc["metadata"]["name"] = json!(name);
    doc
}

async fn writes(op: &Operator) -> u64 {
    let mut n = 0;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        n += op.requests(method).await;
    }
    n
}

fn profiles(client: &Client, ns: &str) -> Api<FluxProfile> {
    Api::namespaced(client.clone(), ns)
}

/// Keeps a deleted profile in its "being deleted" state (deletionTimestamp set) for as long as a
/// test needs: the window in which a reconcile used to race the garbage collector.
const HOLD: &str = "e2e.fluxtune.dev/hold";

async fn hold_deletion(client: &Client, ns: &str, name: &str, hold: bool) {
    // The collector's own finalizers (orphan, foregroundDeletion) stay as they are.
    let mut finalizers = profiles(client, ns)
        .get(name)
        .await
        .unwrap()
        .finalizers()
        .to_vec();
    finalizers.retain(|f| f != HOLD);
    if hold {
        finalizers.push(HOLD.into());
    }
    profiles(client, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
        )
        .await
        .unwrap();
}

/// Requests a reconcile of every profile in `ns`: a reconcile that ignored the deletion would
/// write now.
async fn poke_all(client: &Client, ns: &str, value: &str) {
    for p in profiles(client, ns)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        annotate_profile_named(client, ns, &p.name_any(), value).await;
    }
}

async fn annotate_profile_named(client: &Client, ns: &str, name: &str, value: &str) {
    profiles(client, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "reconcile.fluxcd.io/requestedAt": value}}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn orphan_deletion_of_many_profiles_keeps_every_child() {
    let (client, ns, op) = setup("orphan", false).await;
    let n = 12;
    for i in 0..n {
        apply_profile(
            &client,
            &named(&ns, &format!("c{i}"), poll_spec(&format!("c{i}"))),
        )
        .await;
    }
    eventually("every profile Ready", PATIENCE, || async {
        let list = profiles(&client, &ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        list.items
            .iter()
            .all(|p| condition(p, "Applied") == Some(("True", "ReconciliationSucceeded")))
            .then_some(())
    })
    .await;
    let before = children(&client, &ns).await;
    assert_eq!(before.len(), 2 * n);
    for i in 0..n {
        hold_deletion(&client, &ns, &format!("c{i}"), true).await;
    }

    // `kubectl delete fluxprofile --all --cascade=orphan`, all at once.
    profiles(&client, &ns)
        .delete_collection(
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                ..Default::default()
            },
            &ListParams::default(),
        )
        .await
        .unwrap();
    eventually(
        "the garbage collector removed every ownerReference",
        PATIENCE,
        || async {
            let kids = children(&client, &ns).await;
            kids.values()
                .all(|o| o.owner_references().is_empty())
                .then_some(())
        },
    )
    .await;
    // The profiles still exist, being deleted: ask each for a reconcile. One that wrote now would
    // put back an owner reference, and the collector would delete that child as dangling.
    let written = writes(&op).await;
    poke_all(&client, &ns, "while-deleting").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        writes(&op).await,
        written,
        "fluxtune wrote for a profile being deleted"
    );
    for i in 0..n {
        hold_deletion(&client, &ns, &format!("c{i}"), false).await;
    }
    eventually("the profiles are gone", PATIENCE, || async {
        let list = profiles(&client, &ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        list.items.is_empty().then_some(())
    })
    .await;
    // Give the collector time to act on any reference put back, then everything must be there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = children(&client, &ns).await;
    assert_eq!(
        names(&after),
        names(&before),
        "orphaned children were deleted"
    );
    for (key, o) in &after {
        assert_eq!(o.uid(), before[key].uid(), "{key:?} was recreated");
        assert!(o.owner_references().is_empty(), "{key:?} is owned again");
    }
}

#[tokio::test]
async fn foreground_deletion_does_not_recreate_children() {
    let (client, ns, op) = setup("foreground", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    hold_deletion(&client, &ns, "cluster1", true).await;

    profiles(&client, &ns)
        .delete("cluster1", &DeleteParams::foreground())
        .await
        .unwrap();
    // The garbage collector deletes them, and with the Flux controllers running each waits for
    // its controller to remove its finalizer; their few workers also serve every other test's
    // objects, whose fetches and scans here wait on DNS lookups that fail: a wider liveness bound.
    eventually("the children are gone", PATIENCE * 4, || async {
        let left = children(&client, &ns).await;
        if left.is_empty() {
            return Some(());
        }
        // The collector drops foregroundDeletion at once if its graph has not seen the children
        // yet (they are a fraction of a second old here), and then leaves them while the held
        // profile exists. Deleting them does what it would have done: the children vanish while
        // the profile is being deleted, which is what this test is about.
        let p = profiles(&client, &ns).get("cluster1").await.unwrap();
        if !p.finalizers().iter().any(|f| f == "foregroundDeletion") {
            for (kind, name) in left.keys() {
                let kind = FluxKind::from_kind(kind).unwrap();
                let _ = support::dynamic_api(&client, &ns, kind)
                    .delete(name, &DeleteParams::default())
                    .await;
            }
        }
        None
    })
    .await;
    // The profile is still there, being deleted; a reconcile that ignored that would recreate
    // every child.
    let written = writes(&op).await;
    poke_all(&client, &ns, "while-deleting").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(children(&client, &ns).await.is_empty(), "a child came back");
    assert_eq!(
        writes(&op).await,
        written,
        "fluxtune wrote while the profile was being deleted"
    );
    hold_deletion(&client, &ns, "cluster1", false).await;
    support::gone(&profiles(&client, &ns), "cluster1").await;
}

/// A foreign GitRepository (no labels, no owner) and a foreign ImageRepository under the names the
/// profile would use: nothing that would act on them is applied, the message names them all, and
/// the profile recovers within a minute or two of their deletion, without any edit of its own.
#[tokio::test]
async fn a_foreign_source_blocks_its_dependents_until_it_is_deleted() {
    let (client, ns, op) = setup("conflict", true).await;
    let foreign_git = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "cluster1", "namespace": ns},
        "spec": {"interval": "5m", "url": "https://git.example.com/other-team/secrets.git"}
    });
    let foreign_image = json!({
        "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository",
        "metadata": {"name": "cluster1-app", "namespace": ns},
        "spec": {"interval": "5m", "image": "ghcr.io/other-team/app"}
    });
    for o in [&foreign_git, &foreign_image] {
        support::apply_as(&client, "other-team", o).await.unwrap();
    }
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    let p = wait_ready(&client, &ns, "False", "NameConflict").await;
    assert_eq!(condition(&p, "Stalled"), Some(("True", "NameConflict")));
    let message = &p.status.as_ref().unwrap().conditions[0].message;
    for expected in [
        "GitRepository/cluster1 already exists and was not created by fluxtune",
        "ImageRepository/cluster1-app already exists",
        "Kustomization/cluster1",
        "ImageUpdateAutomation/cluster1",
        "Receiver/cluster1",
        "ImagePolicy/cluster1-app",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
    let kids = children(&client, &ns).await;
    assert_eq!(
        names(&kids),
        [
            "GitRepository/cluster1",
            "ImagePolicy/cluster1-worker",
            "ImageRepository/cluster1-app",
            "ImageRepository/cluster1-worker",
        ],
        "only what does not act on a foreign object is applied"
    );
    let git = &kids[&("GitRepository".to_string(), "cluster1".to_string())];
    assert_eq!(
        git.data["spec"]["url"], foreign_git["spec"]["url"],
        "untouched"
    );
    assert!(git.owner_references().is_empty());

    // A reconcile while the conflict lasts reads the foreign objects and writes nothing: no
    // create-only write refused on every recheck, which the other team's admission webhooks and
    // audit log would see.
    let reconciled =
        || async { support::metric(&op.metrics().await, "fluxtune_reconciles_total", "") };
    let (before, patches) = (reconciled().await, op.requests("PATCH").await);
    annotate_profile(&client, &ns, "example.com/poke", "1").await;
    eventually("a reconcile of the poked profile", PATIENCE, || async {
        (reconciled().await > before).then_some(())
    })
    .await;
    assert_eq!(
        op.requests("PATCH").await,
        patches,
        "no write while the conflict lasts"
    );

    let deleted = Instant::now();
    for (kind, name) in [
        (FluxKind::GitRepository, "cluster1"),
        (FluxKind::ImageRepository, "cluster1-app"),
    ] {
        support::dynamic_api(&client, &ns, kind)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually(
        "Ready within two minutes of the foreign objects' deletion",
        Duration::from_secs(150),
        || async {
            let p = get_profile(&client, &ns).await;
            (condition(&p, "Applied") == Some(("True", "ReconciliationSucceeded"))).then_some(())
        },
    )
    .await;
    eprintln!(
        "conflict cleared {:.1} s after the foreign objects were deleted",
        deleted.elapsed().as_secs_f64()
    );
    assert_eq!(children(&client, &ns).await.len(), 8);
}

/// A child missing from the cache is written by a create the API server refuses if the object
/// exists (`apply::ABSENT`), not read first: so an object created a moment before the write, which
/// no cache could have shown, is never written over. This pins the API server's behaviour that
/// rests on: the precondition is dropped on create and refuses a write over an existing object.
#[tokio::test]
async fn a_create_only_apply_never_writes_over_an_existing_object() {
    let (client, ns, _op) = setup("absent", false).await;
    let api = support::dynamic_api(&client, &ns, FluxKind::GitRepository);
    let create_only = |url: &str| {
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "raced", "namespace": ns,
                         "resourceVersion": fluxtune::reconcile::apply::ABSENT},
            "spec": {"interval": "1h", "url": url}
        })
    };
    let params = PatchParams::apply("fluxtune").force();
    let created = api
        .patch(
            "raced",
            &params,
            &Patch::Apply(&create_only("https://a.example/x")),
        )
        .await
        .expect("an absent object is created");
    let refused = api
        .patch(
            "raced",
            &params,
            &Patch::Apply(&create_only("https://b.example/x")),
        )
        .await
        .expect_err("an existing object is not written over");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 409),
        "refused with a conflict: {refused:?}"
    );
    let now = api.get("raced").await.unwrap();
    assert_eq!(now.data["spec"]["url"], "https://a.example/x");
    // The source-controller may have written its status meanwhile; the spec is as created.
    assert_eq!(now.metadata.generation, created.metadata.generation);
}

/// A new profile's children are created without a read each (before `apply::ABSENT` every child
/// missing from the cache cost a GET, 8 for this profile), and without a read of the profile: it
/// has no children to lose (`apply::apply`).
#[tokio::test]
async fn a_new_profile_is_applied_without_reading_each_child_first() {
    let (client, ns, op) = setup("noread", true).await;
    // The start's own reads end with the Flux CRDs read once more after their watches listed.
    eventually("the start's reads done", PATIENCE, || async {
        op.logs()
            .contains("watching the Flux CRDs for changes")
            .then_some(())
    })
    .await;
    let before = op.requests("GET").await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    let gets = op.requests("GET").await - before;
    // None is expected; a watch's reconnect may add one or two.
    assert!(
        gets < 3,
        "{gets} GET requests for a new profile of 8 children"
    );
    assert_eq!(children(&client, &ns).await.len(), 8);
}

/// The profile's own GitRepository is replaced by another team's under the same name while
/// fluxtune is down: the profile's existing Kustomization, ImageUpdateAutomation and Receiver would
/// now act on it (apply that repository, push with its credentials), so they are suspended, and
/// resumed once the conflict clears.
#[tokio::test]
async fn children_of_a_replaced_source_are_suspended_until_the_conflict_clears() {
    let (client, ns, mut op) = setup("held", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    op.stop();
    let gits = support::dynamic_api(&client, &ns, FluxKind::GitRepository);
    gits.delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
    support::gone(&gits, "cluster1").await;
    support::apply_as(
        &client,
        "other-team",
        &json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "cluster1", "namespace": ns},
            "spec": {"interval": "5m", "url": "https://git.example.com/other-team/apps.git"}
        }),
    )
    .await
    .unwrap();
    op.restart();
    op.wait_ready().await;
    wait_ready(&client, &ns, "False", "NameConflict").await;
    let dependents = [
        FluxKind::Kustomization,
        FluxKind::ImageUpdateAutomation,
        FluxKind::Receiver,
    ];
    let suspended = |o: &DynamicObject| {
        o.data["spec"]["suspend"] == json!(true)
            && o.annotations()
                .contains_key("fluxtune.dev/suspended-for-conflict")
    };
    eventually("the dependents are suspended", PATIENCE, || async {
        for kind in dependents {
            let o = support::dynamic_api(&client, &ns, kind)
                .get("cluster1")
                .await
                .unwrap();
            if !suspended(&o) {
                return None;
            }
        }
        Some(())
    })
    .await;

    gits.delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "Ready again within two minutes, the dependents resumed",
        Duration::from_secs(150),
        || async {
            let p = get_profile(&client, &ns).await;
            if condition(&p, "Applied") != Some(("True", "ReconciliationSucceeded")) {
                return None;
            }
            for kind in dependents {
                let o = support::dynamic_api(&client, &ns, kind)
                    .get("cluster1")
                    .await
                    .unwrap();
                if o.data["spec"].get("suspend").is_some() || suspended(&o) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let git = gits.get("cluster1").await.unwrap();
    assert_eq!(
        git.owner_references()[0].uid,
        get_profile(&client, &ns).await.uid().unwrap()
    );
}

/// The output of `fluxtune render` applied by someone else carries fluxtune's labels but no
/// controller: it is adopted (with an Event), not refused and not duplicated.
#[tokio::test]
async fn a_labelled_object_without_a_controller_is_adopted_with_an_event() {
    let (client, ns, _op) = setup("adopt", false).await;
    let rendered = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "cluster1", "namespace": ns, "labels": {
            "app.kubernetes.io/managed-by": "fluxtune", "fluxtune.dev/profile": "cluster1"}},
        "spec": {"interval": "7m", "url": "https://git.example.com/acme/kubeconf.git"}
    });
    let before = support::apply_as(&client, "kubectl", &rendered)
        .await
        .unwrap();
    apply_profile(&client, &profile(&ns, poll_spec("cluster1"))).await;
    let p = wait_applied(&client, &ns).await;
    let git = support::dynamic_api(&client, &ns, FluxKind::GitRepository)
        .get("cluster1")
        .await
        .unwrap();
    assert_eq!(git.uid(), before.uid(), "adopted, not recreated");
    assert_eq!(git.owner_references()[0].uid, p.uid().unwrap());
    assert_eq!(git.data["spec"]["interval"], "1m", "and tuned");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    eventually("an Adopted event", PATIENCE, || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .find(|e| e.reason.as_deref() == Some("Adopted"))
            .map(|e| e.note.clone().unwrap_or_default())
            .filter(|note| note.contains("GitRepository/cluster1"))
    })
    .await;
}

/// A ValidatingAdmissionPolicy denies the Kustomization's update: the profile is Stalled with the
/// API server's message, the inventory keeps every object, and once the policy is gone a
/// reconcile request applies the change.
#[tokio::test]
async fn a_denied_apply_is_stalled_keeps_the_inventory_and_recovers() {
    let (client, ns, _op) = setup("denied", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;

    let policy = format!("e2e-deny-{ns}");
    let vap = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["kustomize.toolkit.fluxcd.io"],
                "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": ["kustomizations"]}]},
            "validations": [{"expression": "object.spec.timeout == '3m'",
                             "message": "change freeze: Kustomization timeouts stay at 3m"}]
        }
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy},
        "spec": {"policyName": policy, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}}
    });
    let apply_cluster_scoped = |doc: Value| {
        let client = client.clone();
        async move {
            let ar = if doc["kind"] == "ValidatingAdmissionPolicy" {
                kube::api::ApiResource::erase::<
                    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
                >(&())
            } else {
                kube::api::ApiResource::erase::<
                    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
                >(&())
            };
            let api: Api<DynamicObject> = Api::all_with(client, &ar);
            let obj: DynamicObject = serde_json::from_value(doc).unwrap();
            api.patch(
                &obj.name_any(),
                &PatchParams::apply("e2e-admin").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap();
            api
        }
    };
    let vaps = apply_cluster_scoped(vap).await;
    let bindings = apply_cluster_scoped(binding).await;

    // The API server enforces a new policy after a moment: a dry-run change shows when.
    let kustomizations = support::dynamic_api(&client, &ns, FluxKind::Kustomization);
    eventually("the policy is enforced", PATIENCE, || async {
        let probe = kustomizations
            .patch(
                "cluster1",
                &PatchParams {
                    dry_run: true,
                    ..Default::default()
                },
                &Patch::Merge(json!({"spec": {"timeout": "5m"}})),
            )
            .await;
        probe.is_err().then_some(())
    })
    .await;

    let mut spec = webhook_spec();
    spec["apply"] = json!({"timeout": "4m"});
    apply_profile(&client, &profile(&ns, spec)).await;
    let p = eventually("the apply is denied", PATIENCE, || async {
        let p = get_profile(&client, &ns).await;
        (condition(&p, "Stalled") == Some(("True", "ApplyRejected"))).then_some(p)
    })
    .await;
    let status = p.status.as_ref().unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "ApplyRejected");
    for expected in [
        "Kustomization/cluster1",
        "change freeze: Kustomization timeouts stay at 3m",
    ] {
        assert!(
            ready.message.contains(expected),
            "{expected:?} not in {:?}",
            ready.message
        );
    }
    eprintln!("the user reads: {}", ready.message);
    assert_eq!(
        status.inventory.len(),
        8,
        "the inventory keeps every object"
    );
    let kustomization = crate::support::kustomization(&client, &ns).await;
    assert_eq!(kustomization.data["spec"]["timeout"], "3m");

    bindings
        .delete(&policy, &DeleteParams::default())
        .await
        .unwrap();
    vaps.delete(&policy, &DeleteParams::default())
        .await
        .unwrap();
    let mut n = 0;
    eventually(
        "the change applies once the policy is gone",
        PATIENCE,
        || {
            n += 1;
            let client = client.clone();
            let ns = ns.clone();
            async move {
                annotate_profile(
                    &client,
                    &ns,
                    "reconcile.fluxcd.io/requestedAt",
                    &format!("allow-{n}"),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let p = get_profile(&client, &ns).await;
                (condition(&p, "Applied") == Some(("True", "ReconciliationSucceeded")))
                    .then_some(())
            }
        },
    )
    .await;
    let kustomization = crate::support::kustomization(&client, &ns).await;
    assert_eq!(kustomization.data["spec"]["timeout"], "4m");
}

#[tokio::test]
async fn a_spec_change_while_suspended_is_not_reported_as_applied() {
    let (client, ns, _op) = setup("suspend", false).await;
    apply_profile(&client, &profile(&ns, poll_spec("cluster1"))).await;
    wait_applied(&client, &ns).await;

    // Suspending alone changes no child: the new generation is observed, still Ready.
    let mut spec = poll_spec("cluster1");
    spec["suspend"] = json!(true);
    apply_profile(&client, &profile(&ns, spec.clone())).await;
    wait_applied(&client, &ns).await;

    // A change made while suspended is neither applied nor claimed.
    spec["apply"] = json!({"timeout": "4m"});
    apply_profile(&client, &profile(&ns, spec.clone())).await;
    let p = eventually("the profile reports the suspension", PATIENCE, || async {
        let p = get_profile(&client, &ns).await;
        (condition(&p, "Ready") == Some(("False", "Suspended"))).then_some(p)
    })
    .await;
    let observed = p.status.as_ref().unwrap().observed_generation;
    assert!(
        observed < p.metadata.generation,
        "generation {:?} reported observed ({observed:?}) although it was never applied",
        p.metadata.generation
    );
    let kustomization = crate::support::kustomization(&client, &ns).await;
    assert_eq!(kustomization.data["spec"]["timeout"], "3m");

    spec["suspend"] = json!(false);
    apply_profile(&client, &profile(&ns, spec)).await;
    wait_applied(&client, &ns).await;
    let kustomization = crate::support::kustomization(&client, &ns).await;
    assert_eq!(kustomization.data["spec"]["timeout"], "4m");
}

/// An object in the inventory that someone replaced (deleted, then created their own under the
/// name, with fluxtune's labels copied) is not the profile's any more: pruning spares it.
#[tokio::test]
async fn prune_spares_an_object_that_was_replaced_by_someone_else() {
    let (client, ns, mut op) = setup("replaced", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    op.stop();

    let images = support::dynamic_api(&client, &ns, FluxKind::ImageRepository);
    let ours = images.get("cluster1-worker").await.unwrap();
    images
        .delete("cluster1-worker", &DeleteParams::default())
        .await
        .unwrap();
    support::gone(&images, "cluster1-worker").await;
    let theirs = support::apply_as(
        &client,
        "another-team",
        &json!({
            "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository",
            "metadata": {"name": "cluster1-worker", "namespace": ns, "labels": ours.labels()},
            "spec": {"interval": "5m", "image": "ghcr.io/another-team/worker"}
        }),
    )
    .await
    .unwrap();

    // The profile drops the image: its ImageRepository is now a prune candidate by inventory and
    // by label, but the live object is not the profile's.
    let mut spec = webhook_spec();
    spec["images"].as_array_mut().unwrap().pop();
    apply_profile(&client, &profile(&ns, spec)).await;
    op.restart();
    op.wait_ready().await;
    let p = wait_applied(&client, &ns).await;
    let live = images.get("cluster1-worker").await.unwrap();
    assert_eq!(
        live.uid(),
        theirs.uid(),
        "another team's object was deleted"
    );
    assert!(
        !p.status
            .unwrap()
            .inventory
            .iter()
            .any(|e| e.name == "cluster1-worker"),
        "it is not in the inventory either"
    );
    assert!(
        images.get_opt("cluster1-app").await.unwrap().is_some(),
        "the rest stays"
    );
}

/// A platform team owns the cluster and the source; an app team applies its own image entry and
/// shared folder with its own field manager. Both survive each other's applies.
#[tokio::test]
async fn two_field_managers_own_separate_image_entries_and_shared_paths() {
    let (client, ns, _op) = setup("managers", false).await;
    let image = |name: &str| json!({"name": name, "repository": format!("ghcr.io/acme/{name}"), "policy": {"semver": {"range": ">=1.0.0"}}});
    let mut platform = poll_spec("cluster1");
    platform["cluster"]["sharedPaths"] = json!(["library"]);
    platform["images"] = json!([image("base")]);
    support::apply_as(&client, "platform", &profile(&ns, platform.clone()))
        .await
        .unwrap();
    let app_team = json!({
        "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
        "metadata": {"name": "cluster1", "namespace": ns},
        "spec": {"cluster": {"sharedPaths": ["team-a"]}, "images": [image("app")]}
    });
    support::apply_as(&client, "app-team", &app_team)
        .await
        .unwrap();
    // The platform team re-applies its own configuration, unchanged.
    support::apply_as(&client, "platform", &profile(&ns, platform))
        .await
        .unwrap();

    let p = wait_applied(&client, &ns).await;
    let images: Vec<_> = p.spec.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(images, ["base", "app"]);
    let shared: Vec<_> = p
        .spec
        .cluster
        .shared_paths
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(shared, ["library", "team-a"]);
    let kids = children(&client, &ns).await;
    for name in ["ImagePolicy/cluster1-app", "ImagePolicy/cluster1-base"] {
        assert!(names(&kids).contains(&name.to_string()), "{name} missing");
    }
}

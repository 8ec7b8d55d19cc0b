//! Upgrading fluxtune in place, as a user does: the previous release (e2e/previous-release, built
//! by the test command) is installed with its own CRD and reconciles live profiles, then the
//! current CRD and the current build replace it.
//!
//! The test swaps the cluster-wide CRD, so e2e/test-all.sh runs it on its own (`upgrade::`), before
//! every other e2e test; it leaves the current CRD installed.

use std::{collections::BTreeMap, path::PathBuf};

use fluxtune::{api::FluxProfile, flux::FluxKind};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    flux_support::run,
    support::{self, Operator, PATIENCE, eventually},
};

const CRD: &str = "fluxprofiles.fluxtune.dev";

/// The previous release's samples, copied by e2e/test-all.sh.
fn previous_samples() -> Vec<Value> {
    let dir = std::env::var_os("FLUXTUNE_E2E_PREVIOUS_SAMPLES").unwrap_or_else(|| {
        panic!("the upgrade test needs the previous release's samples: run `bash e2e/test-all.sh`")
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let docs: Vec<Value> = files
        .iter()
        .flat_map(|f| {
            serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(f).unwrap()).unwrap()
        })
        .filter(|d| !d.is_null())
        .collect();
    assert!(docs.len() >= 5, "{docs:?}");
    docs
}

/// Installs `crd`'s spec as the FluxProfile CRD, replacing the whole spec (what `kubectl apply`
/// of a release's deploy/ ends with) and keeping the installed metadata; waits until the API
/// server serves it.
async fn install_crd(client: &Client, crd: CustomResourceDefinition) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = api.get(CRD).await.expect("deploy/ installed the CRD");
    installed.spec = crd.spec;
    api.replace(CRD, &PostParams::default(), &installed)
        .await
        .unwrap();
    eventually("the CRD is established", PATIENCE, || async {
        let c = api.get(CRD).await.ok()?;
        let generation = c.metadata.generation;
        let s = c.status?;
        let established = s
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        (established && s.stored_versions.is_some() && generation.is_some()).then_some(())
    })
    .await;
}

async fn children(client: &Client, ns: &str) -> BTreeMap<String, DynamicObject> {
    let mut all = BTreeMap::new();
    for kind in FluxKind::ALL {
        for o in support::dynamic_api(client, ns, kind)
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            all.insert(format!("{}/{}", kind.kind(), o.name_any()), o);
        }
    }
    all
}

/// Every profile in `ns` Ready for its current generation; returns them by name.
async fn all_ready(client: &Client, ns: &str, what: &str) -> BTreeMap<String, FluxProfile> {
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), ns);
    eventually(what, PATIENCE, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let ready = |p: &FluxProfile| {
            p.status.as_ref().is_some_and(|s| {
                // Applied; a release before "Ready means delivered" says so with Ready.
                let applied = |type_: &str| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == "True")
                };
                let has_applied = s.conditions.iter().any(|c| c.type_ == "Applied");
                s.observed_generation == p.metadata.generation
                    && if has_applied {
                        applied("Applied")
                    } else {
                        applied("Ready")
                    }
            })
        };
        list.items
            .iter()
            .all(ready)
            .then(|| list.items.into_iter().map(|p| (p.name_any(), p)).collect())
    })
    .await
}

#[tokio::test]
async fn the_current_release_takes_over_from_the_previous_one_without_churn() {
    let client = support::client().await;
    let ns = support::namespace(&client, "upgrade").await;
    for secret in ["hook", "kubeconf-webhook", "gitlab-webhook"] {
        support::webhook_secret(&client, &ns, secret, "upgrade-token").await;
    }

    // The previous release, installed: its CRD, its profiles (its samples, as users copied them,
    // and one with every part a profile can have, the invalid-input tests' valid base), its
    // operator.
    let previous = support::previous_binary();
    let previous_crd: CustomResourceDefinition =
        serde_saphyr::from_str(&run(std::process::Command::new(&previous).arg("crd"))).unwrap();
    install_crd(&client, previous_crd).await;
    let mut profiles = previous_samples();
    let mut every_part = crate::cases::valid();
    every_part["metadata"]["name"] = json!("every-part");
    profiles.push(every_part);
    for doc in &mut profiles {
        doc["metadata"]["namespace"] = json!(ns);
        support::apply_as(&client, "e2e-user", doc)
            .await
            .unwrap_or_else(|e| panic!("the previous CRD refuses {}: {e}", doc["metadata"]));
    }
    let mut old = Operator::start_binary_as_admin(previous, &ns, "previous", &[]);
    old.wait_ready().await;
    let before = all_ready(
        &client,
        &ns,
        "the previous release makes every profile Ready",
    )
    .await;
    assert_eq!(before.len(), profiles.len());
    let old_children = children(&client, &ns).await;
    old.stop();

    // The upgrade: the current CRD, then the current build.
    install_crd(&client, fluxtune::api::crd()).await;
    // Profiles stored by the previous release are valid for the current CRD (a dry-run create
    // validates every field; an update would let unchanged invalid fields through, by CRD
    // validation ratcheting) and for the current offline validator (`fluxtune render`).
    let validator = fluxtune::render::validate::Validator::new();
    // Read raw, not through the current types, which would fill in their own defaults.
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<FluxProfile>(&()));
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    for stored in raw.list(&ListParams::default()).await.unwrap() {
        let name = stored.name_any();
        let fresh = json!({
            "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
            "metadata": {"name": format!("{name}-copy"), "namespace": ns},
            "spec": stored.data["spec"],
        });
        validator
            .validate(&fresh)
            .unwrap_or_else(|e| panic!("{name}: the current validator refuses it: {e:?}"));
        let copy: FluxProfile = serde_json::from_value(fresh).unwrap();
        api.create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &copy,
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: the current CRD refuses it: {e}"));
    }

    // What the current build must write: only the children whose rendered fields differ from
    // what the previous release left (a field added to the render, say); nothing else.
    let current: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    let mut must_change = Vec::new();
    for name in before.keys() {
        let p = current.get(name).await.unwrap();
        for object in fluxtune::render::render(&p, &Default::default()).objects {
            let key = format!("{}/{}", object.kind().kind(), object.name());
            let old = old_children
                .get(&key)
                .unwrap_or_else(|| panic!("{key} missing"));
            if !fluxtune::reconcile::apply::up_to_date(&object.to_dynamic(), old) {
                must_change.push(key);
            }
        }
    }

    let new = Operator::start(&ns, "current");
    new.wait_ready().await;
    // Proof that the current build reconciled every profile, not only that it started: each
    // hands on a reconcile request and records it.
    for name in before.keys() {
        current
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"metadata": {"annotations": {
                    "reconcile.fluxcd.io/requestedAt": "upgrade-1"}}})),
            )
            .await
            .unwrap();
    }
    eventually(
        "the current build handles a request on every profile",
        PATIENCE,
        || async {
            let list = current.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .all(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.last_handled_reconcile_at.as_deref())
                        == Some("upgrade-1")
                })
                .then_some(())
        },
    )
    .await;
    let after = all_ready(&client, &ns, "every profile stays Ready").await;
    let applied = support::metric(&new.metrics().await, "fluxtune_children_applied_total", "");
    eprintln!("the takeover rewrote {applied} children: {must_change:?}");
    assert_eq!(
        applied,
        must_change.len() as u64,
        "the takeover wrote children whose render did not change (expected only {must_change:?})"
    );
    assert_eq!(
        support::metric(&new.metrics().await, "fluxtune_children_pruned_total", ""),
        0
    );

    let new_children = children(&client, &ns).await;
    assert_eq!(
        old_children.keys().collect::<Vec<_>>(),
        new_children.keys().collect::<Vec<_>>()
    );
    for (key, old) in &old_children {
        let new = &new_children[key];
        assert_eq!(old.uid(), new.uid(), "{key} was recreated");
        // fluxtune alone owns the spec: the previous release's applies and the current one's
        // are the same manager. (Others may own other parts: the request handed on above is a
        // merge patch of one annotation; a Flux controller, when running, adds its finalizer.)
        let spec_owners: Vec<_> = new
            .managed_fields()
            .iter()
            .filter(|m| {
                m.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.get("f:spec").is_some())
            })
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(
            spec_owners,
            ["fluxtune"],
            "{key}'s spec has other field managers: a conflict in the making"
        );
    }
    for (name, b) in &before {
        assert_eq!(
            b.status.as_ref().unwrap().inventory,
            after[name].status.as_ref().unwrap().inventory,
            "{name}: the inventory is taken over"
        );
    }
    assert!(
        !new.logs().contains("conflict"),
        "the current build met a conflict:\n{}",
        new.logs()
    );
}

//! Upgrading fluxtune in place: the previous release (e2e/previous-release, built by the test
//! command) runs against live profiles, then the current build takes over.

use std::collections::BTreeMap;

use fluxtune::{api::FluxProfile, flux::FluxKind};
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::json;

use crate::support::{self, Operator, PATIENCE, eventually};

#[tokio::test]
async fn the_current_build_takes_over_from_the_previous_release_without_churn() {
    let previous = support::previous_binary();
    let client = support::client().await;
    let ns = support::namespace(&client, "upgrade").await;
    support::webhook_secret(&client, &ns, "hook", "upgrade-token").await;
    let profiles: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    let doc = json!({
        "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
        "metadata": {"name": "cluster1", "namespace": ns},
        "spec": {
            "cluster": {"name": "cluster1"},
            "source": {"url": "https://git.example.com/acme/kubeconf.git"},
            "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
            "images": [{"name": "app", "repository": "ghcr.io/acme/app", "policy": {"semver": {"range": ">=1.0.0"}}}],
            "imageUpdate": {"author": {"name": "bot", "email": "bot@example.com"}}
        }
    });
    support::apply_as(&client, "e2e-user", &doc).await.unwrap();

    let ready = || async {
        let p = profiles.get("cluster1").await.ok()?;
        let s = p.status.clone()?;
        let ready = s
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && s.observed_generation == p.metadata.generation).then_some(p)
    };
    let mut old = Operator::start_binary(previous, &ns, "previous", &[]);
    old.wait_ready().await;
    let before = eventually(
        "the previous release makes the profile Ready",
        PATIENCE,
        ready,
    )
    .await;
    let children = |client: kube::Client, ns: String| async move {
        let mut all = BTreeMap::new();
        for kind in FluxKind::ALL {
            for o in support::dynamic_api(&client, &ns, kind)
                .list(&ListParams::default())
                .await
                .unwrap()
            {
                all.insert(format!("{}/{}", kind.kind(), o.name_any()), o);
            }
        }
        all
    };
    let old_children = children(client.clone(), ns.clone()).await;
    assert_eq!(old_children.len(), 6, "{:?}", old_children.keys());
    old.stop();

    let new = Operator::start(&ns, "current");
    new.wait_ready().await;
    // Wait until the new build has reconciled the profile at least once.
    eventually("the current build reconciles", PATIENCE, || async {
        (support::metric(
            &new.metrics().await,
            "fluxtune_reconciles_total",
            "result=\"ok\"",
        ) >= 1)
            .then_some(())
    })
    .await;
    let after = eventually("the profile stays Ready", PATIENCE, ready).await;

    let new_children = children(client.clone(), ns.clone()).await;
    assert_eq!(
        old_children.keys().collect::<Vec<_>>(),
        new_children.keys().collect::<Vec<_>>()
    );
    for (key, old) in &old_children {
        let new = &new_children[key];
        assert_eq!(old.uid(), new.uid(), "{key} was recreated");
        let managers: Vec<_> = new
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(
            managers,
            ["fluxtune"],
            "{key} has other field managers: a conflict in the making"
        );
    }
    let (before, after) = (before.status.unwrap(), after.status.unwrap());
    assert_eq!(
        before.inventory, after.inventory,
        "the inventory is taken over"
    );
    assert!(
        !new.logs().contains("conflict"),
        "the current build met a conflict:\n{}",
        new.logs()
    );
}

/// Profiles users wrote for the previous release (its samples) stay valid: the current offline
/// validator and the current CRD in the API server both accept them, and the current build
/// reconciles them to Ready.
#[tokio::test]
async fn profiles_written_for_the_previous_release_are_valid_for_the_current_crd() {
    let dir = std::env::var_os("FLUXTUNE_E2E_PREVIOUS_SAMPLES").unwrap_or_else(|| {
        panic!("the upgrade test needs the previous release's samples: run `bash e2e/test-all.sh`")
    });
    let client = support::client().await;
    let ns = support::namespace(&client, "upgrade-samples").await;
    for secret in ["kubeconf-webhook", "gitlab-webhook"] {
        support::webhook_secret(&client, &ns, secret, "t").await;
    }
    let validator = fluxtune::render::validate::Validator::new();
    let mut names = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
            doc["metadata"]["namespace"] = json!(ns);
            validator.validate(&doc).unwrap_or_else(|e| {
                panic!(
                    "{}: the current validator refuses it: {e:?}",
                    file.display()
                )
            });
            support::apply_as(&client, "e2e-user", &doc)
                .await
                .unwrap_or_else(|e| panic!("{}: the current CRD refuses it: {e}", file.display()));
            names.push(doc["metadata"]["name"].as_str().unwrap().to_string());
        }
    }
    assert!(names.len() >= 5, "{names:?}");
    let _op = Operator::start(&ns, "current");
    let profiles: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    for name in names {
        eventually(&format!("{name} Ready"), PATIENCE, || async {
            let p = profiles.get(&name).await.ok()?;
            let s = p.status?;
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

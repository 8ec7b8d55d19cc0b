//! Flux installed after fluxtune: a Flux kind whose CRD appears while the operator runs is picked
//! up without a restart (capabilities.rs `changed`, controller.rs `controllers`).
//!
//! The test deletes and re-creates a Flux CRD, which the other e2e tests use, so
//! e2e/test-all.sh runs it on its own, with the upgrade test, one test at a time; it leaves the
//! CRD as it found it.

use fluxtune::{api::FluxProfile, flux::FluxKind};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, PostParams},
};
use serde_json::json;

use crate::support::{self, Operator, PATIENCE, eventually};

#[tokio::test]
async fn a_flux_kind_installed_after_fluxtune_is_picked_up_without_a_restart() {
    let client = support::client().await;
    let ns = support::namespace(&client, "flux-install").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = FluxKind::ImagePolicy.crd_name();

    // A cluster without the ImagePolicy kind (image-reflector-controller not installed yet).
    let installed = crds
        .get(&name)
        .await
        .expect("the e2e control plane has Flux's CRDs");
    crds.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("the ImagePolicy CRD is gone", PATIENCE, || async {
        crds.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;

    support::webhook_secret(&client, &ns, "hook", "install-token").await;
    let mut op = Operator::start(&ns, "flux-install");
    op.wait_ready().await;
    let pid = op.pid();
    let profile = json!({
        "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
        "metadata": {"name": "cluster1", "namespace": ns},
        "spec": {
            "cluster": {"name": "cluster1"},
            "source": {"url": "https://git.example.com/acme/kubeconf.git"},
            "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
            "images": [{"name": "app", "repository": "ghcr.io/acme/app", "policy": {"semver": {"range": ">=1.0.0"}}}],
        }
    });
    support::apply_as(&client, "e2e-user", &profile)
        .await
        .unwrap();
    let profiles: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    let condition = |type_: &'static str| {
        let profiles = profiles.clone();
        move || {
            let profiles = profiles.clone();
            async move {
                let p = profiles.get("cluster1").await.ok()?;
                p.status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == type_ && c.status == "True")
            }
        }
    };
    let stalled = eventually(
        "the profile is Stalled on the missing kind",
        PATIENCE,
        condition("Stalled"),
    )
    .await;
    assert_eq!(stalled.reason, "FluxCRDMissing");
    assert!(stalled.message.contains(&name), "{}", stalled.message);

    // Flux's image controllers installed: the same CRD created anew.
    crds.create(
        &PostParams::default(),
        &CustomResourceDefinition {
            metadata: ObjectMeta {
                name: installed.metadata.name.clone(),
                labels: installed.metadata.labels.clone(),
                annotations: installed.metadata.annotations.clone(),
                ..Default::default()
            },
            spec: installed.spec.clone(),
            status: None,
        },
    )
    .await
    .unwrap();

    eventually(
        "the profile turns Applied with its ImagePolicy",
        PATIENCE,
        condition("Applied"),
    )
    .await;
    assert!(
        support::dynamic_api(&client, &ns, FluxKind::ImagePolicy)
            .get_opt("cluster1-app")
            .await
            .unwrap()
            .is_some(),
        "the ImagePolicy was applied"
    );
    assert!(
        op.is_running() && op.pid() == pid,
        "the same process, not a restart"
    );
    assert!(op.logs().contains("the Flux CRDs changed"), "{}", op.logs());
}

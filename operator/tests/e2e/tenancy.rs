//! A FluxProfile gives no more power than the operator's tenancy flags allow: a default service
//! account for kustomize-controller to impersonate, and allow-lists for what a profile may point at.

use fluxtune::flux::FluxKind;
use serde_json::json;

use crate::{
    operator::{apply_profile, children, condition, get_profile, profile, wait_ready},
    support::{self, Operator, PATIENCE, eventually},
};

#[tokio::test]
async fn a_profile_outside_the_allow_lists_is_stalled_without_any_child() {
    let client = support::client().await;
    let ns = support::namespace(&client, "tenancy").await;
    let op = Operator::start_with(
        &ns,
        "op-a",
        &[
            "--allowed-source-url-prefix",
            "https://git.example.com/acme/",
            "--allowed-target-namespace",
            "tenant-apps",
            "--default-service-account",
            "tenant",
        ],
    );
    op.wait_ready().await;

    let mut spec = json!({
        "cluster": {"name": "cluster1"},
        "source": {"url": "https://git.example.com/other-team/fleet.git"},
    });
    apply_profile(&client, &profile(&ns, spec.clone())).await;
    let p = eventually("the profile is refused", PATIENCE, || async {
        let p = get_profile(&client, &ns).await;
        (condition(&p, "Stalled") == Some(("True", "NotAllowed"))).then_some(p)
    })
    .await;
    let message = &p.status.as_ref().unwrap().conditions[0].message;
    for expected in [
        "spec.source.url \"https://git.example.com/other-team/fleet.git\" must start with one of \"https://git.example.com/acme/\"",
        "spec.apply.targetNamespace must be set to one of \"tenant-apps\"",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
    assert!(
        children(&client, &ns).await.is_empty(),
        "a refused profile creates nothing"
    );

    spec["source"]["url"] = json!("https://git.example.com/acme/fleet.git");
    spec["apply"] = json!({"targetNamespace": "tenant-apps"});
    apply_profile(&client, &profile(&ns, spec)).await;
    wait_ready(&client, &ns, "True", "ReconciliationSucceeded").await;
    let kustomization = support::dynamic_api(&client, &ns, FluxKind::Kustomization)
        .get("cluster1")
        .await
        .unwrap();
    assert_eq!(
        kustomization.data["spec"]["serviceAccountName"], "tenant",
        "kustomize-controller impersonates the default service account"
    );
}

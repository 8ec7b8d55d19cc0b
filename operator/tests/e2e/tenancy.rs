//! A FluxProfile gives no more power than the operator's tenancy flags allow: a default service
//! account for kustomize-controller to impersonate, and allow-lists for what a profile may point at.

use serde_json::json;

use crate::{
    operator::{apply_profile, children, condition, get_profile, profile, wait_applied},
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
        "spec.source.url \"https://git.example.com/other-team/fleet.git\" must be one of, or lie below one of, \"https://git.example.com/acme/\"",
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
    wait_applied(&client, &ns).await;
    let kustomization = crate::support::kustomization(&client, &ns).await;
    assert_eq!(
        kustomization.data["spec"]["serviceAccountName"], "tenant",
        "kustomize-controller impersonates the default service account"
    );
}

/// deploy/components/tenant-policy, on the real API server: per namespace, a ConfigMap pins the
/// Git URL prefix, the Git credentials and the target namespace a profile may use.
#[tokio::test]
async fn the_tenant_policy_sample_pins_url_secret_and_target_namespace_per_namespace() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::{
        Api, ResourceExt,
        api::{DynamicObject, Patch, PatchParams, PostParams},
    };
    let client = support::client().await;
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/components/tenant-policy/policy.yaml"
    );
    for doc in
        serde_saphyr::from_multiple::<serde_json::Value>(&std::fs::read_to_string(file).unwrap())
            .unwrap()
            .into_iter()
            .filter(|d| !d.is_null())
    {
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        let gvk = kube::api::GroupVersionKind::try_from(obj.types.as_ref().unwrap()).unwrap();
        let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
        Api::<DynamicObject>::all_with(client.clone(), &ar)
            .patch(
                &obj.name_any(),
                &PatchParams::apply("e2e-admin").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap();
    }
    let tenant = support::namespace(&client, "team-a").await;
    let unconfigured = support::namespace(&client, "team-b").await;
    for ns in [&tenant, &unconfigured] {
        Api::<Namespace>::all(client.clone())
            .patch(
                ns,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"fluxtune.dev/tenant": "true"}}})),
            )
            .await
            .unwrap();
    }
    let params: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "fluxtune-tenancy"},
        "data": {"sourceURLPrefix": "https://git.example.com/team-a", "sourceSecret": "team-a-git",
                 "targetNamespace": "team-a-apps", "serviceAccountName": "team-a"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &tenant)
        .create(&PostParams::default(), &params)
        .await
        .unwrap();

    let allowed = json!({
        "cluster": {"name": "cluster1"},
        "source": {"url": "https://git.example.com/team-a/fleet.git", "secretRef": {"name": "team-a-git"}},
        "apply": {"targetNamespace": "team-a-apps", "serviceAccountName": "team-a"},
    });
    // Server-side dry runs: admission runs, nothing is stored. (A profile stored before the
    // policy was enforced would turn every later try into an update without a spec change, which
    // the policy rightly lets through.)
    let refusal = |ns: String, spec: serde_json::Value| {
        let client = client.clone();
        async move {
            let api = Api::<fluxtune::api::FluxProfile>::namespaced(client, &ns);
            let doc = profile(&ns, spec);
            let params = PatchParams {
                dry_run: true,
                ..PatchParams::apply("tenant").force()
            };
            match api.patch("cluster1", &params, &Patch::Apply(&doc)).await {
                Ok(_) => None,
                Err(kube::Error::Api(s)) => Some(s.message),
                Err(e) => panic!("{e}"),
            }
        }
    };
    // A new policy is enforced after a moment; until admission has seen the params as well it
    // refuses everything with "no params found for policy binding" (the binding's Deny action).
    let mut outside = allowed.clone();
    outside["source"]["url"] = json!("https://git.example.com/platform/fleet.git");
    let message = eventually(
        "the policy is enforced with its params",
        PATIENCE,
        || async {
            refusal(tenant.clone(), outside.clone())
                .await
                .filter(|m| !m.contains("no params found"))
        },
    )
    .await;
    assert!(
        message.contains(&format!(
            "spec.source.url must be or lie below https://git.example.com/team-a in namespace {tenant}"
        )),
        "{message}"
    );
    for sneaky in [
        "https://git.example.com/team-a-evil/fleet.git",
        "https://git.example.com/team-a/../platform/fleet.git",
        "https://git.example.com/team-a/%2E%2E/platform/fleet.git",
    ] {
        let mut spec = allowed.clone();
        spec["source"]["url"] = json!(sneaky);
        assert!(
            refusal(tenant.clone(), spec).await.is_some(),
            "{sneaky} allowed"
        );
    }
    let mut other_secret = allowed.clone();
    other_secret["source"]["secretRef"]["name"] = json!("platform-git");
    let message = refusal(tenant.clone(), other_secret)
        .await
        .expect("refused");
    assert!(
        message.contains("spec.source.secretRef.name must be team-a-git"),
        "{message}"
    );
    let mut no_target = allowed.clone();
    no_target.as_object_mut().unwrap().remove("apply");
    let message = refusal(tenant.clone(), no_target).await.expect("refused");
    assert!(
        message.contains("spec.apply.targetNamespace must be team-a-apps"),
        "{message}"
    );
    let mut no_account = allowed.clone();
    no_account["apply"]
        .as_object_mut()
        .unwrap()
        .remove("serviceAccountName");
    let message = refusal(tenant.clone(), no_account).await.expect("refused");
    assert!(
        message.contains("spec.apply.serviceAccountName must be team-a"),
        "{message}"
    );
    let message = refusal(unconfigured.clone(), allowed.clone())
        .await
        .expect("a labelled namespace without its ConfigMap allows nothing");
    assert!(message.contains("no params found"), "{message}");
    assert_eq!(
        refusal(tenant.clone(), allowed.clone()).await,
        None,
        "the pinned values are allowed"
    );
    support::apply_as(&client, "tenant", &profile(&tenant, allowed))
        .await
        .expect("and stored");
    // Metadata-only updates pass even when the parameters no longer allow the profile (tightened
    // after it was created): a reconcile request, and the garbage collector finishing an orphan
    // deletion.
    Api::<ConfigMap>::namespaced(client.clone(), &tenant)
        .patch(
            "fluxtune-tenancy",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"data": {"sourceURLPrefix": "https://git.example.com/team-a-v2"}}),
            ),
        )
        .await
        .unwrap();
    let profiles = Api::<fluxtune::api::FluxProfile>::namespaced(client.clone(), &tenant);
    eventually(
        "a metadata update passes without parameters",
        PATIENCE,
        || async {
            profiles
            .patch(
                "cluster1",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "1"}}}),
                ),
            )
            .await
            .ok()
            .map(|_| ())
        },
    )
    .await;
    profiles
        .delete(
            "cluster1",
            &kube::api::DeleteParams {
                propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    support::gone(&profiles, "cluster1").await;
}

//! deploy/'s RBAC, proven rather than assumed: every operator test runs with a token of its
//! ServiceAccount (see support::Operator), and here it is refused what it does not need.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::support;

fn forbidden<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> Option<String> {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => None,
        other => Some(format!("{what}: expected 403 Forbidden, got {other:?}")),
    }
}

#[tokio::test]
async fn the_service_account_is_denied_what_the_operator_does_not_need() {
    let admin = support::client().await;
    let ns = support::namespace(&admin, "rbac").await;
    let operator = support::client_from(support::operator_kubeconfig_path()).await;

    // No verb on Secrets at all (the webhook path is the Receiver's status), no namespace
    // changes, no FluxProfile spec changes.
    support::webhook_secret(&admin, &ns, "hook", "t").await;
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &ns);
    let all_secrets: Api<Secret> = Api::all(operator.clone());
    let namespaces: Api<Namespace> = Api::all(operator.clone());
    let profiles: Api<fluxtune::api::FluxProfile> = Api::namespaced(operator.clone(), &ns);
    let new_secret: Secret = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let failures: Vec<String> = [
        forbidden("get a Secret", secrets.get("hook").await.map(|_| ())),
        forbidden(
            "list a namespace's Secrets",
            secrets.list(&Default::default()).await.map(|_| ()),
        ),
        forbidden(
            "list every Secret",
            all_secrets.list(&Default::default()).await.map(|_| ()),
        ),
        forbidden(
            "watch Secrets",
            all_secrets
                .watch(&Default::default(), "0")
                .await
                .map(|_| ()),
        ),
        forbidden(
            "create a Secret",
            secrets.create(&PostParams::default(), &new_secret).await,
        ),
        forbidden(
            "delete a Secret",
            secrets
                .delete("hook", &DeleteParams::default())
                .await
                .map(|_| ()),
        ),
        forbidden(
            "delete a namespace",
            namespaces
                .delete(&ns, &DeleteParams::default())
                .await
                .map(|_| ()),
        ),
        forbidden(
            "patch a FluxProfile's spec",
            profiles
                .patch(
                    "any",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"suspend": true}})),
                )
                .await,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

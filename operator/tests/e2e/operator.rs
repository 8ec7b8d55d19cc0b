//! `fluxtune run` as a real process against the real API server: one namespace and one operator
//! process per test.

use std::collections::BTreeMap;

use fluxtune::{api::FluxProfile, flux::FluxKind, render::receiver::webhook_path};
use k8s_openapi::{
    api::{
        core::v1::Secret,
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    config::Kubeconfig,
};
use serde_json::{Value, json};

use crate::support::{self, Operator, PATIENCE, eventually};

pub(crate) const TOKEN: &str = "s3cr3t-token-value";

pub(crate) fn profile(ns: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "fluxtune.dev/v1alpha1",
        "kind": "FluxProfile",
        "metadata": {"name": "cluster1", "namespace": ns},
        "spec": spec,
    })
}

pub(crate) fn webhook_spec() -> Value {
    json!({
        "cluster": {"name": "cluster1"},
        "source": {"url": "https://git.example.com/acme/kubeconf.git"},
        "webhook": {"provider": "github", "secretRef": {"name": "hook"}, "baseURL": "https://hooks.example.com"},
        "images": [
            {"name": "app", "repository": "ghcr.io/acme/app", "policy": {"semver": {"range": ">=1.0.0"}}},
            {"name": "worker", "repository": "ghcr.io/acme/worker", "policy": {"numerical": {"order": "asc"}}}
        ],
        "imageUpdate": {"author": {"name": "bot", "email": "bot@example.com"}}
    })
}

pub(crate) async fn apply_profile(client: &Client, doc: &Value) {
    support::apply_as(client, "e2e-user", doc)
        .await
        .expect("the profile is accepted");
}

pub(crate) async fn annotate_profile(client: &Client, ns: &str, key: &str, value: &str) {
    Api::<FluxProfile>::namespaced(client.clone(), ns)
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .unwrap();
}

pub(crate) async fn get_profile(client: &Client, ns: &str) -> FluxProfile {
    Api::<FluxProfile>::namespaced(client.clone(), ns)
        .get("cluster1")
        .await
        .unwrap()
}

pub(crate) fn condition<'a>(p: &'a FluxProfile, type_: &str) -> Option<(&'a str, &'a str)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

/// Waits until the profile's current generation is reconciled with Ready=`ready`, reason `reason`.
pub(crate) async fn wait_ready(
    client: &Client,
    ns: &str,
    ready: &str,
    reason: &str,
) -> FluxProfile {
    wait_condition(client, ns, "Ready", ready, reason).await
}

/// Waits until the profile's current generation is applied (Applied=True): every Flux object
/// written as rendered. Ready means delivered, which needs Flux's controllers and a real source.
pub(crate) async fn wait_applied(client: &Client, ns: &str) -> FluxProfile {
    wait_condition(client, ns, "Applied", "True", "ReconciliationSucceeded").await
}

async fn wait_condition(
    client: &Client,
    ns: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> FluxProfile {
    eventually(
        &format!("profile {type_}={status} ({reason})"),
        PATIENCE,
        || async {
            let p = get_profile(client, ns).await;
            let current =
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation;
            (current && condition(&p, type_) == Some((status, reason))).then_some(p)
        },
    )
    .await
}

pub(crate) async fn children(
    client: &Client,
    ns: &str,
) -> BTreeMap<(String, String), DynamicObject> {
    let mut all = BTreeMap::new();
    for kind in FluxKind::ALL {
        let api = support::dynamic_api(client, ns, kind);
        for o in api.list(&ListParams::default()).await.unwrap() {
            all.insert((kind.kind().to_string(), o.name_any()), o);
        }
    }
    all
}

/// The spec generation and when fluxtune's field manager last changed the object: Flux's
/// controllers write status (a new resourceVersion) without touching either.
fn written_by_fluxtune(o: &DynamicObject) -> (Option<i64>, Option<String>) {
    let applied = o
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some("fluxtune") && m.subresource.is_none())
        .and_then(|m| m.time.as_ref())
        .map(|t| t.0.to_string());
    (o.metadata.generation, applied)
}

pub(crate) fn names(children: &BTreeMap<(String, String), DynamicObject>) -> Vec<String> {
    children.keys().map(|(k, n)| format!("{k}/{n}")).collect()
}

pub(crate) async fn setup(test: &str, with_secret: bool) -> (Client, String, Operator) {
    let client = support::client().await;
    let ns = support::namespace(&client, test).await;
    if with_secret {
        support::webhook_secret(&client, &ns, "hook", TOKEN).await;
    }
    let op = Operator::start(&ns, "op-a");
    op.wait_ready().await;
    (client, ns, op)
}

#[tokio::test]
async fn a_profile_becomes_ready_with_every_child_and_a_complete_status() {
    let (client, ns, op) = setup("create", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    // The webhook path is the Receiver's, once notification-controller publishes it.
    let p = eventually("the webhook path in status", PATIENCE, || async {
        let p = get_profile(&client, &ns).await;
        p.status.as_ref()?.webhook.as_ref()?;
        Some(p)
    })
    .await;

    let kids = children(&client, &ns).await;
    assert_eq!(
        names(&kids),
        [
            "GitRepository/cluster1",
            "ImagePolicy/cluster1-app",
            "ImagePolicy/cluster1-worker",
            "ImageRepository/cluster1-app",
            "ImageRepository/cluster1-worker",
            "ImageUpdateAutomation/cluster1",
            "Kustomization/cluster1",
            "Receiver/cluster1",
        ]
    );
    for o in kids.values() {
        let owner = &o.owner_references()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (p.uid().unwrap().as_str(), Some(true))
        );
        assert_eq!(o.labels()["fluxtune.dev/profile"], "cluster1");
    }
    let status = p.status.unwrap();
    assert_eq!(status.inventory.len(), 8);
    let webhook = status.webhook.unwrap();
    assert_eq!(webhook.path, webhook_path(TOKEN, "cluster1", &ns));
    let receiver = support::dynamic_api(&client, &ns, FluxKind::Receiver)
        .get("cluster1")
        .await
        .unwrap();
    assert_eq!(webhook.path, receiver.data["status"]["webhookPath"]);
    assert_eq!(
        webhook.url.unwrap(),
        format!("https://hooks.example.com{}", webhook.path)
    );
    assert_eq!(
        status.latency_budget.unwrap().image_to_deploy.expected,
        "40s",
        "scan/2 + p = 30s + 10s"
    );
    assert!(
        !serde_json::to_string(&get_profile(&client, &ns).await)
            .unwrap()
            .contains(TOKEN),
        "the token never appears in the profile"
    );
    assert!(
        !op.logs().contains(TOKEN),
        "the token never appears in the logs"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let events =
        serde_json::to_string(&events.list(&ListParams::default()).await.unwrap()).unwrap();
    assert!(!events.contains(TOKEN), "the token never appears in events");
}

#[tokio::test]
async fn changing_the_class_retunes_and_removes_the_receiver_and_removing_an_image_prunes_it() {
    let (client, ns, _op) = setup("retune", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;

    let mut spec = webhook_spec();
    spec["pollingClass"] = json!("Poll");
    spec["images"].as_array_mut().unwrap().pop();
    apply_profile(&client, &profile(&ns, spec)).await;
    wait_applied(&client, &ns).await;

    // Pruned objects go once the Flux controllers have run their finalizers (their workers also
    // serve every other test's objects: the bound of safety.rs's foreground deletion).
    let kids = eventually("the pruned objects are gone", PATIENCE * 4, || async {
        let kids = children(&client, &ns).await;
        let gone = [
            ("Receiver", "cluster1"),
            ("ImageRepository", "cluster1-worker"),
            ("ImagePolicy", "cluster1-worker"),
        ]
        .iter()
        .all(|(k, n)| !kids.contains_key(&(k.to_string(), n.to_string())));
        gone.then_some(kids)
    })
    .await;
    let git = &kids[&("GitRepository".to_string(), "cluster1".to_string())];
    assert_eq!(git.data["spec"]["interval"], "1m");
    // A delete whose precondition failed (a Flux controller updated the object in between) is
    // retried and kept in the inventory until it is done.
    eventually(
        "the inventory holds the 5 objects left",
        PATIENCE,
        || async {
            let p = get_profile(&client, &ns).await;
            (p.status?.inventory.len() == 5).then_some(())
        },
    )
    .await;

    // And back: the Receiver reappears.
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    eventually("the Receiver is recreated", PATIENCE, || async {
        let kids = children(&client, &ns).await;
        kids.contains_key(&("Receiver".into(), "cluster1".into()))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_the_profile_garbage_collects_its_children() {
    let (client, ns, op) = setup("gc", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    let series = "profile=\"cluster1\"";
    eventually("the profile's metric series", PATIENCE, || async {
        support::metric_opt(
            &op.metrics().await,
            "fluxtune_latency_budget_seconds",
            series,
        )
        .map(|_| ())
    })
    .await;
    Api::<FluxProfile>::namespaced(client.clone(), &ns)
        .delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "kube-controller-manager's garbage collector deletes every child",
        // Each child waits for its Flux controller's finalizer.
        PATIENCE * 4,
        || async { children(&client, &ns).await.is_empty().then_some(()) },
    )
    .await;
    eventually(
        "the deleted profile's metric series go",
        PATIENCE,
        || async {
            support::metric_opt(
                &op.metrics().await,
                "fluxtune_latency_budget_seconds",
                series,
            )
            .is_none()
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn drift_is_reverted_deleted_children_come_back_and_foreign_fields_stay() {
    let (client, ns, _op) = setup("drift", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    let git = support::dynamic_api(&client, &ns, FluxKind::GitRepository);

    // Someone edits a field fluxtune owns, and suspends it like `flux suspend` does.
    git.patch(
        "cluster1",
        &PatchParams::apply("kubectl-edit").force(),
        &Patch::Apply(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "cluster1"},
            "spec": {"interval": "5m", "suspend": true}
        })),
    )
    .await
    .unwrap();
    let restored = eventually("the interval is restored", PATIENCE, || async {
        let g = git.get("cluster1").await.unwrap();
        (g.data["spec"]["interval"] == "1h").then_some(g)
    })
    .await;
    assert_eq!(
        restored.data["spec"]["suspend"], true,
        "spec.suspend is not fluxtune's to revert"
    );

    let receivers = support::dynamic_api(&client, &ns, FluxKind::Receiver);
    let old_uid = receivers.get("cluster1").await.unwrap().uid();
    receivers
        .delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted Receiver is recreated", PATIENCE, || async {
        let r = receivers.get_opt("cluster1").await.unwrap()?;
        (r.uid() != old_uid).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_missing_secret_stalls_the_profile_until_the_secret_appears() {
    let (client, ns, op) = setup("secret", false).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    let p = wait_ready(&client, &ns, "False", "WebhookSecretNotFound").await;
    assert_eq!(
        condition(&p, "Stalled"),
        Some(("True", "WebhookSecretNotFound"))
    );
    // Everything else is applied all the same.
    assert_eq!(children(&client, &ns).await.len(), 8);
    // No Git host can call a Receiver without its token: the budget says commits wait for the
    // source's hourly backstop (source/2 + p expected), in status and on /metrics.
    let budget = p.status.as_ref().unwrap().latency_budget.clone().unwrap();
    assert_eq!(
        (
            budget.commit_to_deploy.expected.as_str(),
            budget.commit_to_deploy.worst.as_str()
        ),
        ("30m10s", "1h3m10s")
    );
    eventually("the webhook-less budget on /metrics", PATIENCE, || async {
        let m = op.metrics().await;
        let label = "path=\"commit_to_deploy\",bound=\"expected\"";
        (support::metric_opt(&m, "fluxtune_latency_budget_seconds", label) == Some(1810))
            .then_some(())
    })
    .await;

    // A Secret without "token" is a different, equally clear problem.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &Default::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "hook", "labels": {"reconcile.fluxcd.io/watch": "Enabled"}},
                       "stringData": {"password": "x"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    wait_ready(&client, &ns, "False", "WebhookTokenMissing").await;

    secrets
        .patch(
            "hook",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": TOKEN}})),
        )
        .await
        .unwrap();
    let p = wait_applied(&client, &ns).await;
    assert_eq!(condition(&p, "Stalled"), None);
    let budget = p.status.as_ref().unwrap().latency_budget.clone().unwrap();
    assert_eq!(
        budget.commit_to_deploy.expected, "10s",
        "the webhook path again"
    );
    assert!(
        !op.logs().contains(TOKEN),
        "the token never appears in the logs"
    );
}

#[tokio::test]
async fn a_restart_and_a_no_op_reconcile_write_nothing() {
    let (client, ns, mut op) = setup("noop", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    // Settled: notification-controller has published the webhook path and fluxtune reported it.
    eventually("the webhook path in status", PATIENCE, || async {
        get_profile(&client, &ns).await.status?.webhook.map(|_| ())
    })
    .await;
    let before: BTreeMap<_, _> = children(&client, &ns)
        .await
        .into_iter()
        .map(|(k, o)| (k, written_by_fluxtune(&o)))
        .collect();

    op.restart();
    op.wait_ready().await;
    // Poke the profile with an unrelated annotation: a reconcile that must find nothing to do.
    annotate_profile(&client, &ns, "e2e/poke", "1").await;
    eventually("the restarted operator reconciled", PATIENCE, || async {
        (support::metric(
            &op.metrics().await,
            "fluxtune_reconciles_total",
            "result=\"ok\"",
        ) >= 2)
            .then_some(())
    })
    .await;

    let writes: u64 = ["POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .map(|m| async { op.requests(m).await })
        .collect::<futures::future::JoinAll<_>>()
        .await
        .into_iter()
        .sum();
    // Events and the lease are writes too; the election is off here unless asked for.
    assert_eq!(
        writes,
        0,
        "a no-op reconcile wrote:\n{}",
        op.metrics().await
    );
    let after: BTreeMap<_, _> = children(&client, &ns)
        .await
        .into_iter()
        .map(|(k, o)| (k, written_by_fluxtune(&o)))
        .collect();
    assert_eq!(before, after, "no child was rewritten by fluxtune");
}

#[tokio::test]
async fn a_reconcile_request_is_handed_on_to_the_sources_and_recorded() {
    let (client, ns, _op) = setup("request", true).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    annotate_profile(
        &client,
        &ns,
        "reconcile.fluxcd.io/requestedAt",
        "2026-11-27T12:00:00Z",
    )
    .await;
    eventually("lastHandledReconcileAt is recorded", PATIENCE, || async {
        let p = get_profile(&client, &ns).await;
        (p.status?.last_handled_reconcile_at.as_deref() == Some("2026-11-27T12:00:00Z"))
            .then_some(())
    })
    .await;
    for (kind, name) in [
        (FluxKind::GitRepository, "cluster1"),
        (FluxKind::ImageRepository, "cluster1-app"),
        (FluxKind::ImageRepository, "cluster1-worker"),
    ] {
        let o = support::dynamic_api(&client, &ns, kind)
            .get(name)
            .await
            .unwrap();
        assert_eq!(
            o.annotations()
                .get("reconcile.fluxcd.io/requestedAt")
                .map(String::as_str),
            Some("2026-11-27T12:00:00Z")
        );
    }
    let k = support::dynamic_api(&client, &ns, FluxKind::Kustomization)
        .get("cluster1")
        .await
        .unwrap();
    assert!(
        !k.annotations()
            .contains_key("reconcile.fluxcd.io/requestedAt"),
        "appliers follow their source"
    );
}

#[tokio::test]
async fn of_two_replicas_only_the_leader_writes() {
    let client = support::client().await;
    let ns = support::namespace(&client, "leader").await;
    support::webhook_secret(&client, &ns, "hook", TOKEN).await;
    // The Lease lives where deploy/'s Role allows it.
    let system: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = system
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": support::SYSTEM_NAMESPACE}}))
                .unwrap(),
        )
        .await;
    // deploy/'s Role grants only the default Lease name, which this test alone uses.
    let election = [
        "--leader-election",
        "true",
        "--lease-namespace",
        support::SYSTEM_NAMESPACE,
    ];
    let mut a = Operator::start_with(&ns, "op-a", &election);
    a.wait_ready().await;
    eventually("op-a leads", PATIENCE, || async {
        a.logs().contains("acquired the leader lease").then_some(())
    })
    .await;
    let mut b = Operator::start_with(&ns, "op-b", &election);
    b.wait_ready().await;

    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    assert!(
        !b.logs().contains("acquired the leader lease"),
        "{}",
        b.logs()
    );
    // The standby's only writes may be lease acquisition attempts: it never reconciles or applies.
    let standby = b.metrics().await;
    assert_eq!(
        support::metric(&standby, "fluxtune_reconciles_total", ""),
        0,
        "{standby}"
    );
    assert_eq!(
        support::metric(&standby, "fluxtune_children_applied_total", ""),
        0,
        "{standby}"
    );
    assert!(support::metric(&a.metrics().await, "fluxtune_children_applied_total", "") >= 8);

    // The leader shuts down gracefully and releases the lease: the standby takes over and
    // reconciles the next change.
    a.stop();
    eventually("op-b takes over", PATIENCE, || async {
        b.logs().contains("acquired the leader lease").then_some(())
    })
    .await;
    let mut spec = webhook_spec();
    spec["pollingClass"] = json!("Poll");
    apply_profile(&client, &profile(&ns, spec)).await;
    let git = support::dynamic_api(&client, &ns, FluxKind::GitRepository);
    eventually(
        "the new leader retunes the GitRepository",
        PATIENCE,
        || async {
            (git.get("cluster1").await.ok()?.data["spec"]["interval"] == "1m").then_some(())
        },
    )
    .await;
    b.stop();
}

/// An identity of the test's own: the admin's kubeconfig impersonating the user `e2e:<ns>`,
/// bound to a copy of deploy/'s ClusterRole, whose rules a test then narrows and restores
/// (other tests keep deploy/'s role untouched).
struct OwnIdentity {
    client: Client,
    name: String,
    rules: Vec<PolicyRule>,
    kubeconfig: std::path::PathBuf,
}

impl OwnIdentity {
    async fn new(client: &Client, ns: &str) -> OwnIdentity {
        let roles: Api<ClusterRole> = Api::all(client.clone());
        let rules = roles
            .get("fluxtune")
            .await
            .expect("deploy/'s ClusterRole (e2e/deploy-check.sh applies it)")
            .rules
            .unwrap_or_default();
        let name = format!("e2e-{ns}");
        let user = format!("e2e:{ns}");
        let id = OwnIdentity {
            client: client.clone(),
            name: name.clone(),
            rules,
            kubeconfig: std::env::temp_dir().join(format!("fluxtune-e2e-{ns}.kubeconfig")),
        };
        id.grant(|_| true).await;
        Api::<ClusterRoleBinding>::all(client.clone())
            .patch(
                &name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
                })),
            )
            .await
            .unwrap();
        let mut kubeconfig = Kubeconfig::read_from(support::kubeconfig_path()).unwrap();
        for auth in &mut kubeconfig.auth_infos {
            if let Some(info) = auth.auth_info.as_mut() {
                info.impersonate = Some(user.clone());
            }
        }
        std::fs::write(&id.kubeconfig, serde_json::to_vec(&kubeconfig).unwrap()).unwrap();
        id
    }

    /// deploy/'s rules, less each (apiGroup, resource, verb) for which `keep` is false.
    async fn grant(&self, keep: impl Fn(&(&str, &str, &str)) -> bool) {
        // One rule per resource, so that denying one resource's verb leaves its group's others.
        let rules: Vec<PolicyRule> = self
            .rules
            .iter()
            .flat_map(|rule| {
                let group = rule.api_groups.as_ref().and_then(|g| g.first().cloned());
                let group = group.unwrap_or_default();
                let resources = rule.resources.clone().unwrap_or_default();
                let keep = &keep;
                resources.into_iter().filter_map(move |resource| {
                    let mut one = rule.clone();
                    one.verbs
                        .retain(|verb| keep(&(group.as_str(), resource.as_str(), verb.as_str())));
                    one.resources = Some(vec![resource]);
                    (!one.verbs.is_empty()).then_some(one)
                })
            })
            .collect();
        Api::<ClusterRole>::all(self.client.clone())
            .patch(
                &self.name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": self.name},
                    "rules": rules,
                })),
            )
            .await
            .unwrap();
    }

    async fn remove(self) {
        let dp = DeleteParams::default();
        let _ = Api::<ClusterRoleBinding>::all(self.client.clone())
            .delete(&self.name, &dp)
            .await;
        let _ = Api::<ClusterRole>::all(self.client.clone())
            .delete(&self.name, &dp)
            .await;
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

#[tokio::test]
async fn a_port_already_in_use_ends_the_process_with_the_reason() {
    let client = support::client().await;
    let ns = support::namespace(&client, "port").await;
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_fluxtune"))
        .args(["run", "--namespace", &ns, "--http-addr", &addr])
        .args(["--leader-election", "false"])
        .env("KUBECONFIG", support::operator_kubeconfig_path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("fluxtune run exits when its port is taken")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: HTTP server: cannot listen on --http-addr {addr}: Address already in use"
        )),
        "{stderr}"
    );
    drop(held);
}

#[tokio::test]
async fn readyz_answers_200_only_once_the_profile_cache_and_every_flux_cache_are_filled() {
    let client = support::client().await;
    let ns = support::namespace(&client, "readyz").await;
    let id = OwnIdentity::new(&client, &ns).await;
    let cannot_list = |denied: &'static [&'static str]| {
        move |(_, resource, verb): &(&str, &str, &str)| {
            !(denied.contains(resource) && matches!(*verb, "list" | "watch"))
        }
    };
    // Neither the profiles nor the ImagePolicies can be listed: their caches cannot fill.
    id.grant(cannot_list(&["fluxprofiles", "imagepolicies"]))
        .await;
    let op = Operator::start_as(id.kubeconfig.clone(), &ns, "op-a", &[]);
    eventually("/healthz answers", PATIENCE, || async {
        (op.status_of("/healthz").await == Some(200)).then_some(())
    })
    .await;
    let stays_unready = |seconds: u64| {
        let op = &op;
        async move {
            for _ in 0..seconds * 10 {
                assert_eq!(op.status_of("/readyz").await, Some(503), "{}", op.logs());
                assert_eq!(op.status_of("/healthz").await, Some(200));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    stays_unready(3).await;

    // The Flux caches fill; the profiles' still cannot. A failing watch retries on its own
    // backoff (up to about 30 s): hence the patience.
    let after_backoff = 3 * PATIENCE;
    id.grant(cannot_list(&["fluxprofiles"])).await;
    eventually("every Flux cache filled", after_backoff, || async {
        let filled = op
            .logs()
            .lines()
            .filter(|l| l.contains("cache filled"))
            .count();
        // Every Flux kind's, not the profiles'.
        (filled == FluxKind::ALL.len() && !op.logs().contains("cache=\"FluxProfile\""))
            .then_some(())
    })
    .await;
    stays_unready(2).await;

    id.grant(|_| true).await;
    eventually("/readyz 200", after_backoff, || async {
        (op.status_of("/readyz").await == Some(200)).then_some(())
    })
    .await;
    support::webhook_secret(&client, &ns, "hook", TOKEN).await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    drop(op);
    id.remove().await;
}

#[tokio::test]
async fn a_failed_read_of_the_flux_crds_does_not_end_the_process() {
    let client = support::client().await;
    let ns = support::namespace(&client, "crdread").await;
    support::webhook_secret(&client, &ns, "hook", TOKEN).await;
    let id = OwnIdentity::new(&client, &ns).await;
    let mut op = Operator::start_as(id.kubeconfig.clone(), &ns, "op-a", &[]);
    op.wait_ready().await;
    // Its watches of the Flux CRDs have listed: the change below arrives as an event (a change
    // before their lists is caught by the read that follows them, which this test must not race).
    eventually("the Flux CRDs watched", PATIENCE, || async {
        op.logs()
            .contains("watching the Flux CRDs for changes")
            .then_some(())
    })
    .await;

    // The watch of the Flux CRDs goes on, but reading them is refused (403), as it fails while
    // the API server restarts.
    id.grant(|(_, resource, verb)| !(*resource == "customresourcedefinitions" && *verb == "get"))
        .await;
    // Any change to a Flux CRD makes the operator read them all again.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = FluxKind::Receiver.crd_name();
    let poke = format!("e2e.fluxtune.dev/{ns}");
    crds.patch(
        &crd,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {&poke: "1"}}})),
    )
    .await
    .unwrap();
    eventually("the failed read is logged", PATIENCE, || async {
        op.logs()
            .contains("reading the Flux CRDs again failed")
            .then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(op.is_running(), "{}", op.logs());
    assert_eq!(op.status_of("/readyz").await, Some(200));

    // Reads work again: the retry finds the CRDs unchanged, and the controller never stopped.
    id.grant(|_| true).await;
    eventually("the CRDs read again", PATIENCE, || async {
        op.logs()
            .contains("read the Flux CRDs again: unchanged")
            .then_some(())
    })
    .await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied(&client, &ns).await;
    assert!(op.is_running(), "{}", op.logs());
    assert_eq!(
        op.logs().matches("reconciling FluxProfiles").count(),
        1,
        "the controller was not restarted: {}",
        op.logs()
    );
    crds.patch(
        &crd,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {&poke: null}}})),
    )
    .await
    .unwrap();
    drop(op);
    id.remove().await;
}

#[tokio::test]
async fn a_start_with_many_waiting_profiles_runs_at_most_the_bound_of_reconciles_at_once() {
    const PROFILES: usize = 24;
    const BOUND: u64 = 3;
    let client = support::client().await;
    let ns = support::namespace(&client, "bound").await;
    support::webhook_secret(&client, &ns, "hook", TOKEN).await;
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    // Every profile waits when the operator starts, none applied yet: the largest burst. No
    // images: the Flux controllers of the tests that run next would be kept busy scanning 48
    // unreachable repositories.
    let mut spec = webhook_spec();
    spec.as_object_mut().unwrap().remove("images");
    spec.as_object_mut().unwrap().remove("imageUpdate");
    for i in 0..PROFILES {
        let mut doc = profile(&ns, spec.clone());
        doc["metadata"]["name"] = json!(format!("p{i}"));
        doc["spec"]["cluster"]["name"] = json!(format!("cluster{i}"));
        apply_profile(&client, &doc).await;
    }
    let op = Operator::start_with(
        &ns,
        "op-a",
        &["--max-concurrent-reconciles", &BOUND.to_string()],
    );
    op.wait_ready().await;
    eventually(
        &format!("{PROFILES} profiles applied"),
        // A liveness bound: on two shared cores with the Flux controllers running, a reconcile
        // that created 8 objects has taken 3 s.
        4 * PATIENCE,
        || async {
            let applied = api
                .list(&ListParams::default())
                .await
                .unwrap()
                .iter()
                .filter(|p| {
                    p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                        && condition(p, "Applied") == Some(("True", "ReconciliationSucceeded"))
                })
                .count();
            (applied == PROFILES).then_some(())
        },
    )
    .await;
    let m = op.metrics().await;
    assert_eq!(
        support::metric(&m, "fluxtune_max_concurrent_reconciles", ""),
        BOUND
    );
    // Reached, and never exceeded: the bound, not the workload, limited the reconciles.
    assert_eq!(
        support::metric(&m, "fluxtune_reconciles_in_flight_max", ""),
        BOUND,
        "{m}"
    );
    assert!(support::metric(&m, "fluxtune_reconciles_in_flight", "") <= BOUND);
    drop(op);
    // Nor their 24 GitRepositories fetched and Receivers served.
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}

/// spec.kustomizations: a dependsOn cycle passes the CRD (CEL cannot follow chains) and is
/// Stalled with DependencyCycle, creating nothing and not retried; once the cycle is broken each
/// entry is a Kustomization `<profile>-<entry>` with its dependsOn, and renaming an entry prunes
/// the old Kustomization like any other object that left the profile.
#[tokio::test]
async fn a_kustomization_cycle_is_stalled_and_a_renamed_entry_is_pruned() {
    let client = support::client().await;
    let ns = support::namespace(&client, "kustomizations").await;
    let op = Operator::start(&ns, "op");
    op.wait_ready().await;
    let spec = |entries: Value| {
        json!({
            "cluster": {"name": "cluster1"},
            "source": {"url": "https://git.example.com/acme/kubeconf.git"},
            "kustomizations": entries,
        })
    };
    apply_profile(
        &client,
        &profile(
            &ns,
            spec(json!([
                {"name": "infra", "path": "infra", "dependsOn": [{"name": "apps"}]},
                {"name": "apps", "path": "apps", "dependsOn": [{"name": "infra"}]},
            ])),
        ),
    )
    .await;
    let p = eventually("the cycle is Stalled", PATIENCE, || async {
        let p = get_profile(&client, &ns).await;
        (condition(&p, "Stalled") == Some(("True", "DependencyCycle"))).then_some(p)
    })
    .await;
    assert_eq!(condition(&p, "Ready"), Some(("False", "DependencyCycle")));
    let stalled = p.status.as_ref().unwrap();
    let message = &stalled
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap()
        .message;
    assert!(
        message.contains("dependsOn forms a cycle: infra -> apps -> infra"),
        "{message}"
    );
    assert!(children(&client, &ns).await.is_empty(), "nothing applied");
    // Only a person can fix it: no retry, so nothing more is reconciled or written.
    // (After the one reconcile its own status write brings.)
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let ok = |text: &str| support::metric(text, "fluxtune_reconciles_total", "result=\"ok\"");
    let (reconciles, patches) = (ok(&op.metrics().await), op.requests("PATCH").await);
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    assert_eq!(ok(&op.metrics().await), reconciles, "reconciled again");
    assert_eq!(op.requests("PATCH").await, patches, "wrote again");

    apply_profile(
        &client,
        &profile(
            &ns,
            spec(json!([
                {"name": "infra", "path": "infra"},
                {"name": "apps", "path": "apps", "dependsOn": [{"name": "infra"}]},
            ])),
        ),
    )
    .await;
    wait_applied(&client, &ns).await;
    let all = children(&client, &ns).await;
    let kustomizations: Vec<&str> = all
        .keys()
        .filter(|(kind, _)| kind == "Kustomization")
        .map(|(_, name)| name.as_str())
        .collect();
    assert_eq!(kustomizations, ["cluster1-apps", "cluster1-infra"]);
    let apps = &all[&("Kustomization".to_string(), "cluster1-apps".to_string())];
    assert_eq!(
        apps.data["spec"]["dependsOn"],
        json!([{"name": "cluster1-infra"}])
    );
    assert_eq!(apps.data["spec"]["path"], "./apps");
    let git = &all[&("GitRepository".to_string(), "cluster1".to_string())];
    assert_eq!(
        git.data["spec"]["sparseCheckout"],
        json!(["apps/", "infra/", "library/"])
    );

    apply_profile(
        &client,
        &profile(
            &ns,
            spec(json!([
                {"name": "infrastructure", "path": "infra"},
                {"name": "apps", "path": "apps", "dependsOn": [{"name": "infrastructure"}]},
            ])),
        ),
    )
    .await;
    let p = eventually(
        "the renamed entry's old Kustomization is pruned",
        PATIENCE,
        || async {
            let all = children(&client, &ns).await;
            let names: Vec<String> = all
                .keys()
                .filter(|(kind, _)| kind == "Kustomization")
                .map(|(_, name)| name.clone())
                .collect();
            let p = get_profile(&client, &ns).await;
            (names == ["cluster1-apps", "cluster1-infrastructure"]
                && p.status.as_ref()?.observed_generation == p.metadata.generation)
                .then_some(p)
        },
    )
    .await;
    let inventory: Vec<String> = p
        .status
        .unwrap()
        .inventory
        .iter()
        .filter(|e| e.kind == "Kustomization")
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(inventory, ["cluster1-infrastructure", "cluster1-apps"]);
}

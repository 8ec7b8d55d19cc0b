//! Flux in the loop: the five real Flux controllers, a Git host that sends GitHub-style push
//! webhooks and an OCI registry, all on loopback (`e2e/controlplane.sh flux-up DIR`), driven by
//! what the operator renders. These check the claims fluxtune's tuning rests on: a push reaches
//! the cluster through the Receiver in seconds although every interval is an hour; the artifact
//! holds only the cluster's folders; a new image tag flows scan -> ImagePolicy ->
//! ImageUpdateAutomation commit -> push -> webhook -> Receiver -> fetch -> apply without waiting on
//! any other interval.
//!
//! Latencies are printed (run with `--nocapture` to see them) and asserted against generous
//! bounds: an order of magnitude above what they measure, and far below any interval involved.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use fluxtune::flux::FluxKind;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use fluxtune::reconcile::{rescan, trigger};

use crate::flux_support::{
    Distribution, Fleet, Loop, Repo, SETUP, TOKEN, artifact_of, artifact_paths, config_value,
    failure, field, free_addr, get, observed, profile, profile_events, ready, registry_webhook_url,
    run, secs, wait_deployed, webhook_url, with_image,
};
use crate::support::{self, Operator, eventually};

/// What a webhook-driven change may take here; it measures about a second.
const EVENT_DRIVEN: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_push_reaches_the_cluster_through_the_receiver_within_seconds() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-webhook", 3, false).await;
    let _op = fleet
        .tune(
            &client,
            &lp,
            json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
            }),
        )
        .await;
    let (ns, repo) = (&fleet.ns, &fleet.repo);

    artifact_of(&client, ns, "cluster1", &repo.head(), SETUP).await;
    for kind in [FluxKind::GitRepository, FluxKind::Kustomization] {
        let interval = field(&client, ns, kind, "cluster1", "/spec/interval").await;
        assert_eq!(
            interval.as_deref(),
            Some("1h"),
            "{kind:?} interval: only the webhook makes this fast"
        );
    }
    eventually("the first apply", SETUP, || async {
        (config_value(&client, ns, "cluster1-config", "revision")
            .await
            .as_deref()
            == Some("1"))
        .then_some(())
    })
    .await;

    let t0 = Instant::now();
    let commit = repo.push_change("cluster1/configmap.yaml", |t| {
        t.replace("revision: \"1\"", "revision: \"2\"")
    });
    artifact_of(&client, ns, "cluster1", &commit, EVENT_DRIVEN).await;
    let fetched = t0.elapsed();
    eventually("the change applied", EVENT_DRIVEN, || async {
        (config_value(&client, ns, "cluster1-config", "revision")
            .await
            .as_deref()
            == Some("2"))
        .then_some(())
    })
    .await;
    let applied = t0.elapsed();
    eprintln!(
        "push -> GitRepository revision {}, -> applied {}",
        secs(fetched),
        secs(applied)
    );

    // The Receiver, not a poll, asked for the fetch: it sets the trigger annotation, and the
    // controller records that it handled it.
    let requested = field(
        &client,
        ns,
        FluxKind::GitRepository,
        "cluster1",
        "/metadata/annotations/reconcile.fluxcd.io~1requestedAt",
    )
    .await
    .expect("the Receiver annotated the GitRepository");
    let handled = field(
        &client,
        ns,
        FluxKind::GitRepository,
        "cluster1",
        "/status/lastHandledReconcileAt",
    )
    .await;
    assert_eq!(handled.as_deref(), Some(requested.as_str()));

    // fluxtune saw the same, from the objects' own status: webhook to apply, in whole seconds.
    let (trigger, took) = observed(&client, ns, "commitToDeploy", |r| r.ends_with(&commit)).await;
    eprintln!(
        "observed commit to deploy: {took:.3} s ({trigger}), measured {}",
        secs(applied)
    );
    assert_eq!(trigger, "Webhook");
    assert_agrees(took, applied);
    let metrics = _op.metrics().await;
    assert!(
        support::metric(
            &metrics,
            "fluxtune_observed_latency_seconds_count",
            "path=\"commit_to_deploy\""
        ) >= 1,
        "{metrics}"
    );
}

/// An observed latency agrees with the test's own measurement: Flux stamps whole seconds, and the
/// test measures from just before `git push` to the moment it saw the result.
fn assert_agrees(observed: f64, measured: Duration) {
    let measured = measured.as_secs_f64();
    assert!(
        observed <= measured + 1.0 && observed >= measured - 2.0,
        "observed {observed:.3} s, measured {measured:.3} s"
    );
}

#[tokio::test]
async fn the_artifact_holds_only_the_clusters_own_and_shared_folders() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let ns = support::namespace(&client, "flux-artifact").await;
    // The nested cluster applies into its own namespace: both clusters have a Deployment "app".
    let nested_ns = support::namespace(&client, "flux-artifact-nested").await;
    let repo = Repo::create(&lp, &ns, 50, "registry.example.com/acme/app", &ns);
    let op = Operator::start(&ns, "flux-artifact");
    op.wait_ready().await;
    let flat = json!({
        "cluster": {"name": "cluster1"},
        "source": {"url": repo.url},
        "pollingClass": "Poll",
        "apply": {"wait": false, "targetNamespace": ns},
    });
    let nested = json!({
        "cluster": {"name": "eu-1", "path": "clusters/prod/eu-1", "sharedPaths": ["library", "clusters/prod/common"]},
        "source": {"url": repo.url},
        "pollingClass": "Poll",
        "apply": {"wait": false, "targetNamespace": nested_ns},
    });
    for (name, spec) in [("cluster1", flat), ("eu-1", nested)] {
        support::apply_as(&client, "e2e-user", &profile(&ns, name, spec))
            .await
            .expect("the profile is accepted");
    }

    let head = repo.head();
    let url = artifact_of(&client, &ns, "cluster1", &head, SETUP).await;
    // What an artifact must hold: library/, the other kept paths, the cluster folder and its files.
    let listing = |kept: &[&str], cluster: &str| {
        let library = [
            "library",
            "library/kustomization.yaml",
            "library/settings.yaml",
        ];
        let own = [
            "configmap.yaml",
            "deployment.yaml",
            "kustomization.yaml",
            "service.yaml",
        ];
        let mut want: Vec<String> = library
            .iter()
            .chain(kept)
            .chain([&cluster])
            .map(|p| p.to_string())
            .chain(own.map(|f| format!("{cluster}/{f}")))
            .collect();
        want.sort();
        want
    };
    let want = listing(&[], "cluster1");
    assert_eq!(artifact_paths(&url), want, "cluster1's artifact ({url})");

    let url = artifact_of(&client, &ns, "eu-1", &head, SETUP).await;
    let common = [
        "clusters",
        "clusters/prod",
        "clusters/prod/common",
        "clusters/prod/common/kustomization.yaml",
        "clusters/prod/common/prod.yaml",
    ];
    let want = listing(&common, "clusters/prod/eu-1");
    assert_eq!(artifact_paths(&url), want, "eu-1's artifact ({url})");

    // What is left builds: both Kustomizations apply, shared folders included.
    for (name, target) in [("cluster1", &ns), ("eu-1", &nested_ns)] {
        eventually(&format!("Kustomization {name} Ready"), SETUP, || async {
            ready(&client, &ns, FluxKind::Kustomization, name)
                .await
                .then_some(())
        })
        .await;
        assert_eq!(
            config_value(&client, target, "library-settings", "logLevel")
                .await
                .as_deref(),
            Some("info"),
            "{name} applied library/"
        );
    }
    assert_eq!(
        config_value(&client, &nested_ns, "prod-settings", "tier")
            .await
            .as_deref(),
        Some("prod")
    );
}

#[tokio::test]
async fn a_new_image_tag_reaches_the_cluster_through_the_whole_chain() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-images", 3, true).await;
    let (ns, image, repo) = (&fleet.ns, &fleet.image, &fleet.repo);
    // A marker for cluster1's policy outside cluster1/: update.path must keep the automation away.
    repo.push_change("cluster2/deployment.yaml", |t| {
        t.replace(&format!("{ns}:cluster2-app"), &format!("{ns}:cluster1-app"))
    });
    let _op = fleet
        .tune(
            &client,
            &lp,
            json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
                "images": [{"name": "app", "repository": image, "policy": {"semver": {"range": ">=1.0.0"}}}],
                "imageUpdate": {
                    "author": {"name": "fluxtune-bot", "email": "bot@fluxtune.local"},
                    "messageTemplate": "chore(cluster1): update images",
                },
            }),
        )
        .await;
    let first = format!("{image}:1.0.0");
    wait_deployed(&client, ns, &first, "the first apply", SETUP).await;
    eventually("ImagePolicy at 1.0.0", SETUP, || {
        field(
            &client,
            ns,
            FluxKind::ImagePolicy,
            "cluster1-app",
            "/status/latestRef/tag",
        )
    })
    .await;

    lp.crane(&["tag", &first, "1.0.1"]);
    // Stands in for the ImageRepository's scan interval (1m), the one poll left in the chain.
    let t0 = Instant::now();
    let now = format!("{:?}", std::time::SystemTime::now());
    support::dynamic_api(&client, ns, FluxKind::ImageRepository)
        .patch(
            "cluster1-app",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}}),
            ),
        )
        .await
        .unwrap();
    eventually("ImagePolicy at 1.0.1", EVENT_DRIVEN, || async {
        let tag = field(
            &client,
            ns,
            FluxKind::ImagePolicy,
            "cluster1-app",
            "/status/latestRef/tag",
        )
        .await;
        (tag.as_deref() == Some("1.0.1")).then_some(())
    })
    .await;
    let policy = t0.elapsed();
    let second = format!("{image}:1.0.1");
    eventually("the automation's commit", EVENT_DRIVEN, || async {
        repo.server_file("cluster1/deployment.yaml")
            .contains(&second)
            .then_some(())
    })
    .await;
    let committed = t0.elapsed();
    wait_deployed(&client, ns, &second, "1.0.1 applied", EVENT_DRIVEN).await;
    let applied = t0.elapsed();
    eprintln!(
        "scan -> ImagePolicy {}, -> commit pushed {}, -> applied {}",
        secs(policy),
        secs(committed),
        secs(applied)
    );
    let log = run(Command::new("git").arg("--git-dir").arg(&repo.bare).args([
        "log",
        "-1",
        "--format=%an <%ae> %s",
        "main",
    ]));
    assert_eq!(
        log.trim(),
        "fluxtune-bot <bot@fluxtune.local> chore(cluster1): update images"
    );
    let outside = repo.server_file("cluster2/deployment.yaml");
    assert!(
        outside.contains(&first) && outside.contains(&format!("{ns}:cluster1-app")),
        "the automation left cluster1/: {outside}"
    );
}

/// Flux's own health check reads a FluxProfile through kstatus: a problem only the user can fix
/// (Stalled) fails a `wait: true` Kustomization at once instead of at its timeout, and fixing it
/// turns the Kustomization Ready on its next retry.
#[tokio::test]
async fn a_flux_health_check_fails_fast_on_a_stalled_profile_and_recovers() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let ns = support::namespace(&client, "flux-kstatus").await;
    let repo = Repo::create(&lp, &ns, 1, "registry.example.com/acme/app", &ns);
    // The platform team's folder of FluxProfiles, applied by a Flux Kustomization that waits.
    let fleet = profile(
        &ns,
        "cluster1",
        json!({
            "cluster": {"name": "cluster1"},
            "source": {"url": repo.url},
            "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
            // No Pod runs here: the profile's own Kustomization must not wait for its
            // Deployment, or the profile is never delivered (Ready).
            "apply": {"wait": false, "targetNamespace": ns},
        }),
    );
    repo.push_file(
        "fleet/cluster1.yaml",
        &serde_json::to_string(&fleet).unwrap(),
    );
    let op = Operator::start(&ns, "flux-kstatus");
    op.wait_ready().await;
    for object in [
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
               "metadata": {"name": "fleet", "namespace": ns},
               "spec": {"interval": "1h", "url": repo.url, "ref": {"branch": "main"}}}),
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
               "metadata": {"name": "fleet", "namespace": ns},
               "spec": {"interval": "1h", "path": "./fleet", "prune": true, "wait": true,
                        "timeout": "5m", "retryInterval": "5s",
                        "sourceRef": {"kind": "GitRepository", "name": "fleet"}}}),
    ] {
        support::apply_as(&client, "platform-team", &object)
            .await
            .unwrap();
    }

    let started = Instant::now();
    let message = eventually("the Kustomization's health check fails", SETUP, || async {
        let c = failure(&client, &ns, FluxKind::Kustomization, "fleet").await?;
        (c["reason"] == "HealthCheckFailed")
            .then(|| c["message"].as_str().unwrap_or_default().to_string())
    })
    .await;
    println!(
        "health check failed after {}: {message}",
        secs(started.elapsed())
    );
    assert!(
        message.contains("FluxProfile/") && message.contains("cluster1"),
        "{message}"
    );
    // Failed well before the 5m timeout: kstatus read Stalled as Failed, not as in progress.
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );

    support::webhook_secret(&client, &ns, "hook", TOKEN).await;
    eventually(
        "the Kustomization turns Ready once the Secret exists",
        SETUP,
        || async {
            ready(&client, &ns, FluxKind::Kustomization, "fleet")
                .await
                .then_some(())
        },
    )
    .await;
}

/// Ready means delivered: a profile whose repository URL is wrong has every object applied but is
/// not Ready, with the GitRepository's own words; fixing the URL makes it Ready, with the applied
/// revision in status.
#[tokio::test]
async fn a_profile_is_ready_only_when_its_source_is_fetched_and_applied() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-delivered", 1, false).await;
    let ns = &fleet.ns;
    let op = Operator::start(ns, "cluster1");
    op.wait_ready().await;
    let spec = |url: &str| {
        json!({
            "cluster": {"name": "cluster1"},
            "source": {"url": url},
            "pollingClass": "Poll",
            "apply": {"wait": false, "targetNamespace": ns},
        })
    };
    let wrong = format!("{}/no-such-repository.git", lp.git_url);
    support::apply_as(&client, "e2e-user", &profile(ns, "cluster1", spec(&wrong)))
        .await
        .unwrap();
    let profiles: kube::Api<fluxtune::api::FluxProfile> = kube::Api::namespaced(client.clone(), ns);
    let condition = |p: &fluxtune::api::FluxProfile, type_: &str| {
        p.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .cloned()
    };
    // The fetch fails (after a moment in progress, which is not Ready either).
    let (not_ready, words) =
        eventually("not Ready, in the GitRepository's words", SETUP, || async {
            let p = profiles.get("cluster1").await.ok()?;
            let applied = condition(&p, "Applied")?;
            let ready = condition(&p, "Ready")?;
            let source_says = failure(&client, ns, FluxKind::GitRepository, "cluster1").await?;
            let words = source_says["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (applied.status == "True"
                && ready.status == "False"
                && ready.reason == "SourceNotReady"
                && ready.message.contains(&words))
            .then_some((ready, words))
        })
        .await;
    assert!(
        not_ready.message.starts_with("GitRepository/cluster1: "),
        "{}",
        not_ready.message
    );
    assert!(words.contains("no-such-repository"), "{words}");

    support::apply_as(
        &client,
        "e2e-user",
        &profile(ns, "cluster1", spec(&fleet.repo.url)),
    )
    .await
    .unwrap();
    let head = fleet.repo.head();
    let p = eventually("Ready once the URL is fixed", SETUP, || async {
        let p = profiles.get("cluster1").await.ok()?;
        (condition(&p, "Ready")?.status == "True").then_some(p)
    })
    .await;
    let delivery = p.status.unwrap().delivery.unwrap();
    assert!(
        delivery
            .applied_revision
            .as_deref()
            .is_some_and(|r| r.ends_with(&head)),
        "{delivery:?} does not name {head}"
    );
    assert_eq!(delivery.source_revision, delivery.applied_revision);
}

/// Every folder a profile keeps must exist: with `sparseCheckout`, source-controller fails the
/// fetch when a listed folder is missing (flux-facts.md), and the GitRepository says which. Once
/// the folder is committed, the next fetch succeeds. This pins the Flux behaviour the README's
/// advice ("create `library/` first") rests on.
#[tokio::test]
async fn a_missing_shared_folder_fails_the_fetch_until_it_is_committed() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-missing-folder", 3, false).await;
    let (ns, repo) = (&fleet.ns, &fleet.repo);
    let _op = fleet
        .tune(
            &client,
            &lp,
            json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
                "cluster": {"name": "cluster1", "sharedPaths": ["library", "platform"]},
            }),
        )
        .await;
    let message = eventually("the fetch fails", SETUP, || async {
        let c = failure(&client, ns, FluxKind::GitRepository, "cluster1").await?;
        let message = c["message"].as_str()?;
        message.contains("platform").then(|| message.to_string())
    })
    .await;
    eprintln!("GitRepository with a missing sparse folder: {message}");

    let commit = repo.push_file("platform/kustomization.yaml", "resources: []\n");
    artifact_of(&client, ns, "cluster1", &commit, EVENT_DRIVEN).await;
    assert!(ready(&client, ns, FluxKind::GitRepository, "cluster1").await);
}

/// Deleting a profile deletes its Flux objects (ownerReferences); what its Kustomization applied
/// stays unless the profile says otherwise: the default deletionPolicy is Orphan, so a commit that
/// removes a profile's file by mistake does not take the cluster's workloads with it.
#[tokio::test]
async fn deleting_a_profile_keeps_its_workloads_unless_its_deletion_policy_says_delete() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-delete", 2, false).await;
    let _op = fleet
        .tune(&client, &lp, json!({"pollingClass": "Poll"}))
        .await;
    let ns = &fleet.ns;
    let doomed = json!({
        "cluster": {"name": "cluster2"},
        "source": {"url": fleet.repo.url},
        "pollingClass": "Poll",
        "apply": {"wait": false, "targetNamespace": ns, "deletionPolicy": "Delete"},
    });
    support::apply_as(&client, "e2e-user", &profile(ns, "cluster2", doomed))
        .await
        .unwrap();
    let configs =
        kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), ns);
    let kept = eventually("both clusters' workloads applied", SETUP, || async {
        let kept = configs.get_opt("cluster1-config").await.unwrap()?;
        configs.get_opt("cluster2-config").await.unwrap()?;
        Some(kept)
    })
    .await;
    let kustomization = support::dynamic_api(&client, ns, FluxKind::Kustomization)
        .get("cluster1")
        .await
        .unwrap();
    assert_eq!(kustomization.data["spec"]["deletionPolicy"], "Orphan");

    let profiles = kube::Api::<fluxtune::api::FluxProfile>::namespaced(client.clone(), ns);
    for name in ["cluster1", "cluster2"] {
        profiles
            .delete(name, &kube::api::DeleteParams::default())
            .await
            .unwrap();
    }
    let kustomizations = support::dynamic_api(&client, ns, FluxKind::Kustomization);
    eventually(
        "the Kustomizations are garbage-collected and finalized by kustomize-controller",
        SETUP,
        || async {
            let list = kustomizations.list(&Default::default()).await.unwrap();
            list.items.is_empty().then_some(())
        },
    )
    .await;
    eventually("Delete removed cluster2's workloads", SETUP, || async {
        configs
            .get_opt("cluster2-config")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let still = configs
        .get_opt("cluster1-config")
        .await
        .unwrap()
        .expect("Orphan (the default) keeps cluster1's workloads");
    assert_eq!(still.metadata.uid, kept.metadata.uid);
}

/// A tenant's profile names a service account that may only write its own namespace; the
/// cluster's folder holds a ClusterRole. kustomize-controller impersonates the account and the API
/// server refuses the ClusterRole: a FluxProfile gives no more power than its service account.
#[tokio::test]
async fn a_tenant_profile_cannot_apply_more_than_its_service_account_may() {
    use k8s_openapi::api::{
        core::v1::ServiceAccount,
        rbac::v1::{ClusterRole, RoleBinding},
    };
    use kube::{Api, api::PostParams};
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-tenant", 1, false).await;
    let ns = &fleet.ns;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "tenant"}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    // Everything in its own namespace (the built-in "admin" role), nothing cluster-wide.
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "tenant-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let role_name = format!("{ns}-escalate");
    fleet.repo.push_file(
        "cluster1/clusterrole.yaml",
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role_name}\nrules:\n  - apiGroups: [\"*\"]\n    resources: [\"*\"]\n    verbs: [\"*\"]\n"
        ),
    );
    fleet.repo.push_change("cluster1/kustomization.yaml", |t| {
        t.replace("resources:\n", "resources:\n  - clusterrole.yaml\n")
    });
    let _op = fleet
        .tune(
            &client,
            &lp,
            json!({
                "pollingClass": "Poll",
                "apply": {"wait": false, "targetNamespace": ns, "serviceAccountName": "tenant"},
            }),
        )
        .await;
    let refused = eventually(
        "kustomize-controller refuses the ClusterRole",
        Duration::from_secs(90),
        || async {
            failure(&client, ns, FluxKind::Kustomization, "cluster1")
                .await
                .filter(|c| {
                    c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("clusterroles"))
                })
        },
    )
    .await;
    let message = refused["message"].as_str().unwrap_or_default();
    eprintln!("the tenant reads: {message}");
    assert!(
        message.contains("forbidden") && message.contains("clusterroles"),
        "{message}"
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&role_name)
            .await
            .unwrap()
            .is_none(),
        "the ClusterRole was created"
    );
}

/// A real registry that sends webhooks: CNCF distribution, its notification endpoint pointed at
/// the profile's registry Receiver (`harbor`: distribution sends the token as a static
/// Authorization header). With every interval at 1h, the image scan included, and the Git host's
/// webhook off, a pushed tag is deployed in about a second: the registry's event starts the scan,
/// and fluxtune hands the automation's push on to the GitRepository.
#[tokio::test]
async fn a_registry_that_sends_webhooks_deploys_a_new_tag_with_every_interval_at_an_hour() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let addr = free_addr();
    let fleet = Fleet::on_registry(&client, &lp, "flux-distribution", 1, &addr).await;
    let (ns, image) = (&fleet.ns, &fleet.image);
    support::webhook_secret(&client, ns, "registry-hook", "registry-token").await;
    let _op = fleet
        .tune(
            &client,
            &lp,
            with_image(
                json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
                "registryWebhook": {"provider": "harbor", "secretRef": {"name": "registry-hook"},
                                    "baseURL": format!("http://{}", lp.receiver)},
                "intervals": {"imageScan": "1h", "imageUpdate": "1h"},
                }),
                image,
            ),
        )
        .await;
    for kind in [
        FluxKind::GitRepository,
        FluxKind::Kustomization,
        FluxKind::ImageRepository,
        FluxKind::ImageUpdateAutomation,
    ] {
        let name = if kind == FluxKind::ImageRepository {
            "cluster1-app"
        } else {
            "cluster1"
        };
        assert_eq!(
            field(&client, ns, kind, name, "/spec/interval")
                .await
                .as_deref(),
            Some("1h"),
            "{kind:?} polls only as a backstop"
        );
    }
    let hook = registry_webhook_url(&client, ns).await;
    let registry = Distribution::start(&lp, &addr, &hook, "registry-token");
    // The registry's own event for the first push makes the (empty) ImageRepository scan.
    lp.push_image(&format!("{}/{ns}/app", registry.addr), "1.0.0");
    eventually(
        "ImagePolicy at 1.0.0 through the registry's event",
        SETUP,
        || async {
            field(
                &client,
                ns,
                FluxKind::ImagePolicy,
                "cluster1-app",
                "/status/latestRef/tag",
            )
            .await
            .filter(|t| t == "1.0.0")
        },
    )
    .await;
    let first = format!("{image}:1.0.0");
    wait_deployed(&client, ns, &first, "1.0.0 applied", SETUP).await;

    // The Git host's webhook is switched off: the automation's push reaches the GitRepository
    // (interval 1h) only because fluxtune hands it on.
    fleet.repo.remove_webhooks();
    let t0 = Instant::now();
    lp.push_image(image, "1.0.1");
    let second = format!("{image}:1.0.1");
    // Any bound far below the 1h scan proves the registry's event did it; it measures about a
    // second on an idle machine.
    wait_deployed(&client, ns, &second, "1.0.1 applied", SETUP).await;
    let measured = t0.elapsed();
    eprintln!("push to distribution -> applied {}", secs(measured));
    let (trigger, took) = observed(&client, ns, "imageToDeploy", |r| r == second).await;
    eprintln!("observed image to deploy: {took:.3} s ({trigger})");
    assert_eq!(
        trigger, "Webhook",
        "the registry's event asked for the scan"
    );
    assert_agrees(took, measured);
    let metrics = _op.metrics().await;
    assert!(
        support::metric(
            &metrics,
            "fluxtune_observed_latency_seconds_count",
            "path=\"image_to_deploy\""
        ) >= 1,
        "{metrics}"
    );
    let requested = field(
        &client,
        ns,
        FluxKind::GitRepository,
        "cluster1",
        "/metadata/annotations/reconcile.fluxcd.io~1requestedAt",
    )
    .await
    .unwrap_or_default();
    assert!(
        requested.starts_with("fluxtune-push-"),
        "the fetch was not fluxtune's hand-on of the push: {requested:?}"
    );
    let scanned = field(
        &client,
        ns,
        FluxKind::ImageRepository,
        "cluster1-app",
        "/metadata/annotations/reconcile.fluxcd.io~1requestedAt",
    )
    .await
    .unwrap_or_default();
    assert_eq!(
        trigger::origin(&scanned),
        trigger::Origin::Receiver,
        "the scan was not the Receiver's: {scanned:?}"
    );
    // A wrong token is refused: the Receiver does not scan for anyone.
    let refused = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "Authorization: guess",
            "-d",
            "{}",
            &hook,
        ])
        .status()
        .unwrap();
    assert!(!refused.success(), "a call without the token was accepted");
}

/// The propagation guard: a registry event that arrives before its tag is listed (CNCF
/// distribution sends it before writing the tag link) triggers a scan that finds nothing; fluxtune
/// asks for the scan again about 2 s later, which finds the tag, so it is deployed in seconds
/// rather than at the 10m backstop scan. An event no tag ever follows ends, after five rescans
/// over about a minute, in a `RegistryEventUnanswered` Warning Event.
#[tokio::test]
async fn an_event_that_arrives_before_its_tag_is_answered_by_a_rescan() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-rescan", 1, true).await;
    let (ns, image) = (&fleet.ns, &fleet.image);
    support::webhook_secret(&client, ns, "registry-hook", "registry-token").await;
    let _op = fleet
        .tune(
            &client,
            &lp,
            with_image(
                json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
                "registryWebhook": {"provider": "harbor", "secretRef": {"name": "registry-hook"},
                                    "baseURL": format!("http://{}", lp.receiver)},
                }),
                image,
            ),
        )
        .await;
    assert_eq!(
        field(
            &client,
            ns,
            FluxKind::ImageRepository,
            "cluster1-app",
            "/spec/interval"
        )
        .await
        .as_deref(),
        Some("10m"),
        "with a registry webhook the scan is a 10m backstop"
    );
    let first = format!("{image}:1.0.0");
    wait_deployed(&client, ns, &first, "the first apply", SETUP).await;
    let url = registry_webhook_url(&client, ns).await;
    let announce = || {
        // What a registry sends after a push (Harbor-style; the harbor Receiver checks only
        // the Authorization header).
        run(Command::new("curl").args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "Authorization: registry-token",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"1.0.1"}]}}"#,
            &url,
        ]));
    };
    let handled = || async {
        let ir = get(&client, ns, FluxKind::ImageRepository, "cluster1-app").await?;
        let requested = ir
            .metadata
            .annotations
            .as_ref()?
            .get("reconcile.fluxcd.io/requestedAt")?
            .clone();
        (ir.data["status"]["lastHandledReconcileAt"].as_str() == Some(requested.as_str()))
            .then_some(requested)
    };
    // The event first; the tag only once the scan it triggered has found nothing.
    let before = handled().await;
    announce();
    let receivers = eventually("the event's scan", SETUP, || async {
        handled().await.filter(|r| Some(r) != before.as_ref())
    })
    .await;
    assert_eq!(
        trigger::origin(&receivers),
        trigger::Origin::Receiver,
        "{receivers:?}"
    );
    lp.crane(&["tag", &first, "1.0.1"]);
    let t0 = Instant::now();
    let second = format!("{image}:1.0.1");
    wait_deployed(&client, ns, &second, "1.0.1 applied after a rescan", SETUP).await;
    eprintln!(
        "tag listed after its event -> applied {}",
        secs(t0.elapsed())
    );
    let found_by = handled().await.unwrap_or_default();
    assert!(
        matches!(trigger::origin(&found_by), trigger::Origin::Rescan(_)),
        "the tag was not found by fluxtune's rescan: {found_by:?}"
    );

    // An event that no tag follows: five rescans, then a Warning Event. (Not within 10 s of the
    // tag found: that would be read as the same push announced twice.)
    tokio::time::sleep(rescan::DUPLICATE_WINDOW).await;
    announce();
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client.clone(), ns);
    let note = eventually(
        "a RegistryEventUnanswered event",
        Duration::from_secs(120),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("RegistryEventUnanswered"))
                .and_then(|e| e.note)
        },
    )
    .await;
    assert!(
        note.contains("5 requests") && note.contains("cluster1-app"),
        "{note}"
    );
    assert_eq!(
        handled().await.map(|r| trigger::origin(&r)),
        Some(trigger::Origin::Rescan(rescan::ATTEMPTS)),
        "the last scan handled was the guard's last attempt"
    );
}

/// The CI route for registries that cannot notify (docs/registry-webhooks.md): the job that pushed
/// the image signs a call to the `generic-hmac` registry Receiver, as `flux trigger receiver` does;
/// an unsigned or wrongly signed call is refused.
#[tokio::test]
async fn a_ci_step_announces_a_push_with_a_signed_call() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-ci-route", 1, true).await;
    let (ns, image) = (&fleet.ns, &fleet.image);
    support::webhook_secret(&client, ns, "registry-hook", "ci-token").await;
    let _op = fleet
        .tune(
            &client,
            &lp,
            with_image(
                json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
                "registryWebhook": {"provider": "generic-hmac", "secretRef": {"name": "registry-hook"},
                                    "baseURL": format!("http://{}", lp.receiver)},
                }),
                image,
            ),
        )
        .await;
    let first = format!("{image}:1.0.0");
    wait_deployed(&client, ns, &first, "the first apply", SETUP).await;
    let url = registry_webhook_url(&client, ns).await;
    let call = |token: &str| signed_call(&url, &format!("{image}:1.0.1"), token);
    lp.crane(&["tag", &first, "1.0.1"]);
    assert!(!call("not-the-token"), "a wrongly signed call was accepted");
    let t0 = Instant::now();
    assert!(call("ci-token"), "the signed call was refused");
    let second = format!("{image}:1.0.1");
    wait_deployed(
        &client,
        ns,
        &second,
        "1.0.1 applied after the CI call",
        SETUP,
    )
    .await;
    eprintln!("CI call -> applied {}", secs(t0.elapsed()));
}

/// The CI route's call for IMAGE, signed with TOKEN as `flux trigger receiver` does
/// (docs/registry-webhooks.md): whether the Receiver accepted it.
fn signed_call(url: &str, image: &str, token: &str) -> bool {
    Command::new("bash")
        .args([
            "-c",
            r#"set -euo pipefail
BODY="{\"image\":\"$IMAGE\"}"
SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$TOKEN" | cut -d' ' -f2)
curl -sf -X POST -H "X-Signature: sha256=$SIG" -H 'Content-Type: application/json' -d "$BODY" "$URL""#,
        ])
        .env("IMAGE", image)
        .env("TOKEN", token)
        .env("URL", url)
        .status()
        .unwrap()
        .success()
}

/// A webhook that never comes is noticed and healed: with the Git host's webhook lost, a push is
/// found by the source's periodic poll (a short backstop here), counted as missed, reported as
/// `WebhookDegraded`, and the source falls back to polling at the fallback interval; once the
/// webhook is back, the next push arrives by it and the backstop returns.
#[tokio::test]
async fn a_missed_git_webhook_is_noticed_and_polling_falls_back_until_webhooks_return() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-missed", 1, false).await;
    let (ns, repo) = (&fleet.ns, &fleet.repo);
    let op = fleet
        .tune(
            &client,
            &lp,
            json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"},
                            "fallback": {"interval": "10s"}},
                "intervals": {"source": "30s"},
            }),
        )
        .await;
    let profiles: kube::Api<fluxtune::api::FluxProfile> = kube::Api::namespaced(client.clone(), ns);
    let status = || async { profiles.get("cluster1").await.ok()?.status };
    let degraded = |s: &fluxtune::api::FluxProfileStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "WebhookDegraded")
            .map(|c| c.status.clone())
    };
    // Ready, and the first revision recorded: a revision found before status holds one is the
    // source's first, which no webhook was missed for (the test raced it once the operator
    // applied faster).
    eventually(
        "delivered, the webhook in status, none missed",
        SETUP,
        || async {
            let s = status().await?;
            let ready = s
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let recorded = s
                .delivery
                .as_ref()
                .is_some_and(|d| d.source_revision.is_some());
            (ready && recorded && s.webhook.is_some() && degraded(&s).as_deref() == Some("False"))
                .then_some(())
        },
    )
    .await;
    let interval = || {
        field(
            &client,
            ns,
            FluxKind::GitRepository,
            "cluster1",
            "/spec/interval",
        )
    };
    assert_eq!(interval().await.as_deref(), Some("30s"));

    // Lost: the poll finds the push.
    repo.remove_webhooks();
    let lost = repo.push_change("cluster1/configmap.yaml", |t| {
        t.replace("revision: \"1\"", "revision: \"2\"")
    });
    // The 30 s poll finds the push; the rest of the bound is for a source-controller whose
    // workers are busy with other tests' fetches (it timed out at 90 s on a loaded machine).
    let missed = eventually(
        "the missed webhook in status",
        Duration::from_secs(180),
        || async {
            let s = status().await?;
            (degraded(&s).as_deref() == Some("True")).then_some(s.missed_webhooks)
        },
    )
    .await;
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0].kind, "GitRepository");
    assert!(missed[0].revision.ends_with(&lost), "{missed:?}");
    eventually("the fallback interval", SETUP, || async {
        (interval().await.as_deref() == Some("10s")).then_some(())
    })
    .await;
    let (trigger, _) = observed(&client, ns, "commitToDeploy", |r| r.ends_with(&lost)).await;
    assert_eq!(
        trigger, "Poll",
        "judged when new, not after the fallback's own apply"
    );
    let notes = profile_events(&client, ns, "WebhookMissed").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&lost) && n.contains("polling every 10s")),
        "{notes:?}"
    );
    let metrics = op.metrics().await;
    assert_eq!(
        support::metric(
            &metrics,
            "fluxtune_webhooks_missed_total",
            "kind=\"GitRepository\""
        ),
        1
    );
    assert_eq!(
        support::metric(
            &metrics,
            "fluxtune_webhook_fallback",
            "profile=\"cluster1\""
        ),
        1
    );
    let budget = status().await.unwrap().latency_budget.unwrap();
    assert_eq!(
        budget.webhook_lost.as_deref(),
        Some("20.5s"),
        "1.05 x 10s + 10s"
    );

    // Back: the next push arrives by webhook (a fallback poll may beat a webhook to a push, so
    // up to three pushes), and the backstop returns.
    let hook = webhook_url(&client, &lp, ns, "cluster1").await;
    repo.add_webhook(&hook, TOKEN);
    let mut restored = None;
    for n in 3..6 {
        repo.push_change("cluster1/configmap.yaml", |t| {
            t.replace(
                &format!("revision: \"{}\"", n - 1),
                &format!("revision: \"{n}\""),
            )
        });
        let head = repo.head();
        let s = eventually("the push judged", SETUP, || async {
            let s = status().await?;
            let judged = s
                .delivery
                .as_ref()?
                .source_revision
                .as_deref()?
                .ends_with(&head);
            judged.then_some(s)
        })
        .await;
        if degraded(&s).as_deref() == Some("False") {
            restored = Some(head);
            break;
        }
    }
    let head = restored.expect("no push arrived by webhook once it was back");
    eventually("the backstop again", SETUP, || async {
        (interval().await.as_deref() == Some("30s")).then_some(())
    })
    .await;
    let notes = profile_events(&client, ns, "WebhookRestored").await;
    assert!(notes.iter().any(|n| n.contains("back to 30s")), "{notes:?}");
    assert!(status().await.unwrap().missed_webhooks.is_empty());
    let (trigger, _) = observed(&client, ns, "commitToDeploy", |r| r.ends_with(&head)).await;
    assert_eq!(trigger, "Webhook");
}

/// The same for registries: a new tag that a periodic scan found while a registry Receiver
/// listens is a missed registry webhook; the scan falls back to the fallback interval until a tag
/// arrives by the Receiver again (here the CI route's signed call).
#[tokio::test]
async fn a_missed_registry_webhook_is_noticed_and_the_scan_falls_back() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-missed-registry", 1, true).await;
    let (ns, image) = (&fleet.ns, &fleet.image);
    support::webhook_secret(&client, ns, "registry-hook", "ci-token").await;
    let op = fleet
        .tune(
            &client,
            &lp,
            with_image(
                json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
                "registryWebhook": {"provider": "generic-hmac", "secretRef": {"name": "registry-hook"},
                                    "baseURL": format!("http://{}", lp.receiver),
                                    "fallback": {"interval": "10s"}},
                "intervals": {"imageScan": "20s"},
                }),
                image,
            ),
        )
        .await;
    let first = format!("{image}:1.0.0");
    wait_deployed(&client, ns, &first, "the first apply", SETUP).await;
    let url = registry_webhook_url(&client, ns).await;
    let profiles: kube::Api<fluxtune::api::FluxProfile> = kube::Api::namespaced(client.clone(), ns);
    let missed = || async {
        profiles
            .get("cluster1")
            .await
            .ok()
            .and_then(|p| p.status)
            .map(|s| s.missed_webhooks)
            .unwrap_or_default()
    };
    let interval = || {
        field(
            &client,
            ns,
            FluxKind::ImageRepository,
            "cluster1-app",
            "/spec/interval",
        )
    };
    assert_eq!(interval().await.as_deref(), Some("20s"));

    // Nobody calls: the periodic scan finds 1.0.1.
    lp.crane(&["tag", &first, "1.0.1"]);
    let second = format!("{image}:1.0.1");
    wait_deployed(&client, ns, &second, "1.0.1 by the scan", SETUP).await;
    let list = eventually("the missed registry webhook", SETUP, || async {
        let m = missed().await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(list[0].kind, "ImageRepository");
    assert_eq!(list[0].revision, second);
    eventually("the scan's fallback interval", SETUP, || async {
        (interval().await.as_deref() == Some("10s")).then_some(())
    })
    .await;
    let metrics = op.metrics().await;
    assert_eq!(
        support::metric(
            &metrics,
            "fluxtune_webhooks_missed_total",
            "kind=\"ImageRepository\""
        ),
        1
    );
    let (trigger, _) = observed(&client, ns, "imageToDeploy", |r| r == second).await;
    assert_eq!(trigger, "Scan");

    // A tag announced by the CI route's call: the webhook is back, so is the 20s scan. (A
    // fallback scan may find the tag before the call's scan does: then call again with the next.)
    let mut restored = false;
    for n in 2..5 {
        let tag = format!("{image}:1.0.{n}");
        lp.crane(&["tag", &first, &format!("1.0.{n}")]);
        assert!(signed_call(&url, &tag, "ci-token"), "the call was refused");
        wait_deployed(&client, ns, &tag, "the announced tag", SETUP).await;
        if eventually("the tag judged", SETUP, || async {
            let p = profiles.get("cluster1").await.ok()?;
            let s = p.status?;
            let judged = s.delivery?.images.iter().any(|i| i.latest_image == tag);
            judged.then_some(s.missed_webhooks.is_empty())
        })
        .await
        {
            restored = true;
            break;
        }
    }
    assert!(restored, "no tag arrived by the Receiver");
    eventually("the backstop scan again", SETUP, || async {
        (interval().await.as_deref() == Some("20s")).then_some(())
    })
    .await;
}

/// The propagation guard for Git, with the real notification-controller and source-controller: a
/// push to another branch calls the Receiver, whose fetch finds the followed branch unchanged, so
/// fluxtune asks again after 2, 4, 8, 16 and 30 s (a Git host can call before its replicas serve
/// the commit), then leaves it to the backstop with a Normal `GitEventUnanswered` Event.
#[tokio::test]
async fn a_webhook_whose_fetch_finds_nothing_new_is_asked_again_then_left_to_the_backstop() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let fleet = Fleet::new(&client, &lp, "flux-git-guard", 1, false).await;
    let (ns, repo) = (&fleet.ns, &fleet.repo);
    let _op = fleet
        .tune(
            &client,
            &lp,
            json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
            }),
        )
        .await;
    let main = repo.head();
    artifact_of(&client, ns, "cluster1", &main, SETUP).await;
    let handled = || {
        field(
            &client,
            ns,
            FluxKind::GitRepository,
            "cluster1",
            "/status/lastHandledReconcileAt",
        )
    };
    repo.push_branch("feature", "cluster1/notes.txt", "not on main\n");
    let receiver = eventually("the Receiver's request handled", SETUP, || async {
        handled()
            .await
            .filter(|h| trigger::origin(h) == trigger::Origin::Receiver)
    })
    .await;
    eprintln!("the Receiver asked: {receiver}");
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client.clone(), ns);
    let event = eventually(
        "a GitEventUnanswered event",
        Duration::from_secs(120),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("GitEventUnanswered"))
        },
    )
    .await;
    assert_eq!(
        event.type_.as_deref(),
        Some("Normal"),
        "another branch is no fault"
    );
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("5 requests") && note.contains("GitRepository cluster1"),
        "{note}"
    );
    assert_eq!(
        handled().await.map(|h| trigger::origin(&h)),
        Some(trigger::Origin::Rescan(rescan::ATTEMPTS)),
        "the last fetch handled was the guard's last attempt"
    );
    assert!(
        field(
            &client,
            ns,
            FluxKind::GitRepository,
            "cluster1",
            "/status/artifact/revision"
        )
        .await
        .is_some_and(|r| r.ends_with(&main)),
        "the followed branch did not move"
    );
}

/// spec.kustomizations with the real controllers: infrastructure, then apps (dependsOn, a postBuild
/// substitution from the spec and from a ConfigMap) against the one tuned source. While the
/// infrastructure cannot build, the profile is not Ready and names it, and the apps are not
/// applied; once it is fixed, both apply the same revision, the profile is Ready (delivered) no
/// earlier than the apps' apply, and the observed latency ends at that last apply. The apps use a
/// kustomize Component from a folder outside their path, which the source keeps for them.
#[tokio::test]
async fn layered_kustomizations_are_delivered_only_when_infrastructure_then_apps_have_applied() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let lp = Loop::from_env();
    let client = support::client().await;
    let ns = support::namespace(&client, "flux-layered").await;
    let configmap = |name: &str, data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}")
    };
    let kustomization = |resources: &[&str]| {
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}",
            resources
                .iter()
                .map(|r| format!("  - {r}\n"))
                .collect::<String>()
        )
    };
    let repo = Repo::init(&lp, &ns, |dir| {
        let write = |file: &str, text: String| {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "library/kustomization.yaml",
            kustomization(&["settings.yaml"]),
        );
        write(
            "library/settings.yaml",
            configmap("library-settings", "  logLevel: info\n"),
        );
        // Not buildable yet: it names a file that is not committed.
        write(
            "infrastructure/kustomization.yaml",
            kustomization(&["configmap.yaml", "missing.yaml"]),
        );
        write(
            "infrastructure/configmap.yaml",
            configmap("infra-config", "  layer: infrastructure\n"),
        );
        write(
            "apps/kustomization.yaml",
            kustomization(&["configmap.yaml"]),
        );
        write(
            "apps/configmap.yaml",
            configmap(
                "apps-config",
                "  domain: ${domain}\n  cluster: ${cluster_name}\n",
            ),
        );
        // A kustomize Component the apps use (`../components/apps-extra`): outside every
        // entry's path, kept because the entry names it.
        write(
            "components/apps-extra/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n  - patch: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: apps-config\n      data:\n        component: applied\n".to_string(),
        );
        // Outside every Kustomization's path: the source drops it.
        write(
            "other/configmap.yaml",
            configmap("other-config", "  x: y\n"),
        );
    });
    let configs = kube::Api::<ConfigMap>::namespaced(client.clone(), &ns);
    configs
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "cluster-vars"},
                "data": {"cluster_name": "cluster1"},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let fleet = Fleet {
        ns: ns.clone(),
        image: "registry.example.com/acme/app".into(),
        repo,
    };
    let _op = fleet
        .tune(
            &client,
            &lp,
            json!({
                "pollingClass": "Webhook",
                "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
                "kustomizations": [
                    {"name": "infra", "path": "infrastructure"},
                    {"name": "apps", "path": "apps", "dependsOn": [{"name": "infra"}],
                     "components": ["../components/apps-extra"],
                     "postBuild": {
                        "substitute": {"domain": "cluster1.example.com"},
                        "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}]}},
                ],
            }),
        )
        .await;
    let profiles = kube::Api::<fluxtune::api::FluxProfile>::namespaced(client.clone(), &ns);
    let ready_condition = |p: &fluxtune::api::FluxProfile| {
        p.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned()
    };

    let not_ready = eventually(
        "not Ready, naming the infrastructure's failed build",
        SETUP,
        || async {
            let p = profiles.get("cluster1").await.ok()?;
            let ready = ready_condition(&p)?;
            (ready.status == "False"
                && ready.reason == "ApplyFailed"
                && ready.message.starts_with("Kustomization/cluster1-infra: ")
                && ready.message.contains("missing.yaml"))
            .then_some((ready, p.status?.delivery))
        },
    )
    .await;
    eprintln!("layered, infrastructure broken: {}", not_ready.0.message);
    assert_eq!(
        not_ready.1.and_then(|d| d.applied_revision),
        None,
        "nothing applied by both"
    );
    assert!(configs.get_opt("apps-config").await.unwrap().is_none());
    let apps = failure(&client, &ns, FluxKind::Kustomization, "cluster1-apps").await;
    eprintln!("the apps meanwhile: {apps:?}");

    let pushed = Instant::now();
    let commit = fleet.repo.push_file(
        "infrastructure/kustomization.yaml",
        &kustomization(&["configmap.yaml"]),
    );
    let p = eventually("Ready once both applied the fix", SETUP, || async {
        let p = profiles.get("cluster1").await.ok()?;
        (ready_condition(&p)?.status == "True").then_some(p)
    })
    .await;
    eprintln!(
        "layered: the fix was delivered through both Kustomizations in {}",
        secs(pushed.elapsed())
    );
    let status = p.status.clone().unwrap();
    let delivery = status.delivery.unwrap();
    assert!(
        delivery
            .applied_revision
            .as_deref()
            .is_some_and(|r| r.ends_with(&commit)),
        "{delivery:?} does not name {commit}"
    );
    let mut applied_at = Vec::new();
    for name in ["cluster1-infra", "cluster1-apps"] {
        let revision = field(
            &client,
            &ns,
            FluxKind::Kustomization,
            name,
            "/status/lastAppliedRevision",
        )
        .await;
        assert_eq!(revision, delivery.applied_revision, "{name}");
        let ready =
            crate::flux_support::condition(&client, &ns, FluxKind::Kustomization, name, "Ready")
                .await
                .unwrap();
        applied_at.push(ready["lastTransitionTime"].as_str().unwrap().to_string());
    }
    let (infra_at, apps_at) = (&applied_at[0], &applied_at[1]);
    assert!(infra_at <= apps_at, "infra {infra_at}, apps {apps_at}");
    let profile_ready_at = ready_condition(&p)
        .unwrap()
        .last_transition_time
        .0
        .to_string();
    let (profile_ready, apps_applied): (
        k8s_openapi::jiff::Timestamp,
        k8s_openapi::jiff::Timestamp,
    ) = (profile_ready_at.parse().unwrap(), apps_at.parse().unwrap());
    assert!(
        profile_ready >= apps_applied,
        "Ready at {profile_ready} before the apps applied at {apps_applied}"
    );
    // The observed latency of the fix ends at the last Kustomization's apply.
    let sample = eventually("the fix's latency sample", SETUP, || async {
        let p = profiles.get("cluster1").await.ok()?;
        let sample = p.status?.observed_latency?.commit_to_deploy?;
        delivery
            .applied_revision
            .as_ref()
            .is_some_and(|r| *r == sample.revision)
            .then_some(sample)
    })
    .await;
    assert_eq!(sample.applied_at.0, apps_applied, "{sample:?}");

    let apps_config = configs.get("apps-config").await.unwrap();
    let data = apps_config.data.unwrap();
    assert_eq!(data["domain"], "cluster1.example.com", "substitute");
    assert_eq!(data["cluster"], "cluster1", "substituteFrom");
    assert_eq!(
        data["component"], "applied",
        "the component, from a folder kept for it"
    );
    assert!(configs.get_opt("infra-config").await.unwrap().is_some());
    assert!(
        configs.get_opt("other-config").await.unwrap().is_none(),
        "a folder no Kustomization reads is not applied"
    );
    let url = field(
        &client,
        &ns,
        FluxKind::GitRepository,
        "cluster1",
        "/status/artifact/url",
    )
    .await
    .unwrap();
    let paths = artifact_paths(&url);
    // Each path a kept folder, inside one, or an ancestor on the way to one (`components`).
    let kept = ["apps", "components/apps-extra", "infrastructure", "library"];
    assert!(
        paths.iter().all(|p| kept
            .iter()
            .any(|k| p == k || p.starts_with(&format!("{k}/")) || k.starts_with(&format!("{p}/")))),
        "the artifact holds more than the Kustomizations' and shared folders: {paths:?}"
    );
}

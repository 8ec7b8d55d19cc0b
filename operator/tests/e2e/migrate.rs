//! Migrating a cluster that `flux bootstrap` set up to fluxtune, exactly as
//! docs/migrate-from-bootstrap.md says: two commits to the config repository and no command
//! beyond `flux reconcile` (here: the same `requestedAt` annotation). The FluxProfile is named
//! `flux-system`, so its GitRepository and Kustomization are the bootstrap objects themselves,
//! adopted in place; kustomize-controller stops applying them (`ssa: IfNotPresent`) but keeps
//! them in its inventory. Needs the Flux loop (`controlplane.sh flux-up`).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use fluxtune::{api::FluxProfile, flux::FluxKind};
use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Event},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};

use crate::{
    flux_support::{
        Loop, Repo, SETUP, TOKEN, artifact_of, artifact_paths, config_value, field, get, ready,
        webhook_url,
    },
    support::{self, Operator, eventually},
};

/// The profile's name: its GitRepository and Kustomization are named after it.
const PROFILE: &str = "flux-system";

/// `flux bootstrap`'s gotk-sync.yaml for cluster1 (namespace: the test's instead of flux-system).
fn gotk_sync(ns: &str, url: &str) -> String {
    format!(
        r#"---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: {ns}
spec:
  interval: 1m0s
  ref:
    branch: main
  url: {url}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: {ns}
spec:
  interval: 10m0s
  path: ./clusters/cluster1
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"#
    )
}

/// flux-system/kustomization.yaml: as bootstrap writes it, plus the migration's patch (step 1:
/// fluxtune's labels and `prune: disabled`; step 2 adds `ssa: IfNotPresent`).
fn flux_system_kustomization(ns: &str, step: u8) -> String {
    let mut text =
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - gotk-components.yaml\n  - gotk-sync.yaml\n"
            .to_string();
    if step == 0 {
        return text;
    }
    let if_not_present = if step >= 2 {
        "\n          kustomize.toolkit.fluxcd.io/ssa: IfNotPresent"
    } else {
        ""
    };
    text.push_str("patches:\n");
    for (api_version, kind) in [
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ] {
        text.push_str(&format!(
            r#"  - patch: |
      apiVersion: {api_version}
      kind: {kind}
      metadata:
        name: flux-system
        namespace: {ns}
        labels:
          app.kubernetes.io/managed-by: fluxtune
          fluxtune.dev/profile: flux-system
        annotations:
          kustomize.toolkit.fluxcd.io/prune: disabled{if_not_present}
"#
        ));
    }
    text
}

fn flux_kustomization(ns: &str, name: &str, path: &str, depends_on: Option<&str>) -> String {
    let depends = depends_on
        .map(|d| format!("  dependsOn:\n    - name: {d}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {name}
  namespace: {ns}
spec:
{depends}  interval: 1h
  retryInterval: 1m
  timeout: 3m
  path: {path}
  prune: true
  wait: false
  sourceRef:
    kind: GitRepository
    name: flux-system
"#
    )
}

fn config_map(ns: &str, name: &str, revision: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  revision: \"{revision}\"\n"
    )
}

fn deployment(ns: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: app}}
  template:
    metadata:
      labels: {{app: app}}
    spec:
      containers:
        - name: app
          image: registry.example.com/acme/app:1.0.0
"#
    )
}

/// The FluxProfile the migration commits (fluxtune/cluster1/fluxprofile.yaml).
fn fluxprofile(ns: &str, url: &str) -> String {
    format!(
        r#"apiVersion: fluxtune.dev/v1alpha1
kind: FluxProfile
metadata:
  name: {PROFILE}
  namespace: {ns}
  annotations:
    kustomize.toolkit.fluxcd.io/prune: disabled
spec:
  cluster:
    name: cluster1
    path: clusters/cluster1
    sharedPaths: [infrastructure, apps/cluster1, fluxtune/cluster1]
  source:
    url: {url}
    ref:
      branch: main
  pollingClass: Webhook
  webhook:
    provider: github
    secretRef:
      name: hook
  apply:
    wait: false
"#
    )
}

/// `flux reconcile source git NAME` / `flux reconcile kustomization NAME`: a new requestedAt.
async fn request(client: &Client, ns: &str, kind: FluxKind, name: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": value}}});
    support::dynamic_api(client, ns, kind)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Watches every object of `api` from now on and writes down each deletion, or start of one.
fn watch_deletions<K>(
    api: Api<K>,
    what: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
    listed: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Delete(o)) => {
                    seen.lock()
                        .unwrap()
                        .push(format!("{what} {} deleted", o.name_any()));
                }
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))
                    if o.meta().deletion_timestamp.is_some() =>
                {
                    seen.lock()
                        .unwrap()
                        .push(format!("{what} {} being deleted", o.name_any()));
                }
                Ok(watcher::Event::InitDone) => {
                    listed.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    })
}

/// The UID of every ConfigMap and Deployment in the namespace (kube-root-ca.crt aside) and of
/// the Flux objects.
async fn uids(client: &Client, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for cm in Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
    {
        if cm.name_any() != "kube-root-ca.crt" {
            out.insert(format!("ConfigMap/{}", cm.name_any()), cm.uid().unwrap());
        }
    }
    for d in Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
    {
        out.insert(format!("Deployment/{}", d.name_any()), d.uid().unwrap());
    }
    for kind in [FluxKind::GitRepository, FluxKind::Kustomization] {
        for o in support::dynamic_api(client, ns, kind)
            .list(&Default::default())
            .await
            .unwrap()
        {
            out.insert(format!("{kind:?}/{}", o.name_any()), o.uid().unwrap());
        }
    }
    out
}

/// The flux-system Kustomization's last applied revision, once it is `commit`.
async fn applied_revision(client: &Client, ns: &str, commit: &str) -> Option<String> {
    field(
        client,
        ns,
        FluxKind::Kustomization,
        PROFILE,
        "/status/lastAppliedRevision",
    )
    .await
    .filter(|r| r.ends_with(commit))
}

fn controller_uid(o: &DynamicObject) -> Option<String> {
    o.owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

#[tokio::test]
async fn a_bootstrapped_cluster_migrates_to_fluxtune_with_every_workload_in_place() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let ns = support::namespace(&client, "migrate").await;
    let ns = ns.as_str();

    // The config repository as `flux bootstrap --path=clusters/cluster1` leaves it, with the usual
    // infrastructure-then-apps layout under it, and a second cluster nobody here needs.
    let url = format!("{}/{ns}-fleet.git", lp.git_url);
    let repo = Repo::init(&lp, &format!("{ns}-fleet"), |work| {
        let files = [
            (
                "clusters/cluster1/flux-system/gotk-components.yaml",
                // Stand-in: the controllers run as processes next to this control plane.
                config_map(ns, "gotk-components", "v2.9"),
            ),
            (
                "clusters/cluster1/flux-system/gotk-sync.yaml",
                gotk_sync(ns, &url),
            ),
            (
                "clusters/cluster1/flux-system/kustomization.yaml",
                flux_system_kustomization(ns, 0),
            ),
            (
                "clusters/cluster1/infrastructure.yaml",
                flux_kustomization(ns, "infrastructure", "./infrastructure/controllers", None),
            ),
            (
                "clusters/cluster1/apps.yaml",
                flux_kustomization(ns, "apps", "./apps/cluster1", Some("infrastructure")),
            ),
            (
                "infrastructure/controllers/configmap.yaml",
                config_map(ns, "infra-config", "1"),
            ),
            (
                "apps/cluster1/configmap.yaml",
                config_map(ns, "app-config", "1"),
            ),
            ("apps/cluster1/deployment.yaml", deployment(ns)),
            (
                "apps/cluster2/configmap.yaml",
                config_map("other", "app-config", "1"),
            ),
            (
                "clusters/cluster2/apps.yaml",
                flux_kustomization("other", "apps", "./apps/cluster2", None),
            ),
        ];
        for (file, content) in files {
            let path = work.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
    });
    assert_eq!(repo.url, url);

    // `flux bootstrap` applies gotk-sync.yaml once; from then on flux-system applies itself.
    let sync = gotk_sync(ns, &url);
    for doc in sync.split("---\n").filter(|d| !d.trim().is_empty()) {
        let object: Value = serde_saphyr::from_str(doc).unwrap();
        support::apply_as(&client, "flux", &object).await.unwrap();
    }
    for name in ["flux-system", "infrastructure", "apps"] {
        eventually(&format!("Kustomization {name} Ready"), SETUP, || async {
            ready(&client, ns, FluxKind::Kustomization, name)
                .await
                .then_some(())
        })
        .await;
    }
    let before = uids(&client, ns).await;
    for expected in [
        "ConfigMap/gotk-components",
        "ConfigMap/infra-config",
        "ConfigMap/app-config",
        "Deployment/app",
        "GitRepository/flux-system",
        "Kustomization/flux-system",
        "Kustomization/infrastructure",
        "Kustomization/apps",
    ] {
        assert!(before.contains_key(expected), "{expected} in {before:?}");
    }
    // The starting point the migration must end: the whole repository every minute.
    let head = repo.head();
    let full = artifact_of(&client, ns, "flux-system", &head, SETUP).await;
    assert!(
        artifact_paths(&full).contains(&"clusters/cluster2".to_string()),
        "bootstrap's artifact is the whole repository"
    );
    assert_eq!(
        field(
            &client,
            ns,
            FluxKind::GitRepository,
            "flux-system",
            "/spec/interval"
        )
        .await
        .as_deref(),
        Some("1m0s")
    );

    // From here to the end, every deletion of a workload or a Flux object is written down.
    let deletions = Arc::new(Mutex::new(Vec::new()));
    let listed = Arc::new(AtomicUsize::new(0));
    let watches = [
        watch_deletions(
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            "ConfigMap",
            deletions.clone(),
            listed.clone(),
        ),
        watch_deletions(
            Api::<Deployment>::namespaced(client.clone(), ns),
            "Deployment",
            deletions.clone(),
            listed.clone(),
        ),
        watch_deletions(
            support::dynamic_api(&client, ns, FluxKind::GitRepository),
            "GitRepository",
            deletions.clone(),
            listed.clone(),
        ),
        watch_deletions(
            support::dynamic_api(&client, ns, FluxKind::Kustomization),
            "Kustomization",
            deletions.clone(),
            listed.clone(),
        ),
    ];
    eventually("the watches listed", SETUP, || async {
        (listed.load(Ordering::SeqCst) >= 4).then_some(())
    })
    .await;

    // Step 1: label the two sync objects for the profile and protect them from prune.
    let step1 = repo.push_files(
        &[(
            "clusters/cluster1/flux-system/kustomization.yaml",
            &flux_system_kustomization(ns, 1),
        )],
        "fluxtune migration, step 1: label the flux-system objects",
    );
    request(&client, ns, FluxKind::GitRepository, "flux-system", "step1").await;
    eventually("step 1 applied to both sync objects", SETUP, || async {
        for kind in [FluxKind::GitRepository, FluxKind::Kustomization] {
            let o = get(&client, ns, kind, "flux-system").await?;
            let labelled =
                o.labels().get("fluxtune.dev/profile").map(String::as_str) == Some(PROFILE);
            let protected = o
                .annotations()
                .get("kustomize.toolkit.fluxcd.io/prune")
                .map(String::as_str)
                == Some("disabled");
            if !(labelled && protected) {
                return None;
            }
        }
        applied_revision(&client, ns, &step1).await
    })
    .await;

    // Step 2: fluxtune is installed (here: the operator as a process, the webhook Secret), then
    // one commit stops kustomize-controller from applying the sync objects and adds the profile.
    support::webhook_secret(&client, ns, "hook", TOKEN).await;
    let op = Operator::start(ns, "migrate");
    op.wait_ready().await;
    let profiles_ks = format!(
        r#"apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: fluxtune-profiles
  namespace: {ns}
spec:
  interval: 1h
  retryInterval: 2m
  timeout: 3m
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./fluxtune/cluster1
  prune: true
  wait: false
"#
    );
    let step2 = repo.push_files(
        &[
            (
                "clusters/cluster1/flux-system/kustomization.yaml",
                &flux_system_kustomization(ns, 2),
            ),
            ("clusters/cluster1/fluxtune-profiles.yaml", &profiles_ks),
            (
                "fluxtune/cluster1/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - fluxprofile.yaml\n",
            ),
            ("fluxtune/cluster1/fluxprofile.yaml", &fluxprofile(ns, &url)),
        ],
        "fluxtune migration, step 2: the FluxProfile flux-system",
    );
    request(&client, ns, FluxKind::GitRepository, "flux-system", "step2").await;

    // The adopted GitRepository re-packs the same revision with the ignore rules; a
    // Kustomization that downloaded it meanwhile fails the digest check and would wait for its
    // retryInterval (2m): the docs' `flux reconcile kustomization flux-system` retries it now.
    eventually(
        "the artifact packed with the ignore rules",
        SETUP,
        || async {
            let spec = field(
                &client,
                ns,
                FluxKind::GitRepository,
                "flux-system",
                "/spec/ignore",
            )
            .await?;
            let observed = field(
                &client,
                ns,
                FluxKind::GitRepository,
                "flux-system",
                "/status/observedIgnore",
            )
            .await?;
            (spec == observed).then_some(())
        },
    )
    .await;
    request(&client, ns, FluxKind::Kustomization, "flux-system", "step2").await;
    let profiles: Api<FluxProfile> = Api::namespaced(client.clone(), ns);
    let profile = eventually("the profile is Ready (delivered)", SETUP, || async {
        let p = profiles.get_opt(PROFILE).await.ok()??;
        let status = p.status.as_ref()?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        let delivered = status
            .delivery
            .as_ref()?
            .applied_revision
            .as_deref()
            .is_some_and(|r| r.ends_with(&step2));
        (ready.status == "True" && delivered).then_some(p)
    })
    .await;
    let profile_uid = profile.uid().unwrap();
    let hook = webhook_url(&client, &lp, ns, PROFILE).await;
    repo.add_webhook(&hook, TOKEN);

    // The bootstrap objects are the profile's now: same UIDs, tuned in place.
    let git = get(&client, ns, FluxKind::GitRepository, "flux-system")
        .await
        .unwrap();
    assert_eq!(controller_uid(&git).as_ref(), Some(&profile_uid));
    assert_eq!(git.data["spec"]["interval"], "1h", "no more 1m poll");
    let ignore = git.data["spec"]["ignore"].as_str().unwrap_or_default();
    assert!(ignore.contains("!/clusters/cluster1/"), "{ignore}");
    let ks = get(&client, ns, FluxKind::Kustomization, "flux-system")
        .await
        .unwrap();
    assert_eq!(controller_uid(&ks).as_ref(), Some(&profile_uid));
    assert_eq!(ks.data["spec"]["interval"], "1h");
    assert_eq!(ks.data["spec"]["deletionPolicy"], "Orphan");
    // kustomize-controller skips them (IfNotPresent) but keeps them in its inventory, so they
    // are never garbage: the inventory still lists both.
    let inventory = ks.data["status"]["inventory"]["entries"].to_string();
    for id in [
        format!("{ns}_flux-system_source.toolkit.fluxcd.io_GitRepository"),
        format!("{ns}_flux-system_kustomize.toolkit.fluxcd.io_Kustomization"),
    ] {
        assert!(inventory.contains(&id), "{id} not in {inventory}");
    }
    // The artifact the cluster now gets holds only its folders.
    let tuned = eventually(
        "the artifact packed with the ignore rules",
        SETUP,
        || async {
            let observed = field(
                &client,
                ns,
                FluxKind::GitRepository,
                "flux-system",
                "/status/observedIgnore",
            )
            .await?;
            if observed != ignore {
                return None;
            }
            field(
                &client,
                ns,
                FluxKind::GitRepository,
                "flux-system",
                "/status/artifact/url",
            )
            .await
        },
    )
    .await;
    let paths = artifact_paths(&tuned);
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("clusters/cluster2") || p.starts_with("apps/cluster2")),
        "{paths:?}"
    );
    for kept in [
        "clusters/cluster1/apps.yaml",
        "apps/cluster1/deployment.yaml",
        "infrastructure/controllers/configmap.yaml",
        "fluxtune/cluster1/fluxprofile.yaml",
    ] {
        assert!(paths.contains(&kept.to_string()), "{kept} not in {paths:?}");
    }
    let generation = git.metadata.generation;

    // A later push to the cluster's folders reaches the cluster through the profile's Receiver
    // (every interval is an hour now), and the flux-system Kustomization applies that revision
    // without touching its sync objects again.
    let change = repo.push_change("apps/cluster1/configmap.yaml", |t| {
        t.replace("revision: \"1\"", "revision: \"2\"")
    });
    artifact_of(&client, ns, "flux-system", &change, SETUP).await;
    eventually("the change applied", SETUP, || async {
        (config_value(&client, ns, "app-config", "revision")
            .await
            .as_deref()
            == Some("2"))
        .then_some(())
    })
    .await;
    let requested = field(
        &client,
        ns,
        FluxKind::GitRepository,
        "flux-system",
        "/metadata/annotations/reconcile.fluxcd.io~1requestedAt",
    )
    .await;
    assert_ne!(
        requested.as_deref(),
        Some("step2"),
        "the Receiver asked for the fetch"
    );
    eventually("flux-system applied the new revision", SETUP, || async {
        applied_revision(&client, ns, &change).await
    })
    .await;
    let git = get(&client, ns, FluxKind::GitRepository, "flux-system")
        .await
        .unwrap();
    assert_eq!(
        git.metadata.generation, generation,
        "kustomize-controller left the adopted GitRepository alone"
    );
    assert_eq!(git.data["spec"]["interval"], "1h");
    // They reconcile the new revision too (apps after infrastructure): Ready once they have.
    for name in ["infrastructure", "apps", "fluxtune-profiles"] {
        eventually(&format!("{name} Ready"), SETUP, || async {
            ready(&client, ns, FluxKind::Kustomization, name)
                .await
                .then_some(())
        })
        .await;
    }

    // Nothing was deleted or re-created on the way.
    let after = uids(&client, ns).await;
    for (what, uid) in &before {
        assert_eq!(after.get(what), Some(uid), "{what} kept its UID");
    }
    let deleted = deletions.lock().unwrap().clone();
    assert!(
        deleted.is_empty(),
        "deleted during the migration: {deleted:?}"
    );

    let pruned = || async {
        Api::<Event>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.message)
            .filter(|m| m.contains(" deleted"))
            .collect::<Vec<String>>()
    };
    let before_rollback = pruned().await;
    assert!(
        before_rollback.is_empty(),
        "kustomize-controller pruned: {before_rollback:?}"
    );

    rollback(&client, ns, &repo, &[&step2, &step1]).await;
    let after = uids(&client, ns).await;
    for (what, uid) in &before {
        assert_eq!(
            after.get(what),
            Some(uid),
            "{what} kept its UID through the rollback"
        );
    }
    for w in &watches {
        w.abort();
    }
    // The one deletion the rollback asks for: step 2's Kustomization of the profiles, pruned by
    // flux-system once step 2 is reverted (its own prune then names the profile, already gone).
    let deleted = deletions.lock().unwrap().clone();
    assert!(
        deleted
            .iter()
            .all(|d| d.starts_with("Kustomization fluxtune-profiles ")),
        "deleted during the rollback: {deleted:?}"
    );
    let unexpected: Vec<String> = pruned()
        .await
        .into_iter()
        .filter(|m| {
            !m.contains(&format!("Kustomization/{ns}/fluxtune-profiles deleted"))
                && !m.contains(&format!("FluxProfile/{ns}/{PROFILE} deleted"))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "kustomize-controller pruned during the rollback: {unexpected:?}"
    );
    drop(op);
}

/// docs/migrate-from-bootstrap.md#rollback, after step 2: the profile deleted with
/// `--cascade=orphan`; gotk-sync.yaml applied once as the field manager `fluxtune` (the fields only
/// fluxtune set go, bootstrap's intervals are back); both commits reverted (kustomize-controller
/// applies gotk-sync.yaml again and drops step 1's labels); the orphaned Receiver and the Git
/// host's webhook removed. The bootstrap objects stay, with their UIDs, and pack the whole
/// repository again.
async fn rollback(client: &Client, ns: &str, repo: &Repo, steps: &[&str]) {
    let profiles: Api<FluxProfile> = Api::namespaced(client.clone(), ns);
    profiles
        .delete(
            PROFILE,
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    eventually("the profile gone, its objects orphaned", SETUP, || async {
        if profiles.get_opt(PROFILE).await.ok()?.is_some() {
            return None;
        }
        for kind in [
            FluxKind::GitRepository,
            FluxKind::Kustomization,
            FluxKind::Receiver,
        ] {
            let o = get(client, ns, kind, PROFILE).await?;
            if !o.owner_references().is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await;

    // kubectl apply --server-side --force-conflicts --field-manager=fluxtune -f gotk-sync.yaml
    let git = get(client, ns, FluxKind::GitRepository, PROFILE)
        .await
        .unwrap();
    let url = git.data["spec"]["url"].as_str().unwrap().to_string();
    for doc in gotk_sync(ns, &url)
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
    {
        let object: Value = serde_saphyr::from_str(doc).unwrap();
        support::apply_as(client, "fluxtune", &object)
            .await
            .unwrap();
    }
    let git = get(client, ns, FluxKind::GitRepository, PROFILE)
        .await
        .unwrap();
    for gone in ["ignore", "sparseCheckout"] {
        assert!(
            git.data["spec"].get(gone).is_none(),
            "spec.{gone} left on the GitRepository: {}",
            git.data["spec"]
        );
    }
    assert_eq!(git.data["spec"]["interval"], "1m0s");
    let ks = get(client, ns, FluxKind::Kustomization, PROFILE)
        .await
        .unwrap();
    for gone in ["deletionPolicy", "timeout", "retryInterval"] {
        assert!(
            ks.data["spec"].get(gone).is_none(),
            "spec.{gone} left on the Kustomization: {}",
            ks.data["spec"]
        );
    }
    assert_eq!(ks.data["spec"]["interval"], "10m0s");
    assert_eq!(ks.data["spec"]["prune"], true);

    // The Receiver, orphaned but still there, brings the revert's push to the GitRepository.
    let reverted = repo.push_revert(steps);
    eventually("flux-system applied the revert", SETUP, || async {
        applied_revision(client, ns, &reverted).await
    })
    .await;
    for kind in [FluxKind::GitRepository, FluxKind::Kustomization] {
        let o = get(client, ns, kind, PROFILE).await.unwrap();
        assert_eq!(
            o.data["spec"]["interval"],
            if kind == FluxKind::GitRepository {
                "1m0s"
            } else {
                "10m0s"
            }
        );
        let left: Vec<&String> = o
            .labels()
            .keys()
            .chain(o.annotations().keys())
            .filter(|k| {
                k.starts_with("fluxtune.dev/")
                    || k.as_str() == "app.kubernetes.io/managed-by"
                    || k.starts_with("kustomize.toolkit.fluxcd.io/ssa")
                    || k.starts_with("kustomize.toolkit.fluxcd.io/prune")
            })
            .collect();
        assert!(
            left.is_empty(),
            "the migration's labels and annotations left on {kind:?}: {left:?}"
        );
    }

    support::dynamic_api(client, ns, FluxKind::Receiver)
        .delete(PROFILE, &Default::default())
        .await
        .unwrap();
    repo.remove_webhooks();

    // The whole repository every minute again, as before the migration.
    let paths = eventually(
        "the artifact packed without ignore rules",
        SETUP,
        || async {
            let observed = get(client, ns, FluxKind::GitRepository, PROFILE).await?;
            let status = &observed.data["status"];
            if status.get("observedIgnore").is_some_and(|i| !i.is_null())
                || status["observedGeneration"].as_i64() != observed.metadata.generation
            {
                return None;
            }
            Some(artifact_paths(status["artifact"]["url"].as_str()?))
        },
    )
    .await;
    assert!(
        paths.contains(&"clusters/cluster2/apps.yaml".to_string()),
        "{paths:?}"
    );
    assert!(ready(client, ns, FluxKind::Kustomization, PROFILE).await);
}

//! fluxtune under GitOps, installed the way samples/gitops/ says: Flux's kustomize-controller
//! applies deploy/ from fluxtune's Git repository, the cluster's FluxProfile after it, and an
//! upgrade is one commit that moves `ref.tag`. Needs the Flux loop (`controlplane.sh flux-up`).

use std::path::Path;

use fluxtune::{api::FluxProfile, flux::FluxKind};
use k8s_openapi::{
    api::apps::v1::Deployment,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    flux_support::{Loop, Repo, SETUP, ready, run},
    support::{self, SYSTEM_NAMESPACE, eventually},
};

const IMAGE: &str = "ghcr.io/fluxtune/fluxtune";
/// Two releases of fluxtune's repository: Git tags whose deploy/ pins the image of the same tag.
const RELEASES: [&str; 2] = ["v1.0.0-e2e", "v1.1.0-e2e"];

/// The repository root: deploy/, crds/ and samples/ as they are in this checkout.
fn checkout(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    run(std::process::Command::new("cp").arg("-r").arg(from).arg(to));
}

/// deploy/kustomization.yaml with its `images:` entry pinned to `tag`, as a release does.
fn pin_release(work: &Path, tag: &str) {
    let path = work.join("deploy/kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let pinned: Vec<String> = text
        .lines()
        .map(|l| match l.split_once("newTag:") {
            Some((indent, _)) => format!("{indent}newTag: {tag}"),
            None => l.to_string(),
        })
        .collect();
    assert_ne!(
        pinned.join("\n"),
        text.trim_end(),
        "deploy/ pins no image tag"
    );
    std::fs::write(&path, pinned.join("\n") + "\n").unwrap();
}

/// deploy/'s Deployment: its image, and the Flux Kustomization that applied it.
async fn deployment_image(client: &Client) -> Option<(String, String)> {
    let d = Api::<Deployment>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .get_opt("fluxtune")
        .await
        .ok()??;
    let applied_by = d.labels().get("kustomize.toolkit.fluxcd.io/name")?.clone();
    let image = d.spec?.template.spec?.containers.first()?.image.clone()?;
    Some((image, applied_by))
}

#[tokio::test]
async fn flux_installs_fluxtune_from_git_and_a_commit_to_ref_tag_upgrades_it() {
    let lp = Loop::from_env();
    let client = support::client().await;
    let ns = support::namespace(&client, "gitops").await;

    // fluxtune's own repository, with two tagged releases.
    let product = Repo::init(&lp, &format!("{ns}-fluxtune"), |work| {
        copy_dir(&checkout("deploy"), &work.join("deploy"));
        copy_dir(&checkout("crds"), &work.join("crds"));
        pin_release(work, RELEASES[0]);
    });
    product.push_tag(RELEASES[0]);
    product.push_change("deploy/kustomization.yaml", |t| {
        t.replace(RELEASES[0], RELEASES[1])
    });
    product.push_tag(RELEASES[1]);

    // The platform team's config repository, laid out as samples/gitops/kustomization.yaml says:
    // the samples copied unchanged, the tag set to the first release (the one edit users make).
    // A kustomization around them adapts what differs here: this test's namespace instead of
    // flux-system, the local Git host, and `wait: false`, because no Pod runs on this control
    // plane (no scheduler, no kubelet) and the Deployment never becomes available.
    let wrapper = format!(
        r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {ns}
resources:
  - fluxtune
patches:
  - target: {{kind: GitRepository, name: fluxtune}}
    patch: '[{{"op": "replace", "path": "/spec/url", "value": "{url}"}}]'
  - target: {{kind: Kustomization}}
    patch: '[{{"op": "replace", "path": "/spec/wait", "value": false}}]'
  - target: {{kind: Kustomization, name: fluxtune-profiles}}
    patch: '[{{"op": "add", "path": "/spec/targetNamespace", "value": "{ns}"}}]'
"#,
        url = product.url
    );
    let fleet = Repo::init(&lp, &format!("{ns}-fleet"), |work| {
        let gitops = checkout("samples/gitops");
        let install = work.join("clusters/cluster1/fluxtune");
        std::fs::create_dir_all(&install).unwrap();
        for file in [
            "kustomization.yaml",
            "fluxtune.yaml",
            "fluxtune-profiles.yaml",
        ] {
            std::fs::copy(gitops.join(file), install.join(file)).unwrap();
        }
        let fluxtune = install.join("fluxtune.yaml");
        let text = std::fs::read_to_string(&fluxtune).unwrap();
        let sample_tag = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("tag: "))
            .expect("samples/gitops/fluxtune.yaml pins ref.tag")
            .to_string();
        std::fs::write(
            &fluxtune,
            text.replace(
                &format!("tag: {sample_tag}"),
                &format!("tag: {}", RELEASES[0]),
            ),
        )
        .unwrap();
        std::fs::write(work.join("clusters/cluster1/kustomization.yaml"), &wrapper).unwrap();
        copy_dir(
            &gitops.join("profiles/cluster1"),
            &work.join("fluxtune/cluster1"),
        );
    });

    // What `flux bootstrap` leaves: the config repository and a Kustomization for the cluster's
    // folder.
    for object in [
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
               "metadata": {"name": "flux-system", "namespace": ns},
               "spec": {"interval": "1h", "url": fleet.url, "ref": {"branch": "main"}}}),
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
               "metadata": {"name": "flux-system", "namespace": ns},
               "spec": {"interval": "1h", "path": "./clusters/cluster1", "prune": true,
                        "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}),
    ] {
        support::apply_as(&client, "flux-bootstrap", &object)
            .await
            .unwrap();
    }

    let first = format!("{IMAGE}:{}", RELEASES[0]);
    let (image, applied_by) = eventually(
        "kustomize-controller applies deploy/ of the first release",
        SETUP,
        || async { deployment_image(&client).await.filter(|(i, _)| *i == first) },
    )
    .await;
    assert_eq!(
        (image.as_str(), applied_by.as_str()),
        (first.as_str(), "fluxtune")
    );
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get("fluxprofiles.fluxtune.dev")
        .await
        .unwrap();
    assert_eq!(
        crd.annotations()
            .get("kustomize.toolkit.fluxcd.io/prune")
            .map(String::as_str),
        Some("disabled"),
        "Flux must never prune the FluxProfile CRD"
    );
    // Then, after fluxtune's Kustomization is Ready (dependsOn), the cluster's FluxProfile.
    let profiles: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    let profile = eventually(
        "fluxtune-profiles applies the cluster's FluxProfile",
        SETUP,
        || async { profiles.get_opt("cluster1").await.ok()? },
    )
    .await;
    assert_eq!(
        profile
            .labels()
            .get("kustomize.toolkit.fluxcd.io/name")
            .map(String::as_str),
        Some("fluxtune-profiles")
    );
    for name in ["fluxtune", "fluxtune-profiles"] {
        assert!(
            ready(&client, &ns, FluxKind::Kustomization, name).await,
            "{name} is Ready"
        );
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let uid = deployments.get("fluxtune").await.unwrap().uid();

    // The upgrade: one commit to the config repository moves ref.tag. Fetched on request, as
    // `flux reconcile source git flux-system` does (the webhook path is proven in flux.rs).
    fleet.push_change("clusters/cluster1/fluxtune/fluxtune.yaml", |t| {
        t.replace(
            &format!("tag: {}", RELEASES[0]),
            &format!("tag: {}", RELEASES[1]),
        )
    });
    let requested = json!({"metadata": {"annotations": {
        "reconcile.fluxcd.io/requestedAt": format!("upgrade-{}", std::process::id())}}});
    support::dynamic_api(&client, &ns, FluxKind::GitRepository)
        .patch(
            "flux-system",
            &PatchParams::default(),
            &Patch::Merge(&requested),
        )
        .await
        .unwrap();
    let second = format!("{IMAGE}:{}", RELEASES[1]);
    eventually(
        "the commit rolls the Deployment to the second release",
        SETUP,
        || async {
            deployment_image(&client)
                .await
                .filter(|(i, _)| *i == second)
        },
    )
    .await;
    assert_eq!(
        deployments.get("fluxtune").await.unwrap().uid(),
        uid,
        "the Deployment is updated in place, not recreated"
    );
    // Left in place on purpose: deleting these Kustomizations would prune deploy/'s objects,
    // whose ServiceAccount the other tests' operators run as.
}

//! The rendered ignore rules, checked by real git against a monorepo tree: exactly the files below
//! the shared folders and the cluster's own folder survive, minus Flux's default exclusions.

use std::{
    collections::BTreeSet,
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use fluxtune::{
    api::FluxProfile,
    flux::FluxObject,
    render::{self, Capabilities},
};

const TREE: &[&str] = &[
    "README.md",
    "Makefile",
    ".gitlab-ci.yml",
    ".github/workflows/ci.yaml",
    "library/base/deployment.yaml",
    "library/base/kustomization.yaml",
    "library/logo.png",
    "library/charts/app.tar.gz",
    "library/.sops.yaml",
    "cluster1/kustomization.yaml",
    "cluster1/apps/app.yaml",
    "cluster1/apps/deep/nested/config.yaml",
    "cluster1/.github/CODEOWNERS",
    "cluster1/diagram.jpg",
    "cluster10/kustomization.yaml",
    "cluster1-canary/kustomization.yaml",
    "cluster2/kustomization.yaml",
    "libraryx/kustomization.yaml",
    "clusters/top.yaml",
    "clusters/prod/top.yaml",
    "clusters/prod/eu-1/kustomization.yaml",
    "clusters/prod/eu-1/apps/app.yaml",
    "clusters/prod/eu-10/kustomization.yaml",
    "clusters/prod/eu-1-canary/kustomization.yaml",
    "clusters/prod/common/policies.yaml",
    "clusters/prod/common-old/policies.yaml",
    "clusters/staging/eu-1/kustomization.yaml",
    "shared/monitoring/prometheus.yaml",
    "shared/other/x.yaml",
    "platform/.github/kustomization.yaml",
    "platform/.github/apps/app.yaml",
    "platform/other/x.yaml",
    "charts.zip/kustomization.yaml",
    "charts.zip/logo.png",
];

fn profile(yaml: &str) -> FluxProfile {
    fluxtune::render::validate::Validator::new()
        .profiles_from_yaml(yaml)
        .unwrap()
        .remove(0)
}

fn ignore_text(profile: &FluxProfile) -> String {
    let rendered = render::render(profile, &Capabilities::default());
    match &rendered.objects[0] {
        FluxObject::GitRepository(g) => g.spec.ignore.clone().unwrap(),
        other => panic!("first object is {:?}", other.kind()),
    }
}

fn git(dir: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The files git keeps when `rules` is the repository's ignore file, asked two ways: per file
/// (`check-ignore --no-index`) and by a directory walk (`ls-files --others`), which also applies
/// "a file below an excluded directory cannot be re-included".
fn survivors(rules: &str, name: &str) -> BTreeSet<String> {
    let dir = std::env::temp_dir().join(format!("fluxtune-ignore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for file in TREE {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "x").unwrap();
    }
    git(&dir, &["init", "-q"], "");
    std::fs::write(dir.join(".git/info/exclude"), rules).unwrap();

    let all: BTreeSet<String> = TREE.iter().map(|s| s.to_string()).collect();
    let ignored: BTreeSet<String> = git(
        &dir,
        &["check-ignore", "--no-index", "--stdin"],
        &(TREE.join("\n") + "\n"),
    )
    .lines()
    .map(str::to_string)
    .collect();
    let per_file: BTreeSet<String> = all.difference(&ignored).cloned().collect();
    let walked: BTreeSet<String> = git(&dir, &["ls-files", "--others", "--exclude-standard"], "")
        .lines()
        .map(str::to_string)
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        per_file, walked,
        "check-ignore and the directory walk disagree"
    );
    per_file
}

fn set(files: &[&str]) -> BTreeSet<String> {
    files.iter().map(|s| s.to_string()).collect()
}

#[test]
fn flat_cluster_keeps_only_library_and_its_own_folder() {
    let p = profile(
        "apiVersion: fluxtune.dev/v1alpha1\nkind: FluxProfile\nmetadata: {name: cluster1}\nspec:\n  cluster: {name: cluster1}\n  source: {url: https://git.example.com/r.git}\n",
    );
    assert_eq!(
        survivors(&ignore_text(&p), "flat"),
        set(&[
            "cluster1/apps/app.yaml",
            "cluster1/apps/deep/nested/config.yaml",
            "cluster1/kustomization.yaml",
            "library/base/deployment.yaml",
            "library/base/kustomization.yaml",
        ])
    );
}

#[test]
fn nested_cluster_with_two_shared_paths_keeps_exactly_those_folders() {
    let p = profile(
        "apiVersion: fluxtune.dev/v1alpha1\nkind: FluxProfile\nmetadata: {name: prod-eu-1}\nspec:\n  cluster: {name: prod-eu-1, path: clusters/prod/eu-1, sharedPaths: [library, clusters/prod/common, shared/monitoring]}\n  source: {url: https://git.example.com/r.git}\n",
    );
    assert_eq!(
        survivors(&ignore_text(&p), "nested"),
        set(&[
            "clusters/prod/common/policies.yaml",
            "clusters/prod/eu-1/apps/app.yaml",
            "clusters/prod/eu-1/kustomization.yaml",
            "library/base/deployment.yaml",
            "library/base/kustomization.yaml",
            "shared/monitoring/prometheus.yaml",
        ])
    );
}

/// Found by fuzzing (operator/fuzz, profile_structured): Flux's default exclusions, appended
/// after fluxtune's rules, dropped a kept folder named like one of them while the sparse
/// checkout still listed it.
#[test]
fn folders_named_like_flux_default_exclusions_are_kept() {
    let p = profile(
        "apiVersion: fluxtune.dev/v1alpha1\nkind: FluxProfile\nmetadata: {name: platform}\nspec:\n  cluster: {name: platform, path: platform/.github, sharedPaths: [library, charts.zip]}\n  source: {url: https://git.example.com/r.git}\n",
    );
    assert_eq!(
        survivors(&ignore_text(&p), "default-named"),
        set(&[
            "charts.zip/kustomization.yaml",
            "library/base/deployment.yaml",
            "library/base/kustomization.yaml",
            "platform/.github/apps/app.yaml",
            "platform/.github/kustomization.yaml",
        ])
    );
}

/// spec.kustomizations: the source keeps each entry's path, the folders its components resolve
/// to (one outside the repository keeps nothing) and the shared paths, and not the cluster's own
/// folder around them (cluster1's kustomization.yaml is gone); the ImageUpdateAutomation still
/// writes only to the cluster's folder.
#[test]
fn kustomizations_keep_each_entrys_path_and_the_shared_paths_only() {
    let p = profile(
        "apiVersion: fluxtune.dev/v1alpha1\nkind: FluxProfile\nmetadata: {name: cluster1}\nspec:\n  cluster: {name: cluster1, sharedPaths: [library]}\n  source: {url: https://git.example.com/r.git}\n  images: [{name: app, repository: ghcr.io/acme/app, policy: {semver: {range: '*'}}}]\n  imageUpdate: {author: {name: bot, email: bot@example.com}}\n  kustomizations:\n  - {name: infra, path: clusters/prod/common}\n  - {name: apps, path: cluster1/apps, dependsOn: [{name: infra}], components: [../../shared/other, ../../../outside]}\n  - {name: monitoring, path: shared/monitoring}\n",
    );
    assert_eq!(
        survivors(&ignore_text(&p), "kustomizations"),
        set(&[
            "cluster1/apps/app.yaml",
            "cluster1/apps/deep/nested/config.yaml",
            "clusters/prod/common/policies.yaml",
            "library/base/deployment.yaml",
            "library/base/kustomization.yaml",
            "shared/monitoring/prometheus.yaml",
            "shared/other/x.yaml",
        ])
    );
    let automation = render::render(&p, &Capabilities::default())
        .objects
        .into_iter()
        .find_map(|o| match o {
            FluxObject::ImageUpdateAutomation(a) => Some(a),
            _ => None,
        })
        .unwrap();
    let update = serde_json::to_value(&automation.spec).unwrap()["update"].clone();
    assert_eq!(update["path"], "./cluster1", "{update}");
}

#[test]
fn without_rules_git_keeps_everything() {
    // Guards the harness itself: an empty rule set must not hide files.
    assert_eq!(survivors("", "empty").len(), TREE.len());
}

//! Which folders of the monorepo a cluster reads, as GitRepository `ignore` and `sparseCheckout`.
//!
//! .gitignore cannot re-include a file below an excluded directory, so a nested folder needs one
//! exclude/re-include pair per level: for `clusters/prod/eu-1` that is `!/clusters/`,
//! `/clusters/*`, `!/clusters/prod/`, `/clusters/prod/*`, `!/clusters/prod/eu-1/`. Every rule is
//! anchored and ends in `/`, so `eu-1` never matches `eu-10` or `eu-1-canary`. Folder names are
//! validated to characters .gitignore reads literally, so nothing needs escaping.

use std::collections::{BTreeMap, BTreeSet};

/// Flux's default exclusions (fluxcd/pkg sourceignore: VCS, Ext, CI, Extra). Setting `spec.ignore`
/// replaces all but the VCS ones, so fluxtune appends them after its own rules; listing VCS again
/// keeps `.git*` files inside the kept folders out too.
pub const FLUX_DEFAULT_EXCLUSIONS: &[&str] = &[
    ".git/",
    ".gitignore",
    ".gitmodules",
    ".gitattributes",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    "**/.goreleaser.yml",
    "**/.sops.yaml",
    "**/.flux.yaml",
];

/// The folders to keep, sorted, without any folder that an ancestor in the set already keeps.
pub fn kept_folders<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut all: Vec<&str> = paths.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    let is_below = |p: &str, ancestor: &str| {
        p.len() > ancestor.len() && p.starts_with(ancestor) && p.as_bytes()[ancestor.len()] == b'/'
    };
    all.iter()
        .filter(|p| !all.iter().any(|a| is_below(p, a)))
        .map(|p| p.to_string())
        .collect()
}

/// Whether one of Flux's default exclusions names `name` (a file or folder name) itself. They
/// are all a name, `*` and a suffix, or `**/` and a name, with an optional trailing `/`.
fn excluded_by_default(name: &str) -> bool {
    FLUX_DEFAULT_EXCLUSIONS.iter().any(|p| {
        let p = p.trim_end_matches('/').trim_start_matches("**/");
        match p.strip_prefix('*') {
            Some(suffix) => name.ends_with(suffix),
            None => name == p,
        }
    })
}

/// The `spec.ignore` text that keeps exactly `folders` (the cluster's and the shared ones), then
/// Flux's defaults. A folder the profile names, or one on the way to it, that a default
/// exclusion would drop by its name (`.github`, `charts.zip`) is let back in after them.
pub fn ignore_rules<'a>(folders: impl IntoIterator<Item = &'a str>) -> String {
    let folders: Vec<&str> = folders.into_iter().collect();
    let kept = kept_folders(folders.iter().copied());
    #[derive(Default)]
    struct Node<'a> {
        kept: bool,
        children: BTreeMap<&'a str, Node<'a>>,
    }
    fn emit(prefix: &str, node: &Node<'_>, out: &mut Vec<String>) {
        for (name, child) in &node.children {
            let path = format!("{prefix}/{name}");
            out.push(format!("!{path}/"));
            if !child.kept {
                out.push(format!("{path}/*"));
                emit(&path, child, out);
            }
        }
    }

    let mut root = Node::default();
    for folder in &kept {
        let mut node = &mut root;
        for segment in folder.split('/') {
            node = node.children.entry(segment).or_default();
        }
        node.kept = true;
    }

    let mut lines = vec![
        format!("# fluxtune: keep only {}", kept.join(", ")),
        "/*".to_string(),
    ];
    emit("", &root, &mut lines);
    lines.push("# Flux's default exclusions, which spec.ignore replaces".into());
    lines.extend(FLUX_DEFAULT_EXCLUSIONS.iter().map(|s| s.to_string()));
    let named: BTreeSet<String> = folders
        .iter()
        .flat_map(|f| f.match_indices('/').map(|(i, _)| &f[..i]).chain([*f]))
        .filter(|dir| {
            // Never `.git`: that would put the checkout's own repository into the artifact
            // (the CRD refuses such a folder anyway).
            let name = dir.rsplit('/').next().unwrap_or(dir);
            name != ".git" && excluded_by_default(name)
        })
        .map(|dir| format!("!/{dir}/"))
        .collect();
    if !named.is_empty() {
        lines.push("# fluxtune: the profile's folders that those exclusions name".into());
        lines.extend(named);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// `spec.sparseCheckout`: source-controller prefix-matches these against file paths, so the
/// trailing '/' keeps `cluster1` from also checking out `cluster10`.
pub fn sparse_checkout(kept: &[String]) -> Vec<String> {
    kept.iter().map(|p| format!("{p}/")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(paths: &[&str]) -> Vec<String> {
        let text = ignore_rules(paths.iter().copied());
        text.lines()
            .skip(1)
            .take_while(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn nested_path_matches_the_contract() {
        assert_eq!(
            rules(&["clusters/prod/eu-1", "library"]),
            [
                "/*",
                "!/clusters/",
                "/clusters/*",
                "!/clusters/prod/",
                "/clusters/prod/*",
                "!/clusters/prod/eu-1/",
                "!/library/"
            ]
        );
    }

    #[test]
    fn siblings_share_one_exclude_per_level() {
        assert_eq!(
            rules(&["clusters/prod/eu-1", "clusters/common", "library"]),
            [
                "/*",
                "!/clusters/",
                "/clusters/*",
                "!/clusters/common/",
                "!/clusters/prod/",
                "/clusters/prod/*",
                "!/clusters/prod/eu-1/",
                "!/library/"
            ]
        );
    }

    #[test]
    fn a_folder_below_a_kept_folder_adds_nothing() {
        assert_eq!(
            kept_folders(["clusters", "clusters/a", "clustersx"]),
            ["clusters", "clustersx"]
        );
        assert_eq!(rules(&["library", "library/base"]), ["/*", "!/library/"]);
    }

    /// Found by the profile_structured fuzz target: a kept folder named `.gitignore` was in the
    /// sparse checkout but dropped by the default exclusions appended after fluxtune's rules.
    #[test]
    fn folders_named_like_a_default_exclusion_are_let_back_in() {
        let text = ignore_rules([
            ".gitignore/cluster1",
            "library",
            "charts.zip",
            "lib/.github/x",
        ]);
        let tail: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("# fluxtune: the profile's folders"))
            .skip(1)
            .collect();
        assert_eq!(
            tail,
            ["!/.gitignore/", "!/charts.zip/", "!/lib/.github/"],
            "{text}"
        );
        assert!(
            !ignore_rules(["cluster1", "library"]).contains("# fluxtune: the profile's folders")
        );
    }

    #[test]
    fn every_default_exclusion_has_a_shape_excluded_by_default_reads() {
        for p in FLUX_DEFAULT_EXCLUSIONS {
            let p = p.trim_end_matches('/').trim_start_matches("**/");
            let rest = p.strip_prefix('*').unwrap_or(p);
            assert!(!rest.contains(['*', '?', '[', '/', '!']), "{p}");
        }
        assert!(excluded_by_default(".github") && excluded_by_default("x.tar.gz"));
        assert!(!excluded_by_default("github") && !excluded_by_default("zip"));
    }

    #[test]
    fn sparse_checkout_entries_end_in_a_slash() {
        assert_eq!(
            sparse_checkout(&kept_folders(["cluster1", "library"])),
            ["cluster1/", "library/"]
        );
    }
}

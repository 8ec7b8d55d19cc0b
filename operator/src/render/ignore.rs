//! Which folders of the monorepo a cluster reads, as GitRepository `ignore` and `sparseCheckout`.
//!
//! .gitignore cannot re-include a file below an excluded directory, so a nested folder needs one
//! exclude/re-include pair per level: for `clusters/prod/eu-1` that is `!/clusters/`,
//! `/clusters/*`, `!/clusters/prod/`, `/clusters/prod/*`, `!/clusters/prod/eu-1/`. Every rule is
//! anchored and ends in `/`, so `eu-1` never matches `eu-10` or `eu-1-canary`. Folder names are
//! validated to characters .gitignore reads literally, so nothing needs escaping.

use std::collections::BTreeMap;

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

/// The `spec.ignore` text: keep exactly `kept` (from [`kept_folders`]), then Flux's defaults.
pub fn ignore_rules(kept: &[String]) -> String {
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
    for folder in kept {
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
        let text = ignore_rules(&kept_folders(paths.iter().copied()));
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

    #[test]
    fn sparse_checkout_entries_end_in_a_slash() {
        assert_eq!(
            sparse_checkout(&kept_folders(["cluster1", "library"])),
            ["cluster1/", "library/"]
        );
    }
}

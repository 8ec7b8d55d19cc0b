//! `spec.kustomizations[]`: the layouts teams have, several Flux Kustomizations (infrastructure,
//! then apps) against the profile's one tuned source. Field names and meanings are Flux's own;
//! what a field leaves unset comes from `spec.apply`.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{FluxDuration, RepoPath, SecretRef};

/// At most this many entries: each is a Kustomization, and the CEL rules over the list are
/// quadratic in it.
pub const MAX_KUSTOMIZATIONS: usize = 16;

/// One Flux Kustomization of the profile, rendered as `<profile>-<name>`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.dependsOn) || self.dependsOn.all(d, d.name != self.name)")
        .message("must not name the entry itself")
        .field_path(".dependsOn"),
)]
pub struct KustomizationEntry {
    /// Unique in the list, a DNS-1123 label; the Kustomization is named `<profile>-<name>`, which
    /// must fit in 63 characters.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    pub name: String,
    /// The folder of the monorepo this Kustomization applies; the source keeps it.
    pub path: RepoPath,
    /// Entries of this list that must be Ready (at the same source revision) before this one
    /// applies, by their entry names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub depends_on: Vec<DependencyRef>,
    /// The ServiceAccount kustomize-controller impersonates. Default: spec.apply's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"))]
    pub service_account_name: Option<String>,
    /// Decrypt SOPS-encrypted Secrets before applying them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<Decryption>,
    /// Variable substitution after the kustomize build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<PostBuild>,
    /// Objects to wait for besides what the Kustomization applies (with wait, it waits for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub health_checks: Vec<HealthCheck>,
    /// Kustomize components, relative to `path` (`../components/ingress`); the source keeps
    /// their folders too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub components: Vec<Component>,
    /// Strategic merge or JSON 6902 patches applied to the build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub patches: Vec<KustomizePatch>,
    /// Namespace for every applied object that has none. Default: spec.apply's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self == '' || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("must be a DNS-1123 label (a namespace name)"))]
    pub target_namespace: Option<String>,
    /// Default: spec.apply's (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Default: spec.apply's (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    /// Default: spec.apply's, else the polling class's (3m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<FluxDuration>,
    /// Default: spec.apply's, else the polling class's (2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<FluxDuration>,
    /// Recreate objects whose immutable fields changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// Another entry of spec.kustomizations, by its entry name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DependencyRef {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Decryption {
    /// Flux decrypts with SOPS only.
    pub provider: DecryptionProvider,
    /// Secret with the keys (age, PGP, cloud KMS credentials) in the profile's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecryptionProvider {
    #[serde(rename = "sops")]
    Sops,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostBuild {
    /// Variables and their values, substituted for `${name}` in the build.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
    /// ConfigMaps and Secrets (in the profile's namespace) whose data are further variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub substitute_from: Vec<SubstituteReference>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SubstituteReference {
    pub kind: SubstituteKind,
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"))]
    pub name: String,
    /// A missing object counts as empty instead of failing the apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubstituteKind {
    ConfigMap,
    Secret,
}

impl SubstituteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubstituteKind::ConfigMap => "ConfigMap",
            SubstituteKind::Secret => "Secret",
        }
    }
}

/// An object to health-check, as Flux's NamespacedObjectKindReference.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub api_version: Option<String>,
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// A kustomize component's path, relative to the entry's path.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct Component(#[schemars(length(min = 1, max = 253))] pub String);

impl Component {
    /// The repository folder this component names, resolved against its entry's `path`, which
    /// the source must keep. None when no folder can be kept for it: an absolute path, one that
    /// leaves the repository or names all of it, or a segment a kept folder cannot have (glob
    /// characters would be ignore patterns, `.git` is never kept). kustomize-controller then
    /// fails the build, and its message reaches the profile's Ready condition.
    pub fn folder(&self, entry_path: &str) -> Option<String> {
        if self.0.starts_with('/') {
            return None;
        }
        let mut parts: Vec<&str> = entry_path.split('/').filter(|s| !s.is_empty()).collect();
        for segment in self.0.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                ".git" => return None,
                s if s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) =>
                {
                    parts.push(s)
                }
                _ => return None,
            }
        }
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KustomizePatch {
    /// The patch: a strategic merge patch or a JSON 6902 patch, as YAML.
    #[schemars(length(min = 1, max = 65536))]
    pub patch: String,
    /// Which objects it patches. Default: those the patch itself names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PatchTarget>,
}

/// kustomize's patch target selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PatchTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub annotation_selector: Option<String>,
}

/// A dependency cycle among `entries` (`a -> b -> a`), found in list order; None when there is
/// none. CEL cannot follow chains cheaply, so the API server admits a cycle: the renderer's
/// validation refuses it offline and the operator reports it as Stalled (DependencyCycle).
pub fn dependency_cycle(entries: &[KustomizationEntry]) -> Option<Vec<String>> {
    let index: BTreeMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    // 0: not visited, 1: on the current path, 2: done.
    let mut state = vec![0u8; entries.len()];
    fn visit(
        i: usize,
        entries: &[KustomizationEntry],
        index: &BTreeMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        state[i] = 1;
        path.push(i);
        for dep in &entries[i].depends_on {
            let Some(&j) = index.get(dep.name.as_str()) else {
                continue;
            };
            match state[j] {
                1 => {
                    let from = path.iter().position(|&p| p == j).unwrap_or(0);
                    let mut cycle: Vec<String> = path[from..]
                        .iter()
                        .map(|&p| entries[p].name.clone())
                        .collect();
                    cycle.push(entries[j].name.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(j, entries, index, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    (0..entries.len()).find_map(|i| {
        if state[i] != 0 {
            return None;
        }
        visit(i, entries, &index, &mut state, &mut Vec::new())
    })
}

/// The message that refuses a cycle, offline and in the Stalled condition alike.
pub fn cycle_message(cycle: &[String]) -> String {
    format!(
        "dependsOn forms a cycle: {}; Flux would wait on it forever, remove one of its dependsOn",
        cycle.join(" -> ")
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_component_names_the_folder_it_resolves_to_inside_the_repository() {
        let folder = |path: &str, c: &str| Component(c.into()).folder(path);
        assert_eq!(
            folder("clusters/staging/apps", "../components/ingress").as_deref(),
            Some("clusters/staging/components/ingress")
        );
        assert_eq!(
            folder("apps", "./overlays//prod/").as_deref(),
            Some("apps/overlays/prod")
        );
        assert_eq!(folder("a/b", "../../c").as_deref(), Some("c"));
        assert_eq!(folder("a/b", ".").as_deref(), Some("a/b"));
        for outside in [
            "../../..",
            "../../../c",
            "/abs/c",
            "../..",
            "x/*",
            "x/.git/y",
            "x y",
        ] {
            assert_eq!(folder("a/b", outside), None, "{outside}");
        }
    }

    use super::*;

    fn entry(name: &str, deps: &[&str]) -> KustomizationEntry {
        KustomizationEntry {
            name: name.into(),
            path: RepoPath(name.into()),
            depends_on: deps
                .iter()
                .map(|d| DependencyRef {
                    name: d.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_chain_has_no_cycle() {
        let list = [
            entry("apps", &["infra", "crds"]),
            entry("infra", &["crds"]),
            entry("crds", &[]),
        ];
        assert_eq!(dependency_cycle(&list), None);
    }

    #[test]
    fn a_cycle_is_named_from_where_it_closes() {
        let list = [
            entry("base", &[]),
            entry("a", &["base", "b"]),
            entry("b", &["c"]),
            entry("c", &["a"]),
        ];
        assert_eq!(
            dependency_cycle(&list).unwrap(),
            ["a", "b", "c", "a"].map(String::from)
        );
        assert_eq!(
            cycle_message(&dependency_cycle(&list[1..]).unwrap()),
            "dependsOn forms a cycle: a -> b -> c -> a; Flux would wait on it forever, remove one of its dependsOn"
        );
    }

    #[test]
    fn an_unknown_dependency_is_no_cycle() {
        // The CRD refuses it; here it is only not followed.
        assert_eq!(dependency_cycle(&[entry("a", &["zzz"])]), None);
    }
}

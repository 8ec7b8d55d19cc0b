//! What a profile may point at, as the operator's flags allow (Flux's multi-tenancy lockdown:
//! `--default-service-account`, and allow-lists in the spirit of `--no-cross-namespace-refs`).
//! Pure: a profile and the flags in, the defaulted profile or the refusals out.

use crate::api::FluxProfile;

/// The operator's tenancy flags. Empty lists allow everything (the single-team default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// Rendered as the Kustomization's serviceAccountName when a profile sets none (every entry
    /// of spec.kustomizations that sets none inherits it, through spec.apply), so
    /// kustomize-controller impersonates it instead of using its own (cluster-admin) rights.
    pub default_service_account: Option<String>,
    /// spec.source.url must start with one of these.
    pub source_url_prefixes: Vec<String>,
    /// spec.apply.targetNamespace must be set and one of these (with spec.kustomizations: each
    /// entry's own targetNamespace, else spec.apply's).
    pub target_namespaces: Vec<String>,
    /// spec.source.secretRef.name, when set, must be one of these.
    pub source_secrets: Vec<String>,
}

impl Tenancy {
    /// The profile as it is rendered: with the default service account filled in.
    pub fn with_defaults(&self, profile: &FluxProfile) -> FluxProfile {
        let mut profile = profile.clone();
        if let Some(default) = &self.default_service_account {
            let apply = profile.spec.apply.get_or_insert_with(Default::default);
            apply
                .service_account_name
                .get_or_insert_with(|| default.clone());
        }
        profile
    }

    /// One message per field the flags refuse, naming the field and what is allowed.
    pub fn refusals(&self, profile: &FluxProfile) -> Vec<String> {
        let spec = &profile.spec;
        let mut refused = Vec::new();
        let url = &spec.source.url;
        if !self.source_url_prefixes.is_empty()
            && !self.source_url_prefixes.iter().any(|p| url_within(url, p))
        {
            refused.push(format!(
                "spec.source.url {url:?} must be one of, or lie below one of, {} (no '.' or '..' segments)",
                list(&self.source_url_prefixes)
            ));
        }
        if !self.target_namespaces.is_empty() {
            let inherited = spec
                .apply
                .as_ref()
                .and_then(|a| a.target_namespace.as_deref())
                .filter(|ns| !ns.is_empty());
            // Each Kustomization's own, else spec.apply's: the field that supplies it is named.
            let mut targets = vec![("spec.apply.targetNamespace".to_string(), inherited)];
            if !spec.kustomizations.is_empty() {
                targets = spec
                    .kustomizations
                    .iter()
                    .enumerate()
                    .map(|(i, k)| match k.target_namespace.as_deref() {
                        Some(ns) if !ns.is_empty() => (
                            format!("spec.kustomizations[{i}].targetNamespace"),
                            Some(ns),
                        ),
                        _ => ("spec.apply.targetNamespace".to_string(), inherited),
                    })
                    .collect();
            }
            for (field, target) in targets {
                let refusal = match target {
                    Some(ns) if self.target_namespaces.iter().any(|a| a == ns) => continue,
                    Some(ns) => format!(
                        "{field} {ns:?} must be one of {}",
                        list(&self.target_namespaces)
                    ),
                    None => format!(
                        "{field} must be set to one of {}",
                        list(&self.target_namespaces)
                    ),
                };
                if !refused.contains(&refusal) {
                    refused.push(refusal);
                }
            }
        }
        if let Some(secret) = &spec.source.secret_ref
            && !self.source_secrets.is_empty()
            && !self.source_secrets.contains(&secret.name)
        {
            refused.push(format!(
                "spec.source.secretRef.name {:?} must be one of {}",
                secret.name,
                list(&self.source_secrets)
            ));
        }
        refused
    }
}

/// `url` is `prefix` or lies below it: the prefix ends at a '/' boundary, so
/// `https://git.example.com/team-a` allows neither `.../team-a-evil` nor `...com.evil.io`, nor
/// `...com@evil.io`; and no dot segment (plain or percent-encoded) climbs out of it.
fn url_within(url: &str, prefix: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let climbs = lower.contains("%2e")
        || url
            .split(['/', '?', '#'])
            .any(|segment| segment == "." || segment == "..");
    let Some(rest) = url.strip_prefix(prefix) else {
        return false;
    };
    !climbs
        && !prefix.is_empty()
        && (rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'))
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(spec: serde_json::Value) -> FluxProfile {
        serde_json::from_value(json!({
            "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
            "metadata": {"name": "c1", "namespace": "team-a"}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn empty_flags_allow_everything_and_change_nothing() {
        let p =
            profile(json!({"cluster": {"name": "c1"}, "source": {"url": "ssh://anywhere/x.git"}}));
        assert!(Tenancy::default().refusals(&p).is_empty());
        assert_eq!(Tenancy::default().with_defaults(&p), p);
    }

    #[test]
    fn each_refusal_names_the_field_and_what_is_allowed() {
        let t = Tenancy {
            source_url_prefixes: vec!["https://git.example.com/team-a/".into()],
            target_namespaces: vec!["team-a".into()],
            source_secrets: vec!["team-a-git".into()],
            ..Default::default()
        };
        let p = profile(json!({"cluster": {"name": "c1"},
            "source": {"url": "https://evil.example.com/x.git", "secretRef": {"name": "platform-git"}}}));
        assert_eq!(
            t.refusals(&p),
            [
                "spec.source.url \"https://evil.example.com/x.git\" must be one of, or lie below one of, \"https://git.example.com/team-a/\" (no '.' or '..' segments)",
                "spec.apply.targetNamespace must be set to one of \"team-a\"",
                "spec.source.secretRef.name \"platform-git\" must be one of \"team-a-git\"",
            ]
        );
        let ok = profile(json!({"cluster": {"name": "c1"},
            "source": {"url": "https://git.example.com/team-a/fleet.git", "secretRef": {"name": "team-a-git"}},
            "apply": {"targetNamespace": "team-a"}}));
        assert!(t.refusals(&ok).is_empty());
    }

    #[test]
    fn a_url_prefix_ends_at_a_path_boundary_and_cannot_be_climbed_out_of() {
        let p = "https://git.example.com/team-a";
        assert!(url_within("https://git.example.com/team-a", p));
        assert!(url_within("https://git.example.com/team-a/fleet.git", p));
        for outside in [
            "https://git.example.com/team-a-evil/fleet.git",
            "https://git.example.com/team-a/../team-b/fleet.git",
            "https://git.example.com/team-a/%2E%2E/team-b/fleet.git",
            "https://git.example.com/team-a/./../team-b.git",
        ] {
            assert!(!url_within(outside, p), "{outside}");
        }
        let host = "https://git.example.com";
        assert!(url_within("https://git.example.com/any/repo.git", host));
        assert!(!url_within(
            "https://git.example.com.evil.io/repo.git",
            host
        ));
        assert!(!url_within(
            "https://git.example.com@evil.io/repo.git",
            host
        ));
        assert!(
            !url_within("https://x/", ""),
            "an empty prefix allows nothing"
        );
    }

    #[test]
    fn each_kustomization_needs_an_allowed_target_namespace_its_own_or_inherited() {
        let t = Tenancy {
            target_namespaces: vec!["team-a".into()],
            ..Default::default()
        };
        let p = profile(
            json!({"cluster": {"name": "c1"}, "source": {"url": "https://g/x.git"},
            "kustomizations": [
                {"name": "infra", "path": "infra", "targetNamespace": "kube-system"},
                {"name": "apps", "path": "apps"},
                {"name": "more", "path": "more"},
                {"name": "ok", "path": "ok", "targetNamespace": "team-a"}]}),
        );
        assert_eq!(
            t.refusals(&p),
            [
                "spec.kustomizations[0].targetNamespace \"kube-system\" must be one of \"team-a\"",
                "spec.apply.targetNamespace must be set to one of \"team-a\"",
            ]
        );
        let mut inherited = p.clone();
        inherited.spec.kustomizations.remove(0);
        inherited.spec.apply = Some(crate::api::ApplySpec {
            target_namespace: Some("team-a".into()),
            ..Default::default()
        });
        assert!(t.refusals(&inherited).is_empty());
    }

    #[test]
    fn the_default_service_account_reaches_every_kustomization_that_sets_none() {
        let t = Tenancy {
            default_service_account: Some("tenant".into()),
            ..Default::default()
        };
        let p = profile(
            json!({"cluster": {"name": "c1"}, "source": {"url": "https://g/x.git"},
            "kustomizations": [
                {"name": "infra", "path": "infra", "serviceAccountName": "platform"},
                {"name": "apps", "path": "apps"}]}),
        );
        let rendered = crate::render::render(
            &t.with_defaults(&p),
            &crate::render::Capabilities::default(),
        );
        let accounts: Vec<(String, Option<String>)> = rendered
            .objects
            .iter()
            .filter_map(|o| match o {
                crate::flux::FluxObject::Kustomization(k) => Some((
                    kube::ResourceExt::name_any(k),
                    k.spec.service_account_name.clone(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            accounts,
            [
                ("c1-apps".to_string(), Some("tenant".to_string())),
                ("c1-infra".to_string(), Some("platform".to_string())),
            ]
        );
    }

    #[test]
    fn the_default_service_account_fills_only_an_unset_one() {
        let t = Tenancy {
            default_service_account: Some("tenant".into()),
            ..Default::default()
        };
        let unset =
            profile(json!({"cluster": {"name": "c1"}, "source": {"url": "https://g/x.git"}}));
        let set = profile(
            json!({"cluster": {"name": "c1"}, "source": {"url": "https://g/x.git"},
            "apply": {"serviceAccountName": "own"}}),
        );
        let sa = |p: &FluxProfile| {
            p.spec
                .apply
                .as_ref()
                .and_then(|a| a.service_account_name.clone())
        };
        assert_eq!(sa(&t.with_defaults(&unset)).as_deref(), Some("tenant"));
        assert_eq!(sa(&t.with_defaults(&set)).as_deref(), Some("own"));
    }
}

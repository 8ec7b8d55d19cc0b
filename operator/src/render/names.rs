//! Names, labels and owner references of the generated objects.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "fluxtune";
pub const PROFILE_LABEL: &str = "fluxtune.dev/profile";

/// Kubernetes object names used as label values and in Flux references stay within 63 characters.
pub const MAX_NAME: usize = 63;

/// `<profile>` or `<profile>-<suffix>`; names over 63 characters keep a readable prefix and end in a
/// hash of the full name, so they stay unique and stable.
pub fn child_name(profile: &str, suffix: Option<&str>) -> String {
    let full = match suffix {
        Some(s) => format!("{profile}-{s}"),
        None => profile.to_string(),
    };
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = hex(&Sha256::digest(full.as_bytes()))[..8].to_string();
    let prefix = full[..MAX_NAME - 9].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

pub fn labels(profile: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (PROFILE_LABEL.to_string(), profile.to_string()),
    ])
}

/// Lowercase hex, as Flux prints digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_verbatim() {
        assert_eq!(child_name("cluster1", None), "cluster1");
        assert_eq!(child_name("cluster1", Some("app")), "cluster1-app");
    }

    #[test]
    fn long_names_are_shortened_stably_and_distinctly() {
        let profile = "p".repeat(60);
        let a = child_name(&profile, Some("frontend"));
        let b = child_name(&profile, Some("backend"));
        assert_eq!(a.len(), MAX_NAME);
        assert_ne!(a, b);
        assert_eq!(a, child_name(&profile, Some("frontend")));
    }

    #[test]
    fn shortened_names_never_end_in_a_separator() {
        let profile = format!("{}-{}", "a".repeat(53), "b".repeat(10));
        let name = child_name(&profile, Some("image"));
        assert_eq!(name.len(), MAX_NAME - 1);
        assert!(!name.contains("--"), "{name}");
    }
}

//! Which objects are this profile's. Candidates are found by fluxtune's labels (the child caches
//! hold only labelled objects); ownership is proven by the profile's controller ownerReference,
//! compared by UID. Labels alone prove nothing: anyone can copy them, for example by committing
//! `fluxtune render` output to Git and applying it with another tool, and a profile deleted and
//! re-created under the same name has a new UID.

use kube::{Resource, ResourceExt, api::DynamicObject};

use super::Context;
use crate::{api::FluxProfile, api::InventoryEntry, render::names};

/// How an existing object with a child's name relates to the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by this profile (same UID): fluxtune keeps it as rendered and may prune it.
    Owned,
    /// Labelled for this profile but controlled by nobody (left by `--cascade=orphan`, or applied
    /// from rendered YAML): fluxtune adopts it by applying its controller reference, and says so.
    Adoptable,
    /// Someone else's: never written, never deleted.
    Foreign(String),
}

pub fn claim(live: &DynamicObject, profile: &FluxProfile) -> Claim {
    if let Some(owner) = live
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    {
        return if Some(&owner.uid) == profile.meta().uid.as_ref() {
            Claim::Owned
        } else if owner.kind == "FluxProfile" && owner.name == profile.name_any() {
            Claim::Foreign(format!(
                "is controlled by an earlier FluxProfile {} (uid {}) that is being deleted or gone",
                owner.name, owner.uid
            ))
        } else {
            Claim::Foreign(format!("is controlled by {} {}", owner.kind, owner.name))
        };
    }
    if labelled_for(live, &profile.name_any()) {
        Claim::Adoptable
    } else {
        Claim::Foreign("was not created by fluxtune".into())
    }
}

pub fn is_owned(live: &DynamicObject, profile: &FluxProfile) -> bool {
    claim(live, profile) == Claim::Owned
}

fn labelled_for(live: &DynamicObject, profile: &str) -> bool {
    live.labels().get(names::PROFILE_LABEL).map(String::as_str) == Some(profile)
        && live
            .labels()
            .get(names::MANAGED_BY_LABEL)
            .map(String::as_str)
            == Some(names::MANAGED_BY)
}

/// Objects that may be this profile's and that it no longer renders are pruned only after
/// [`is_owned`] on a fresh read: these are the candidates, from the inventory and the caches.
pub fn candidates(ctx: &Context, profile: &FluxProfile) -> Vec<InventoryEntry> {
    let namespace = profile.namespace();
    let name = profile.name_any();
    let mut found: Vec<InventoryEntry> = profile
        .status
        .as_ref()
        .map(|s| s.inventory.clone())
        .unwrap_or_default();
    let namespace = namespace.unwrap_or_default();
    for (kind, cache) in &ctx.children {
        let ar = kind.api_resource();
        found.extend(
            crate::cache::labelled_for(cache, &namespace, &name)
                .into_iter()
                .map(|name| InventoryEntry {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                    name,
                }),
        );
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(uid: &str) -> FluxProfile {
        serde_json::from_value(json!({
            "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
            "metadata": {"name": "c1", "namespace": "ns", "uid": uid},
            "spec": {"cluster": {"name": "c1"}, "source": {"url": "https://g/r.git"}}
        }))
        .unwrap()
    }

    fn object(labels: bool, owner: Option<(&str, &str, &str)>) -> DynamicObject {
        let mut meta = json!({"name": "c1", "namespace": "ns"});
        if labels {
            meta["labels"] =
                json!({names::PROFILE_LABEL: "c1", names::MANAGED_BY_LABEL: names::MANAGED_BY});
        }
        if let Some((kind, name, uid)) = owner {
            meta["ownerReferences"] = json!([{"apiVersion": "v1", "kind": kind, "name": name,
                                              "uid": uid, "controller": true}]);
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "X", "metadata": meta})).unwrap()
    }

    #[test]
    fn ownership_is_the_controller_uid_not_the_labels() {
        let p = profile("u1");
        assert_eq!(
            claim(&object(true, Some(("FluxProfile", "c1", "u1"))), &p),
            Claim::Owned
        );
        // Labels edited away do not disown it: the UID decides.
        assert_eq!(
            claim(&object(false, Some(("FluxProfile", "c1", "u1"))), &p),
            Claim::Owned
        );
        assert_eq!(claim(&object(true, None), &p), Claim::Adoptable);
        assert!(matches!(
            claim(&object(true, Some(("FluxProfile", "c1", "old"))), &p),
            Claim::Foreign(m) if m.contains("earlier FluxProfile")
        ));
        assert!(matches!(
            claim(&object(true, Some(("Kustomization", "other", "u9"))), &p),
            Claim::Foreign(m) if m.contains("Kustomization other")
        ));
        assert!(matches!(claim(&object(false, None), &p), Claim::Foreign(_)));
    }
}

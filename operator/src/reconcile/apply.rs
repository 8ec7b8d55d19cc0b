//! Server-side apply of the rendered objects, skipping every object that is already as rendered.
//!
//! A no-op reconcile must not write: an object is skipped when its `fluxtune.dev/applied` hash
//! matches the rendered object (so fields fluxtune stopped setting do get removed by a new apply)
//! and every rendered field still has its value on the live object (so another writer's change to a
//! field fluxtune owns is reverted).

use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Context;
use crate::{
    api::{FluxProfile, InventoryEntry},
    error::Result,
    flux::{FluxKind, FluxObject},
    render::names,
};

pub const FIELD_MANAGER: &str = "fluxtune";
pub const APPLIED_HASH: &str = "fluxtune.dev/applied";

#[derive(Debug, Default)]
pub struct Applied {
    /// Objects created or changed by this reconcile.
    pub changed: Vec<InventoryEntry>,
    /// Objects that exist but belong to someone else: never overwritten.
    pub conflicts: Vec<InventoryEntry>,
    /// Objects whose Flux CRD is not installed.
    pub missing_kinds: Vec<FluxKind>,
}

pub async fn apply(
    ctx: &Context,
    profile: &FluxProfile,
    objects: &[FluxObject],
) -> Result<Applied> {
    let namespace = profile.namespace().unwrap_or_default();
    let mut applied = Applied::default();
    for object in objects {
        let kind = object.kind();
        let Some(store) = ctx.children.get(&kind) else {
            applied.missing_kinds.push(kind);
            continue;
        };
        let desired = with_hash(object.to_dynamic());
        let name = object.name();
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &ar);
        let cached = store.get(
            &kube::runtime::reflector::ObjectRef::new_with(&name, ar.clone()).within(&namespace),
        );
        let live = match cached {
            Some(live) => Some((*live).clone()),
            // Not in the cache of fluxtune-labelled objects: it is new, or someone else's.
            None => api.get_opt(&name).await?,
        };
        if let Some(live) = &live {
            if !is_ours(live, profile) {
                applied.conflicts.push(object.inventory_entry());
                continue;
            }
            if up_to_date(&desired, live) {
                continue;
            }
        }
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await?;
        ctx.metrics
            .applied
            .get_or_create(&crate::metrics::KindLabels { kind: kind.kind() })
            .inc();
        applied.changed.push(object.inventory_entry());
    }
    Ok(applied)
}

/// Ours: labelled for this profile, or controlled by it (someone may have edited the labels).
pub fn is_ours(live: &DynamicObject, profile: &FluxProfile) -> bool {
    let labelled = live.labels().get(names::PROFILE_LABEL) == profile.metadata.name.as_ref()
        && live
            .labels()
            .get(names::MANAGED_BY_LABEL)
            .map(String::as_str)
            == Some(names::MANAGED_BY);
    let controlled = live
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == profile.metadata.uid.as_ref());
    labelled || controlled
}

fn with_hash(mut desired: DynamicObject) -> DynamicObject {
    let json = serde_json::to_vec(&desired).expect("objects serialize");
    let hash = names::hex(&Sha256::digest(&json))[..16].to_string();
    desired.annotations_mut().insert(APPLIED_HASH.into(), hash);
    desired
}

pub fn up_to_date(desired: &DynamicObject, live: &DynamicObject) -> bool {
    let desired = serde_json::to_value(desired).expect("objects serialize");
    let live = serde_json::to_value(live).expect("objects serialize");
    contains(&live, &desired, false)
}

/// Whether every field of `want` has the same value in `have`. Lists are compared item by item,
/// except owner references (`any_order`), which other controllers may add to.
fn contains(have: &Value, want: &Value, any_order: bool) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want.iter().all(|(k, w)| {
            have.get(k)
                .is_some_and(|h| contains(h, w, k == "ownerReferences"))
        }),
        (Value::Array(have), Value::Array(want)) if any_order => want
            .iter()
            .all(|w| have.iter().any(|h| contains(h, w, false))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w, false))
        }
        (have, want) => have == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn server_defaults_and_other_owners_do_not_count_as_drift() {
        let want = dynamic(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a",
            "ownerReferences": [{"apiVersion": "v1", "kind": "P", "name": "p", "uid": "1"}]},
            "spec": {"policy": {"numerical": {}}, "events": ["ping", "push"]}}),
        );
        let have = dynamic(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "resourceVersion": "7",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Q", "name": "q", "uid": "2"},
                                {"apiVersion": "v1", "kind": "P", "name": "p", "uid": "1"}]},
            "spec": {"policy": {"numerical": {"order": "asc"}}, "events": ["ping", "push"], "suspend": true},
            "status": {"x": 1}}),
        );
        assert!(up_to_date(&want, &have));
    }

    #[test]
    fn a_changed_owned_value_or_an_extra_list_item_is_drift() {
        let want = dynamic(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"interval": "1h", "events": ["push"]}}),
        );
        let changed = dynamic(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"interval": "5m", "events": ["push"]}}),
        );
        let extra = dynamic(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"interval": "1h", "events": ["push", "ping"]}}),
        );
        assert!(!up_to_date(&want, &changed));
        assert!(!up_to_date(&want, &extra));
    }

    #[test]
    fn the_hash_changes_when_a_field_is_dropped() {
        let a = with_hash(dynamic(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"secretRef": {"name": "s"}}}),
        ));
        let b = with_hash(dynamic(
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "spec": {}}),
        ));
        // b's fields are all on a, but a carries a different hash: b must be applied.
        assert!(!up_to_date(&b, &a));
    }
}

//! Server-side apply of the rendered objects, skipping every object that is already as rendered.
//!
//! A no-op reconcile must not write: an object is skipped when its `fluxtune.dev/applied` hash
//! matches the rendered object (so fields fluxtune stopped setting do get removed by a new apply)
//! and every rendered field still has its value on the live object (so another writer's change to a
//! field fluxtune owns is reverted).

use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
    runtime::reflector::ObjectRef,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    ChildKey, Context,
    ownership::{self, Claim},
};
use crate::{
    api::{FluxProfile, InventoryEntry},
    cache,
    error::Error,
    flux::{FluxKind, FluxObject},
    render::names,
};

pub const FIELD_MANAGER: &str = "fluxtune";
pub const APPLIED_HASH: &str = "fluxtune.dev/applied";
/// Marks a child fluxtune suspended because what it acts on became someone else's; fluxtune lifts
/// the suspension (and only one it set) when the conflict clears.
pub const SUSPENDED_FOR_CONFLICT: &str = "fluxtune.dev/suspended-for-conflict";
/// The field manager of those suspensions: never `fluxtune`, whose applies leave `spec.suspend`
/// to its users (`flux suspend`).
pub const CONFLICT_MANAGER: &str = "fluxtune-conflict";

/// The resourceVersion precondition of a write that must only create. An apply carrying a
/// resourceVersion is refused with 409 Conflict when the object exists with another one, and the
/// precondition is dropped when the apply creates the object; no object has this version (it is
/// the etcd revision it was last written at, and `"0"` would mean "no precondition"). So an
/// object someone else created a moment before, which the cache of labelled objects cannot show,
/// is never written over: the conflict sends the pass to read it and judge whose it is.
/// `e2e/operator.rs` pins this behaviour of the API server.
pub const ABSENT: &str = "18446744073709551615";

/// What one pass over the rendered objects did. A transient error stops the pass (`error`);
/// everything before it is recorded, so the inventory never loses an object it wrote.
#[derive(Debug, Default)]
pub struct Applied {
    /// Proven this profile's and as rendered, whether written now or already so.
    pub owned: Vec<InventoryEntry>,
    /// Objects created or changed by this pass.
    pub changed: Vec<InventoryEntry>,
    /// Labelled objects without a controller that this pass took over.
    pub adopted: Vec<InventoryEntry>,
    /// Objects with a child's name that belong to someone else, and why: never written.
    pub conflicts: Vec<(InventoryEntry, String)>,
    /// Objects not applied because they act on or read a conflicting object.
    pub blocked: Vec<InventoryEntry>,
    /// Existing children of this profile among `blocked`, suspended by this pass so that they stop
    /// acting on the foreign object (a Kustomization applying another team's repository).
    pub held: Vec<InventoryEntry>,
    /// The profile turned out to be deleting (or replaced) when checked before the first write:
    /// the pass stopped, nothing was written.
    pub profile_gone: bool,
    /// Objects the API server refused for good (admission, RBAC, validation), with its message.
    pub rejected: Vec<(InventoryEntry, String)>,
    /// Objects whose Flux CRD is not installed.
    pub missing_kinds: Vec<FluxKind>,
    /// The transient error that stopped the pass, if any; the objects after it were not tried.
    pub error: Option<Error>,
}

impl Applied {
    /// Objects this pass did not write because it could not, or stopped before them: the
    /// previous inventory still holds them if they were ours.
    pub fn untouched(&self, entry: &InventoryEntry) -> bool {
        !self.owned.contains(entry) && !self.conflicts.iter().any(|(c, _)| c == entry)
    }
}

pub async fn apply(ctx: &Context, profile: &FluxProfile, objects: &[FluxObject]) -> Applied {
    let mut applied = Applied::default();
    let mut read_due = has_children(ctx, profile);
    for object in objects {
        let entry = object.inventory_entry();
        let kind = object.kind();
        if !ctx.children.contains_key(&kind) {
            applied.missing_kinds.push(kind);
            continue;
        }
        let blocked_by_conflict = object.depends_on().iter().any(|(k, n)| {
            applied
                .conflicts
                .iter()
                .any(|(c, _)| c.kind == k.kind() && &c.name == n)
        });
        if blocked_by_conflict {
            match hold(ctx, profile, object).await {
                Ok(true) => applied.held.push(entry.clone()),
                Ok(false) => {}
                Err(e) if e.is_permanent() => {
                    applied.rejected.push((entry.clone(), e.user_message()))
                }
                Err(e) => {
                    applied.error = Some(e);
                    break;
                }
            }
            applied.blocked.push(entry);
            continue;
        }
        let outcome = apply_one(ctx, profile, object, &mut read_due).await;
        remember_foreign(ctx, profile, object, &outcome);
        match outcome {
            Ok(Outcome::UpToDate) => applied.owned.push(entry),
            Ok(Outcome::Written { adopted }) => {
                if adopted {
                    applied.adopted.push(entry.clone());
                }
                applied.changed.push(entry.clone());
                applied.owned.push(entry);
            }
            Ok(Outcome::Foreign(why)) => applied.conflicts.push((entry, why)),
            Ok(Outcome::ProfileGone) => {
                applied.profile_gone = true;
                break;
            }
            Err(e) if e.is_permanent() => applied.rejected.push((entry, e.user_message())),
            Err(e) => {
                applied.error = Some(e);
                break;
            }
        }
    }
    applied
}

/// Whether the profile has children to lose: its inventory, or labelled objects in the caches. A
/// pass that finds none reads the profile only before an adoption (`apply_one`).
fn has_children(ctx: &Context, profile: &FluxProfile) -> bool {
    let (namespace, name) = (profile.namespace().unwrap_or_default(), profile.name_any());
    profile
        .status
        .as_ref()
        .is_some_and(|s| !s.inventory.is_empty())
        || ctx
            .children
            .values()
            .any(|cache| cache::any_labelled_for(cache, &namespace, &name))
}

/// Which children were someone else's at the last look (`Context::foreign`).
fn remember_foreign(
    ctx: &Context,
    profile: &FluxProfile,
    object: &FluxObject,
    outcome: &Result<Outcome, Error>,
) {
    let key = foreign_key(profile, object);
    let mut foreign = ctx.foreign.lock().unwrap();
    match outcome {
        Ok(Outcome::Foreign(_)) => {
            foreign.insert(key);
        }
        Ok(Outcome::UpToDate | Outcome::Written { .. }) => {
            foreign.remove(&key);
        }
        Ok(Outcome::ProfileGone) | Err(_) => {}
    }
}

fn was_foreign(ctx: &Context, profile: &FluxProfile, object: &FluxObject) -> bool {
    let key = foreign_key(profile, object);
    ctx.foreign.lock().unwrap().contains(&key)
}

fn foreign_key(profile: &FluxProfile, object: &FluxObject) -> ChildKey {
    (ObjectRef::from_obj(profile), object.kind(), object.name())
}

enum Outcome {
    UpToDate,
    Written { adopted: bool },
    Foreign(String),
    ProfileGone,
}

async fn apply_one(
    ctx: &Context,
    profile: &FluxProfile,
    object: &FluxObject,
    read_due: &mut bool,
) -> Result<Outcome, Error> {
    let namespace = profile.namespace().unwrap_or_default();
    let kind = object.kind();
    let name = object.name();
    let ar = kind.api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &ar);
    let cached = cache::get(&ctx.children[&kind], kind, &namespace, &name);
    // Not in the cache of fluxtune-labelled objects: it is new, or someone else's. It is not read
    // first: the write below is a create that the API server refuses if the object exists, and
    // only then is it read (a new profile's children cost one request each, not two). One that
    // was someone else's at the last look is read first: it most likely still is.
    let (mut live, mut read_from) = match cached {
        Some(cached) => (Some(cached), "cache"),
        None if was_foreign(ctx, profile, object) => (
            api.get_opt(&name).await?,
            "API server (someone else's at the last look)",
        ),
        None => (None, "nowhere (create only)"),
    };
    // The cache may lag behind a write: a refused precondition means "look again", once.
    for attempt in 0..2 {
        let mut desired = as_written(object);
        let mut adopted = false;
        if let Some(live) = &live {
            match ownership::claim(live, profile) {
                Claim::Owned if suspended_for_conflict(live) => {}
                Claim::Owned if up_to_date(&desired, live) => return Ok(Outcome::UpToDate),
                Claim::Owned => {}
                Claim::Adoptable => adopted = true,
                Claim::Foreign(why) => return Ok(Outcome::Foreign(why)),
            }
            // Optimistic lock: an object changed since it was read (by the garbage collector
            // removing the owner reference, say) is not overwritten from a stale decision.
            desired.metadata.resource_version = live.resource_version();
        } else {
            desired.metadata.resource_version = Some(ABSENT.into());
        }
        // A profile being deleted must not get children back: the garbage collector may be
        // orphaning them right now, and an owner reference put back makes it delete the child
        // after all; in a foreground deletion, the deletions of its children wake the profile,
        // perhaps before the cache shows the deletion. So the profile is read fresh before the
        // first write of a pass that found children of it, and again right before every
        // adoption: the one write that puts fluxtune's owner reference on an existing object
        // (after a conflict, the collector's removal of it may be what made the object
        // adoptable). An update carries the resourceVersion it judged, so it cannot restore a
        // reference removed since; a create cannot touch an existing object (ABSENT), and one
        // for a profile deleted meanwhile refers to an owner that is gone or going, which the
        // collector collects. A new profile's pass therefore sends its writes unread.
        if *read_due || adopted {
            if !profile_still_live(ctx, profile).await? {
                return Ok(Outcome::ProfileGone);
            }
            *read_due = false;
        }
        // Why a write happens, for whoever wonders why a reconcile wrote at all.
        tracing::debug!(
            kind = kind.kind(),
            name,
            read_from,
            exists = live.is_some(),
            adopted,
            "applying a Flux object"
        );
        let written = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await;
        match written {
            Ok(written) => {
                if suspended_for_conflict(&written) {
                    release(&api, &name).await?;
                }
                ctx.metrics
                    .applied
                    .get_or_create(&crate::metrics::KindLabels { kind: kind.kind() })
                    .inc();
                return Ok(Outcome::Written { adopted });
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => {
                read_from = "API server, after a conflict";
                live = api.get_opt(&name).await?;
            }
            Err(e) => {
                let e = Error::from(e);
                // Mutating admission runs before the API server compares resourceVersions, so a
                // create-only write can be refused for good although the object exists. Someone
                // else's object is a conflict, which holds what depends on it, not a refusal of
                // ours, which would not (a Kustomization would be applied to another team's
                // GitRepository).
                if live.is_none()
                    && e.is_permanent()
                    && let Some(existing) = api.get_opt(&name).await?
                    && let Claim::Foreign(why) = ownership::claim(&existing, profile)
                {
                    return Ok(Outcome::Foreign(why));
                }
                return Err(e);
            }
        }
    }
    unreachable!("the second attempt returns")
}

/// The profile as the API server has it now, not as the cache had it when the reconcile started.
/// RBAC grants list (not get) on profiles: a list selected by name.
async fn profile_still_live(ctx: &Context, profile: &FluxProfile) -> Result<bool, Error> {
    let api: Api<kube::api::PartialObjectMeta<FluxProfile>> =
        Api::namespaced(ctx.client.clone(), &profile.namespace().unwrap_or_default());
    let params =
        kube::api::ListParams::default().fields(&format!("metadata.name={}", profile.name_any()));
    let now = api.list_metadata(&params).await?;
    Ok(now.items.first().is_some_and(|p| {
        p.metadata.uid == profile.metadata.uid && p.metadata.deletion_timestamp.is_none()
    }))
}

fn suspended_for_conflict(live: &DynamicObject) -> bool {
    live.annotations().contains_key(SUSPENDED_FOR_CONFLICT)
}

/// Suspends an existing child of this profile that would act on a foreign object. Returns whether
/// it did; a child the user suspended is left as it is (and never un-suspended by fluxtune).
async fn hold(ctx: &Context, profile: &FluxProfile, object: &FluxObject) -> Result<bool, Error> {
    let namespace = profile.namespace().unwrap_or_default();
    let ar = object.kind().api_resource();
    let Some(live) = cache::get(
        &ctx.children[&object.kind()],
        object.kind(),
        &namespace,
        &object.name(),
    ) else {
        return Ok(false);
    };
    if !ownership::is_owned(&live, profile)
        || suspended_for_conflict(&live)
        || live.data["spec"]["suspend"] == Value::Bool(true)
    {
        return Ok(false);
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &ar);
    let patch = serde_json::json!({
        "metadata": {"annotations": {SUSPENDED_FOR_CONFLICT: "true"},
                     "resourceVersion": live.resource_version()},
        "spec": {"suspend": true},
    });
    api.patch(&object.name(), &conflict_manager(), &Patch::Merge(&patch))
        .await?;
    Ok(true)
}

/// Lifts a suspension fluxtune set for a conflict that has cleared.
async fn release(api: &Api<DynamicObject>, name: &str) -> Result<(), Error> {
    let patch = serde_json::json!({
        "metadata": {"annotations": {SUSPENDED_FOR_CONFLICT: null}},
        "spec": {"suspend": null},
    });
    api.patch(name, &conflict_manager(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn conflict_manager() -> PatchParams {
    PatchParams {
        field_manager: Some(CONFLICT_MANAGER.into()),
        ..Default::default()
    }
}

/// Whether the object is this profile's and already as rendered, from the cache alone (no request).
pub fn in_place(ctx: &Context, profile: &FluxProfile, object: &FluxObject) -> bool {
    let Some(store) = ctx.children.get(&object.kind()) else {
        return false;
    };
    let namespace = profile.namespace().unwrap_or_default();
    cache::get(store, object.kind(), &namespace, &object.name()).is_some_and(|live| {
        ownership::is_owned(&live, profile) && up_to_date(&as_written(object), &live)
    })
}

/// Whether the cache holds this entry's object and it is this profile's.
pub fn cached_and_owned(ctx: &Context, profile: &FluxProfile, entry: &InventoryEntry) -> bool {
    let Some(kind) = FluxKind::from_kind(&entry.kind) else {
        return false;
    };
    let Some(store) = ctx.children.get(&kind) else {
        return false;
    };
    let namespace = profile.namespace().unwrap_or_default();
    cache::get(store, kind, &namespace, &entry.name)
        .is_some_and(|live| ownership::is_owned(&live, profile))
}

/// A rendered object as fluxtune writes it: with the hash of what was rendered, which tells a
/// later pass whether the rendering changed. The benchmark's plain client writes the same.
pub fn as_written(object: &FluxObject) -> DynamicObject {
    with_hash(object.to_dynamic())
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

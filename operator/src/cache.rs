//! What the child caches keep of each Flux object fluxtune labelled.
//!
//! With a thousand profiles the caches hold eight thousand Flux objects, and a parsed
//! `DynamicObject` costs about 6.5 KB (every key, string and map its own allocation) where its JSON
//! is under 1 KB. A cached object is therefore kept as the API server's JSON, with only the
//! store's keys parsed: name, namespace, UID and resourceVersion. Which objects carry each
//! profile's label is an index beside the store (`ownership::candidates` asks it on every
//! reconcile). A reconcile parses the few objects it reads, which costs microseconds.

use std::{
    borrow::Cow,
    collections::{BTreeSet, HashMap},
    sync::{Arc, RwLock},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Resource,
    api::{ApiResource, DynamicObject},
    core::DynamicResourceScope,
    runtime::{
        reflector::{ObjectRef, Store, store::Writer},
        watcher,
    },
};

use crate::{flux::FluxKind, render::names};

/// One kind's cache of fluxtune-labelled objects, and which of them carry each profile's label.
#[derive(Clone)]
pub struct ChildCache {
    store: Store<Cached>,
    by_profile: Arc<RwLock<ByProfile>>,
}

/// Fills a [`ChildCache`] from its kind's watch events.
pub struct ChildWriter {
    writer: Writer<Cached>,
    by_profile: Arc<RwLock<ByProfile>>,
    /// A re-list's objects, until it is complete (as the store swaps in a complete list).
    relisting: Option<ByProfile>,
}

impl ChildWriter {
    pub fn new(resource: ApiResource) -> Self {
        ChildWriter {
            writer: Writer::new(resource),
            by_profile: Arc::default(),
            relisting: None,
        }
    }

    pub fn reader(&self) -> ChildCache {
        ChildCache {
            store: self.writer.as_reader(),
            by_profile: self.by_profile.clone(),
        }
    }

    pub fn apply(&mut self, event: &watcher::Event<DynamicObject>) {
        self.writer.apply_watcher_event(&compact(event));
        match event {
            watcher::Event::Apply(o) => self.by_profile.write().unwrap().insert(o),
            watcher::Event::Delete(o) => self.by_profile.write().unwrap().remove(o),
            watcher::Event::Init => self.relisting = Some(ByProfile::default()),
            // The watcher always sends Init first; as the store does, an InitApply without one
            // starts a list of its own.
            watcher::Event::InitApply(o) => self.relisting.get_or_insert_default().insert(o),
            watcher::Event::InitDone => {
                if let Some(relisted) = self.relisting.take() {
                    *self.by_profile.write().unwrap() = relisted;
                }
            }
        }
    }
}

/// Which objects of one kind carry each profile's label, by namespace. `ownership::candidates`
/// asks for one profile's on every reconcile; scanning the whole store for them made a thousand
/// profiles' reconciles quadratic (the largest share of the operator's CPU at the first start).
#[derive(Default)]
struct ByProfile {
    names: HashMap<(String, String), BTreeSet<String>>,
    profile_of: HashMap<(String, String), String>,
}

impl ByProfile {
    fn insert(&mut self, object: &DynamicObject) {
        self.remove(object);
        let labels = object.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key));
        let Some(profile) = label(names::PROFILE_LABEL) else {
            return;
        };
        if label(names::MANAGED_BY_LABEL).map(String::as_str) != Some(names::MANAGED_BY) {
            return;
        }
        let (namespace, name) = key(object);
        self.names
            .entry((namespace.clone(), profile.clone()))
            .or_default()
            .insert(name.clone());
        self.profile_of.insert((namespace, name), profile.clone());
    }

    fn remove(&mut self, object: &DynamicObject) {
        let (namespace, name) = key(object);
        let Some(profile) = self.profile_of.remove(&(namespace.clone(), name.clone())) else {
            return;
        };
        let of_profile = (namespace, profile);
        if let Some(names) = self.names.get_mut(&of_profile) {
            names.remove(&name);
            if names.is_empty() {
                self.names.remove(&of_profile);
            }
        }
    }
}

fn key(object: &DynamicObject) -> (String, String) {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

#[derive(Clone, Debug)]
pub struct Cached {
    /// Name, namespace, UID and resourceVersion only.
    metadata: ObjectMeta,
    /// The whole object as the watch delivered it.
    json: Box<str>,
}

impl Cached {
    pub fn new(object: &DynamicObject) -> Self {
        let meta = &object.metadata;
        Cached {
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                ..ObjectMeta::default()
            },
            json: serde_json::to_string(object)
                .expect("a watched object serializes")
                .into(),
        }
    }

    /// The whole object, parsed.
    pub fn object(&self) -> DynamicObject {
        serde_json::from_str(&self.json).expect("JSON this module wrote parses")
    }
}

impl Resource for Cached {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A watch event of the child watches, as the store keeps it.
fn compact(event: &watcher::Event<DynamicObject>) -> watcher::Event<Cached> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(Cached::new(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(Cached::new(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(Cached::new(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The cached object of this kind, name and namespace, parsed.
pub fn get(
    cache: &ChildCache,
    kind: FluxKind,
    namespace: &str,
    name: &str,
) -> Option<DynamicObject> {
    cache
        .store
        .get(&ObjectRef::new_with(name, kind.api_resource()).within(namespace))
        .map(|cached| cached.object())
}

/// Whether any cached object in `namespace` is labelled for `profile` (no names copied).
pub fn any_labelled_for(cache: &ChildCache, namespace: &str, profile: &str) -> bool {
    let by_profile = cache.by_profile.read().unwrap();
    by_profile
        .names
        .get(&(namespace.to_string(), profile.to_string()))
        .is_some_and(|names| !names.is_empty())
}

/// The names of the cached objects in `namespace` labelled for `profile`.
pub fn labelled_for(cache: &ChildCache, namespace: &str, profile: &str) -> Vec<String> {
    let by_profile = cache.by_profile.read().unwrap();
    by_profile
        .names
        .get(&(namespace.to_string(), profile.to_string()))
        .map(|names| names.iter().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    #[test]
    fn the_object_read_back_is_the_object_cached_and_the_key_fields_are_kept() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "c1", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                         "labels": {"app.kubernetes.io/managed-by": "fluxtune",
                                    "fluxtune.dev/profile": "c1", "team": "a"},
                         "annotations": {"fluxtune.dev/applied": "abc"}},
            "spec": {"interval": "1h", "url": "https://g/r.git"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let cached = Cached::new(&object);
        assert_eq!(cached.object(), object);
        assert_eq!(
            (
                cached.name_any(),
                cached.namespace(),
                cached.uid(),
                cached.resource_version()
            ),
            (
                "c1".into(),
                Some("ns".into()),
                Some("u".into()),
                Some("7".into())
            )
        );
        assert!(cached.labels().is_empty() && cached.annotations().is_empty());
    }

    fn labelled(name: &str, profile: Option<&str>) -> DynamicObject {
        let mut labels = json!({"app.kubernetes.io/managed-by": "fluxtune"});
        if let Some(p) = profile {
            labels["fluxtune.dev/profile"] = json!(p);
        }
        serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": "ns", "labels": labels}
        }))
        .unwrap()
    }

    #[test]
    fn the_profile_index_follows_applies_relabels_deletes_and_relists() {
        let mut writer = ChildWriter::new(FluxKind::GitRepository.api_resource());
        let cache = writer.reader();
        let names = |p: &str| labelled_for(&cache, "ns", p);
        writer.apply(&watcher::Event::Apply(labelled("a", Some("c1"))));
        writer.apply(&watcher::Event::Apply(labelled("b", Some("c1"))));
        writer.apply(&watcher::Event::Apply(labelled("c", None)));
        assert_eq!(names("c1"), ["a", "b"]);
        assert!(labelled_for(&cache, "other", "c1").is_empty());
        // Relabelled: it moves.
        writer.apply(&watcher::Event::Apply(labelled("b", Some("c2"))));
        assert_eq!(
            (names("c1"), names("c2")),
            (vec!["a".to_string()], vec!["b".to_string()])
        );
        writer.apply(&watcher::Event::Delete(labelled("a", Some("c1"))));
        assert!(names("c1").is_empty());
        // A re-list replaces the index once complete; what vanished meanwhile is gone.
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(labelled("d", Some("c1"))));
        assert_eq!(
            names("c2"),
            ["b"],
            "the old index serves until the list is complete"
        );
        writer.apply(&watcher::Event::InitDone);
        assert_eq!((names("c1"), names("c2")), (vec!["d".to_string()], vec![]));
        assert!(get(&cache, FluxKind::GitRepository, "ns", "d").is_some());
        assert!(get(&cache, FluxKind::GitRepository, "ns", "b").is_none());
    }

    #[test]
    fn a_list_restarted_midway_and_a_removed_label_leave_index_and_store_alike() {
        let mut writer = ChildWriter::new(FluxKind::GitRepository.api_resource());
        let cache = writer.reader();
        let names = |p: &str| labelled_for(&cache, "ns", p);
        writer.apply(&watcher::Event::Apply(labelled("a", Some("c1"))));
        // The profile label removed, managed-by kept: in the store, no longer the profile's.
        writer.apply(&watcher::Event::Apply(labelled("a", None)));
        assert!(names("c1").is_empty());
        assert!(get(&cache, FluxKind::GitRepository, "ns", "a").is_some());
        // A list that fails after its first page starts over: only the second list counts.
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(labelled("b", Some("c1"))));
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(labelled("c", Some("c1"))));
        writer.apply(&watcher::Event::InitDone);
        assert_eq!(names("c1"), ["c"]);
        for (name, cached) in [("a", false), ("b", false), ("c", true)] {
            assert_eq!(
                get(&cache, FluxKind::GitRepository, "ns", name).is_some(),
                cached,
                "{name}"
            );
        }
    }
}

//! What the child caches keep of each Flux object fluxtune labelled.
//!
//! With a thousand profiles the caches hold eight thousand Flux objects, and a parsed
//! `DynamicObject` costs about 6.5 KB (every key, string and map its own allocation) where its JSON
//! is under 1 KB. A cached object is therefore kept as the API server's JSON, with only what the
//! store is keyed and scanned by parsed: name, namespace, UID, resourceVersion and fluxtune's own
//! labels (`ownership::candidates` scans every object of a kind for a profile's label). A reconcile
//! parses the few objects it reads, which costs microseconds.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Resource,
    api::{ApiResource, DynamicObject},
    core::DynamicResourceScope,
    runtime::{
        reflector::{ObjectRef, Store},
        watcher,
    },
};

use crate::{flux::FluxKind, render::names};

/// One kind's cache of fluxtune-labelled objects.
pub type ChildCache = Store<Cached>;

#[derive(Clone, Debug)]
pub struct Cached {
    /// Name, namespace, UID, resourceVersion and fluxtune's labels only.
    metadata: ObjectMeta,
    /// The whole object as the watch delivered it.
    json: Box<str>,
}

impl Cached {
    pub fn new(object: &DynamicObject) -> Self {
        let meta = &object.metadata;
        let labels = meta.labels.as_ref().map(|labels| {
            labels
                .iter()
                .filter(|(k, _)| {
                    [names::MANAGED_BY_LABEL, names::PROFILE_LABEL].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        Cached {
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                labels,
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

/// A watch event of the child watches, as the cache stores it.
pub fn event(event: &watcher::Event<DynamicObject>) -> watcher::Event<Cached> {
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
    store: &ChildCache,
    kind: FluxKind,
    namespace: &str,
    name: &str,
) -> Option<DynamicObject> {
    store
        .get(&ObjectRef::new_with(name, kind.api_resource()).within(namespace))
        .map(|cached| cached.object())
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
        assert_eq!(
            cached.labels().keys().collect::<Vec<_>>(),
            ["app.kubernetes.io/managed-by", "fluxtune.dev/profile"]
        );
        assert!(cached.annotations().is_empty());
    }
}

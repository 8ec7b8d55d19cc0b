//! Minimal typed Flux v1 objects: only the fields fluxtune sets.
//!
//! Every optional field is skipped when empty, so server-side apply claims exactly what fluxtune
//! owns and nothing that `flux suspend` or another manager may set.

mod image;
mod kustomize;
mod notification;
mod source;

use kube::{
    Resource,
    api::{ApiResource, DynamicObject, ObjectMeta},
};
use serde::{Deserialize, Serialize};

pub use image::*;
pub use kustomize::*;
pub use notification::*;
pub use source::*;

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct LocalRef {
    pub name: String,
}

/// A reference that Flux resolves by kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CrossRef {
    pub kind: String,
    pub name: String,
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// The Flux kinds fluxtune generates, in apply order: sources before their consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FluxKind {
    GitRepository,
    Kustomization,
    ImageRepository,
    ImagePolicy,
    ImageUpdateAutomation,
    Receiver,
}

impl FluxKind {
    pub const ALL: [FluxKind; 6] = [
        FluxKind::GitRepository,
        FluxKind::Kustomization,
        FluxKind::ImageRepository,
        FluxKind::ImagePolicy,
        FluxKind::ImageUpdateAutomation,
        FluxKind::Receiver,
    ];

    pub fn api_resource(self) -> ApiResource {
        match self {
            FluxKind::GitRepository => ApiResource::erase::<GitRepository>(&()),
            FluxKind::Kustomization => ApiResource::erase::<Kustomization>(&()),
            FluxKind::ImageRepository => ApiResource::erase::<ImageRepository>(&()),
            FluxKind::ImagePolicy => ApiResource::erase::<ImagePolicy>(&()),
            FluxKind::ImageUpdateAutomation => ApiResource::erase::<ImageUpdateAutomation>(&()),
            FluxKind::Receiver => ApiResource::erase::<Receiver>(&()),
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            FluxKind::GitRepository => "GitRepository",
            FluxKind::Kustomization => "Kustomization",
            FluxKind::ImageRepository => "ImageRepository",
            FluxKind::ImagePolicy => "ImagePolicy",
            FluxKind::ImageUpdateAutomation => "ImageUpdateAutomation",
            FluxKind::Receiver => "Receiver",
        }
    }

    pub fn from_kind(kind: &str) -> Option<FluxKind> {
        FluxKind::ALL.into_iter().find(|k| k.kind() == kind)
    }

    /// `plural.group`, the name of the kind's CRD.
    pub fn crd_name(self) -> String {
        let ar = self.api_resource();
        format!("{}.{}", ar.plural, ar.group)
    }
}

/// One rendered Flux object.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum FluxObject {
    GitRepository(GitRepository),
    Kustomization(Kustomization),
    ImageRepository(ImageRepository),
    ImagePolicy(ImagePolicy),
    ImageUpdateAutomation(ImageUpdateAutomation),
    Receiver(Receiver),
}

impl FluxObject {
    pub fn kind(&self) -> FluxKind {
        match self {
            FluxObject::GitRepository(_) => FluxKind::GitRepository,
            FluxObject::Kustomization(_) => FluxKind::Kustomization,
            FluxObject::ImageRepository(_) => FluxKind::ImageRepository,
            FluxObject::ImagePolicy(_) => FluxKind::ImagePolicy,
            FluxObject::ImageUpdateAutomation(_) => FluxKind::ImageUpdateAutomation,
            FluxObject::Receiver(_) => FluxKind::Receiver,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            FluxObject::GitRepository(o) => o.meta(),
            FluxObject::Kustomization(o) => o.meta(),
            FluxObject::ImageRepository(o) => o.meta(),
            FluxObject::ImagePolicy(o) => o.meta(),
            FluxObject::ImageUpdateAutomation(o) => o.meta(),
            FluxObject::Receiver(o) => o.meta(),
        }
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            FluxObject::GitRepository(o) => o.meta_mut(),
            FluxObject::Kustomization(o) => o.meta_mut(),
            FluxObject::ImageRepository(o) => o.meta_mut(),
            FluxObject::ImagePolicy(o) => o.meta_mut(),
            FluxObject::ImageUpdateAutomation(o) => o.meta_mut(),
            FluxObject::Receiver(o) => o.meta_mut(),
        }
    }

    pub fn name(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }

    /// The object as the API server sees it, for dynamic (per-kind) clients.
    pub fn to_dynamic(&self) -> DynamicObject {
        let value = serde_json::to_value(self).expect("Flux objects serialize to JSON");
        serde_json::from_value(value).expect("a serialized Flux object is a DynamicObject")
    }

    /// The objects of the same namespace this one acts on or reads from: a Kustomization applies
    /// what its GitRepository fetched, the ImageUpdateAutomation pushes with its source's
    /// credentials, a Receiver triggers its resources, an ImagePolicy reads its ImageRepository.
    pub fn depends_on(&self) -> Vec<(FluxKind, String)> {
        match self {
            FluxObject::GitRepository(_) | FluxObject::ImageRepository(_) => vec![],
            FluxObject::Kustomization(k) => by_kind(&k.spec.source_ref),
            FluxObject::ImageUpdateAutomation(a) => by_kind(&a.spec.source_ref),
            FluxObject::ImagePolicy(p) => vec![(
                FluxKind::ImageRepository,
                p.spec.image_repository_ref.name.clone(),
            )],
            FluxObject::Receiver(r) => r
                .spec
                .resources
                .iter()
                .filter_map(|res| Some((FluxKind::from_kind(&res.kind)?, res.name.clone())))
                .collect(),
        }
    }

    /// apiVersion, kind and name: the identity recorded in a profile's inventory.
    pub fn inventory_entry(&self) -> crate::api::InventoryEntry {
        let ar = self.kind().api_resource();
        crate::api::InventoryEntry {
            api_version: ar.api_version,
            kind: ar.kind,
            name: self.name(),
        }
    }
}

fn by_kind(r: &CrossRef) -> Vec<(FluxKind, String)> {
    FluxKind::from_kind(&r.kind)
        .map(|k| (k, r.name.clone()))
        .into_iter()
        .collect()
}

//! The pure renderer: a FluxProfile in, sorted Flux objects out. No client, no clock, no I/O;
//! the CLI, the golden tests and the operator all call [`render`].

pub mod budget;
mod git;
pub mod ignore;
mod image;
pub mod kustomization;
pub mod names;
pub mod receiver;
pub mod tuning;
pub mod validate;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    api::{FluxProfile, PollingClass},
    flux::{FluxKind, FluxObject},
};

/// Optional Flux API fields the installed CRDs may lack; server-side apply refuses unknown fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// GitRepository `spec.sparseCheckout` (source-controller v1.6, Flux 2.6).
    pub sparse_checkout: bool,
}

impl Default for Capabilities {
    /// What the Flux release fluxtune targets (2.9) serves.
    fn default() -> Self {
        Capabilities {
            sparse_checkout: true,
        }
    }
}

/// Everything one profile renders to.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// In apply order: sources before their consumers, Kustomizations after what they depend on,
    /// then by name.
    pub objects: Vec<FluxObject>,
    pub class: PollingClass,
    pub latency_budget: budget::Budget,
    /// Name of the Git host's Receiver, when one is rendered.
    pub receiver: Option<String>,
    /// Name of the registry's Receiver, when one is rendered.
    pub registry_receiver: Option<String>,
    pub tuning: tuning::Tuning,
}

impl Rendered {
    /// The budget while a Receiver cannot be called (its Secret is missing, say): commits wait
    /// for the source's backstop poll, images for the scan.
    pub fn budget_without(&self, git_lost: bool, registry_lost: bool) -> budget::Budget {
        budget::latency_budget(&tuning::Tuning {
            webhook: self.tuning.webhook && !git_lost,
            registry_webhook: self.tuning.registry_webhook && !registry_lost,
            ..self.tuning.clone()
        })
    }
}

/// What every builder needs: the profile's identity and resolved tuning.
pub struct Context {
    pub profile: String,
    pub namespace: Option<String>,
    pub cluster_path: String,
    pub shared_paths: Vec<String>,
    /// The paths of spec.kustomizations' entries; empty for the single Kustomization.
    pub kustomization_paths: Vec<String>,
    /// The folders their components resolve to (`Component::folder`).
    pub component_folders: Vec<String>,
    pub tuning: tuning::Tuning,
    owner: Option<OwnerReference>,
}

impl Context {
    fn new(profile: &FluxProfile, missed: tuning::Missed) -> Context {
        let cluster = &profile.spec.cluster;
        Context {
            profile: profile.name_any(),
            namespace: profile.namespace(),
            cluster_path: cluster
                .path
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_else(|| cluster.name.clone()),
            shared_paths: cluster.shared_paths.iter().map(|p| p.0.clone()).collect(),
            kustomization_paths: profile
                .spec
                .kustomizations
                .iter()
                .map(|k| k.path.0.clone())
                .collect(),
            component_folders: profile
                .spec
                .kustomizations
                .iter()
                .flat_map(|k| k.components.iter().filter_map(|c| c.folder(&k.path.0)))
                .collect(),
            tuning: tuning::tuning(&profile.spec, missed),
            owner: profile.controller_owner_ref(&()),
        }
    }

    /// The GitRepository, Kustomization, ImageUpdateAutomation and Receiver share the profile's
    /// name (names are unique per kind).
    pub fn source_name(&self) -> String {
        names::child_name(&self.profile, None)
    }

    /// The folders the Kustomizations read, which the source keeps: the cluster's folder (or,
    /// with spec.kustomizations, each entry's path and its components' folders) and the shared
    /// ones. The ImageUpdateAutomation writes to the cluster's folder only (image.rs).
    pub fn folders(&self) -> Vec<&str> {
        let applied: Vec<&str> = if self.kustomization_paths.is_empty() {
            vec![self.cluster_path.as_str()]
        } else {
            self.kustomization_paths
                .iter()
                .chain(&self.component_folders)
                .map(String::as_str)
                .collect()
        };
        applied
            .into_iter()
            .chain(self.shared_paths.iter().map(String::as_str))
            .collect()
    }

    pub fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: self.namespace.clone(),
            labels: Some(names::labels(&self.profile)),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }
}

/// Renders a profile that passed validation (the API server's or [`validate`]'s).
pub fn render(profile: &FluxProfile, caps: &Capabilities) -> Rendered {
    render_missed(profile, caps, tuning::Missed::default())
}

/// As [`render`], while the webhooks in `missed` are missed: their sources poll at the fallback
/// interval (spec.webhook.fallback, spec.registryWebhook.fallback).
pub fn render_missed(
    profile: &FluxProfile,
    caps: &Capabilities,
    missed: tuning::Missed,
) -> Rendered {
    let cx = Context::new(profile, missed);
    let mut objects = vec![FluxObject::GitRepository(git::git_repository(
        &cx, profile, caps,
    ))];
    objects.extend(
        kustomization::kustomizations(&cx, profile)
            .into_iter()
            .map(FluxObject::Kustomization),
    );
    for img in &profile.spec.images {
        objects.push(FluxObject::ImageRepository(image::image_repository(
            &cx, img,
        )));
        objects.push(FluxObject::ImagePolicy(image::image_policy(&cx, img)));
    }
    objects.extend(
        image::image_update_automation(&cx, profile).map(FluxObject::ImageUpdateAutomation),
    );
    let receiver = receiver::receiver(&cx, profile);
    let receiver_name = receiver.as_ref().map(|r| r.name_any());
    objects.extend(receiver.map(FluxObject::Receiver));
    let registry = receiver::registry_receiver(&cx, profile);
    let registry_name = registry.as_ref().map(|r| r.name_any());
    objects.extend(registry.map(FluxObject::Receiver));
    let depths = kustomization::dependency_depths(profile);
    objects.sort_by_key(|o| {
        let depth = match o.kind() {
            FluxKind::Kustomization => depths.get(&o.name()).copied().unwrap_or(0),
            _ => 0,
        };
        (o.kind(), depth, o.name())
    });

    Rendered {
        objects,
        class: cx.tuning.class,
        latency_budget: budget::latency_budget(&cx.tuning),
        receiver: receiver_name,
        registry_receiver: registry_name,
        tuning: cx.tuning,
    }
}

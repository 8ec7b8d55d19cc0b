//! The Kustomizations: the cluster's folder, or each entry of spec.kustomizations, applied
//! whenever the source has a new revision. An entry inherits what it leaves unset from
//! spec.apply and the polling class, as the single Kustomization does.

use std::collections::BTreeMap;

use crate::{
    api::{ApplySpec, FluxProfile, KustomizationEntry},
    flux::{self, CrossRef, Kustomization, KustomizationSpec, LocalRef},
};

use super::{Context, names};

pub fn kustomizations(cx: &Context, profile: &FluxProfile) -> Vec<Kustomization> {
    let apply = profile.spec.apply.clone().unwrap_or_default();
    let entries = &profile.spec.kustomizations;
    if entries.is_empty() {
        return vec![Kustomization {
            metadata: cx.meta(cx.source_name()),
            spec: base(cx, &apply, format!("./{}", cx.cluster_path)),
        }];
    }
    entries
        .iter()
        .map(|e| Kustomization {
            metadata: cx.meta(entry_name(&cx.profile, &e.name)),
            spec: entry(cx, &apply, e),
        })
        .collect()
}

/// The Kustomization an entry renders to: `<profile>-<entry>`.
pub fn entry_name(profile: &str, entry: &str) -> String {
    names::child_name(profile, Some(entry))
}

fn base(cx: &Context, apply: &ApplySpec, path: String) -> KustomizationSpec {
    KustomizationSpec {
        interval: cx.tuning.apply.clone(),
        retry_interval: cx.tuning.apply_retry.clone(),
        timeout: cx.tuning.apply_timeout.clone(),
        source_ref: CrossRef {
            kind: "GitRepository".into(),
            name: cx.source_name(),
        },
        path,
        prune: apply.prune.unwrap_or(true),
        wait: apply.wait.unwrap_or(true),
        deletion_policy: apply.deletion_policy.unwrap_or_default().as_str().into(),
        service_account_name: apply.service_account_name.clone(),
        target_namespace: apply.target_namespace.clone().filter(|ns| !ns.is_empty()),
        ..KustomizationSpec::default()
    }
}

fn entry(cx: &Context, apply: &ApplySpec, e: &KustomizationEntry) -> KustomizationSpec {
    let mut spec = base(cx, apply, format!("./{}", e.path.as_str()));
    if let Some(prune) = e.prune {
        spec.prune = prune;
    }
    if let Some(wait) = e.wait {
        spec.wait = wait;
    }
    if let Some(timeout) = &e.timeout {
        spec.timeout = timeout.0.clone();
    }
    if let Some(retry) = &e.retry_interval {
        spec.retry_interval = retry.0.clone();
    }
    if let Some(sa) = &e.service_account_name {
        spec.service_account_name = Some(sa.clone());
    }
    if let Some(ns) = &e.target_namespace {
        spec.target_namespace = Some(ns.clone()).filter(|ns| !ns.is_empty());
    }
    spec.depends_on = e
        .depends_on
        .iter()
        .map(|d| LocalRef {
            name: entry_name(&cx.profile, &d.name),
        })
        .collect();
    spec.decryption = e.decryption.as_ref().map(|d| flux::Decryption {
        provider: "sops".into(),
        secret_ref: d.secret_ref.as_ref().map(|s| LocalRef {
            name: s.name.clone(),
        }),
    });
    spec.post_build = e.post_build.as_ref().map(|p| flux::PostBuild {
        substitute: p.substitute.clone(),
        substitute_from: p
            .substitute_from
            .iter()
            .map(|s| flux::SubstituteReference {
                kind: s.kind.as_str().into(),
                name: s.name.clone(),
                optional: s.optional,
            })
            .collect(),
    });
    spec.health_checks = e
        .health_checks
        .iter()
        .map(|h| flux::HealthCheck {
            api_version: h.api_version.clone(),
            kind: h.kind.clone(),
            name: h.name.clone(),
            namespace: h.namespace.clone(),
        })
        .collect();
    spec.components = e.components.iter().map(|c| c.0.clone()).collect();
    spec.patches = e
        .patches
        .iter()
        .map(|p| flux::KustomizePatch {
            patch: p.patch.clone(),
            target: p.target.as_ref().map(|t| flux::PatchTarget {
                group: t.group.clone(),
                version: t.version.clone(),
                kind: t.kind.clone(),
                name: t.name.clone(),
                namespace: t.namespace.clone(),
                label_selector: t.label_selector.clone(),
                annotation_selector: t.annotation_selector.clone(),
            }),
        })
        .collect();
    spec.force = e.force.unwrap_or(false);
    spec
}

/// Each rendered Kustomization's place in dependency order: 0 for one without dependencies,
/// else one more than its deepest dependency. Kustomizations are applied, and their health read,
/// in this order, so the first failure reported is the one the others wait on. A cycle (refused
/// before rendering) ends the count instead of looping.
pub fn dependency_depths(profile: &FluxProfile) -> BTreeMap<String, usize> {
    let entries = &profile.spec.kustomizations;
    let by_name: BTreeMap<&str, &KustomizationEntry> =
        entries.iter().map(|e| (e.name.as_str(), e)).collect();
    fn depth<'a>(
        e: &'a KustomizationEntry,
        by_name: &BTreeMap<&str, &'a KustomizationEntry>,
        seen: &mut Vec<&'a str>,
        memo: &mut BTreeMap<&'a str, usize>,
    ) -> usize {
        if let Some(&d) = memo.get(e.name.as_str()) {
            return d;
        }
        if seen.contains(&e.name.as_str()) {
            return 0;
        }
        seen.push(&e.name);
        let d = e
            .depends_on
            .iter()
            .filter_map(|d| by_name.get(d.name.as_str()))
            .map(|dep| depth(dep, by_name, seen, memo) + 1)
            .max()
            .unwrap_or(0);
        seen.pop();
        memo.insert(&e.name, d);
        d
    }
    let mut memo = BTreeMap::new();
    let profile_name = kube::ResourceExt::name_any(profile);
    entries
        .iter()
        .map(|e| {
            (
                entry_name(&profile_name, &e.name),
                depth(e, &by_name, &mut Vec::new(), &mut memo),
            )
        })
        .collect()
}

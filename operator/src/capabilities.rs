//! Which Flux CRDs are installed, and which optional fields they have: detected at start, and
//! watched, so that installing or upgrading Flux after fluxtune needs no restart.

use std::collections::BTreeSet;

use futures::{StreamExt, stream};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        watcher::{self, watcher},
    },
};
use tracing::{info, warn};

use crate::{
    error::{Error, Result},
    flux::FluxKind,
    render::Capabilities,
};

/// The Flux installation fluxtune found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FluxInstall {
    pub kinds: BTreeSet<FluxKind>,
    pub caps: Capabilities,
}

impl FluxInstall {
    /// CRD names of the kinds in `needed` that are not installed.
    pub fn missing(&self, needed: impl IntoIterator<Item = FluxKind>) -> Vec<String> {
        let missing: BTreeSet<FluxKind> = needed
            .into_iter()
            .filter(|k| !self.kinds.contains(k))
            .collect();
        missing.into_iter().map(FluxKind::crd_name).collect()
    }
}

pub async fn detect(client: &Client) -> Result<FluxInstall> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    if crds.get_opt("fluxprofiles.fluxtune.dev").await?.is_none() {
        return Err(Error::ProfileCrdMissing);
    }
    let mut kinds = BTreeSet::new();
    let mut sparse_checkout = false;
    for kind in FluxKind::ALL {
        let ar = kind.api_resource();
        let served = crds.get_opt(&kind.crd_name()).await?.and_then(|crd| {
            crd.spec
                .versions
                .into_iter()
                .find(|v| v.name == ar.version && v.served)
        });
        let Some(version) = served else {
            warn!(
                crd = kind.crd_name(),
                version = ar.version,
                "Flux CRD not installed: profiles that need {} report FluxCRDMissing until it is",
                kind.kind()
            );
            continue;
        };
        if kind == FluxKind::GitRepository {
            sparse_checkout = version
                .schema
                .and_then(|s| s.open_api_v3_schema)
                .and_then(|s| s.properties)
                .and_then(|p| p.get("spec").cloned())
                .and_then(|spec| spec.properties)
                .is_some_and(|p| p.contains_key("sparseCheckout"));
        }
        kinds.insert(kind);
    }
    let install = FluxInstall {
        kinds,
        caps: Capabilities { sparse_checkout },
    };
    info!(kinds = ?install.kinds, sparse_checkout, "detected Flux CRDs");
    Ok(install)
}

/// Resolves with the new install once the Flux CRDs differ from `current`: a kind installed or
/// removed, or GitRepository gaining `sparseCheckout` (a Flux upgrade). One metadata watch per
/// CRD, by name (RBAC grants list and watch on these names only); a change to any of them, or a
/// CRD whose presence differs from `current` when its watch starts, re-reads all of them. So does
/// the first moment every watch has listed: `current` was read before the watches began, and a
/// change in between (Flux upgraded just then) shows in no watch event, only in their lists.
pub async fn changed(client: &Client, current: &FluxInstall) -> Result<FluxInstall> {
    let api: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(client.clone());
    let mut events = stream::select_all(FluxKind::ALL.into_iter().map(|kind| {
        let config =
            watcher::Config::default().fields(&format!("metadata.name={}", kind.crd_name()));
        watcher(api.clone(), config)
            .default_backoff()
            .map(move |event| (kind, event))
            .boxed()
    }));
    let mut listed = BTreeSet::new();
    let mut first_lists = BTreeSet::new();
    let mut watching = false;
    while let Some((kind, event)) = events.next().await {
        let look = match event {
            Ok(watcher::Event::Init) => {
                listed.remove(&kind);
                false
            }
            Ok(watcher::Event::InitApply(_)) => {
                listed.insert(kind);
                false
            }
            Ok(watcher::Event::InitDone) => {
                first_lists.insert(kind);
                (!watching && first_lists.len() == FluxKind::ALL.len())
                    || listed.contains(&kind) != current.kinds.contains(&kind)
            }
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => true,
            // The watcher retries with backoff; the install stays as it is meanwhile.
            Err(e) => {
                warn!(crd = kind.crd_name(), error = %e, "watching a Flux CRD");
                false
            }
        };
        if look {
            let install = detect(client).await?;
            if install != *current {
                return Ok(install);
            }
        }
        if !watching && first_lists.len() == FluxKind::ALL.len() {
            watching = true;
            info!("watching the Flux CRDs for changes");
        }
    }
    // select_all of watchers, which retry forever, does not end.
    std::future::pending().await
}

//! Which Flux CRDs are installed, and which optional fields they have, detected at start.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
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
                "Flux CRD not installed: profiles that need {} report FluxCRDMissing until fluxtune restarts with it installed",
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

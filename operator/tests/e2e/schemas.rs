//! The real API server judges fluxtune's objects: the rendered Flux objects against the real Flux
//! CRDs, FluxProfiles against fluxtune's CRD (schema and CEL rules).

use fluxtune::{
    api::FluxProfile,
    reconcile::apply::up_to_date,
    render::{self, Capabilities, validate::Validator},
};
use kube::{Api, ResourceExt, api::Patch, api::PatchParams};
use serde_json::Value;

use crate::{
    cases,
    support::{self, apply_as},
};

fn samples() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

fn in_namespace(mut profile: FluxProfile, namespace: &str) -> FluxProfile {
    profile.metadata.namespace = Some(namespace.into());
    profile
}

#[tokio::test]
async fn every_sample_renders_objects_the_real_flux_crds_accept() {
    let client = support::client().await;
    let ns = support::namespace(&client, "flux-schema").await;
    let validator = Validator::new();
    let mut checked = 0;
    for (file, text) in samples() {
        for profile in validator.profiles_from_yaml(&text).unwrap() {
            let profile = in_namespace(profile, &ns);
            for object in render::render(&profile, &Capabilities::default()).objects {
                let desired = object.to_dynamic();
                let live = apply_as(
                    &client,
                    "e2e-schema",
                    &serde_json::to_value(&desired).unwrap(),
                )
                .await
                .unwrap_or_else(|e| {
                    panic!("{file}: {:?} {} refused: {e}", object.kind(), object.name())
                });
                assert!(
                    up_to_date(&desired, &live),
                    "{file}: {:?} {} reads back different:\n{}",
                    object.kind(),
                    object.name(),
                    serde_json::to_string_pretty(&live).unwrap()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} objects checked");
}

#[tokio::test]
async fn valid_samples_are_accepted_and_round_trip_unchanged() {
    let client = support::client().await;
    let ns = support::namespace(&client, "roundtrip").await;
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    let validator = Validator::new();
    for (file, text) in samples() {
        for profile in validator.profiles_from_yaml(&text).unwrap() {
            let profile = in_namespace(profile, &ns);
            api.patch(
                &profile.name_any(),
                &PatchParams::apply("e2e"),
                &Patch::Apply(&profile),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: refused: {e}"));
            let stored = api.get(&profile.name_any()).await.unwrap();
            assert_eq!(stored.spec, profile.spec, "{file}: the stored spec differs");
            assert_eq!(
                stored.status.and_then(|s| s.observed_generation),
                Some(-1),
                "{file}: status defaults to observedGeneration -1"
            );
        }
    }
}

#[tokio::test]
async fn the_api_server_refuses_every_invalid_profile_with_the_same_field_and_message() {
    let client = support::client().await;
    let ns = support::namespace(&client, "invalid").await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases::cases() {
        if case.offline_only() {
            continue;
        }
        let mut doc = case.doc.clone();
        doc["metadata"]["namespace"] = Value::String(ns.clone());
        match apply_as(&client, "e2e-invalid", &doc).await {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(kube::Error::Api(status)) => {
                for (field, message) in &case.errors {
                    let (field, message) = cases::api_server_words(field, message);
                    if !status.message.contains(&field) || !status.message.contains(&message) {
                        failures.push(format!(
                            "{}: want {field}: {message}\n  got {}",
                            case.name, status.message
                        ));
                    }
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} cases reached the API server");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

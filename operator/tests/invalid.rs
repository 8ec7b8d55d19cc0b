//! Every invalid profile of the shared table is refused offline with exactly its fields and messages.

mod cases;

use cases::{cases, valid};
use fluxtune::render::validate::{FieldError, Validator};

#[test]
fn the_valid_base_profile_is_valid() {
    Validator::new().validate(&valid()).unwrap();
}

#[test]
fn every_invalid_profile_is_refused_with_its_field_and_message() {
    let validator = Validator::new();
    let mut failures = Vec::new();
    for case in cases() {
        let (name, doc) = (case.name, case.doc);
        let want: Vec<FieldError> = case
            .errors
            .into_iter()
            .map(|(field, message)| FieldError {
                field: field.into(),
                message: message.into(),
            })
            .collect();
        match validator.validate(&doc) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(got) if got != want => {
                failures.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A dependsOn cycle passes the CRD's rules (CEL cannot follow chains cheaply): the offline
/// validator refuses it, naming the chain; the operator reports it as Stalled (DependencyCycle).
#[test]
fn a_dependency_cycle_is_refused_offline_naming_the_chain() {
    let mut doc = valid();
    doc["spec"]["kustomizations"] = serde_json::json!([
        {"name": "infra", "path": "infra", "dependsOn": [{"name": "apps"}]},
        {"name": "base", "path": "base"},
        {"name": "apps", "path": "apps", "dependsOn": [{"name": "base"}, {"name": "infra"}]},
    ]);
    assert_eq!(
        Validator::new().validate(&doc).unwrap_err(),
        [FieldError {
            field: "spec.kustomizations".into(),
            message: "dependsOn forms a cycle: infra -> apps -> infra; Flux would wait on it forever, remove one of its dependsOn".into(),
        }]
    );
    doc["spec"]["kustomizations"][0]["dependsOn"] = serde_json::json!([{"name": "base"}]);
    Validator::new().validate(&doc).unwrap();
}

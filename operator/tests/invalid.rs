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

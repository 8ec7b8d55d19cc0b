//! Structured profiles (src/generate.rs), generated or changed from a seed document: never a
//! panic; every accepted profile renders objects the Flux CRDs accept, with ignore rules and
//! sparse checkout keeping exactly its folders; every error names a field, in the part of the
//! document that is wrong.
#![no_main]

use fluxtune_fuzz::{Part, VALIDATOR, check_document, generate, part_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: fluxtune_fuzz::init(),
    |data: &[u8]| {
        let Ok(parts) = generate::from_input(data) else {
            return;
        };
        let doc = parts.document();
        let Err(errors) = check_document(&doc) else {
            return;
        };
        // An error about a part means that part is wrong: with the other two parts replaced by
        // valid ones, the document is still refused. A whole-object rule that relates the name
        // to the spec (spec.kustomizations' name length) is about both, so about neither alone.
        let across = |e: &fluxtune::render::validate::FieldError| e.field.is_empty() && e.message.starts_with("spec.");
        for part in [Part::Root, Part::Metadata, Part::Spec] {
            if errors.iter().any(|e| !across(e) && part_of(&doc, e) == part) {
                assert!(
                    VALIDATOR.validate(&parts.only(part)).is_err(),
                    "{part:?} is valid on its own, yet named: {errors:?}\ndocument: {doc}"
                );
            }
        }
    }
);

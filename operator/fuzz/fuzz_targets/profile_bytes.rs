//! Any bytes as a profile, read as YAML (every document) and as JSON: the validator and the
//! renderer never panic, errors name their field, accepted profiles render objects Flux accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(
    init: fluxtune_fuzz::init(),
    |data: &[u8]| {
        if let Ok(doc) = serde_json::from_slice::<Value>(data) {
            let _ = fluxtune_fuzz::check_document(&doc);
        }
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        // The reader the CLI uses, and each of its documents on its own.
        let all = fluxtune_fuzz::VALIDATOR.profiles_from_yaml(text);
        if let Ok(docs) = serde_saphyr::from_multiple::<Value>(text) {
            let results: Vec<_> = docs
                .iter()
                .filter(|d| !d.is_null())
                .map(fluxtune_fuzz::check_document)
                .collect();
            assert_eq!(
                all.is_ok(),
                results.iter().all(Result::is_ok),
                "the reader and the documents one by one disagree"
            );
        } else {
            assert!(all.is_err(), "not YAML, yet read as profiles");
        }
    }
);

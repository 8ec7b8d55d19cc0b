//! `fluxtune render -f ...` over files: the input split at NUL bytes into up to four files.
//! Never a panic; stdout reads back as exactly the rendered objects; every error names its
//! file, document and field.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: fluxtune_fuzz::init(),
    |data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let inputs: Vec<(String, String)> = text
            .splitn(4, '\0')
            .enumerate()
            .map(|(i, t)| (format!("in{i}.yaml"), t.to_string()))
            .collect();
        fluxtune_fuzz::check_cli(&inputs);
    }
);

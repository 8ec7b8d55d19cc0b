//! Golden files: every sample's whole rendered output, and the committed CRD.

use fluxtune::{
    cli,
    render::{self, Capabilities, validate::Validator},
};

#[test]
fn every_sample_renders_to_its_golden_file() {
    let validator = Validator::new();
    insta::glob!("../../samples", "*.yaml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let rendered: Vec<_> = validator
            .profiles_from_yaml(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into_iter()
            .map(|p| {
                let r = render::render(&p, &Capabilities::default());
                (p, r)
            })
            .collect();
        let output = format!(
            "{}{}",
            cli::budget_report(&rendered),
            cli::objects_yaml(&rendered)
        );
        insta::assert_snapshot!(output);
    });
}

#[test]
fn without_sparse_checkout_support_the_field_is_not_rendered() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/poll.yaml"))
            .unwrap();
    let profile = Validator::new()
        .profiles_from_yaml(&text)
        .unwrap()
        .remove(0);
    let caps = Capabilities {
        sparse_checkout: false,
    };
    let yaml = cli::objects_yaml(&[(profile.clone(), render::render(&profile, &caps))]);
    assert!(!yaml.contains("sparseCheckout"), "{yaml}");
    let yaml = cli::objects_yaml(&[(
        profile.clone(),
        render::render(&profile, &Capabilities::default()),
    )]);
    assert!(yaml.contains("sparseCheckout"), "{yaml}");
}

/// `crds/fluxprofile.yaml` is generated; regenerate with `cargo run -- crd > crds/fluxprofile.yaml`.
#[test]
fn committed_crd_matches_the_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/fluxprofile.yaml"
    ))
    .unwrap();
    assert!(
        committed == fluxtune::api::crd_yaml(),
        "crds/fluxprofile.yaml is stale: run `cargo run -- crd > crds/fluxprofile.yaml`"
    );
}

/// The Helm chart carries a copy of the CRD (a copy, not a symlink: docs/helm.md); it must be the
/// generated one, byte for byte.
#[test]
fn chart_crd_is_the_generated_one() {
    let chart = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/helm/fluxtune/crds/fluxprofile.yaml"
    ))
    .unwrap();
    assert!(
        chart == fluxtune::api::crd_yaml(),
        "deploy/helm/fluxtune/crds/fluxprofile.yaml is stale: run \
         `cargo run -q -- crd | tee crds/fluxprofile.yaml >deploy/helm/fluxtune/crds/fluxprofile.yaml`"
    );
}

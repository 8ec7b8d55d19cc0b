//! The binary as users call it: exit codes and which stream gets what.

use std::process::Command;

fn fluxtune(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fluxtune"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn render_prints_objects_on_stdout_and_the_budget_on_stderr() {
    let (code, stdout, stderr) = fluxtune(&[
        "render",
        "-f",
        "samples/webhook-images.yaml",
        "-f",
        "samples/poll.yaml",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("\nkind: GitRepository\n").count(), 2);
    assert!(
        stderr.contains("# cluster1 (Webhook): image to deploy 40s expected, 1m13s worst"),
        "{stderr}"
    );
    assert!(stderr.contains("# cluster2 (Poll)"), "{stderr}");
}

#[test]
fn invalid_input_names_the_field_exits_1_and_prints_nothing_on_stdout() {
    let dir = std::env::temp_dir().join(format!("fluxtune-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: fluxtune.dev/v1alpha1\nkind: FluxProfile\nmetadata: {name: c}\nspec:\n  cluster: {name: Cluster_1}\n  source: {url: 'git@github.com:acme/repo.git'}\n",
    )
    .unwrap();
    let (code, stdout, stderr) = fluxtune(&[
        "render",
        "-f",
        "samples/poll.yaml",
        "-f",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("spec.cluster.name: must be a DNS-1123 label"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.source.url: must start with http://, https:// or ssh://"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unreadable_yaml_is_an_error_not_a_panic() {
    let (code, stdout, stderr) = fluxtune(&["render", "-f", "Cargo.toml"]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(stderr.starts_with("error: Cargo.toml: "), "{stderr}");
}

#[test]
fn crd_prints_the_committed_file() {
    let (code, stdout, _) = fluxtune(&["crd"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/fluxprofile.yaml"
    ))
    .unwrap();
    assert_eq!(stdout, committed);
}

//! Property tests over generated valid profiles: the validator accepts them, render never panics,
//! is deterministic, and every generated name and interval is one Flux accepts.

use std::sync::LazyLock;

use fluxtune::{
    flux::FluxObject,
    render::{self, Capabilities, validate::Validator},
};
use proptest::{collection, option, prelude::*, sample};
use serde_json::{Value, json};

static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::new);
static DNS_NAME: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$").unwrap());
static FLUX_DURATION: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$").unwrap());

fn dns_label(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z0-9]([-a-z0-9]{{0,{}}}[a-z0-9])?", max - 2))
        .unwrap()
}

fn profile_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")
        .unwrap()
        .prop_filter("no empty DNS segments", |n| {
            !n.contains("..") && !n.contains(".-") && !n.contains("-.")
        })
}

fn folder() -> impl Strategy<Value = String> {
    collection::vec(
        proptest::string::string_regex("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,12}").unwrap(),
        1..4,
    )
    .prop_map(|segments| segments.join("/"))
}

fn duration() -> impl Strategy<Value = String> {
    collection::vec((1u32..120, sample::select(vec!["ms", "s", "m", "h"])), 1..3)
        .prop_map(|parts| parts.into_iter().map(|(n, u)| format!("{n}{u}")).collect())
}

fn image() -> impl Strategy<Value = Value> {
    (
        dns_label(20),
        sample::select(vec![
            "ghcr.io/acme/app",
            "localhost:5000/app",
            "nginx",
            "registry.example.com/a/b-c",
        ]),
        0..3usize,
        any::<bool>(),
    )
        .prop_map(|(name, repo, policy, insecure)| {
            let policy = match policy {
                0 => json!({"semver": {"range": ">=1.0.0"}}),
                1 => json!({"alphabetical": {"order": "desc"}}),
                _ => json!({"numerical": {}}),
            };
            json!({"name": name, "repository": repo, "policy": policy, "insecure": insecure})
        })
}

prop_compose! {
    fn valid_profile()(
        name in profile_name(),
        cluster in dns_label(63),
        path in option::of(folder()),
        shared in collection::btree_set(folder(), 0..4),
        class in option::of(sample::select(vec!["Poll", "Relaxed"])),
        webhook in option::of(sample::select(vec!["github", "gitlab", "bitbucket", "generic-hmac"])),
        images in collection::vec(image(), 0..5),
        intervals in collection::vec(option::of(duration()), 4),
        update in any::<bool>(),
        uid in option::of("[a-f0-9]{8}"),
    ) -> Value {
        let mut images = images;
        let mut seen = std::collections::BTreeSet::new();
        images.retain(|i| seen.insert(i["name"].as_str().unwrap().to_string()));
        let mut spec = json!({
            "cluster": {"name": cluster, "sharedPaths": shared},
            "source": {"url": "https://git.example.com/acme/kubeconf.git"},
            "images": images,
        });
        if let Some(path) = path { spec["cluster"]["path"] = json!(path); }
        if let Some(class) = class { spec["pollingClass"] = json!(class); }
        if let Some(provider) = webhook {
            spec["webhook"] = json!({"provider": provider, "secretRef": {"name": "hook"}});
            if class.is_none() { spec["pollingClass"] = json!("Webhook"); }
        }
        let keys = ["source", "apply", "imageScan", "imageUpdate"];
        spec["intervals"] = Value::Object(keys.iter().zip(intervals).filter_map(|(k, v)| v.map(|v| (k.to_string(), json!(v)))).collect());
        if update { spec["imageUpdate"] = json!({"author": {"name": "bot", "email": "bot@example.com"}}); }
        let mut metadata = json!({"name": name, "namespace": "flux-system"});
        if let Some(uid) = uid { metadata["uid"] = json!(uid); }
        json!({"apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile", "metadata": metadata, "spec": spec})
    }
}

fn intervals(object: &FluxObject) -> Vec<String> {
    let spec = serde_json::to_value(object).unwrap()["spec"].clone();
    ["interval", "timeout", "retryInterval"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_str).map(str::to_string))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_profiles_render_deterministically_to_objects_flux_accepts(doc in valid_profile()) {
        let profile = VALIDATOR.validate(&doc).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let caps = Capabilities::default();
        let first = render::render(&profile, &caps);
        prop_assert_eq!(&first, &render::render(&profile, &caps));
        prop_assert!(first.objects.len() >= 2);

        let has_uid = profile.metadata.uid.is_some();
        for object in &first.objects {
            let name = object.name();
            prop_assert!(name.len() <= 63 && DNS_NAME.is_match(&name), "bad name {:?}", name);
            let meta = object.meta();
            prop_assert_eq!(meta.owner_references.is_some(), has_uid);
            prop_assert_eq!(
                meta.labels.as_ref().and_then(|l| l.get("fluxtune.dev/profile")),
                profile.metadata.name.as_ref()
            );
            for interval in intervals(object) {
                prop_assert!(FLUX_DURATION.is_match(&interval), "bad interval {:?}", interval);
            }
        }
        let mut keys: Vec<_> = first.objects.iter().map(|o| (o.kind(), o.name())).collect();
        let sorted = { let mut k = keys.clone(); k.sort(); k };
        prop_assert_eq!(&keys, &sorted);
        keys.dedup();
        prop_assert_eq!(keys.len(), first.objects.len(), "two objects share a kind and name");
    }
}

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

/// Entries of spec.kustomizations: unique names, each depending only on earlier ones (so no
/// cycle), some with their own service account, target namespace or timeout.
fn kustomizations() -> impl Strategy<Value = Vec<Value>> {
    collection::vec(
        (
            dns_label(12),
            folder(),
            collection::vec(any::<sample::Index>(), 0..3),
            option::of(dns_label(10)),
            option::of(duration()),
        ),
        0..6,
    )
    .prop_map(|entries| {
        let mut names: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (name, path, deps, namespace, timeout) in entries {
            if names.contains(&name) {
                continue;
            }
            let mut deps: Vec<String> = if names.is_empty() {
                Vec::new()
            } else {
                deps.iter().map(|i| i.get(&names).clone()).collect()
            };
            deps.sort();
            deps.dedup();
            let mut e = json!({"name": name, "path": path,
                "dependsOn": deps.iter().map(|d| json!({"name": d})).collect::<Vec<_>>()});
            if let Some(ns) = namespace {
                e["targetNamespace"] = json!(ns);
            }
            if let Some(t) = timeout {
                e["timeout"] = json!(t);
            }
            names.push(name);
            out.push(e);
        }
        out
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
        kustomizations in kustomizations(),
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
        // `<profile>-<entry>` must fit in 63 characters: a long profile name keeps only entries
        // short enough (and drops dependencies on the others).
        let fits: Vec<Value> = kustomizations.into_iter().filter(|k| name.len() + 1 + k["name"].as_str().unwrap().len() <= 63).collect();
        let kept: Vec<&str> = fits.iter().map(|k| k["name"].as_str().unwrap()).collect();
        let fits: Vec<Value> = fits.iter().cloned().map(|mut k| {
            let deps: Vec<Value> = k["dependsOn"].as_array().unwrap().iter().filter(|d| kept.contains(&d["name"].as_str().unwrap())).cloned().collect();
            k["dependsOn"] = json!(deps);
            k
        }).collect();
        if !fits.is_empty() { spec["kustomizations"] = json!(fits); }
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
        // Sorted by kind, then by name; but Kustomizations after those they depend on.
        let mut keys: Vec<_> = first.objects.iter().map(|o| (o.kind(), o.name())).collect();
        let sorted = { let mut k = keys.clone(); k.sort_by_key(|(kind, _)| *kind); k };
        prop_assert_eq!(&keys, &sorted);
        for pair in keys.windows(2) {
            if pair[0].0 == pair[1].0 && pair[0].0 != fluxtune::flux::FluxKind::Kustomization {
                prop_assert!(pair[0].1 < pair[1].1, "{:?}", pair);
            }
        }
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), first.objects.len(), "two objects share a kind and name");

        let entries = &profile.spec.kustomizations;
        let kustomizations: Vec<_> = first.objects.iter().filter_map(|o| match o {
            FluxObject::Kustomization(k) => Some(k),
            _ => None,
        }).collect();
        let name = profile.metadata.name.clone().unwrap();
        let mut applied: Vec<&str> = Vec::new();
        for k in &kustomizations {
            for dep in &k.spec.depends_on {
                prop_assert!(applied.contains(&dep.name.as_str()), "{} before its dependency {}", k.metadata.name.as_deref().unwrap(), dep.name);
            }
            applied.push(k.metadata.name.as_deref().unwrap());
        }
        if entries.is_empty() {
            prop_assert_eq!(applied, vec![name.as_str()]);
        } else {
            let mut want: Vec<String> = entries.iter().map(|e| format!("{name}-{}", e.name)).collect();
            want.sort();
            let mut got: Vec<String> = applied.iter().map(|s| s.to_string()).collect();
            got.sort();
            prop_assert_eq!(got, want);
        }

        // The source keeps exactly the folders the Kustomizations read and the shared ones
        // (each entry's path, or the cluster's folder), and the automation writes only to the
        // cluster's folder.
        let cluster_path = profile.spec.cluster.path.as_ref().map_or(profile.spec.cluster.name.clone(), |p| p.0.clone());
        let read: Vec<String> = if entries.is_empty() { vec![cluster_path.clone()] } else { entries.iter().map(|e| e.path.0.clone()).collect() };
        for k in &kustomizations {
            let path = k.spec.path.strip_prefix("./").unwrap();
            prop_assert!(read.iter().any(|r| r == path), "{} reads {}", k.metadata.name.as_deref().unwrap(), path);
        }
        let mut folders: Vec<String> = read.iter().cloned().chain(profile.spec.cluster.shared_paths.iter().map(|p| p.0.clone())).collect();
        folders.sort();
        folders.dedup();
        // Keep only the outermost: a folder below a kept one is kept with it.
        let outermost: Vec<String> = folders.iter().filter(|f| !folders.iter().any(|a| f.starts_with(&format!("{a}/")))).map(|f| format!("{f}/")).collect();
        let git = first.objects.iter().find_map(|o| match o {
            FluxObject::GitRepository(g) => Some(g),
            _ => None,
        }).unwrap();
        prop_assert_eq!(&git.spec.sparse_checkout, &outermost);
        let ignore = git.spec.ignore.clone().unwrap();
        for f in &outermost {
            let rule = format!("!/{f}");
            prop_assert!(ignore.lines().any(|l| l == rule), "{} not let in:\n{}", f, ignore);
        }
        for o in &first.objects {
            if let FluxObject::ImageUpdateAutomation(a) = o {
                let update = serde_json::to_value(&a.spec).unwrap()["update"]["path"].clone();
                prop_assert_eq!(update, json!(format!("./{cluster_path}")));
            }
        }
    }
}

//! Invalid FluxProfiles and the exact errors users must read, shared by the offline validator
//! tests and the API server tests of the e2e tier.

use serde_json::{Value, json};

pub fn valid() -> Value {
    json!({
        "apiVersion": "fluxtune.dev/v1alpha1",
        "kind": "FluxProfile",
        "metadata": {"name": "cluster1", "namespace": "flux-system"},
        "spec": {
            "cluster": {"name": "cluster1"},
            "source": {"url": "https://git.example.com/acme/kubeconf.git"},
            "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
            "images": [{"name": "app", "repository": "ghcr.io/acme/app", "policy": {"semver": {"range": ">=1.0.0"}}}],
            "imageUpdate": {"author": {"name": "bot", "email": "bot@example.com"}}
        }
    })
}

/// `set` is a list of (JSON pointer, value); `Value::Null` removes the field.
fn with(set: &[(&str, Value)]) -> Value {
    let mut doc = valid();
    for (pointer, value) in set {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = doc
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"));
        match (parent, value) {
            (Value::Object(map), Value::Null) => {
                map.remove(key);
            }
            (Value::Object(map), v) => {
                map.insert(key.to_string(), v.clone());
            }
            (Value::Array(items), v) => items[key.parse::<usize>().unwrap()] = v.clone(),
            _ => panic!("cannot set {pointer}"),
        }
    }
    doc
}

const DNS_LABEL: &str = "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit";
const FOLDER: &str = "must be a relative folder path: segments of letters, digits, '.', '_' and '-' separated by single '/', no leading or trailing '/'";
const DOTS: &str = "must not contain '.' or '..' segments";
const DURATION: &str = "must be a Flux duration such as 30s, 5m or 1h (units ms, s, m, h)";
const SUBDOMAIN: &str = "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'";
const BASE_URL: &str = "must be an http:// or https:// URL without query or fragment";
const REPOSITORY: &str =
    "must be an image repository without scheme, tag or digest, e.g. ghcr.io/acme/app";
const URL: &str =
    "must start with http://, https:// or ssh:// (scp-style git@host:path is not accepted by Flux)";

/// One invalid profile and every (field, message) it must be refused with.
pub struct Case {
    pub name: &'static str,
    pub doc: Value,
    pub errors: Vec<(&'static str, &'static str)>,
}

pub fn cases() -> Vec<Case> {
    let image = |name: &str, extra: Value| {
        let mut i = json!({"name": name, "repository": "ghcr.io/acme/app", "policy": {"semver": {"range": "*"}}});
        i.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        i
    };
    let ks = |name: &str, extra: Value| {
        let mut k = json!({"name": name, "path": format!("cluster1/{name}")});
        k.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        k
    };
    let table = vec![
        (
            "uppercase cluster name",
            with(&[("/spec/cluster/name", json!("Cluster1"))]),
            vec![("spec.cluster.name", DNS_LABEL)],
        ),
        (
            "cluster name ends in a dash",
            with(&[("/spec/cluster/name", json!("cluster-"))]),
            vec![("spec.cluster.name", DNS_LABEL)],
        ),
        (
            "cluster name too long",
            with(&[("/spec/cluster/name", json!("c".repeat(64)))]),
            vec![(
                "spec.cluster.name",
                "Too long: may not be more than 63 bytes",
            )],
        ),
        (
            "missing cluster name",
            with(&[("/spec/cluster/name", Value::Null)]),
            vec![("spec.cluster.name", "Required value")],
        ),
        (
            "missing source",
            with(&[("/spec/source", Value::Null)]),
            vec![("spec.source", "Required value")],
        ),
        (
            "path with ..",
            with(&[("/spec/cluster/path", json!("clusters/../secrets"))]),
            vec![("spec.cluster.path", DOTS)],
        ),
        (
            "path with a . segment",
            with(&[("/spec/cluster/path", json!("./cluster1"))]),
            vec![("spec.cluster.path", DOTS)],
        ),
        (
            "absolute path",
            with(&[("/spec/cluster/path", json!("/cluster1"))]),
            vec![("spec.cluster.path", FOLDER)],
        ),
        (
            "trailing slash",
            with(&[("/spec/cluster/path", json!("cluster1/"))]),
            vec![("spec.cluster.path", FOLDER)],
        ),
        (
            "glob in path",
            with(&[("/spec/cluster/path", json!("clusters/*"))]),
            vec![("spec.cluster.path", FOLDER)],
        ),
        (
            "gitignore negation in a shared path",
            with(&[("/spec/cluster/sharedPaths", json!(["library", "!secrets"]))]),
            vec![("spec.cluster.sharedPaths[1]", FOLDER)],
        ),
        (
            "comment character in path",
            with(&[("/spec/cluster/path", json!("#cluster1"))]),
            vec![("spec.cluster.path", FOLDER)],
        ),
        (
            "space in path",
            with(&[("/spec/cluster/path", json!("cluster 1"))]),
            vec![("spec.cluster.path", FOLDER)],
        ),
        (
            "duplicate shared paths",
            with(&[("/spec/cluster/sharedPaths", json!(["library", "library"]))]),
            vec![("spec.cluster.sharedPaths", "shared paths must be unique")],
        ),
        (
            "too many shared paths",
            with(&[(
                "/spec/cluster/sharedPaths",
                json!((0..17).map(|i| format!("lib{i}")).collect::<Vec<_>>()),
            )]),
            vec![(
                "spec.cluster.sharedPaths",
                "Too many: 17: must have at most 16 items",
            )],
        ),
        (
            "scp-style url",
            with(&[(
                "/spec/source/url",
                json!("git@github.com:acme/kubeconf.git"),
            )]),
            vec![("spec.source.url", URL)],
        ),
        (
            "file url",
            with(&[("/spec/source/url", json!("file:///srv/git/kubeconf"))]),
            vec![("spec.source.url", URL)],
        ),
        (
            "two refs",
            with(&[("/spec/source/ref", json!({"branch": "main", "tag": "v1"}))]),
            vec![(
                "spec.source.ref",
                "exactly one of branch, tag, semver or commit must be set",
            )],
        ),
        (
            "empty ref",
            with(&[("/spec/source/ref", json!({}))]),
            vec![(
                "spec.source.ref",
                "exactly one of branch, tag, semver or commit must be set",
            )],
        ),
        (
            "bad polling class",
            with(&[("/spec/pollingClass", json!("Sometimes"))]),
            vec![(
                "spec.pollingClass",
                "Unsupported value: \"Sometimes\": supported values: \"Webhook\", \"Poll\", \"Relaxed\"",
            )],
        ),
        (
            "webhook class without webhook",
            with(&[
                ("/spec/pollingClass", json!("Webhook")),
                ("/spec/webhook", Value::Null),
            ]),
            vec![(
                "spec.webhook",
                "spec.webhook is required when spec.pollingClass is Webhook",
            )],
        ),
        (
            "unknown webhook provider",
            with(&[("/spec/webhook/provider", json!("gitea"))]),
            vec![(
                "spec.webhook.provider",
                "Unsupported value: \"gitea\": supported values: \"github\", \"gitlab\", \"bitbucket\", \"generic-hmac\"",
            )],
        ),
        (
            "webhook secret name with uppercase",
            with(&[("/spec/webhook/secretRef/name", json!("Hook"))]),
            vec![(
                "spec.webhook.secretRef.name",
                "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'",
            )],
        ),
        (
            "bad duration unit",
            with(&[("/spec/intervals", json!({"source": "1d"}))]),
            vec![("spec.intervals.source", DURATION)],
        ),
        (
            "duration without unit",
            with(&[("/spec/apply", json!({"timeout": "300"}))]),
            vec![("spec.apply.timeout", DURATION)],
        ),
        (
            "two policies on one image",
            with(&[(
                "/spec/images/0",
                image(
                    "app",
                    json!({"policy": {"semver": {"range": "*"}, "alphabetical": {}}}),
                ),
            )]),
            vec![(
                "spec.images[0].policy",
                "exactly one of semver, alphabetical or numerical must be set",
            )],
        ),
        (
            "no policy",
            with(&[("/spec/images/0", image("app", json!({"policy": {}})))]),
            vec![(
                "spec.images[0].policy",
                "exactly one of semver, alphabetical or numerical must be set",
            )],
        ),
        (
            "bad sort order",
            with(&[(
                "/spec/images/0",
                image("app", json!({"policy": {"numerical": {"order": "up"}}})),
            )]),
            vec![(
                "spec.images[0].policy.numerical.order",
                "Unsupported value: \"up\": supported values: \"asc\", \"desc\"",
            )],
        ),
        (
            "duplicate image names",
            with(&[(
                "/spec/images",
                json!([image("app", json!({})), image("app", json!({}))]),
            )]),
            vec![("spec.images", "image names must be unique")],
        ),
        (
            "image with a tag",
            with(&[(
                "/spec/images/0",
                image("app", json!({"repository": "ghcr.io/acme/app:1.0"})),
            )]),
            vec![(
                "spec.images[0].repository",
                "must be an image repository without scheme, tag or digest, e.g. ghcr.io/acme/app",
            )],
        ),
        (
            "image name with underscore",
            with(&[("/spec/images/0", image("my_app", json!({})))]),
            vec![("spec.images[0].name", DNS_LABEL)],
        ),
        (
            "too many images",
            with(&[(
                "/spec/images",
                json!(
                    (0..33)
                        .map(|i| image(&format!("i{i}"), json!({})))
                        .collect::<Vec<_>>()
                ),
            )]),
            vec![("spec.images", "Too many: 33: must have at most 32 items")],
        ),
        (
            "registry webhook without images",
            with(&[
                ("/spec/images", Value::Null),
                ("/spec/imageUpdate", Value::Null),
                (
                    "/spec/registryWebhook",
                    json!({"provider": "harbor", "secretRef": {"name": "registry"}}),
                ),
            ]),
            vec![(
                "spec.registryWebhook",
                "spec.registryWebhook needs spec.images: its Receiver makes their ImageRepositories scan",
            )],
        ),
        (
            "unknown registry webhook provider",
            with(&[(
                "/spec/registryWebhook",
                json!({"provider": "artifactory", "secretRef": {"name": "registry"}}),
            )]),
            vec![(
                "spec.registryWebhook.provider",
                "Unsupported value: \"artifactory\": supported values: \"dockerhub\", \"quay\", \"acr\", \"nexus\", \"generic-hmac\", \"harbor\", \"gcr\", \"github\", \"generic\"",
            )],
        ),
        (
            "image update without a branch",
            with(&[("/spec/source/ref", json!({"tag": "v1"}))]),
            vec![(
                "spec.imageUpdate",
                "spec.imageUpdate needs a branch to push to: set spec.source.ref.branch or spec.imageUpdate.pushBranch",
            )],
        ),
        (
            "author without e-mail",
            with(&[("/spec/imageUpdate/author", json!({"name": "bot"}))]),
            vec![("spec.imageUpdate.author.email", "Required value")],
        ),
        (
            "misspelt field",
            with(&[("/spec/pollingclass", json!("Poll"))]),
            vec![("spec.pollingclass", "unknown field")],
        ),
        (
            "profile name too long for a label",
            with(&[("/metadata/name", json!("p".repeat(64)))]),
            vec![(
                "",
                "metadata.name: must be at most 63 characters, it becomes the fluxtune.dev/profile label value",
            )],
        ),
        (
            "wrong kind",
            with(&[("/kind", json!("Kustomization"))]),
            vec![("kind", "must be \"FluxProfile\", found \"Kustomization\"")],
        ),
        (
            "wrong type",
            with(&[("/spec/suspend", json!("yes"))]),
            vec![(
                "spec.suspend",
                "Invalid value: \"yes\": must be of type boolean",
            )],
        ),
        (
            "uppercase profile name",
            with(&[("/metadata/name", json!("Cluster1"))]),
            vec![(
                "metadata.name",
                "Invalid value: \"Cluster1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )],
        ),
        (
            "namespace not a DNS label",
            with(&[("/metadata/namespace", json!("Team_A"))]),
            vec![(
                "metadata.namespace",
                "Invalid value: \"Team_A\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            )],
        ),
        (
            "empty path",
            with(&[("/spec/cluster/path", json!(""))]),
            vec![(
                "spec.cluster.path",
                "Invalid value: \"\": spec.cluster.path in body should be at least 1 chars long",
            )],
        ),
        (
            "path too long",
            with(&[(
                "/spec/cluster/path",
                json!(format!("{}/c", "a".repeat(252))),
            )]),
            vec![(
                "spec.cluster.path",
                "Too long: may not be more than 253 bytes",
            )],
        ),
        (
            "a .git segment in a path",
            with(&[("/spec/cluster/path", json!("clusters/.git"))]),
            vec![(
                "spec.cluster.path",
                "must not contain a '.git' segment: Git keeps no such folder",
            )],
        ),
        (
            "dot segment in a shared path",
            with(&[("/spec/cluster/sharedPaths", json!(["library/./base"]))]),
            vec![("spec.cluster.sharedPaths[0]", DOTS)],
        ),
        (
            "uppercase commit",
            with(&[
                ("/spec/source/ref", json!({"commit": "ABCDEF0123"})),
                ("/spec/imageUpdate", Value::Null),
            ]),
            vec![(
                "spec.source.ref.commit",
                "must be a lowercase hexadecimal commit SHA",
            )],
        ),
        (
            "commit too short",
            with(&[
                ("/spec/source/ref", json!({"commit": "abc123"})),
                ("/spec/imageUpdate", Value::Null),
            ]),
            vec![(
                "spec.source.ref.commit",
                "Invalid value: \"abc123\": spec.source.ref.commit in body should be at least 7 chars long",
            )],
        ),
        (
            "empty branch",
            with(&[("/spec/source/ref", json!({"branch": ""}))]),
            vec![(
                "spec.source.ref.branch",
                "Invalid value: \"\": spec.source.ref.branch in body should be at least 1 chars long",
            )],
        ),
        (
            "source secret name with uppercase",
            with(&[("/spec/source/secretRef", json!({"name": "Kubeconf"}))]),
            vec![("spec.source.secretRef.name", SUBDOMAIN)],
        ),
        (
            "webhook without a secret",
            with(&[("/spec/webhook", json!({"provider": "github"}))]),
            vec![("spec.webhook.secretRef", "Required value")],
        ),
        (
            "webhook base URL with a query",
            with(&[(
                "/spec/webhook/baseURL",
                json!("https://flux.example.com/hooks?x=1"),
            )]),
            vec![("spec.webhook.baseURL", BASE_URL)],
        ),
        (
            "registry webhook base URL not http",
            with(&[(
                "/spec/registryWebhook",
                json!({"provider": "harbor", "secretRef": {"name": "registry"}, "baseURL": "ftp://flux.example.com"}),
            )]),
            vec![("spec.registryWebhook.baseURL", BASE_URL)],
        ),
        (
            "registry webhook secret name with uppercase",
            with(&[(
                "/spec/registryWebhook",
                json!({"provider": "harbor", "secretRef": {"name": "Registry"}}),
            )]),
            vec![("spec.registryWebhook.secretRef.name", SUBDOMAIN)],
        ),
        (
            "duration too long",
            with(&[(
                "/spec/intervals",
                json!({"imageScan": format!("{}s", "1".repeat(32))}),
            )]),
            vec![(
                "spec.intervals.imageScan",
                "Too long: may not be more than 32 bytes",
            )],
        ),
        (
            "duration of one character",
            with(&[("/spec/apply", json!({"retryInterval": "1"}))]),
            vec![(
                "spec.apply.retryInterval",
                "Invalid value: \"1\": spec.apply.retryInterval in body should be at least 2 chars long",
            )],
        ),
        (
            "duration longer than Flux reads",
            with(&[("/spec/intervals", json!({"source": "3000000h"}))]),
            vec![(
                "spec.intervals.source",
                "is longer than Flux reads (Go's durations end at 2562047h): at most 4 parts of at most 5 digits of hours, 7 of minutes, 9 of seconds or 12 of milliseconds",
            )],
        ),
        (
            "duration in days",
            with(&[("/spec/intervals", json!({"imageUpdate": "1d"}))]),
            vec![("spec.intervals.imageUpdate", DURATION)],
        ),
        (
            "uppercase image repository",
            with(&[(
                "/spec/images/0",
                image("app", json!({"repository": "GHCR.io/acme/app"})),
            )]),
            vec![("spec.images[0].repository", REPOSITORY)],
        ),
        (
            "image repository with a scheme",
            with(&[(
                "/spec/images/0",
                image("app", json!({"repository": "https://ghcr.io/acme/app"})),
            )]),
            vec![("spec.images[0].repository", REPOSITORY)],
        ),
        (
            "image name too long",
            with(&[("/spec/images/0", image(&"i".repeat(64), json!({})))]),
            vec![(
                "spec.images[0].name",
                "Too long: may not be more than 63 bytes",
            )],
        ),
        (
            "empty semver range",
            with(&[(
                "/spec/images/0",
                image("app", json!({"policy": {"semver": {"range": ""}}})),
            )]),
            vec![(
                "spec.images[0].policy.semver.range",
                "Invalid value: \"\": spec.images[0].policy.semver.range in body should be at least 1 chars long",
            )],
        ),
        (
            "image secret name with uppercase",
            with(&[(
                "/spec/images/0",
                image("app", json!({"secretRef": {"name": "Regcred"}})),
            )]),
            vec![("spec.images[0].secretRef.name", SUBDOMAIN)],
        ),
        (
            "tag filter pattern too long",
            with(&[(
                "/spec/images/0",
                image("app", json!({"filterTags": {"pattern": "a".repeat(1025)}})),
            )]),
            vec![(
                "spec.images[0].filterTags.pattern",
                "Too long: may not be more than 1024 bytes",
            )],
        ),
        (
            "author e-mail without @",
            with(&[(
                "/spec/imageUpdate/author",
                json!({"name": "bot", "email": "bot.example.com"}),
            )]),
            vec![("spec.imageUpdate.author.email", "must be an e-mail address")],
        ),
        (
            "empty message template",
            with(&[("/spec/imageUpdate/messageTemplate", json!(""))]),
            vec![(
                "spec.imageUpdate.messageTemplate",
                "Invalid value: \"\": spec.imageUpdate.messageTemplate in body should be at least 1 chars long",
            )],
        ),
        (
            "push branch too long",
            with(&[("/spec/imageUpdate/pushBranch", json!("b".repeat(256)))]),
            vec![(
                "spec.imageUpdate.pushBranch",
                "Too long: may not be more than 255 bytes",
            )],
        ),
        (
            "image update on a tag with an empty push branch",
            with(&[
                ("/spec/source/ref", json!({"tag": "v1"})),
                ("/spec/imageUpdate/pushBranch", json!("")),
            ]),
            vec![(
                "spec.imageUpdate",
                "spec.imageUpdate needs a branch to push to: set spec.source.ref.branch or spec.imageUpdate.pushBranch",
            )],
        ),
        (
            "unknown deletion policy",
            with(&[("/spec/apply", json!({"deletionPolicy": "Never"}))]),
            vec![(
                "spec.apply.deletionPolicy",
                "Unsupported value: \"Never\": supported values: \"MirrorPrune\", \"Delete\", \"WaitForTermination\", \"Orphan\"",
            )],
        ),
        (
            "service account with uppercase",
            with(&[("/spec/apply", json!({"serviceAccountName": "Tenant"}))]),
            vec![("spec.apply.serviceAccountName", SUBDOMAIN)],
        ),
        (
            "target namespace with a dot",
            with(&[("/spec/apply", json!({"targetNamespace": "apps.prod"}))]),
            vec![(
                "spec.apply.targetNamespace",
                "must be a DNS-1123 label (a namespace name)",
            )],
        ),
        (
            "duplicate kustomization names",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({})), ks("apps", json!({"path": "other"}))]),
            )]),
            vec![("spec.kustomizations", "kustomization names must be unique")],
        ),
        (
            "kustomization name with uppercase",
            with(&[("/spec/kustomizations", json!([ks("Apps", json!({}))]))]),
            vec![("spec.kustomizations[0].name", DNS_LABEL)],
        ),
        (
            "kustomization name too long for its object name",
            with(&[(
                "/spec/kustomizations",
                json!([ks(&"k".repeat(55), json!({}))]),
            )]),
            vec![(
                "",
                "spec.kustomizations: metadata.name, '-' and each entry's name must fit in 63 characters: together they name the entry's Kustomization",
            )],
        ),
        (
            "kustomization without a path",
            with(&[("/spec/kustomizations", json!([{"name": "apps"}]))]),
            vec![("spec.kustomizations[0].path", "Required value")],
        ),
        (
            "kustomization path with ..",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({"path": "apps/../secrets"}))]),
            )]),
            vec![("spec.kustomizations[0].path", DOTS)],
        ),
        (
            "kustomization path absolute",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({"path": "/apps"}))]),
            )]),
            vec![("spec.kustomizations[0].path", FOLDER)],
        ),
        (
            "dependsOn an unknown kustomization",
            with(&[(
                "/spec/kustomizations",
                json!([
                    ks("infra", json!({})),
                    ks("apps", json!({"dependsOn": [{"name": "infrastructure"}]}))
                ]),
            )]),
            vec![(
                "spec.kustomizations",
                "every dependsOn must name an entry of spec.kustomizations",
            )],
        ),
        (
            "kustomization that depends on itself",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({"dependsOn": [{"name": "apps"}]}))]),
            )]),
            vec![(
                "spec.kustomizations[0].dependsOn",
                "must not name the entry itself",
            )],
        ),
        (
            "too many kustomizations",
            with(&[(
                "/spec/kustomizations",
                json!(
                    (0..17)
                        .map(|i| ks(&format!("k{i}"), json!({})))
                        .collect::<Vec<_>>()
                ),
            )]),
            vec![(
                "spec.kustomizations",
                "Too many: 17: must have at most 16 items",
            )],
        ),
        (
            "decryption provider other than sops",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({"decryption": {"provider": "age"}}))]),
            )]),
            vec![(
                "spec.kustomizations[0].decryption.provider",
                "Unsupported value: \"age\": supported values: \"sops\"",
            )],
        ),
        (
            "substituteFrom kind other than ConfigMap or Secret",
            with(&[(
                "/spec/kustomizations",
                json!([ks(
                    "apps",
                    json!({"postBuild": {"substituteFrom": [{"kind": "Deployment", "name": "vars"}]}})
                )]),
            )]),
            vec![(
                "spec.kustomizations[0].postBuild.substituteFrom[0].kind",
                "Unsupported value: \"Deployment\": supported values: \"ConfigMap\", \"Secret\"",
            )],
        ),
        (
            "substituteFrom name with uppercase",
            with(&[(
                "/spec/kustomizations",
                json!([ks(
                    "apps",
                    json!({"postBuild": {"substituteFrom": [{"kind": "Secret", "name": "Vars"}]}})
                )]),
            )]),
            vec![(
                "spec.kustomizations[0].postBuild.substituteFrom[0].name",
                SUBDOMAIN,
            )],
        ),
        (
            "kustomization service account with uppercase",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({"serviceAccountName": "Tenant"}))]),
            )]),
            vec![("spec.kustomizations[0].serviceAccountName", SUBDOMAIN)],
        ),
        (
            "kustomization timeout in days",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({"timeout": "1d"}))]),
            )]),
            vec![("spec.kustomizations[0].timeout", DURATION)],
        ),
        (
            "health check without a kind",
            with(&[(
                "/spec/kustomizations",
                json!([ks("apps", json!({"healthChecks": [{"name": "web"}]}))]),
            )]),
            vec![(
                "spec.kustomizations[0].healthChecks[0].kind",
                "Required value",
            )],
        ),
    ];
    table
        .into_iter()
        .map(|(name, doc, errors)| Case { name, doc, errors })
        .collect()
}

impl Case {
    /// Checks the API server makes of the request itself rather than of the document: the kind
    /// decides the endpoint, and the namespace is the test's own (the request's path names it).
    #[allow(dead_code)]
    pub fn offline_only(&self) -> bool {
        self.errors.iter().any(|(field, _)| {
            *field == "kind" || *field == "apiVersion" || *field == "metadata.namespace"
        })
    }
}

/// How the API server words the same problem, where its fixed texts differ from the offline
/// validator's (the CEL messages are fluxtune's own and identical).
#[allow(dead_code)]
pub fn api_server_words(field: &str, message: &str) -> (String, String) {
    let message = match message {
        "unknown field" => {
            return (
                format!(".{}", field.rsplit('.').next().unwrap()),
                "field not declared in schema".into(),
            );
        }
        // A list-map (images and kustomizations, by name) and a set (sharedPaths) are keyed: server-side apply
        // refuses a duplicate key while building the typed patch, before any CEL rule runs.
        "shared paths must be unique"
        | "image names must be unique"
        | "kustomization names must be unique" => {
            return (format!(".{field}"), "duplicate entries for key".into());
        }
        // Server-side apply type-checks before validation, in its own words.
        m if m.starts_with("Invalid value: ") && m.contains("must be of type ") => {
            format!("expected {}", m.rsplit("must be of type ").next().unwrap())
        }
        m => m.to_string(),
    };
    (field.to_string(), message)
}

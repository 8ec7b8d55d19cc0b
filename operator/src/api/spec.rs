//! The FluxProfile spec: one cluster's identity, source and tuning.
//!
//! Validation lives on the types as OpenAPI bounds and CEL rules, so the API server refuses invalid
//! profiles with messages that name the field; `crate::validate` runs the very same schema offline.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{kustomizations::KustomizationEntry, status::FluxProfileStatus};

/// What the CEL rules below accept for a folder of the monorepo. Folder names are restricted to
/// characters that .gitignore treats literally, so the rendered ignore rules never need escaping.
pub const PATH_CHARS: &str = "letters, digits, '.', '_' and '-'";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fluxtune.dev",
    version = "v1alpha1",
    kind = "FluxProfile",
    plural = "fluxprofiles",
    namespaced,
    status = "FluxProfileStatus",
    derive = "PartialEq",
    shortname = "fp",
    category = "fluxtune",
    category = "flux",
    doc = "FluxProfile declares one cluster of a Git monorepo; fluxtune reconciles it into tuned Flux objects.",
    printcolumn(json_path = ".spec.cluster.name", name = "Cluster", type_ = "string"),
    printcolumn(json_path = ".status.pollingClass", name = "Class", type_ = "string"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(json_path = ".status.delivery.appliedRevision", name = "Revision", type_ = "string"),
    printcolumn(json_path = ".status.observedLatency.latest", name = "Latency", type_ = "string"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].message", name = "Status", type_ = "string"),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date"),
    validation = Rule::new("self.metadata.name.size() <= 63").message("metadata.name: must be at most 63 characters, it becomes the fluxtune.dev/profile label value"),
    validation = Rule::new("!has(self.spec.kustomizations) || self.spec.kustomizations.all(k, self.metadata.name.size() + k.name.size() <= 62)").message("spec.kustomizations: metadata.name, '-' and each entry's name must fit in 63 characters: together they name the entry's Kustomization"),
)]
#[x_kube(
    validation = Rule::new("!has(self.pollingClass) || self.pollingClass != 'Webhook' || has(self.webhook)")
        .message("spec.webhook is required when spec.pollingClass is Webhook")
        .field_path(".webhook"),
    validation = Rule::new("!has(self.registryWebhook) || (has(self.images) && size(self.images) > 0)")
        .message("spec.registryWebhook needs spec.images: its Receiver makes their ImageRepositories scan")
        .field_path(".registryWebhook"),
    validation = Rule::new("!has(self.imageUpdate) || !has(self.source.ref) || has(self.source.ref.branch) || !(has(self.source.ref.tag) || has(self.source.ref.semver) || has(self.source.ref.commit)) || (has(self.imageUpdate.pushBranch) && self.imageUpdate.pushBranch != '')")
        .message("spec.imageUpdate needs a branch to push to: set spec.source.ref.branch or spec.imageUpdate.pushBranch")
        .field_path(".imageUpdate"),
)]
#[serde(rename_all = "camelCase")]
pub struct FluxProfileSpec {
    /// The cluster's identity and its folders in the monorepo.
    pub cluster: ClusterSpec,
    /// The Git monorepo every cluster reads.
    pub source: SourceSpec,
    /// How the generated objects learn about changes. Default: Webhook when spec.webhook is set, else Poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_class: Option<PollingClass>,
    /// The Git host's push webhook, served by a Flux Receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
    /// The container registry's push webhook, served by a Flux Receiver that makes the profile's
    /// ImageRepositories scan at once. The scan interval then becomes a backstop (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_webhook: Option<RegistryWebhookSpec>,
    /// Container images to track; each becomes an ImageRepository and an ImagePolicy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    /// A list-map keyed by name: under server-side apply, teams can own separate entries.
    #[x_kube(validation = Rule::new("self.all(i, self.exists_one(j, j.name == i.name))").message("image names must be unique"))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub images: Vec<ImageSpec>,
    /// Commit image updates back to the cluster's folder (needs images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_update: Option<ImageUpdateSpec>,
    /// Per-interval overrides of the polling class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
    /// Settings of the generated Kustomization; with spec.kustomizations, the defaults of every entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplySpec>,
    /// Several Flux Kustomizations against the profile's one source (infrastructure, then apps),
    /// each named `<profile>-<name>`. When set, it replaces the single Kustomization of the
    /// cluster's folder, and the source keeps each entry's path and the shared paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    /// A list-map keyed by name: under server-side apply, teams can own separate entries.
    #[x_kube(validation = Rule::new("self.all(i, self.exists_one(j, j.name == i.name))").message("kustomization names must be unique"))]
    #[x_kube(validation = Rule::new("self.all(k, !has(k.dependsOn) || k.dependsOn.all(d, self.exists(o, o.name == d.name)))").message("every dependsOn must name an entry of spec.kustomizations"))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub kustomizations: Vec<KustomizationEntry>,
    /// Stops fluxtune from changing this profile's objects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The cluster's name, a DNS-1123 label.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    pub name: String,
    /// The cluster's folder in the monorepo. Default: the name. May be nested (clusters/prod/eu-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<RepoPath>,
    /// Folders every cluster also needs.
    #[serde(default = "default_shared_paths")]
    #[schemars(length(max = 16))]
    /// A set under server-side apply: teams can add their own folders.
    #[x_kube(validation = Rule::new("self.all(p, self.exists_one(q, q == p))").message("shared paths must be unique"))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub shared_paths: Vec<RepoPath>,
}

fn default_shared_paths() -> Vec<RepoPath> {
    vec![RepoPath("library".into())]
}

/// A folder of the monorepo: relative, '/'-separated, no '.' or '..' segments, no glob characters.
// KubeSchema cannot derive newtypes yet, so the CEL rules go in through `extend`.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default,
)]
#[serde(transparent)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.matches('^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$')", "message": "must be a relative folder path: segments of letters, digits, '.', '_' and '-' separated by single '/', no leading or trailing '/'"},
    {"rule": "!('/' + self + '/').contains('/./') && !('/' + self + '/').contains('/../')", "message": "must not contain '.' or '..' segments"},
    // Flux always drops `.git/` (render/ignore.rs lets other folders named like its default
    // exclusions back in, but never that one), and Git keeps no such folder.
    {"rule": "!('/' + self + '/').contains('/.git/')", "message": "must not contain a '.git' segment: Git keeps no such folder"},
]))]
pub struct RepoPath(#[schemars(length(min = 1, max = 253))] pub String);

impl RepoPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Git URL: http://, https:// or ssh:// (Flux refuses scp-style git@host:path).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^(http|https|ssh)://.+$')").message("must start with http://, https:// or ssh:// (scp-style git@host:path is not accepted by Flux)"))]
    pub url: String,
    /// The Git reference to follow: exactly one of branch, tag, semver or commit.
    #[serde(default = "default_ref")]
    pub r#ref: GitRef,
    /// Secret with Git credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

fn default_ref() -> GitRef {
    GitRef {
        branch: Some("main".into()),
        ..GitRef::default()
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.branch), has(self.tag), has(self.semver), has(self.commit)].filter(x, x).size() == 1").message("exactly one of branch, tag, semver or commit must be set"))]
pub struct GitRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub semver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 7, max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-f]+$')").message("must be a lowercase hexadecimal commit SHA"))]
    pub commit: Option<String>,
}

/// A Secret in the profile's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"))]
    pub name: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollingClass {
    /// Only the registry is polled; Git pushes arrive by webhook. Backstops are one hour.
    Webhook,
    /// No webhook: the GitRepository polls every minute.
    Poll,
    /// Low traffic: Git and registries every ten minutes.
    Relaxed,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// The Git host sending push events (a Flux Receiver type).
    pub provider: WebhookProvider,
    /// Secret in the profile's namespace whose key "token" the Git host signs with.
    pub secret_ref: SecretRef,
    /// Public URL of notification-controller's receiver endpoint; fluxtune reports the full hook URL.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#]+(/[^?#]*)?$')").message("must be an http:// or https:// URL without query or fragment"))]
    pub base_url: Option<String>,
    /// What fluxtune does when a poll finds a change this webhook should have announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<WebhookFallback>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookProvider {
    #[serde(rename = "github")]
    Github,
    #[serde(rename = "gitlab")]
    Gitlab,
    #[serde(rename = "bitbucket")]
    Bitbucket,
    #[serde(rename = "generic-hmac")]
    GenericHmac,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryWebhookSpec {
    /// How the registry calls: a Flux Receiver type that can take registry events.
    pub provider: RegistryProvider,
    /// Secret in the profile's namespace with the key "token" (what the Receiver checks: the
    /// Authorization header for harbor, the HMAC key for generic-hmac, github and nexus).
    pub secret_ref: SecretRef,
    /// Public URL of notification-controller's receiver endpoint; fluxtune reports the full hook URL.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#]+(/[^?#]*)?$')").message("must be an http:// or https:// URL without query or fragment"))]
    pub base_url: Option<String>,
    /// What fluxtune does when a poll finds a change this webhook should have announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<WebhookFallback>,
}

/// While webhooks are missed, the source polls (or the registry is scanned) at `interval` instead
/// of the backstop, until a change arrives by webhook again.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFallback {
    /// Default true. False keeps the backstop interval: a missed webhook is only reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Default 1m, the Poll class's interval. Never lengthens a shorter configured interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<FluxDuration>,
}

/// notification-controller's Receiver types that a registry (or a CI step after a push) can call.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryProvider {
    /// Harbor; also any registry that can send a static Authorization header (CNCF distribution).
    #[serde(rename = "harbor")]
    Harbor,
    #[serde(rename = "dockerhub")]
    Dockerhub,
    #[serde(rename = "quay")]
    Quay,
    /// Google Artifact/Container Registry through Pub/Sub push.
    #[serde(rename = "gcr")]
    Gcr,
    #[serde(rename = "acr")]
    Acr,
    #[serde(rename = "nexus")]
    Nexus,
    /// GHCR: a repository or organization webhook on "package" events.
    #[serde(rename = "github")]
    Github,
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    /// No authentication but the unguessable path.
    #[serde(rename = "generic")]
    Generic,
}

impl RegistryProvider {
    /// The Receiver type and the events it filters on (only github filters).
    pub fn receiver_type_and_events(self) -> (&'static str, &'static [&'static str]) {
        match self {
            RegistryProvider::Harbor => ("harbor", &[]),
            RegistryProvider::Dockerhub => ("dockerhub", &[]),
            RegistryProvider::Quay => ("quay", &[]),
            RegistryProvider::Gcr => ("gcr", &[]),
            RegistryProvider::Acr => ("acr", &[]),
            RegistryProvider::Nexus => ("nexus", &[]),
            RegistryProvider::Github => ("github", &["ping", "package"]),
            RegistryProvider::GenericHmac => ("generic-hmac", &[]),
            RegistryProvider::Generic => ("generic", &[]),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Short name, unique in the list; part of the generated object names.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    pub name: String,
    /// Image repository without tag or digest, e.g. ghcr.io/acme/app.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$')").message("must be an image repository without scheme, tag or digest, e.g. ghcr.io/acme/app"))]
    pub repository: String,
    /// How to pick the latest tag: exactly one of semver, alphabetical or numerical.
    pub policy: ImagePolicyChoice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_tags: Option<TagFilter>,
    /// Secret with registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Use plain HTTP for this registry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.semver), has(self.alphabetical), has(self.numerical)].filter(x, x).size() == 1").message("exactly one of semver, alphabetical or numerical must be set"))]
pub struct ImagePolicyChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<SemverPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabetical: Option<OrderPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical: Option<OrderPolicy>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SemverPolicy {
    /// A semver range, e.g. ">=1.0.0".
    #[schemars(length(min = 1, max = 256))]
    pub range: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OrderPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<SortOrder>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    #[serde(rename = "asc")]
    Asc,
    #[serde(rename = "desc")]
    Desc,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TagFilter {
    /// Regular expression the tag must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: Option<String>,
    /// Capture group to compare, e.g. "$ts".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub extract: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateSpec {
    /// Commit author of image updates.
    pub author: CommitAuthor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub message_template: Option<String>,
    /// Branch to push to. Default: the checked-out branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub push_branch: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CommitAuthor {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(min = 3, max = 256))]
    #[x_kube(validation = Rule::new("self.matches('^[^@\\\\s]+@[^@\\\\s]+$')").message("must be an e-mail address"))]
    pub email: String,
}

/// Flux duration strings, e.g. 30s, 5m, 1h.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Intervals {
    /// GitRepository interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FluxDuration>,
    /// Kustomization interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<FluxDuration>,
    /// ImageRepository interval (registry scans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_scan: Option<FluxDuration>,
    /// ImageUpdateAutomation interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_update: Option<FluxDuration>,
}

/// A Flux duration: one or more number+unit pairs, units ms, s, m or h.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$')", "message": "must be a Flux duration such as 30s, 5m or 1h (units ms, s, m, h)"},
    // Flux reads intervals with Go's time.ParseDuration, which refuses anything over 2562047h: a
    // longer one passes Flux's own CRD pattern, then no controller can decode the object.
    {"rule": "!self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') || self.matches('^(([0-9]{1,5}(\\\\.[0-9]+)?h)|([0-9]{1,7}(\\\\.[0-9]+)?m)|([0-9]{1,9}(\\\\.[0-9]+)?s)|([0-9]{1,12}(\\\\.[0-9]+)?ms)){1,4}$')", "message": "is longer than Flux reads (Go's durations end at 2562047h): at most 4 parts of at most 5 digits of hours, 7 of minutes, 9 of seconds or 12 of milliseconds"},
]))]
pub struct FluxDuration(#[schemars(length(min = 2, max = 32))] pub String);

impl FluxDuration {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplySpec {
    /// Delete objects removed from Git. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Wait for applied objects to become ready. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    /// Apply timeout. Default 3m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<FluxDuration>,
    /// Retry interval after a failed apply. Default 2m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<FluxDuration>,
    /// Orphan (default) keeps the workloads when the profile is deleted; Delete removes them;
    /// MirrorPrune removes them when prune is true; WaitForTermination removes them and waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// The ServiceAccount kustomize-controller impersonates to apply the cluster's folder (in the
    /// profile's namespace): how a tenant's profile is confined to what that account may do.
    /// Default: the operator's --default-service-account, else kustomize-controller's own rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"))]
    pub service_account_name: Option<String>,
    /// Namespace for every applied object that has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self == '' || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("must be a DNS-1123 label (a namespace name)"))]
    pub target_namespace: Option<String>,
}

/// What deleting the profile, and so its Kustomization, does to what the Kustomization applied
/// (Flux's Kustomization spec.deletionPolicy). Default Orphan: an accidental deletion, such as a
/// commit that removes the profile's file, leaves the cluster's workloads running.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete the applied objects when `prune` is true (Flux's own default).
    MirrorPrune,
    /// Delete the applied objects.
    Delete,
    /// Delete the applied objects and wait until they are gone.
    WaitForTermination,
    /// Leave the applied objects running (fluxtune's default).
    #[default]
    Orphan,
}

impl DeletionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::MirrorPrune => "MirrorPrune",
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::WaitForTermination => "WaitForTermination",
            DeletionPolicy::Orphan => "Orphan",
        }
    }
}

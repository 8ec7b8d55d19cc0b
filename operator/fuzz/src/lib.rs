//! What the fuzz targets assert, shared by the three of them (docs/fuzzing.md):
//!
//! - [`check_document`]: one document through the validator. Refused: every error names a place
//!   in the document. Accepted: [`check_accepted`].
//! - [`check_accepted`]: the profile renders the same twice, to objects that the Flux CRDs'
//!   OpenAPI schemas and CEL rules accept (checked offline with the same [`CrdSchema`] that
//!   validates FluxProfiles), with valid names and labels, references that resolve, and ignore
//!   rules and sparse checkout that keep exactly the folders the profile asks for; and the typed
//!   profile, written back, is accepted again unchanged.
//! - [`check_cli`]: `fluxtune render` over files: stdout is YAML that reads back as exactly the
//!   rendered objects; an error names the file, the document and the field.
//!
//! A failed check panics, which libFuzzer reports as a crash with its input.

pub mod generate;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::LazyLock,
};

use fluxtune::{
    api::FluxProfile,
    cli,
    flux::{FluxKind, FluxObject, GitRepository},
    render::{
        self, Capabilities,
        tuning::Missed,
        validate::{CrdSchema, FieldError, InputError, Validator},
    },
};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde_json::Value;

pub static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::new);

/// Directories holding the pinned Flux CRDs (`config/crd/bases` of each controller module),
/// separated like PATH; e2e/fuzz-check.sh sets it from e2e/tools/flux/go.mod.
pub const FLUX_CRDS_ENV: &str = "FLUXTUNE_FLUX_CRDS";

static FLUX_SCHEMAS: LazyLock<BTreeMap<FluxKind, CrdSchema>> = LazyLock::new(load_flux_schemas);

/// Loads the schemas at start, so that a missing CRD fails at once rather than on the first
/// accepted profile. Every target calls it.
pub fn init() {
    LazyLock::force(&VALIDATOR);
    LazyLock::force(&FLUX_SCHEMAS);
}

fn load_flux_schemas() -> BTreeMap<FluxKind, CrdSchema> {
    let dirs = std::env::var_os(FLUX_CRDS_ENV).unwrap_or_else(|| {
        panic!(
            "{FLUX_CRDS_ENV} is not set: it lists the directories of the pinned Flux CRDs \
             (run the targets through e2e/fuzz-check.sh, which sets it)"
        )
    });
    let mut schemas = BTreeMap::new();
    for dir in std::env::split_paths(&dirs) {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{FLUX_CRDS_ENV}: {}: {e}", dir.display()));
        for path in entries.map(|e| e.unwrap().path()) {
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let crd: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let spec = &crd["spec"];
            let Some(kind) = spec["names"]["kind"].as_str().and_then(FluxKind::from_kind) else {
                continue;
            };
            let ar = kind.api_resource();
            if spec["group"] != ar.group.as_str() {
                continue;
            }
            let version = spec["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == ar.version.as_str())
                .unwrap_or_else(|| panic!("{}: no version {}", path.display(), ar.version));
            let schema = &version["schema"]["openAPIV3Schema"];
            assert!(schema.is_object(), "{}: no schema", path.display());
            schemas.insert(kind, CrdSchema::new(schema));
        }
    }
    for kind in FluxKind::ALL {
        assert!(
            schemas.contains_key(&kind),
            "{FLUX_CRDS_ENV}: no CRD for {} in {}",
            kind.api_resource().api_version,
            dirs.to_string_lossy()
        );
    }
    schemas
}

/// One document through the validator; the profile when it was accepted.
pub fn check_document(doc: &Value) -> Result<FluxProfile, Vec<FieldError>> {
    let result = VALIDATOR.validate(doc);
    match &result {
        Ok(profile) => check_accepted(profile),
        Err(errors) => check_refused(doc, errors),
    }
    result
}

/// Every error names a field of the document: a required one that is missing, or one that is
/// there, or whose parent is (a rule about a missing field). Rules on the whole object name the
/// field in the message.
pub fn check_refused(doc: &Value, errors: &[FieldError]) {
    assert!(!errors.is_empty(), "refused without an error");
    for e in errors {
        assert!(
            !e.message.trim().is_empty(),
            "an error without a message: {e:?}"
        );
        if e.field.is_empty() {
            // A rule on the whole object (one that compares metadata.name with a spec field)
            // names the field it is about at the start of its message, and that field is there.
            let named = e
                .message
                .split_once(": ")
                .and_then(|(field, _)| parse_field(field))
                .and_then(|path| resolve(doc, &path).cloned());
            assert!(
                named.is_some(),
                "an error that names no field: {e:?}\ndocument: {doc}"
            );
            continue;
        }
        if e.message == "unknown field" {
            // The key is the user's, any string: it was found in the document by construction.
            continue;
        }
        let path = parse_field(&e.field)
            .unwrap_or_else(|| panic!("not a field path: {:?} ({e})\ndocument: {doc}", e.field));
        let found = resolve(doc, &path).filter(|v| !v.is_null() && *v != "");
        if e.message == "Required value" {
            assert!(
                found.is_none(),
                "a field that is there is required: {e}\ndocument: {doc}"
            );
        } else {
            let parent = &path[..path.len() - 1];
            assert!(
                found.is_some() || resolve(doc, parent).is_some(),
                "the error names a field the document does not have: {e}\ndocument: {doc}"
            );
        }
    }
}

#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `spec.images[0].name` -> [spec, images, 0, name], the way the validator writes fields.
fn parse_field(field: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if key.is_empty() {
            return None;
        }
        out.push(Segment::Key(key.to_string()));
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']')?;
            out.push(Segment::Index(index.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
            if !after.is_empty() && !after.starts_with('[') {
                return None;
            }
        }
    }
    Some(out)
}

fn resolve<'a>(doc: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, s| match s {
        Segment::Key(k) => v.get(k),
        Segment::Index(i) => v.get(i),
    })
}

/// Which part of a document an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// apiVersion, kind and anything else at the top level.
    Root,
    Metadata,
    Spec,
}

pub fn part_of(doc: &Value, e: &FieldError) -> Part {
    // A top-level key is any string, "spec.x" too.
    if e.message == "unknown field" && doc.get(&e.field).is_some() {
        return Part::Root;
    }
    let first = e.field.split(['.', '[']).next().unwrap_or_default();
    match first {
        "" if e.message.starts_with("metadata.") => Part::Metadata,
        "metadata" => Part::Metadata,
        "spec" => Part::Spec,
        _ => Part::Root,
    }
}

pub fn profile_json(profile: &FluxProfile) -> String {
    serde_json::to_string(profile).unwrap()
}

/// A DNS-1123 subdomain of at most 63 characters: what every object name must be, and what a
/// name used as a label value and in Flux references must fit in.
static DNS_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").unwrap()
});
static LABEL_VALUE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").unwrap());

pub fn check_accepted(profile: &FluxProfile) {
    // Without and with sparse checkout; with every webhook answered, and with both missed (their
    // sources then poll at the fallback interval).
    for (caps, missed) in [
        (Capabilities::default(), Missed::default()),
        (
            Capabilities {
                sparse_checkout: false,
            },
            Missed::default(),
        ),
        (
            Capabilities::default(),
            Missed {
                git: true,
                registry: true,
            },
        ),
    ] {
        let rendered = render::render_missed(profile, &caps, missed);
        assert!(
            rendered == render::render_missed(profile, &caps, missed),
            "render is not deterministic\nprofile: {}",
            profile_json(profile)
        );
        check_objects(profile, &rendered.objects, &caps);
    }
    // What the API server stores is read back as the same profile.
    let written = serde_json::to_value(profile).unwrap();
    match VALIDATOR.validate(&written) {
        Ok(again) => assert!(
            &again == profile,
            "the profile reads back differently\nfirst: {}\nagain: {}",
            profile_json(profile),
            profile_json(&again)
        ),
        Err(e) => {
            panic!("the accepted profile, written back, is refused: {e:?}\nprofile: {written}")
        }
    }
}

fn check_objects(profile: &FluxProfile, objects: &[FluxObject], caps: &Capabilities) {
    let context = || format!("profile: {}", profile_json(profile));
    let mut keys = Vec::new();
    for object in objects {
        let (kind, name) = (object.kind(), object.name());
        let doc = serde_json::to_value(object).unwrap();
        let ar = kind.api_resource();
        assert_eq!(doc["apiVersion"], ar.api_version.as_str());
        assert_eq!(doc["kind"], ar.kind.as_str());
        let errors = FLUX_SCHEMAS[&kind].errors(&doc);
        assert!(
            errors.is_empty(),
            "the {} CRD refuses {kind:?} {name}: {errors:?}\nobject: {doc}\n{}",
            ar.api_version,
            context()
        );
        assert!(
            name.len() <= 63 && DNS_NAME.is_match(&name),
            "{kind:?} {name:?}: not a DNS-1123 name of at most 63 characters\n{}",
            context()
        );
        for key in ["interval", "timeout", "retryInterval"] {
            if let Some(d) = doc["spec"][key].as_str() {
                assert!(
                    go_seconds(d) <= GO_MAX_SECONDS,
                    "{kind:?} {name}: spec.{key} {d:?} is longer than Go (and so Flux) reads\n{}",
                    context()
                );
            }
        }
        let meta = object.meta();
        assert_eq!(meta.namespace, profile.metadata.namespace);
        for (key, value) in meta.labels.iter().flatten() {
            assert!(
                value.len() <= 63 && LABEL_VALUE.is_match(value),
                "{kind:?} {name}: label {key}={value:?} is not a valid label value\n{}",
                context()
            );
        }
        assert_eq!(
            meta.owner_references.is_some(),
            profile.metadata.uid.is_some(),
            "{kind:?} {name}: an owner reference exactly when the profile has a uid"
        );
        keys.push((kind, name));
    }
    // Apply order is by kind; within a kind by name, but Kustomizations come after those they
    // depend on (spec.kustomizations), so only the kinds' order is checked here.
    let mut sorted = keys.clone();
    sorted.sort_by_key(|(kind, _)| *kind);
    assert_eq!(keys, sorted, "objects out of apply order\n{}", context());
    let unique: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "two objects share a kind and name\n{}",
        context()
    );
    for object in objects {
        for dep in object.depends_on() {
            assert!(
                unique.contains(&dep),
                "{:?} {} refers to {dep:?}, which is not rendered\n{}",
                object.kind(),
                object.name(),
                context()
            );
        }
    }
    let git = objects
        .iter()
        .find_map(|o| match o {
            FluxObject::GitRepository(g) => Some(g),
            _ => None,
        })
        .expect("a GitRepository is rendered");
    check_folders(profile, git, caps);
}

/// Go's time.ParseDuration, which Flux's controllers decode intervals with, refuses anything
/// longer: 2562047h47m16.854775807s.
const GO_MAX_SECONDS: f64 = 9_223_372_036.854_775;

/// A Flux duration in seconds, read independently of the renderer's own parser.
fn go_seconds(d: &str) -> f64 {
    static PART: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)").unwrap());
    PART.captures_iter(d)
        .map(|c| {
            let n: f64 = c[1].parse().unwrap();
            n * match &c[2] {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                _ => 3600.0,
            }
        })
        .sum()
}

/// The folders the profile asks for: its own (or, with spec.kustomizations, each entry's path
/// and the folders of its components) and the shared ones.
fn requested_folders(profile: &FluxProfile) -> Vec<String> {
    let cluster = &profile.spec.cluster;
    let applied: Vec<String> = if profile.spec.kustomizations.is_empty() {
        vec![
            cluster
                .path
                .as_ref()
                .map_or(cluster.name.clone(), |p| p.0.clone()),
        ]
    } else {
        profile
            .spec
            .kustomizations
            .iter()
            .flat_map(|k| {
                std::iter::once(k.path.0.clone())
                    .chain(k.components.iter().filter_map(|c| c.folder(&k.path.0)))
            })
            .collect()
    };
    applied
        .into_iter()
        .chain(cluster.shared_paths.iter().map(|p| p.0.clone()))
        .collect()
}

/// The GitRepository's ignore rules and its sparse checkout keep exactly the files below the
/// requested folders: asked of paths around every folder (the folder, a file in it, below it,
/// its ancestors, siblings that share its name as a prefix). The file names match none of
/// Flux's default exclusions, which drop files inside kept folders on purpose.
pub fn check_folders(profile: &FluxProfile, git: &GitRepository, caps: &Capabilities) {
    let requested = requested_folders(profile);
    let rules = git
        .spec
        .ignore
        .as_deref()
        .expect("the GitRepository has ignore rules");
    let matcher = gitignore(rules);
    let sparse = &git.spec.sparse_checkout;
    if !caps.sparse_checkout {
        assert!(
            sparse.is_empty(),
            "sparseCheckout rendered without the capability"
        );
    }
    let mut dirs = BTreeSet::new();
    for folder in &requested {
        let segments: Vec<&str> = folder.split('/').collect();
        for n in 1..=segments.len() {
            let dir = segments[..n].join("/");
            let parent = segments[..n - 1].join("/");
            let sibling = |name: String| {
                if parent.is_empty() {
                    name
                } else {
                    format!("{parent}/{name}")
                }
            };
            dirs.insert(sibling(format!("{}0", segments[n - 1])));
            dirs.insert(sibling(format!("{}-canary", segments[n - 1])));
            dirs.insert(sibling("other".into()));
            dirs.insert(dir);
        }
        dirs.insert(format!("{folder}/apps/deep"));
    }
    for dir in &dirs {
        let file = format!("{dir}/kustomization.yaml");
        let wanted = requested.iter().any(|f| file.starts_with(&format!("{f}/")));
        let kept = survives(&matcher, &file);
        let checked_out = sparse.iter().any(|s| file.starts_with(s.as_str()));
        assert!(
            kept == wanted && (!caps.sparse_checkout || checked_out == wanted),
            "{file}: wanted {wanted}, the ignore rules keep it: {kept}, the sparse checkout \
             {sparse:?} has it: {checked_out}\nrequested folders: {requested:?}\nignore rules:\n\
             {rules}\nprofile: {}",
            profile_json(profile)
        );
    }
}

fn gitignore(rules: &str) -> Gitignore {
    let mut builder = GitignoreBuilder::new("/");
    for line in rules.lines() {
        builder.add_line(None, line).unwrap();
    }
    builder.build().unwrap()
}

/// Whether `file` is in the artifact: git's (and source-controller's) walk never enters an
/// excluded directory, so a file below one is gone whatever a later rule says about it.
fn survives(matcher: &Gitignore, file: &str) -> bool {
    let mut at = 0;
    while let Some(i) = file[at..].find('/') {
        let dir = &file[..at + i];
        if matcher.matched(dir, true).is_ignore() {
            return false;
        }
        at += i + 1;
    }
    !matcher.matched(file, false).is_ignore()
}

/// `fluxtune render` over (file name, text) inputs, as the CLI reads them.
pub fn check_cli(inputs: &[(String, String)]) {
    let caps = Capabilities::default();
    let result = cli::render_inputs(&VALIDATOR, inputs, &caps);
    let parsed: Vec<Result<Vec<FluxProfile>, InputError>> = inputs
        .iter()
        .map(|(_, text)| VALIDATOR.profiles_from_yaml(text))
        .collect();
    match result {
        Ok((stdout, stderr)) => {
            let profiles: Vec<FluxProfile> = parsed
                .into_iter()
                .flat_map(|p| p.expect("render succeeded with an invalid input"))
                .collect();
            assert!(!profiles.is_empty(), "rendered without a profile");
            let want: Vec<Value> = profiles
                .iter()
                .flat_map(|p| render::render(p, &caps).objects)
                .map(|o| serde_json::to_value(o).unwrap())
                .collect();
            let got: Vec<Value> = serde_saphyr::from_multiple(&stdout)
                .unwrap_or_else(|e| panic!("stdout is not YAML: {e}\n{stdout}"));
            assert!(
                got == want,
                "stdout reads back as other objects\nstdout:\n{stdout}\nwant: {}",
                serde_json::to_string(&want).unwrap()
            );
            assert_eq!(
                stderr.lines().count(),
                profiles.len(),
                "one budget line per profile:\n{stderr}"
            );
        }
        Err(message) => {
            let mut any = false;
            for ((file, text), parsed) in inputs.iter().zip(parsed) {
                match parsed {
                    Ok(_) => {}
                    Err(InputError::Invalid { index, errors }) => {
                        any = true;
                        let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
                        let doc = docs.iter().filter(|d| !d.is_null()).nth(index - 1).unwrap();
                        check_refused(doc, &errors);
                        for e in &errors {
                            let line = format!("{file}: document {index}: {e}");
                            assert!(message.contains(&line), "{line:?} not in\n{message}");
                        }
                    }
                    Err(e @ InputError::Yaml(_)) => {
                        any = true;
                        let line = format!("{file}: {e}");
                        assert!(message.contains(&line), "{line:?} not in\n{message}");
                    }
                }
            }
            if !any {
                assert_eq!(message, "no FluxProfile found in the input");
            }
        }
    }
}

/// The invalid-input table of the operator's tests.
#[cfg(test)]
#[path = "../../tests/cases/mod.rs"]
#[allow(dead_code)]
mod cases;

/// The committed seed corpus: every sample and every case of the invalid-input table, for each
/// target in the form it reads. `seeds_are_current` fails when they drift;
/// `FLUXTUNE_FUZZ_SEEDS=write cargo test` (in operator/fuzz) rewrites them.
#[cfg(test)]
mod seeds {
    use std::{collections::BTreeMap, path::Path};

    use serde_json::Value;

    use crate::cases;

    const TARGETS: [&str; 3] = ["profile_bytes", "profile_structured", "render_cli"];

    fn slug(name: &str) -> String {
        let s: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        s.split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// target -> file name -> contents.
    fn wanted() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut samples: Vec<(String, String)> = std::fs::read_dir(root.join("samples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        samples.sort();
        let cases: Vec<(String, Value)> = cases::cases()
            .into_iter()
            .map(|c| (slug(c.name), c.doc))
            .chain([("valid-base".to_string(), cases::valid())])
            .collect();
        let mut out: BTreeMap<&str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        for (name, text) in &samples {
            let file = format!("seed-sample-{name}.yaml");
            out.entry("profile_bytes")
                .or_default()
                .insert(file.clone(), text.clone().into_bytes());
            out.entry("render_cli")
                .or_default()
                .insert(file.clone(), text.clone().into_bytes());
            // The structured target reads a document, a NUL, then its changes (none here).
            let mut seed = text.clone().into_bytes();
            seed.push(0);
            out.entry("profile_structured")
                .or_default()
                .insert(file, seed);
        }
        // All samples as one multi-document file, and as two files.
        let all: Vec<&str> = samples.iter().map(|(_, t)| t.as_str()).collect();
        out.entry("render_cli").or_default().insert(
            "seed-samples-multi-document.yaml".into(),
            all.join("\n---\n").into_bytes(),
        );
        out.entry("render_cli").or_default().insert(
            "seed-samples-two-files.yaml".into(),
            format!("{}\0{}", all[0], all[all.len() - 1]).into_bytes(),
        );
        for (name, doc) in &cases {
            let json = serde_json::to_string_pretty(doc).unwrap();
            let yaml = serde_saphyr::to_string(doc).unwrap();
            out.entry("profile_bytes")
                .or_default()
                .insert(format!("seed-case-{name}.json"), json.clone().into_bytes());
            let mut seed = json.into_bytes();
            seed.push(0);
            out.entry("profile_structured")
                .or_default()
                .insert(format!("seed-case-{name}.json"), seed);
            out.entry("render_cli")
                .or_default()
                .insert(format!("seed-case-{name}.yaml"), yaml.into_bytes());
        }
        out
    }

    #[test]
    fn seeds_are_current() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let write = std::env::var("FLUXTUNE_FUZZ_SEEDS").is_ok_and(|v| v == "write");
        let wanted = wanted();
        assert_eq!(wanted.keys().copied().collect::<Vec<_>>(), TARGETS);
        let mut stale = Vec::new();
        for (target, files) in &wanted {
            let dir = corpus.join(target);
            if write {
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
            }
            let found: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .map(|e| e.unwrap().path())
                .map(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read(&p).unwrap())
                })
                .collect();
            for (name, contents) in files {
                if write {
                    std::fs::write(dir.join(name), contents).unwrap();
                } else if found.get(name) != Some(contents) {
                    stale.push(format!("{target}/{name}"));
                }
            }
            if !write {
                stale.extend(
                    found
                        .keys()
                        .filter(|n| !files.contains_key(*n))
                        .map(|n| format!("{target}/{n} (no longer a seed)")),
                );
            }
        }
        assert!(
            stale.is_empty(),
            "the seed corpus is stale (FLUXTUNE_FUZZ_SEEDS=write cargo test, in operator/fuzz): {}",
            stale.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_the_way_the_validator_writes_them() {
        use Segment::*;
        assert_eq!(
            parse_field("spec.images[0].name"),
            Some(vec![
                Key("spec".into()),
                Key("images".into()),
                Index(0),
                Key("name".into())
            ])
        );
        assert_eq!(parse_field("spec..x"), None);
        assert_eq!(parse_field("spec[x]"), None);
    }

    /// The in-process matcher agrees with git's own walk (`ls-files --others`, which never
    /// enters an excluded directory) on the rules fluxtune renders, including a kept folder
    /// named like one of Flux's default exclusions.
    #[test]
    fn the_matcher_walks_like_git() {
        use std::process::Command;
        let files = [
            "README.md",
            "clusters/prod/eu-1/apps/app.yaml",
            "clusters/prod/eu-10/kustomization.yaml",
            "clusters/prod/eu-1-canary/kustomization.yaml",
            "clusters/prod/common/policies.yaml",
            "clusters/prod/top.yaml",
            "clusters/top.yaml",
            "library/base/kustomization.yaml",
            "library/logo.png",
            "library/.github/CODEOWNERS",
            "libraryx/kustomization.yaml",
            "tools/.github/kustomization.yaml",
            "tools/x.zip/kustomization.yaml",
        ];
        let rules = fluxtune::render::ignore::ignore_rules([
            "clusters/prod/eu-1",
            "library",
            "clusters/prod/common",
            "tools/.github",
            "tools/x.zip",
        ]);
        let dir = std::env::temp_dir().join(format!("fluxtune-fuzz-git-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in files {
            let path = dir.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        git(&["init", "-q"]);
        std::fs::write(dir.join(".git/info/exclude"), &rules).unwrap();
        let by_git: BTreeSet<String> = git(&["ls-files", "--others", "--exclude-standard"])
            .lines()
            .map(str::to_string)
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        let m = gitignore(&rules);
        let by_matcher: BTreeSet<String> = files
            .iter()
            .filter(|f| survives(&m, f))
            .map(|f| f.to_string())
            .collect();
        assert_eq!(by_matcher, by_git, "rules:\n{rules}");
        assert!(by_git.contains("clusters/prod/eu-1/apps/app.yaml"));
        assert!(by_git.contains("tools/.github/kustomization.yaml"));
        assert!(by_git.contains("tools/x.zip/kustomization.yaml"));
        assert!(!by_git.contains("library/.github/CODEOWNERS"));
    }
}

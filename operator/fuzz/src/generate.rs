//! Structured FluxProfile documents from libFuzzer's bytes. Every field draws mostly from a small
//! vocabulary of values that are valid, nearly valid or meaningful to Git, Flux or YAML, and
//! sometimes from any string or a value of another JSON type, so that a good share of the
//! documents pass validation and reach the renderer while the rest probe every rule.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Value, json};

/// The three parts of a document, generated independently, so that a target can tell which part
/// an error must be about.
pub struct Parts {
    /// Top-level fields other than metadata and spec (apiVersion, kind, and sometimes more).
    pub root: Map<String, Value>,
    pub metadata: Value,
    pub spec: Value,
}

impl Parts {
    pub fn document(&self) -> Value {
        let mut doc = self.root.clone();
        doc.insert("metadata".into(), self.metadata.clone());
        doc.insert("spec".into(), self.spec.clone());
        Value::Object(doc)
    }

    /// This document with its other parts replaced by valid ones.
    pub fn only(&self, part: crate::Part) -> Value {
        let base = Parts {
            root: good_root(),
            metadata: json!({"name": "fz", "namespace": "flux-system"}),
            spec: json!({"cluster": {"name": "fz"}, "source": {"url": "https://git.example.com/r.git"}}),
        };
        let mut doc = base.document();
        match part {
            crate::Part::Root => {
                let mut root = self.root.clone();
                root.insert("metadata".into(), base.metadata);
                root.insert("spec".into(), base.spec);
                doc = Value::Object(root);
            }
            crate::Part::Metadata => doc["metadata"] = self.metadata.clone(),
            crate::Part::Spec => doc["spec"] = self.spec.clone(),
        }
        doc
    }
}

fn good_root() -> Map<String, Value> {
    let mut root = Map::new();
    root.insert("apiVersion".into(), json!("fluxtune.dev/v1alpha1"));
    root.insert("kind".into(), json!("FluxProfile"));
    root
}

/// The spec's top-level fields, each generated on its own by [`spec_field`].
const SPEC_FIELDS: &[&str] = &[
    "cluster",
    "source",
    "pollingClass",
    "webhook",
    "registryWebhook",
    "images",
    "imageUpdate",
    "intervals",
    "apply",
    "suspend",
];

/// A seed document (a sample, an invalid case) changed in a few places: the part of `data`
/// before its first NUL byte is the document (YAML or JSON), the rest picks the changes. Without
/// a NUL, or when the document is not an object, every part is generated.
pub fn from_input(data: &[u8]) -> Result<Parts> {
    if let Some(nul) = data.iter().position(|&b| b == 0)
        && let Ok(text) = std::str::from_utf8(&data[..nul])
        && let Ok(Value::Object(mut base)) = serde_saphyr::from_str::<Value>(text)
    {
        let mut u = Unstructured::new(&data[nul + 1..]);
        let mut parts = Parts {
            metadata: base.remove("metadata").unwrap_or(Value::Null),
            spec: base.remove("spec").unwrap_or(Value::Null),
            root: base,
        };
        for _ in 0..u.int_in_range(0..=3)? {
            match u.int_in_range(0u8..=7)? {
                0 => parts.metadata = metadata(&mut u)?,
                1 => {
                    let fresh = self::parts(&mut u)?;
                    parts.root = fresh.root;
                }
                _ => {
                    let field = *u.choose(SPEC_FIELDS)?;
                    let value = spec_field(&mut u, field)?;
                    match (&mut parts.spec, value) {
                        (Value::Object(spec), Some(v)) => {
                            spec.insert(field.into(), v);
                        }
                        (Value::Object(spec), None) => {
                            spec.remove(field);
                        }
                        _ => parts.spec = spec(&mut u)?,
                    }
                }
            }
        }
        return Ok(parts);
    }
    parts(&mut Unstructured::new(data))
}

pub fn parts(u: &mut Unstructured<'_>) -> Result<Parts> {
    let mut root = good_root();
    if u.ratio(1, 32)? {
        root.insert("apiVersion".into(), string(u, &["fluxtune.dev/v1", "v1"])?);
    }
    if u.ratio(1, 32)? {
        root.insert("kind".into(), string(u, &["Kustomization", "fluxprofile"])?);
    }
    if u.ratio(1, 32)? {
        root.insert(any_key(u)?, wild(u)?);
    }
    Ok(Parts {
        root,
        metadata: metadata(u)?,
        spec: spec(u)?,
    })
}

const DNS_LABELS: &[&str] = &[
    "cluster1",
    "prod-eu-1",
    "a",
    "x0",
    "edge-3",
    "Cluster1",
    "cluster-",
    "-a",
    "a_b",
    "a.b",
];
const SUBDOMAINS: &[&str] = &[
    "hook",
    "registry",
    "kubeconf-ssh",
    "a.b-c",
    "Hook",
    "a..b",
    "-x",
];
const SEGMENTS: &[&str] = &[
    "library",
    "cluster1",
    "cluster10",
    "clusters",
    "prod",
    "eu-1",
    "common",
    "apps",
    "A_b-9",
    "v1.2",
    ".hidden",
    "_",
    "-",
    "..",
    ".",
    "",
    "*",
    "!x",
    "#x",
    "a b",
    "\\",
    // Names Git itself gives a meaning.
    ".git",
    ".github",
    ".gitignore",
];
const URLS: &[&str] = &[
    "https://git.example.com/acme/kubeconf.git",
    "ssh://git@git.example.com/acme/kubeconf.git",
    "http://localhost:3000/r.git",
    "git@github.com:acme/kubeconf.git",
    "https://",
    "file:///srv/git",
];
const BASE_URLS: &[&str] = &[
    "https://flux.example.com",
    "http://localhost:9292/prefix",
    "https://x/?q",
    "ftp://x",
];
const DURATIONS: &[&str] = &[
    "1m",
    "30s",
    "1h",
    "10m",
    "1.5h",
    "1h30m",
    "500ms",
    "0s",
    "1d",
    "300",
    "m",
    "1m ",
    "1.m",
    "99999999999999999999h",
    "0.000001ms",
];
const GIT_PROVIDERS: &[&str] = &["github", "gitlab", "bitbucket", "generic-hmac", "gitea"];
const REGISTRY_PROVIDERS: &[&str] = &[
    "harbor",
    "dockerhub",
    "quay",
    "gcr",
    "acr",
    "nexus",
    "github",
    "generic-hmac",
    "generic",
    "artifactory",
];
const REPOSITORIES: &[&str] = &[
    "ghcr.io/acme/app",
    "localhost:5000/app",
    "nginx",
    "registry.example.com/a/b-c",
    "ghcr.io/acme/app:1.0",
    "GHCR.io/a",
];
const FREE_TEXT: &[&str] = &[
    "main",
    "v1.0.0",
    ">=1.0.0",
    "*",
    "yes",
    "null",
    "~",
    "0x10",
    "1e3",
    "- a",
    "a: b",
    "#x",
    "'",
    "\"",
    "multi\nline",
    " lead",
    "trail ",
    "\t",
    "{{range .Changed.Changes}}{{.NewValue}}{{end}}",
    "^v(?P<ts>[0-9]+)$",
    "$ts",
];

/// A string from `pool`, nearly from it, anything, or a value of another type.
fn string(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<Value> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => Value::String(u.arbitrary()?),
        1 => wild(u)?,
        2 => Value::String(format!("{}{}", u.choose(pool)?, u.arbitrary::<char>()?)),
        3 => Value::String(u.choose(FREE_TEXT)?.to_string()),
        _ => Value::String(u.choose(pool)?.to_string()),
    })
}

/// A value of any JSON type, small.
fn wild(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0u8..=6)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => json!(u.arbitrary::<f64>()?),
        4 => json!([u.arbitrary::<String>()?]),
        5 => json!({ any_key(u)?: u.arbitrary::<String>()? }),
        _ => Value::String(u.arbitrary()?),
    })
}

fn any_key(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.arbitrary()?,
        _ => u
            .choose(&["pollingclass", "status", "extra", "spec", "name"])?
            .to_string(),
    })
}

fn boolean(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(if u.ratio(1, 16)? {
        wild(u)?
    } else {
        Value::Bool(u.arbitrary()?)
    })
}

/// An object from named optional fields; sometimes not an object at all, or with an extra key.
fn object(u: &mut Unstructured<'_>, fields: Vec<(&str, Option<Value>)>) -> Result<Value> {
    if u.ratio(1, 64)? {
        return wild(u);
    }
    let mut map: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect();
    if u.ratio(1, 64)? {
        map.insert(any_key(u)?, wild(u)?);
    }
    Ok(Value::Object(map))
}

fn maybe<T>(
    u: &mut Unstructured<'_>,
    f: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    if u.arbitrary()? {
        Ok(Some(f(u)?))
    } else {
        Ok(None)
    }
}

/// Mostly 0..=`usual` items; sometimes past every limit.
fn list(
    u: &mut Unstructured<'_>,
    usual: u32,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Result<Value>,
) -> Result<Value> {
    let n = if u.ratio(1, 64)? {
        33
    } else {
        u.int_in_range(0..=usual)?
    };
    let mut items = Vec::new();
    for _ in 0..n {
        items.push(item(u)?);
    }
    Ok(Value::Array(items))
}

fn metadata(u: &mut Unstructured<'_>) -> Result<Value> {
    let name = if u.ratio(1, 16)? {
        Value::String("p".repeat(u.int_in_range(62..=64)?))
    } else {
        string(
            u,
            &[
                "cluster1",
                "prod-eu-1",
                "a.b",
                "x",
                "a-b.c-d",
                "",
                "A",
                "a_b",
            ],
        )?
    };
    let namespace = maybe(u, |u| string(u, &["flux-system", "team-a", ""]))?;
    let uid = maybe(u, |u| string(u, &["0f6a3c2e-1d2b-4c1a-9e1f-123456789abc"]))?;
    let labels = maybe(u, |u| {
        let team = string(u, &["platform"])?;
        object(u, vec![("team", Some(team))])
    })?;
    object(
        u,
        vec![
            ("name", Some(name)),
            ("namespace", namespace),
            ("uid", uid),
            ("labels", labels),
        ],
    )
}

fn folder(u: &mut Unstructured<'_>) -> Result<Value> {
    if u.ratio(1, 32)? {
        return string(u, &["cluster1"]);
    }
    let n = u.int_in_range(1..=4)?;
    let mut segments = Vec::new();
    for _ in 0..n {
        segments.push(if u.ratio(1, 4)? {
            // Any name of the characters folders may use.
            let len = u.int_in_range(1..=8)?;
            let mut s = String::new();
            for _ in 0..len {
                s.push(*u.choose(&['a', 'b', 'z', '0', '9', 'A', 'Z', '.', '_', '-'])?);
            }
            s
        } else {
            u.choose(SEGMENTS)?.to_string()
        });
    }
    let mut path = segments.join("/");
    match u.int_in_range(0u8..=31)? {
        0 => path.insert(0, '/'),
        1 => path.push('/'),
        2 => path = path.replacen('/', "//", 1),
        _ => {}
    }
    Ok(Value::String(path))
}

fn duration(u: &mut Unstructured<'_>) -> Result<Value> {
    if u.ratio(1, 8)? {
        // Number+unit pairs of any size.
        let pairs = u.int_in_range(1..=3)?;
        let mut s = String::new();
        for _ in 0..pairs {
            s.push_str(&u.arbitrary::<u64>()?.to_string());
            if u.ratio(1, 4)? {
                s.push('.');
                s.push_str(&u.arbitrary::<u32>()?.to_string());
            }
            s.push_str(u.choose(&["ms", "s", "m", "h"])?);
        }
        return Ok(Value::String(s));
    }
    string(u, DURATIONS)
}

fn secret_ref(u: &mut Unstructured<'_>) -> Result<Value> {
    let name = string(u, SUBDOMAINS)?;
    object(u, vec![("name", Some(name))])
}

fn git_ref(u: &mut Unstructured<'_>) -> Result<Value> {
    // Usually exactly one of them; sometimes none or several.
    let which: u8 = u.int_in_range(0..=19)?;
    let pick = |u: &mut Unstructured<'_>, i: u8, pool: &[&str]| -> Result<Option<Value>> {
        Ok(if which == i || (which >= 16 && u.arbitrary()?) {
            Some(string(u, pool)?)
        } else {
            None
        })
    };
    let branch = pick(u, 0, &["main", "release/v1", "feature/x"])?;
    let tag = pick(u, 1, &["v1.0.0", "latest"])?;
    let semver = pick(u, 2, &[">=1.0.0", "1.x", "*"])?;
    let commit = pick(
        u,
        3,
        &[
            "0123abc",
            "0123456789abcdef0123456789abcdef01234567",
            "ABCDEF0",
            "012345",
        ],
    )?;
    let branch = if (4..16).contains(&which) {
        Some(string(u, &["main"])?)
    } else {
        branch
    };
    object(
        u,
        vec![
            ("branch", branch),
            ("tag", tag),
            ("semver", semver),
            ("commit", commit),
        ],
    )
}

fn image(u: &mut Unstructured<'_>) -> Result<Value> {
    let name = string(u, &["app", "web", "api-1", "a", "My_app", "x-"])?;
    let repository = string(u, REPOSITORIES)?;
    let order = |u: &mut Unstructured<'_>| -> Result<Value> {
        let order = maybe(u, |u| string(u, &["asc", "desc", "up"]))?;
        object(u, vec![("order", order)])
    };
    let policy = match u.int_in_range(0u8..=9)? {
        0..=3 => {
            let range = string(u, &[">=1.0.0", "^1.2", "*", ""])?;
            let semver = object(u, vec![("range", Some(range))])?;
            object(u, vec![("semver", Some(semver))])?
        }
        4..=5 => {
            let o = order(u)?;
            object(u, vec![("alphabetical", Some(o))])?
        }
        6..=7 => {
            let o = order(u)?;
            object(u, vec![("numerical", Some(o))])?
        }
        8 => object(u, vec![])?,
        _ => {
            let o = order(u)?;
            let range = string(u, &["*"])?;
            let semver = object(u, vec![("range", Some(range))])?;
            object(u, vec![("semver", Some(semver)), ("numerical", Some(o))])?
        }
    };
    let filter_tags = maybe(u, |u| {
        let pattern = maybe(u, |u| string(u, &["^v(?P<ts>[0-9]+)$", "^main-", ""]))?;
        let extract = maybe(u, |u| string(u, &["$ts", ""]))?;
        object(u, vec![("pattern", pattern), ("extract", extract)])
    })?;
    let secret = maybe(u, secret_ref)?;
    let insecure = maybe(u, boolean)?;
    object(
        u,
        vec![
            ("name", Some(name)),
            ("repository", Some(repository)),
            ("policy", Some(policy)),
            ("filterTags", filter_tags),
            ("secretRef", secret),
            ("insecure", insecure),
        ],
    )
}

fn webhook(u: &mut Unstructured<'_>, providers: &[&str]) -> Result<Value> {
    let provider = string(u, providers)?;
    let secret = secret_ref(u)?;
    let base_url = maybe(u, |u| string(u, BASE_URLS))?;
    let fallback = maybe(u, |u| {
        let enabled = maybe(u, boolean)?;
        let interval = maybe(u, duration)?;
        object(u, vec![("enabled", enabled), ("interval", interval)])
    })?;
    object(
        u,
        vec![
            ("provider", Some(provider)),
            ("secretRef", Some(secret)),
            ("baseURL", base_url),
            ("fallback", fallback),
        ],
    )
}

fn spec(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut fields = Vec::new();
    for field in SPEC_FIELDS {
        fields.push((*field, spec_field(u, field)?));
    }
    object(u, fields)
}

/// One top-level field of the spec, or None to leave it out. cluster and source (required) are
/// always generated.
fn spec_field(u: &mut Unstructured<'_>, field: &str) -> Result<Option<Value>> {
    Ok(match field {
        "cluster" => Some({
            let name = string(u, DNS_LABELS)?;
            let path = maybe(u, folder)?;
            let shared = maybe(u, |u| {
                if u.ratio(1, 32)? {
                    return list(u, 17, folder);
                }
                list(u, 4, folder)
            })?;
            object(
                u,
                vec![
                    ("name", Some(name)),
                    ("path", path),
                    ("sharedPaths", shared),
                ],
            )?
        }),
        "source" => Some({
            let url = string(u, URLS)?;
            let r = maybe(u, git_ref)?;
            let secret = maybe(u, secret_ref)?;
            object(
                u,
                vec![("url", Some(url)), ("ref", r), ("secretRef", secret)],
            )?
        }),
        "pollingClass" => maybe(u, |u| string(u, &["Webhook", "Poll", "Relaxed", "webhook"]))?,
        "webhook" => maybe(u, |u| webhook(u, GIT_PROVIDERS))?,
        "registryWebhook" => {
            if u.ratio(1, 4)? {
                Some(webhook(u, REGISTRY_PROVIDERS)?)
            } else {
                None
            }
        }
        "images" => maybe(u, |u| list(u, 4, image))?,
        "imageUpdate" => maybe(u, |u| {
            let name = string(u, &["bot", "Flux Bot", ""])?;
            let email = string(u, &["bot@example.com", "bot", "a@b", "a b@c", "@x"])?;
            let author = object(u, vec![("name", Some(name)), ("email", Some(email))])?;
            let template = maybe(u, |u| string(u, &["Update images", ""]))?;
            let branch = maybe(u, |u| string(u, &["main", "image-updates", ""]))?;
            object(
                u,
                vec![
                    ("author", Some(author)),
                    ("messageTemplate", template),
                    ("pushBranch", branch),
                ],
            )
        })?,
        "intervals" => maybe(u, |u| {
            let source = maybe(u, duration)?;
            let apply = maybe(u, duration)?;
            let scan = maybe(u, duration)?;
            let update = maybe(u, duration)?;
            object(
                u,
                vec![
                    ("source", source),
                    ("apply", apply),
                    ("imageScan", scan),
                    ("imageUpdate", update),
                ],
            )
        })?,
        "apply" => maybe(u, |u| {
            let prune = maybe(u, boolean)?;
            let wait = maybe(u, boolean)?;
            let timeout = maybe(u, duration)?;
            let retry = maybe(u, duration)?;
            let deletion = maybe(u, |u| {
                string(
                    u,
                    &[
                        "Orphan",
                        "Delete",
                        "MirrorPrune",
                        "WaitForTermination",
                        "orphan",
                    ],
                )
            })?;
            let account = maybe(u, |u| string(u, &["tenant-a", "a.b", "Tenant", ""]))?;
            let target = maybe(u, |u| string(u, &["apps", "", "a.b", "Apps"]))?;
            object(
                u,
                vec![
                    ("prune", prune),
                    ("wait", wait),
                    ("timeout", timeout),
                    ("retryInterval", retry),
                    ("deletionPolicy", deletion),
                    ("serviceAccountName", account),
                    ("targetNamespace", target),
                ],
            )
        })?,
        "suspend" => maybe(u, boolean)?,
        other => unreachable!("no generator for spec.{other}"),
    })
}

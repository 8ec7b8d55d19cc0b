//! Helpers for Flux in the loop, shared by the e2e tests (flux.rs) and the Flux benchmark
//! (benches/flux.rs): the loop's addresses, a monorepo on its Git host, and small readers of Flux
//! objects' fields.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use fluxtune::flux::FluxKind;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{Api, Client, api::DynamicObject};
use serde_json::{Value, json};

use crate::support::{self, Operator, eventually};

pub const TOKEN: &str = "flux-in-the-loop-token";
/// For setup steps (first clone, first scan): a liveness bound only.
pub const SETUP: Duration = Duration::from_secs(60);

/// What `controlplane.sh flux-up DIR` appends to DIR/env.
pub struct Loop {
    pub receiver: String,
    pub git_url: String,
    pub git_root: PathBuf,
    pub registry: String,
    pub crane: PathBuf,
}

impl Loop {
    pub fn from_env() -> Loop {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "the Flux-in-the-loop tests need `e2e/controlplane.sh flux-up DIR` with DIR/env sourced ({name} is not set)"
                )
            })
        };
        Loop {
            receiver: var("FLUXTUNE_RECEIVER_ADDR"),
            git_url: var("FLUXTUNE_GIT_URL"),
            git_root: var("FLUXTUNE_GIT_ROOT").into(),
            registry: var("FLUXTUNE_REGISTRY"),
            crane: var("FLUXTUNE_CRANE").into(),
        }
    }

    pub fn crane(&self, args: &[&str]) {
        run(Command::new(&self.crane).args(args));
    }

    /// Pushes a one-layer image (an empty layer) as REPOSITORY:TAG.
    pub fn push_image(&self, repository: &str, tag: &str) {
        let layer =
            std::env::temp_dir().join(format!("fluxtune-e2e-empty-{}.tar", std::process::id()));
        run(Command::new("tar")
            .arg("cf")
            .arg(&layer)
            .args(["--files-from", "/dev/null"]));
        self.crane(&[
            "append",
            "-f",
            layer.to_str().unwrap(),
            "-t",
            &format!("{repository}:{tag}"),
        ]);
    }
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=e2e", "-c", "user.email=e2e@fluxtune.local"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0"))
}

/// A monorepo (e2e/flux/monorepo.sh) served by the loop's Git host as NAME.git, and its clone.
pub struct Repo {
    pub url: String,
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Repo {
    /// `image` is the repository the Deployments use; their setter markers name ImagePolicies in
    /// `policy_ns`.
    pub fn create(lp: &Loop, name: &str, clusters: u32, image: &str, policy_ns: &str) -> Repo {
        Repo::init(lp, name, |work| {
            run(Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../e2e/flux/monorepo.sh"
                ))
                .arg(work)
                .arg(clusters.to_string())
                .env("MONOREPO_IMAGE", image)
                .env("MONOREPO_POLICY_NS", policy_ns));
        })
    }

    /// A repository NAME.git on the Git host whose first commit on main holds what `fill` writes
    /// into the (empty) clone.
    pub fn init(lp: &Loop, name: &str, fill: impl FnOnce(&Path)) -> Repo {
        let bare = lp.git_root.join(format!("{name}.git"));
        run(Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&bare));
        let work = std::env::temp_dir().join(format!("fluxtune-e2e-repo-{name}"));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        fill(&work);
        let repo = Repo {
            url: format!("{}/{name}.git", lp.git_url),
            bare,
            work,
        };
        git(&repo.work, &["init", "-q", "-b", "main"]);
        git(&repo.work, &["add", "-A"]);
        git(&repo.work, &["commit", "-qm", name]);
        git(&repo.work, &["push", "-q", &repo.url, "main"]);
        repo
    }

    /// Tags the clone's HEAD and pushes the tag.
    pub fn push_tag(&self, tag: &str) {
        git(&self.work, &["tag", tag]);
        git(&self.work, &["push", "-q", &self.url, tag]);
    }

    /// Rewrites FILE in the clone with `edit`, commits and pushes over HTTP (so the Git host's
    /// webhooks fire); returns the new commit.
    pub fn push_change(&self, file: &str, edit: impl FnOnce(String) -> String) -> String {
        let path = self.work.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        git(&self.work, &["commit", "-qam", &format!("change {file}")]);
        git(&self.work, &["push", "-q", &self.url, "main"]);
        self.head()
    }

    /// Adds or replaces FILE in the clone, commits and pushes.
    pub fn push_file(&self, file: &str, content: &str) -> String {
        let path = self.work.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        git(&self.work, &["add", file]);
        git(&self.work, &["commit", "-qm", &format!("add {file}")]);
        git(&self.work, &["push", "-q", &self.url, "main"]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// The Git host POSTs a signed GitHub push event to `url` after every push.
    pub fn add_webhook(&self, url: &str, token: &str) {
        run(Command::new("git").arg("--git-dir").arg(&self.bare).args([
            "config",
            "--add",
            "fluxtune.webhook",
            &format!("{url} {token}"),
        ]));
    }

    /// FILE on the server's main branch (what ImageUpdateAutomation pushed).
    pub fn server_file(&self, file: &str) -> String {
        run(Command::new("git")
            .arg("--git-dir")
            .arg(&self.bare)
            .args(["show", &format!("main:{file}")]))
    }
}

impl Drop for Repo {
    /// The clone goes; the server's repository stays in DIR/flux/git for post-mortems.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

/// One test's corner of the loop: a namespace of its own and a monorepo of `clusters` clusters on
/// the Git host whose Deployments run `image`.
pub struct Fleet {
    pub ns: String,
    /// `REGISTRY/NS/app` with tag 1.0.0 pushed, or a registry nothing scans.
    pub image: String,
    pub repo: Repo,
}

impl Fleet {
    pub async fn new(client: &Client, lp: &Loop, test: &str, clusters: u32, images: bool) -> Fleet {
        let ns = support::namespace(client, test).await;
        let image = if images {
            let image = format!("{}/{ns}/app", lp.registry);
            lp.push_image(&image, "1.0.0");
            image
        } else {
            "registry.example.com/acme/app".to_string()
        };
        let repo = Repo::create(lp, &ns, clusters, &image, &ns);
        Fleet { ns, image, repo }
    }

    /// `fluxtune run` on the namespace, and the FluxProfile `cluster1` for the monorepo's cluster1:
    /// `spec` on top of the source and `apply: {wait: false, targetNamespace: NS}` (no Pod runs
    /// here, so nothing would become healthy). A webhook in `spec` gets its Secret (token
    /// TOKEN) first, and its Receiver's URL is registered with the Git host after.
    pub async fn tune(&self, client: &Client, lp: &Loop, spec: Value) -> Operator {
        let secret = spec
            .pointer("/webhook/secretRef/name")
            .and_then(Value::as_str);
        if let Some(secret) = secret {
            support::webhook_secret(client, &self.ns, secret, TOKEN).await;
        }
        let op = Operator::start(&self.ns, "cluster1");
        op.wait_ready().await;
        let mut full = json!({
            "cluster": {"name": "cluster1"},
            "source": {"url": self.repo.url},
            "apply": {"wait": false, "targetNamespace": self.ns},
        });
        full.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        support::apply_as(client, "e2e-user", &profile(&self.ns, "cluster1", full))
            .await
            .expect("the profile is accepted");
        if secret.is_some() {
            let hook = webhook_url(client, lp, &self.ns, "cluster1").await;
            self.repo.add_webhook(&hook, TOKEN);
        }
        op
    }
}

pub fn profile(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "fluxtune.dev/v1alpha1",
        "kind": "FluxProfile",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    })
}

pub async fn get(client: &Client, ns: &str, kind: FluxKind, name: &str) -> Option<DynamicObject> {
    support::dynamic_api(client, ns, kind)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// A string at JSON pointer `at` of a Flux object (`/status/artifact/revision`, ...).
pub async fn field(
    client: &Client,
    ns: &str,
    kind: FluxKind,
    name: &str,
    at: &str,
) -> Option<String> {
    field_value(client, ns, kind, name, at)
        .await?
        .as_str()
        .map(str::to_string)
}

/// The value at JSON pointer `at` of a Flux object.
pub async fn field_value(
    client: &Client,
    ns: &str,
    kind: FluxKind,
    name: &str,
    at: &str,
) -> Option<Value> {
    let obj = get(client, ns, kind, name).await?;
    serde_json::to_value(&obj).ok()?.pointer(at).cloned()
}

/// The condition `type_` of a Flux object, when it has one.
pub async fn condition(
    client: &Client,
    ns: &str,
    kind: FluxKind,
    name: &str,
    type_: &str,
) -> Option<Value> {
    let obj = get(client, ns, kind, name).await?;
    obj.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// The object's Ready condition while it is False: the failure and its message.
pub async fn failure(client: &Client, ns: &str, kind: FluxKind, name: &str) -> Option<Value> {
    condition(client, ns, kind, name, "Ready")
        .await
        .filter(|c| c["status"] == "False")
}

pub async fn ready(client: &Client, ns: &str, kind: FluxKind, name: &str) -> bool {
    condition(client, ns, kind, name, "Ready")
        .await
        .is_some_and(|c| c["status"] == "True")
}

/// Waits until the GitRepository has an artifact of `commit` and returns its download URL.
pub async fn artifact_of(
    client: &Client,
    ns: &str,
    name: &str,
    commit: &str,
    timeout: Duration,
) -> String {
    eventually(
        &format!("GitRepository {name} at {commit}"),
        timeout,
        || async {
            let rev = field(
                client,
                ns,
                FluxKind::GitRepository,
                name,
                "/status/artifact/revision",
            )
            .await?;
            if !rev.ends_with(commit) {
                return None;
            }
            field(
                client,
                ns,
                FluxKind::GitRepository,
                name,
                "/status/artifact/url",
            )
            .await
        },
    )
    .await
}

pub async fn webhook_url(client: &Client, lp: &Loop, ns: &str, name: &str) -> String {
    let path = eventually(&format!("Receiver {name} webhookPath"), SETUP, || {
        field(client, ns, FluxKind::Receiver, name, "/status/webhookPath")
    })
    .await;
    format!("http://{}{path}", lp.receiver)
}

pub async fn config_value(client: &Client, ns: &str, name: &str, key: &str) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    cm.data?.get(key).cloned()
}

pub async fn deployed_image(client: &Client, ns: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt("app")
        .await
        .ok()??;
    d.spec?.template.spec?.containers.first()?.image.clone()
}

/// The paths in an artifact tarball, directories without their trailing slash, sorted.
pub fn artifact_paths(url: &str) -> Vec<String> {
    let listing = run(Command::new("bash").args([
        "-c",
        "set -o pipefail; curl -sSf \"$0\" | tar tzf -",
        url,
    ]));
    let paths: BTreeSet<String> = listing
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != ".")
        .collect();
    paths.into_iter().collect()
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

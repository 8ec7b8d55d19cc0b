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
    /// CNCF distribution's `registry` binary: started per test by `Distribution::start`.
    pub distribution: PathBuf,
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
            distribution: var("FLUXTUNE_DISTRIBUTION").into(),
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

    /// Writes every (FILE, CONTENT) into the clone, commits them as one commit and pushes.
    pub fn push_files(&self, files: &[(&str, &str)], message: &str) -> String {
        for (file, content) in files {
            let path = self.work.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            git(&self.work, &["add", file]);
        }
        git(&self.work, &["commit", "-qm", message]);
        git(&self.work, &["push", "-q", &self.url, "main"]);
        self.head()
    }

    /// `git revert` of each commit, newest first, pushed at once; returns the new HEAD.
    pub fn push_revert(&self, commits: &[&str]) -> String {
        for commit in commits {
            git(&self.work, &["revert", "--no-edit", commit]);
        }
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

    /// Commits FILE with CONTENT on BRANCH (created from main) and pushes that branch: the Git
    /// host calls its webhooks, the branch the GitRepository follows does not move.
    pub fn push_branch(&self, branch: &str, file: &str, content: &str) -> String {
        git(&self.work, &["checkout", "-q", "-B", branch, "main"]);
        std::fs::write(self.work.join(file), content).unwrap();
        git(&self.work, &["add", file]);
        git(&self.work, &["commit", "-qm", &format!("{branch}: {file}")]);
        git(&self.work, &["push", "-q", &self.url, branch]);
        let head = self.head();
        git(&self.work, &["checkout", "-q", "main"]);
        head
    }

    /// The Git host stops calling: every webhook is lost from now on.
    pub fn remove_webhooks(&self) {
        run(Command::new("git").arg("--git-dir").arg(&self.bare).args([
            "config",
            "--unset-all",
            "fluxtune.webhook",
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

/// A free loopback address (the port is free when this returns; the registry binds it soon after).
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// CNCF distribution's registry, the way a registry that sends webhooks is run: its only
/// notification endpoint is `hook` (a Flux Receiver URL) with the token as a static
/// `Authorization` header, which the `harbor` Receiver type checks. Stopped on drop.
pub struct Distribution {
    pub addr: String,
    child: std::process::Child,
}

impl Distribution {
    /// The endpoint settings are deliberate. distribution retries a failed delivery forever and
    /// the endpoint's later events wait behind it (its breaker never drops an event), so the
    /// registry is only pointed at a Receiver that has published its path, and only manifest
    /// pushes are sent: blob events (application/octet-stream) and pulls, mounts and deletes are
    /// ignored, so a push is one POST and the scans' own reads announce nothing. `threshold: 3`
    /// and `backoff: 1s` retry a Receiver that is briefly unavailable within about a second;
    /// `timeout: 2s` is far above the Receiver's few milliseconds.
    pub fn start(lp: &Loop, addr: &str, hook: &str, token: &str) -> Distribution {
        let dir = lp
            .git_root
            .with_file_name(format!("distribution-{}", addr.replace([':', '.'], "-")));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                r#"version: 0.1
log:
  level: info
  accesslog: {{disabled: true}}
storage:
  filesystem: {{rootdirectory: {root}}}
  maintenance: {{uploadpurging: {{enabled: false}}}}
http:
  addr: {addr}
notifications:
  endpoints:
    - name: flux
      url: {hook}
      headers:
        Authorization: [{token}]
      timeout: 2s
      threshold: 3
      backoff: 1s
      ignore:
        mediatypes: [application/octet-stream]
        actions: [pull, mount, delete]
"#,
                root = dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(&lp.distribution)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", lp.distribution.display()));
        let registry = Distribution {
            addr: addr.to_string(),
            child,
        };
        let ready = || {
            Command::new("curl")
                .args(["-sf", "--max-time", "1", &format!("http://{addr}/v2/")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ready() {
            assert!(
                std::time::Instant::now() < deadline,
                "distribution did not answer on {addr} in 30 s: see {}",
                dir.join("registry.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    /// A fleet whose image `REGISTRY/NS/app` lives on a registry the test starts later; nothing
    /// is pushed yet.
    pub async fn on_registry(
        client: &Client,
        lp: &Loop,
        test: &str,
        clusters: u32,
        registry: &str,
    ) -> Fleet {
        let ns = support::namespace(client, test).await;
        let image = format!("{registry}/{ns}/app");
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

/// The profile `cluster1`'s registry webhook URL, once its Receiver has published its path.
pub async fn registry_webhook_url(client: &Client, ns: &str) -> String {
    eventually("the registry webhook URL in status", SETUP, || async {
        let p = Api::<fluxtune::api::FluxProfile>::namespaced(client.clone(), ns)
            .get("cluster1")
            .await
            .ok()?;
        p.status?.registry_webhook?.url
    })
    .await
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

/// Waits (up to `timeout`) until the Deployment `app` runs `image` (REPOSITORY:TAG).
pub async fn wait_deployed(client: &Client, ns: &str, image: &str, what: &str, timeout: Duration) {
    eventually(what, timeout, || async {
        (deployed_image(client, ns).await.as_deref() == Some(image)).then_some(())
    })
    .await
}

/// The profile fields for one image, `app` at `image`, updated by the automation.
pub fn image_spec(image: &str) -> serde_json::Map<String, Value> {
    json!({
        "images": [{"name": "app", "repository": image, "policy": {"semver": {"range": ">=1.0.0"}}}],
        "imageUpdate": {"author": {"name": "fluxtune-bot", "email": "bot@fluxtune.local"}},
    })
    .as_object()
    .unwrap()
    .clone()
}

/// `spec` with the image fields of `image_spec`.
pub fn with_image(mut spec: Value, image: &str) -> Value {
    spec.as_object_mut().unwrap().extend(image_spec(image));
    spec
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

/// The profile `cluster1`'s observed sample of `path` (commitToDeploy or imageToDeploy) once it
/// names a revision `matches` accepts: its trigger and duration in seconds.
pub async fn observed(
    client: &Client,
    ns: &str,
    path: &str,
    matches: impl Fn(&str) -> bool,
) -> (String, f64) {
    eventually(&format!("status.observedLatency.{path}"), SETUP, || async {
        let p = Api::<fluxtune::api::FluxProfile>::namespaced(client.clone(), ns)
            .get("cluster1")
            .await
            .ok()?;
        let latency = p.status?.observed_latency?;
        let sample = match path {
            "commitToDeploy" => latency.commit_to_deploy?,
            _ => latency.image_to_deploy?,
        };
        let took: kube::core::Duration = sample.duration.parse().ok()?;
        matches(&sample.revision).then(|| (sample.trigger, Duration::from(took).as_secs_f64()))
    })
    .await
}

/// The notes of the Events on the profile `cluster1` with `reason`.
pub async fn profile_events(client: &Client, ns: &str, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let list = events.list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("cluster1"))
        .filter_map(|e| e.note)
        .collect()
}

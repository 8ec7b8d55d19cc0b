//! The e2e harness: a client for the control plane e2e/controlplane.sh started, one namespace per
//! test, the operator as a real process, and patient polling.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};

/// Set by e2e/test-all.sh after `controlplane.sh up`: an admin (system:masters) kubeconfig.
pub const KUBECONFIG_ENV: &str = "FLUXTUNE_E2E_KUBECONFIG";
/// Set by e2e/test-all.sh after applying deploy/: a kubeconfig holding a TokenRequest token of
/// deploy/'s ServiceAccount, so the operator under test has exactly the RBAC it ships with.
pub const OPERATOR_KUBECONFIG_ENV: &str = "FLUXTUNE_E2E_OPERATOR_KUBECONFIG";
/// Where deploy/ runs fluxtune; the Role for leases lives here.
pub const SYSTEM_NAMESPACE: &str = "fluxtune-system";

pub fn operator_kubeconfig_path() -> PathBuf {
    match std::env::var_os(OPERATOR_KUBECONFIG_ENV) {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "the RBAC checks need deploy/ applied and a ServiceAccount token: run `bash e2e/test-all.sh` (it sets {OPERATOR_KUBECONFIG_ENV})"
        ),
    }
}

/// The operator's own identity: deploy/'s ServiceAccount when the test command set one up.
fn operator_kubeconfig_or_admin() -> PathBuf {
    std::env::var_os(OPERATOR_KUBECONFIG_ENV).map_or_else(kubeconfig_path, PathBuf::from)
}

pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os(KUBECONFIG_ENV) {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "the e2e tier needs a real control plane: run `bash e2e/test-all.sh` (it starts one and sets {KUBECONFIG_ENV})"
        ),
    }
}

pub async fn client() -> Client {
    client_from(kubeconfig_path()).await
}

pub async fn client_from(path: PathBuf) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("the e2e kubeconfig is readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the e2e kubeconfig is valid");
    Client::try_from(config).expect("a client for the e2e control plane")
}

/// A fresh namespace per test, so tests run in parallel and never see each other's objects.
pub async fn namespace(client: &Client, test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create a test namespace");
    name
}

pub async fn webhook_secret(client: &Client, namespace: &str, name: &str, token: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        // notification-controller re-reads only labelled Secrets when they change.
        "metadata": {"name": name, "labels": {"reconcile.fluxcd.io/watch": "Enabled"}},
        "stringData": {"token": token}
    }))
    .unwrap();
    api.create(&PostParams::default(), &secret)
        .await
        .expect("create the webhook Secret");
}

/// Server-side apply as a user would (`kubectl apply --server-side`).
pub async fn apply_as(
    client: &Client,
    manager: &str,
    object: &Value,
) -> kube::Result<DynamicObject> {
    let obj: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let types = obj
        .types
        .clone()
        .expect("objects carry apiVersion and kind");
    let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
    let (ar, _) = kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &obj.namespace().unwrap(), &ar);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&obj),
    )
    .await
}

/// The profile `cluster1`'s Kustomization, as the API server has it.
pub async fn kustomization(client: &Client, namespace: &str) -> DynamicObject {
    dynamic_api(client, namespace, fluxtune::flux::FluxKind::Kustomization)
        .get("cluster1")
        .await
        .expect("the Kustomization cluster1 exists")
}

pub fn dynamic_api(
    client: &Client,
    namespace: &str,
    kind: fluxtune::flux::FluxKind,
) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// Polls `check` until it returns Some, for at most `timeout`. A liveness bound, not a timing
/// assertion: the timeouts are generous.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until the object `name` of `api` no longer exists (finalizers done).
pub async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} is gone"), PATIENCE, || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

/// `fluxtune run` as a real process against the e2e control plane, watching one namespace.
pub struct Operator {
    child: Option<Child>,
    pub http: String,
    pub log: PathBuf,
    bin: PathBuf,
    args: Vec<String>,
    /// Who it runs as: deploy/'s ServiceAccount (the default), or the admin.
    kubeconfig: PathBuf,
}

/// The build of the previous release, for the upgrade test (set by e2e/test-all.sh).
pub const PREVIOUS_BIN_ENV: &str = "FLUXTUNE_E2E_PREVIOUS_BIN";

pub fn previous_binary() -> PathBuf {
    match std::env::var_os(PREVIOUS_BIN_ENV) {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "the upgrade test needs the previous release built: run `bash e2e/test-all.sh` (it builds e2e/previous-release and sets {PREVIOUS_BIN_ENV})"
        ),
    }
}

impl Operator {
    pub fn start(namespace: &str, name: &str) -> Operator {
        Self::start_with(namespace, name, &[])
    }

    pub fn start_with(namespace: &str, name: &str, extra: &[&str]) -> Operator {
        Self::launch(
            env!("CARGO_BIN_EXE_fluxtune").into(),
            namespace,
            name,
            extra,
            operator_kubeconfig_or_admin(),
        )
    }

    /// Another build of fluxtune, such as the previous release, as the admin: a release runs with
    /// the RBAC of its own deploy/, which this control plane does not have (v0.1.0 read Secrets;
    /// the current deploy/ grants no verb on them).
    pub fn start_binary_as_admin(
        bin: PathBuf,
        namespace: &str,
        name: &str,
        extra: &[&str],
    ) -> Operator {
        Self::launch(bin, namespace, name, extra, kubeconfig_path())
    }

    fn launch(
        bin: PathBuf,
        namespace: &str,
        name: &str,
        extra: &[&str],
        kubeconfig: PathBuf,
    ) -> Operator {
        let port = free_port();
        let http = format!("127.0.0.1:{port}");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--namespace".into(),
            namespace.into(),
            "--http-addr".into(),
            http.clone(),
            "--identity".into(),
            name.into(),
        ];
        if !extra.contains(&"--leader-election") {
            // One process per test: no election, so the lease's renewals do not count as writes.
            args.extend(["--leader-election".into(), "false".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::env::temp_dir().join(format!("fluxtune-e2e-{namespace}-{name}.log"));
        let mut op = Operator {
            child: None,
            http,
            log,
            bin,
            args,
            kubeconfig,
        };
        op.spawn();
        op
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,fluxtune=debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start fluxtune run");
        self.child = Some(child);
    }

    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.http);
        let log = self.log.clone();
        eventually(
            &format!("operator ready (log: {})", log.display()),
            PATIENCE,
            || {
                let url = url.clone();
                async move {
                    http_get(&url)
                        .await
                        .filter(|(code, _)| *code == 200)
                        .map(|_| ())
                }
            },
        )
        .await;
    }

    /// The operator's /metrics; fails the test when they cannot be read, so an assertion on a
    /// metric never passes on an empty page.
    pub async fn metrics(&self) -> String {
        match http_get(&format!("http://{}/metrics", self.http)).await {
            Some((200, body)) => body,
            other => panic!(
                "/metrics of the operator (log {}) unreadable: {other:?}",
                self.log.display()
            ),
        }
    }

    /// Requests sent with `method`, read from the operator's own counter.
    pub async fn requests(&self, method: &str) -> u64 {
        metric(
            &self.metrics().await,
            "fluxtune_kube_requests_total",
            &format!("method=\"{method}\""),
        )
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM for a graceful shutdown, like the kubelet does.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The same process is still running (it never exited since it was started).
    #[allow(dead_code)]
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// For the benchmark's RSS readings.
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- operator log {} ----\n{}",
                self.log.display(),
                self.logs()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The sum of the series of metric `name` whose labels contain `label`; fails the test when
/// there is none: a zero is only worth asserting when it was read.
pub fn metric(text: &str, name: &str, label: &str) -> u64 {
    metric_opt(text, name, label)
        .unwrap_or_else(|| panic!("no series of {name} with {label:?} on /metrics:\n{text}"))
}

/// As [`metric`], None when the series does not exist (yet).
pub fn metric_opt(text: &str, name: &str, label: &str) -> Option<u64> {
    let values: Vec<u64> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
                && l.contains(label)
        })
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("unreadable metric line {l:?}")) as u64
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_get(url: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

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
            Some(namespace),
            name,
            extra,
            operator_kubeconfig_or_admin(),
        )
    }

    /// As [`Operator::start_with`], running as the identity of `kubeconfig` (a test's own RBAC).
    #[allow(dead_code)]
    pub fn start_as(kubeconfig: PathBuf, namespace: &str, name: &str, extra: &[&str]) -> Operator {
        Self::launch(
            env!("CARGO_BIN_EXE_fluxtune").into(),
            Some(namespace),
            name,
            extra,
            kubeconfig,
        )
    }

    /// As [`Operator::start_with`], watching every namespace (the benchmark's 1000 profiles).
    #[allow(dead_code)]
    pub fn start_cluster_wide(name: &str, extra: &[&str]) -> Operator {
        Self::launch(
            env!("CARGO_BIN_EXE_fluxtune").into(),
            None,
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
        Self::launch(bin, Some(namespace), name, extra, kubeconfig_path())
    }

    fn launch(
        bin: PathBuf,
        namespace: Option<&str>,
        name: &str,
        extra: &[&str],
        kubeconfig: PathBuf,
    ) -> Operator {
        let port = free_port();
        let http = format!("127.0.0.1:{port}");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--http-addr".into(),
            http.clone(),
            "--identity".into(),
            name.into(),
        ];
        if let Some(namespace) = namespace {
            args.extend(["--namespace".into(), namespace.into()]);
        }
        if !extra.contains(&"--leader-election") {
            // One process per test: no election, so the lease's renewals do not count as writes.
            args.extend(["--leader-election".into(), "false".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::env::temp_dir().join(format!(
            "fluxtune-e2e-{}-{name}.log",
            namespace.unwrap_or("all-namespaces")
        ));
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
            // FLUXTUNE_E2E_RUST_LOG, to see more (`kube_client=debug`: every request).
            .env(
                "RUST_LOG",
                std::env::var("FLUXTUNE_E2E_RUST_LOG")
                    .unwrap_or_else(|_| "info,fluxtune=debug".into()),
            )
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

    /// The status code of the operator's `path` (`/readyz`, `/healthz`); None while nothing
    /// answers.
    #[allow(dead_code)]
    pub async fn status_of(&self, path: &str) -> Option<u16> {
        http_get(&format!("http://{}{path}", self.http))
            .await
            .map(|(code, _)| code)
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

    /// SIGKILL: a crash, no graceful shutdown (the lease is not released).
    #[allow(dead_code)]
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same command again after [`Operator::kill`] or an exit.
    #[allow(dead_code)]
    pub fn start_again(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.spawn();
    }

    /// Sends `signal` (a name `kill -s` knows: STOP, CONT) to the process.
    #[allow(dead_code)]
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the operator runs").to_string();
        let status = Command::new("kill").args(["-s", signal, &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -s {signal} {pid}");
    }

    /// The exit code once the process has ended (None while it runs; Some(None) if a signal ended
    /// it).
    #[allow(dead_code)]
    pub fn exited(&mut self) -> Option<Option<i32>> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten().map(|status| status.code())
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

/// Set by e2e/faults-check.sh: the directory of the throwaway control plane the fault tests may
/// break (`controlplane.sh kill|start|compact DIR`). Never the one other tests share.
pub const CONTROLPLANE_DIR_ENV: &str = "FLUXTUNE_E2E_CONTROLPLANE_DIR";

/// A control plane whose components a test stops and starts (e2e/controlplane.sh).
#[allow(dead_code)]
pub struct ControlPlane {
    dir: PathBuf,
}

#[allow(dead_code)]
impl ControlPlane {
    pub fn from_env() -> ControlPlane {
        match std::env::var_os(CONTROLPLANE_DIR_ENV) {
            Some(dir) => ControlPlane { dir: dir.into() },
            None => panic!(
                "the fault tier kills control-plane components: run it with `bash e2e/faults-check.sh` (it starts a throwaway control plane and sets {CONTROLPLANE_DIR_ENV})"
            ),
        }
    }

    /// `controlplane.sh CMD DIR ARGS...`; fails the test with its output when it fails.
    pub async fn run(&self, cmd: &str, args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/controlplane.sh");
        let out = tokio::process::Command::new("bash")
            .arg(script)
            .arg(cmd)
            .arg(&self.dir)
            .args(args)
            .output()
            .await
            .expect("run e2e/controlplane.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "controlplane.sh {cmd} {args:?} failed:\n{stderr}"
        );
        eprint!("{stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILLs `apiserver` or `etcd`.
    pub async fn kill(&self, component: &str) {
        self.run("kill", &[component]).await;
    }

    /// Starts `apiserver` or `etcd` again (same ports and data) and waits until it is ready.
    pub async fn start(&self, component: &str) {
        self.run("start", &[component]).await;
    }

    /// Compacts etcd at its current revision (and defragments it); returns the revision.
    pub async fn compact(&self) -> u64 {
        let out = self.run("compact", &[]).await;
        out.trim().parse().expect("compact prints the revision")
    }
}

/// A TCP proxy in front of the API server for one operator, which the test can cut: every
/// connection through it is dropped and new ones are closed at once, while other clients still
/// reach the API server directly.
#[allow(dead_code)]
pub struct Proxy {
    pub kubeconfig: PathBuf,
    cut: tokio::sync::watch::Sender<bool>,
}

#[allow(dead_code)]
impl Proxy {
    /// A proxy to the API server of `kubeconfig`, and a copy of it that goes through the proxy.
    pub async fn start(kubeconfig: PathBuf, name: &str) -> Proxy {
        use tokio::net::{TcpListener, TcpStream};
        let mut config = Kubeconfig::read_from(&kubeconfig).unwrap();
        let cluster = config.clusters[0].cluster.as_mut().unwrap();
        let server = cluster.server.clone().unwrap();
        let upstream = server.strip_prefix("https://").unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        // The API server's certificate is for 127.0.0.1, whatever the port.
        cluster.server = Some(format!("https://{}", listener.local_addr().unwrap()));
        let path = std::env::temp_dir().join(format!(
            "fluxtune-e2e-proxy-{}-{name}.kubeconfig",
            std::process::id()
        ));
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let (cut, is_cut) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *is_cut.borrow() {
                    continue;
                }
                let mut is_cut = is_cut.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = is_cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy {
            kubeconfig: path,
            cut,
        }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

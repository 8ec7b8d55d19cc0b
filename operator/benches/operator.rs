//! The operator's speed and memory on the real control plane: apply-to-Applied latency, API requests
//! per no-op reconcile, RSS idle and with 100 profiles, and the renderer's time for the samples;
//! then the scale case: 1000 profiles in 10 namespaces against the floor of a plain client
//! applying the same 8000 objects, requests per profile, RSS, and a restart that writes nothing.
//! Run with `bash e2e/bench.sh`; results go to docs/benchmarks.md by hand.
//! `FLUXTUNE_BENCH_ONLY=sequential|scale` runs one part; `FLUXTUNE_BENCH_SCALE_PER_NAMESPACE`
//! (default 100) and `FLUXTUNE_BENCH_MAX_CONCURRENT_RECONCILES` (default: the operator's) vary
//! the scale case.

#[path = "../tests/e2e/support.rs"]
#[allow(dead_code)]
mod support;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fluxtune::{
    api::FluxProfile,
    reconcile::apply,
    render::{self, Capabilities, names, validate::Validator},
};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use support::{Operator, PATIENCE, eventually, metric};

const PROFILES: usize = 100;

fn spec(i: usize) -> serde_json::Value {
    json!({
        "cluster": {"name": format!("cluster{i}")},
        "source": {"url": "https://git.example.com/acme/kubeconf.git"},
        "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
        "images": [
            {"name": "app", "repository": "ghcr.io/acme/app", "policy": {"semver": {"range": ">=1.0.0"}}},
            {"name": "worker", "repository": "ghcr.io/acme/worker", "policy": {"numerical": {}}}
        ],
        "imageUpdate": {"author": {"name": "bot", "email": "bot@example.com"}}
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let only = std::env::var("FLUXTUNE_BENCH_ONLY").ok();
    let client = support::client().await;
    if only.as_deref() != Some("scale") {
        render_samples();
        sequential(&client).await;
    }
    if only.as_deref() != Some("sequential") {
        scale(&client).await;
    }
}

/// 100 profiles applied one after another to a namespaced operator; the namespace is deleted
/// afterwards, so the scale case starts on an empty cluster.
async fn sequential(client: &Client) {
    let client = client.clone();
    let ns = support::namespace(&client, "bench").await;
    support::webhook_secret(&client, &ns, "hook", "bench-token").await;
    let op = Operator::start(&ns, "bench");
    op.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = op.pid().unwrap();
    let idle = rss_kib(pid);

    // Record when each profile first reports Applied for its generation, from a watch. (Ready
    // means delivered: it needs the Flux controllers, which this control plane does not run.)
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    let applied_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = applied_at.clone();
    let watch = tokio::spawn(
        watcher(api.clone(), watcher::Config::default())
            .applied_objects()
            .for_each(move |p| {
                if let Ok(p) = p {
                    let status = p.status.clone().unwrap_or_default();
                    let applied = status
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Applied" && c.status == "True");
                    if applied && status.observed_generation == p.metadata.generation {
                        seen.lock()
                            .unwrap()
                            .entry(p.name_any())
                            .or_insert_with(Instant::now);
                    }
                }
                futures::future::ready(())
            }),
    );

    let mut latencies = Vec::new();
    for i in 0..PROFILES {
        let name = format!("p{i}");
        let doc = json!({"apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
                         "metadata": {"name": name, "namespace": ns}, "spec": spec(i)});
        let started = Instant::now();
        api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&doc))
            .await
            .unwrap();
        let done = eventually(&format!("{name} Applied"), PATIENCE, || {
            let applied_at = applied_at.clone();
            let name = name.clone();
            async move { applied_at.lock().unwrap().get(&name).copied() }
        })
        .await;
        latencies.push(done - started);
    }
    latencies.sort();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_kib(pid);

    // No-op reconciles: poke every profile with an unrelated annotation.
    let before = op.metrics().await;
    for i in 0..PROFILES {
        api.patch(
            &format!("p{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"bench/poke": "1"}}})),
        )
        .await
        .unwrap();
    }
    let base = metric(&before, "fluxtune_reconciles_total", "result=\"ok\"");
    eventually("the pokes are reconciled", PATIENCE, || async {
        (metric(
            &op.metrics().await,
            "fluxtune_reconciles_total",
            "result=\"ok\"",
        ) >= base + PROFILES as u64)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = op.metrics().await;
    let delta = |method: &str| {
        let label = format!("method=\"{method}\"");
        metric(&after, "fluxtune_kube_requests_total", &label)
            - metric(&before, "fluxtune_kube_requests_total", &label)
    };
    let reconciles = metric(&after, "fluxtune_reconciles_total", "result=\"ok\"") - base;
    let writes = delta("POST") + delta("PUT") + delta("PATCH") + delta("DELETE");
    watch.abort();

    println!("apply-to-Applied over {PROFILES} profiles (8 Flux objects each, sequential):");
    println!(
        "  p50 {:?}  p90 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies.last().unwrap()
    );
    println!(
        "no-op reconciles: {reconciles}, writes {writes}, GETs {} ({:.2} per reconcile)",
        delta("GET"),
        delta("GET") as f64 / reconciles.max(1) as f64
    );
    println!(
        "operator RSS: idle {:.1} MiB, with {PROFILES} profiles {:.1} MiB",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0
    );
    drop(op);
    delete_namespaces(&client, &[ns]).await;
}

async fn delete_namespaces(client: &Client, namespaces: &[String]) {
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        api.delete(ns, &DeleteParams::default()).await.unwrap();
    }
    for ns in namespaces {
        eventually(
            &format!("namespace {ns} deleted"),
            10 * PATIENCE,
            || async { api.get_opt(ns).await.unwrap().is_none().then_some(()) },
        )
        .await;
    }
}

const SCALE_NAMESPACES: usize = 10;

/// The plain client's requests in flight (also when the benchmark creates the profiles): the
/// operator's default `--max-concurrent-reconciles` unless `FLUXTUNE_BENCH_CLIENT_CONCURRENCY`
/// says otherwise. A reconcile sends its requests one after another, so both keep as many
/// requests in flight.
fn client_concurrency() -> usize {
    std::env::var("FLUXTUNE_BENCH_CLIENT_CONCURRENCY")
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(8)
}

fn scale_profile(ns: &str, i: usize) -> serde_json::Value {
    json!({"apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
           "metadata": {"name": format!("p{i}"), "namespace": ns}, "spec": spec(i)})
}

/// Server-side applies `objects` as a plain client would, `client_concurrency()` at a time.
async fn apply_all(client: &Client, manager: &str, objects: Vec<DynamicObject>) -> Duration {
    let started = Instant::now();
    let params = PatchParams::apply(manager).force();
    stream::iter(objects)
        .map(|obj| {
            let params = params.clone();
            async move {
                let types = obj.types.clone().expect("apiVersion and kind");
                let kind = fluxtune::flux::FluxKind::from_kind(&types.kind);
                let ar = match kind {
                    Some(kind) => kind.api_resource(),
                    None => kube::api::ApiResource::erase::<FluxProfile>(&()),
                };
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &obj.namespace().unwrap(), &ar);
                api.patch(&obj.name_any(), &params, &Patch::Apply(&obj))
                    .await
                    .unwrap_or_else(|e| panic!("apply {}: {e}", obj.name_any()));
            }
        })
        .buffer_unordered(client_concurrency())
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

/// The floor: the Flux objects of `per_ns` profiles in each of `SCALE_NAMESPACES` new namespaces,
/// rendered as the operator renders them, applied by a plain client. Their managed-by label is
/// another value, so the operator neither caches nor reconciles them.
/// What the floor's plain client writes.
#[derive(Clone, Copy, PartialEq)]
enum Floor {
    /// The objects exactly as the operator writes them (`apply::as_written`: the rendered hash
    /// annotation, a controller owner reference), as the operator's ServiceAccount. The owner is
    /// the object's namespace, not a FluxProfile: an owner that exists, so the garbage collector
    /// leaves the objects alone, and a reference of the same shape as the operator's.
    AsTheOperatorWrites,
    /// The rendered objects only (no annotation, no owner reference), as the cluster admin: the
    /// floor of runs 1-19.
    Rendered,
}

/// The same 8000 objects the operator writes for 1000 profiles, server-side applied by a plain
/// client into 10 new namespaces; how long that took and how many objects.
async fn floor(
    client: &Client,
    per_ns: usize,
    caps: &Capabilities,
    what: Floor,
) -> (Duration, usize) {
    let writer = match what {
        Floor::AsTheOperatorWrites => {
            support::client_from(support::operator_kubeconfig_path()).await
        }
        Floor::Rendered => client.clone(),
    };
    let mut objects = Vec::new();
    for _ in 0..SCALE_NAMESPACES {
        let ns = support::namespace(client, "floor").await;
        let owner = Api::<Namespace>::all(client.clone())
            .get(&ns)
            .await
            .unwrap()
            .controller_owner_ref(&())
            .unwrap();
        for i in 0..per_ns {
            let profile: FluxProfile = serde_json::from_value(scale_profile(&ns, i)).unwrap();
            for object in render::render(&profile, caps).objects {
                let mut object = match what {
                    Floor::AsTheOperatorWrites => {
                        let mut written = apply::as_written(&object);
                        written.metadata.owner_references = Some(vec![owner.clone()]);
                        written
                    }
                    Floor::Rendered => object.to_dynamic(),
                };
                object
                    .labels_mut()
                    .insert(names::MANAGED_BY_LABEL.into(), "bench-floor".into());
                objects.push(object);
            }
        }
    }
    let count = objects.len();
    (apply_all(&writer, "bench-floor", objects).await, count)
}

struct Sample {
    text: String,
    rss_kib: u64,
    peak_kib: u64,
    cpu_seconds: f64,
}

impl Sample {
    async fn of(op: &Operator) -> Sample {
        let pid = op.pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Sample {
            text: op.metrics().await,
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
            cpu_seconds: cpu_seconds(pid),
        }
    }

    fn requests(&self, method: &str) -> u64 {
        metric(
            &self.text,
            "fluxtune_kube_requests_total",
            &format!("method=\"{method}\""),
        )
    }

    fn writes(&self) -> u64 {
        ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .map(|m| self.requests(m))
            .sum()
    }

    fn reconciles(&self) -> u64 {
        metric(&self.text, "fluxtune_reconciles_total", "")
    }
}

/// Waits until the operator's reconcile count reaches `at_least` and then stays the same for
/// 5 s: the watch events of its own writes have been handled.
async fn settled(op: &Operator, at_least: u64) -> Sample {
    let mut last = (0, Instant::now());
    loop {
        let n = metric(&op.metrics().await, "fluxtune_reconciles_total", "");
        if n != last.0 {
            last = (n, Instant::now());
        } else if n >= at_least && last.1.elapsed() >= Duration::from_secs(5) {
            return Sample::of(op).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU seconds (user and system) of a process so far, from /proc/PID/stat; 0 once it is gone.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    // utime and stime, in clock ticks (100 per second on Linux).
    after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}

/// CPU seconds so far of the control plane's kube-apiserver and etcd, read from the pids file
/// of the throwaway control plane (beside the kubeconfig the benchmark runs with): what each
/// phase costs the server, the shared resource the operator and the plain client compete for.
fn server_cpu() -> (f64, f64) {
    let kubeconfig = std::env::var("FLUXTUNE_E2E_KUBECONFIG").unwrap_or_default();
    let dir = std::path::Path::new(&kubeconfig)
        .parent()
        .map(|d| d.join("pids"));
    let pids = dir
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let of = |name: &str| -> f64 {
        pids.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, pid)| pid.trim().parse().ok())
            .map(cpu_seconds)
            .sum()
    };
    (of("kube-apiserver"), of("etcd"))
}

/// Runs `phase` and returns what it returned with the API server's and etcd's CPU seconds spent
/// meanwhile.
async fn with_server_cpu<T>(phase: impl std::future::Future<Output = T>) -> (T, (f64, f64)) {
    let before = server_cpu();
    let out = phase.await;
    let after = server_cpu();
    (out, (after.0 - before.0, after.1 - before.1))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn scale(client: &Client) {
    let per_ns: usize = std::env::var("FLUXTUNE_BENCH_SCALE_PER_NAMESPACE")
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(100);
    let profiles = SCALE_NAMESPACES * per_ns;
    let mut extra = Vec::new();
    if let Ok(n) = std::env::var("FLUXTUNE_BENCH_MAX_CONCURRENT_RECONCILES") {
        extra = vec!["--max-concurrent-reconciles".to_string(), n];
    }
    let caps = fluxtune::capabilities::detect(client).await.unwrap().caps;

    // The floor first, on a cluster holding nothing of the operator's yet.
    let ((floor_before, objects), floor_server) =
        with_server_cpu(floor(client, per_ns, &caps, Floor::AsTheOperatorWrites)).await;
    // The floor of runs 1-19, to compare with those runs.
    let ((floor_rendered, _), floor_rendered_server) =
        with_server_cpu(floor(client, per_ns, &caps, Floor::Rendered)).await;

    // The profiles wait, the operator stopped, as after an outage or at a first install.
    let mut namespaces = Vec::new();
    let mut docs = Vec::new();
    for _ in 0..SCALE_NAMESPACES {
        let ns = support::namespace(client, "scale").await;
        support::webhook_secret(client, &ns, "hook", "bench-token").await;
        docs.extend((0..per_ns).map(|i| scale_profile(&ns, i)));
        namespaces.push(ns);
    }
    let docs = docs
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    let created = apply_all(client, "bench", docs).await;

    // When each profile is first Applied for its generation, from a watch.
    let ours: HashSet<String> = namespaces.iter().cloned().collect();
    let applied: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let seen = applied.clone();
    let watch = tokio::spawn(
        watcher(
            Api::<FluxProfile>::all(client.clone()),
            watcher::Config::default(),
        )
        .applied_objects()
        .for_each(move |p| {
            if let Ok(p) = p {
                let status = p.status.clone().unwrap_or_default();
                let done = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Applied" && c.status == "True")
                    && status.observed_generation == p.metadata.generation;
                let ns = p.namespace().unwrap_or_default();
                if done && ours.contains(&ns) {
                    seen.lock().unwrap().insert((ns, p.name_any()));
                }
            }
            futures::future::ready(())
        }),
    );

    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let started = Instant::now();
    let server_before = server_cpu();
    let mut op = Operator::start_cluster_wide("scale", &extra);
    // How much of the time is the start (the Flux CRDs read, every cache listed) rather than work.
    let all = format!("{profiles} profiles Applied");
    let (ready_after, ()) = tokio::join!(
        async {
            op.wait_ready().await;
            started.elapsed()
        },
        eventually(&all, Duration::from_secs(3600), || async {
            (applied.lock().unwrap().len() == profiles).then_some(())
        })
    );
    let all_applied = started.elapsed();
    let server_after = server_cpu();
    let operator_server = (
        server_after.0 - server_before.0,
        server_after.1 - server_before.1,
    );
    watch.abort();
    let at_applied = Sample::of(&op).await;
    let after = settled(&op, profiles as u64).await;
    let took_settled = started.elapsed();

    // A restart: every profile is reconciled again and finds nothing to do.
    let restarted = Instant::now();
    op.restart();
    op.wait_ready().await;
    let ready_in = restarted.elapsed();
    let restart = settled(&op, profiles as u64).await;
    let restart_settled = restarted.elapsed() - Duration::from_secs(5);
    drop(op);

    let ((floor_after, _), floor_after_server) =
        with_server_cpu(floor(client, per_ns, &caps, Floor::AsTheOperatorWrites)).await;
    let floor_mean = (floor_before + floor_after) / 2;

    let per = |s: &Sample, m: &str| s.requests(m) as f64 / profiles as f64;
    println!(
        "scale: {profiles} profiles in {SCALE_NAMESPACES} namespaces, {objects} Flux objects; operator {}",
        if extra.is_empty() {
            "with its defaults".to_string()
        } else {
            extra.join(" ")
        }
    );
    let at_a_time = client_concurrency();
    println!(
        "  floor, a plain client applying the {objects} objects as the operator writes them, as its ServiceAccount, {at_a_time} at a time: {:.1} s before, {:.1} s after ({:.0} objects/s)",
        floor_before.as_secs_f64(),
        floor_after.as_secs_f64(),
        objects as f64 / floor_mean.as_secs_f64()
    );
    println!(
        "  server CPU (kube-apiserver + etcd): floor {:.1} + {:.1} s before, {:.1} + {:.1} s after; rendered floor {:.1} + {:.1} s; operator start to all Applied {:.1} + {:.1} s",
        floor_server.0,
        floor_server.1,
        floor_after_server.0,
        floor_after_server.1,
        floor_rendered_server.0,
        floor_rendered_server.1,
        operator_server.0,
        operator_server.1,
    );
    println!(
        "  the rendered objects only (no annotation, no owner reference), as the cluster admin (the floor of runs 1-19): {:.1} s",
        floor_rendered.as_secs_f64(),
    );
    println!(
        "  creating the {profiles} profiles ({at_a_time} at a time, operator stopped): {:.1} s",
        created.as_secs_f64()
    );
    println!(
        "  operator start to every profile Applied (observedGeneration current): {:.1} s = {:.2}x the floor's mean (ready after {:.1} s); settled after {:.1} s",
        all_applied.as_secs_f64(),
        all_applied.as_secs_f64() / floor_mean.as_secs_f64(),
        ready_after.as_secs_f64(),
        took_settled.as_secs_f64() - 5.0
    );
    for (when, s) in [("at all Applied", &at_applied), ("settled", &after)] {
        println!(
            "  requests per profile {when}: GET {:.2}, POST {:.2}, PATCH {:.2}, PUT {:.2}, DELETE {:.2}; reconciles {} ({:.2} per profile), at most {} at once",
            per(s, "GET"),
            per(s, "POST"),
            per(s, "PATCH"),
            per(s, "PUT"),
            per(s, "DELETE"),
            s.reconciles(),
            s.reconciles() as f64 / profiles as f64,
            metric(&s.text, "fluxtune_reconciles_in_flight_max", ""),
        );
    }
    println!(
        "  operator RSS: {:.1} MiB at all Applied, {:.1} MiB settled, peak {:.1} MiB; CPU {:.1} s at all Applied, {:.1} s settled",
        mib(at_applied.rss_kib),
        mib(after.rss_kib),
        mib(after.peak_kib),
        at_applied.cpu_seconds,
        after.cpu_seconds
    );
    println!(
        "  restart with {profiles} profiles: ready after {:.1} s, settled after {:.1} s; {} reconciles, writes {} (POST {}, PUT {}, PATCH {}, DELETE {}), GETs {}; RSS {:.1} MiB, peak {:.1} MiB",
        ready_in.as_secs_f64(),
        restart_settled.as_secs_f64(),
        restart.reconciles(),
        restart.writes(),
        restart.requests("POST"),
        restart.requests("PUT"),
        restart.requests("PATCH"),
        restart.requests("DELETE"),
        restart.requests("GET"),
        mib(restart.rss_kib),
        mib(restart.peak_kib),
    );
}

/// The pure renderer over every sample, validation included, as `fluxtune render` runs it.
fn render_samples() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples");
    let texts: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let validator = Validator::new();
    let rounds = 200;
    let started = Instant::now();
    let mut objects = 0;
    for _ in 0..rounds {
        for text in &texts {
            for p in validator.profiles_from_yaml(text).unwrap() {
                objects += render::render(&p, &Capabilities::default()).objects.len();
            }
        }
    }
    let per_round = started.elapsed() / rounds;
    let started = Instant::now();
    let _ = Validator::new();
    println!(
        "render all {} samples ({} objects), validation included: {per_round:?} per round; building the validator once: {:?}",
        texts.len(),
        objects / rounds as usize,
        started.elapsed()
    );
}

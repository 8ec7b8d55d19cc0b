//! The operator's speed and memory on the real control plane: apply-to-Ready latency, API requests
//! per no-op reconcile, RSS idle and with 100 profiles, and the renderer's time for the samples.
//! Run with `bash e2e/bench.sh`; results go to docs/benchmarks.md by hand.

#[path = "../tests/e2e/support.rs"]
#[allow(dead_code)]
mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fluxtune::{
    api::FluxProfile,
    render::{self, Capabilities, validate::Validator},
};
use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
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
    render_samples();

    let client = support::client().await;
    let ns = support::namespace(&client, "bench").await;
    support::webhook_secret(&client, &ns, "hook", "bench-token").await;
    let op = Operator::start(&ns, "bench");
    op.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = op.pid().unwrap();
    let idle = rss_kib(pid);

    // Record when each profile first reports Ready for its generation, from a watch.
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    let ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = ready_at.clone();
    let watch = tokio::spawn(
        watcher(api.clone(), watcher::Config::default())
            .applied_objects()
            .for_each(move |p| {
                if let Ok(p) = p {
                    let status = p.status.clone().unwrap_or_default();
                    let ready = status
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    if ready && status.observed_generation == p.metadata.generation {
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
        let done = eventually(&format!("{name} Ready"), PATIENCE, || {
            let ready_at = ready_at.clone();
            let name = name.clone();
            async move { ready_at.lock().unwrap().get(&name).copied() }
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

    println!("apply-to-Ready over {PROFILES} profiles (8 Flux objects each, sequential):");
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

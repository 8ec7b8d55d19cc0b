//! Flux in the loop, measured: commit-to-deploy and image-to-deploy latency with fluxtune's tuning
//! (and with polling), the artifact size and source-controller reconcile time of one cluster of a
//! 50-cluster monorepo with and without fluxtune's ignore rules, and the latency budget fluxtune
//! predicts next to each. Needs the five Flux controllers, the Git host and the registry
//! (`e2e/controlplane.sh flux-up DIR`): run with `bash e2e/bench-flux.sh`. Prints one markdown
//! table row per measure; results go to docs/benchmarks.md by hand.

#[path = "../tests/e2e/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/e2e/flux_support.rs"]
#[allow(dead_code)]
mod flux_support;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fluxtune::{api::FluxProfile, flux::FluxKind};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use flux_support::{
    Fleet, Loop, SETUP, config_value, deployed_image, field, field_value, get, git, image_spec,
    run, secs, webhook_url,
};
use support::eventually;

/// Samples of the event-driven and the interval-bound paths.
const SAMPLES: u32 = 5;
/// Samples of each image-to-deploy setup, side by side.
const IMAGE_SAMPLES: u32 = 10;
const POLL_SAMPLES: u32 = 3;
const ARTIFACT_SAMPLES: u32 = 3;
/// Samples of the Flux defaults' image-to-deploy path (each about 5.5 minutes on average, so the
/// whole run takes about an hour); FLUXTUNE_BENCH_FLUX_DEFAULTS=0 leaves them out.
const DEFAULTS_SAMPLES: u32 = 10;
/// A liveness bound for a sample that waits on a 1-minute interval.
const ONE_INTERVAL: Duration = Duration::from_secs(150);

fn median_worst(samples: &[Duration]) -> (Duration, Duration) {
    let mut s = samples.to_vec();
    s.sort();
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2
    };
    (median, *s.last().unwrap())
}

fn list(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| secs(*d))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pause of 0 to `max`, so samples of an interval-bound path do not land at the same phase of
/// the interval every time (a push right after a poll would always wait a whole interval).
fn random_pause(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mixed = (nanos ^ (nanos >> 17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
    Duration::from_millis((mixed % max.as_millis().max(1)) as u64)
}

async fn budget(client: &Client, ns: &str, name: &str) -> (String, String) {
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), ns);
    let b = eventually(&format!("{name}'s status.latencyBudget"), SETUP, || async {
        api.get_opt(name).await.ok()??.status?.latency_budget
    })
    .await;
    let fmt = |r: &fluxtune::api::LatencyRange| format!("{} / {}", r.expected, r.worst);
    (fmt(&b.commit_to_deploy), fmt(&b.image_to_deploy))
}

fn row(measure: &str, samples: &[Duration], budget: &str) {
    let (median, worst) = median_worst(samples);
    println!(
        "| {measure} | {} | {} | {} | {budget} | {} |",
        samples.len(),
        secs(median),
        secs(worst),
        list(samples)
    );
}

async fn wait_revision(client: &Client, ns: &str, revision: u32, timeout: Duration) {
    let want = revision.to_string();
    eventually(&format!("revision {revision} applied"), timeout, || async {
        (config_value(client, ns, "cluster1-config", "revision")
            .await
            .as_deref()
            == Some(want.as_str()))
        .then_some(())
    })
    .await;
}

/// Measure 1: Commit to deploy: a push changes cluster1's ConfigMap; the time until the cluster has it.
async fn commit_to_deploy(client: &Client, lp: &Loop, class: &str) -> (Vec<Duration>, String) {
    let webhook = class == "Webhook";
    let fleet = Fleet::new(
        client,
        lp,
        &format!("bench-commit-{}", class.to_lowercase()),
        3,
        false,
    )
    .await;
    let mut spec = json!({"pollingClass": class});
    if webhook {
        spec["webhook"] = json!({"provider": "github", "secretRef": {"name": "hook"}});
    }
    let _op = fleet.tune(client, lp, spec).await;
    let (ns, repo) = (&fleet.ns, &fleet.repo);
    wait_revision(client, ns, 1, ONE_INTERVAL).await;
    let (budget, _) = budget(client, ns, "cluster1").await;

    let (samples, timeout) = if webhook {
        (SAMPLES, Duration::from_secs(30))
    } else {
        (POLL_SAMPLES, ONE_INTERVAL)
    };
    let mut taken = Vec::new();
    for i in 1..=samples {
        let pause = if webhook {
            Duration::from_millis(500)
        } else {
            random_pause(Duration::from_secs(60))
        };
        tokio::time::sleep(pause).await;
        let t0 = Instant::now();
        repo.push_change("cluster1/configmap.yaml", |t| {
            t.replace(
                &format!("revision: \"{i}\""),
                &format!("revision: \"{}\"", i + 1),
            )
        });
        wait_revision(client, ns, i + 1, timeout).await;
        taken.push(t0.elapsed());
        eprintln!(
            "commit to deploy ({class}) sample {i}: {}",
            secs(t0.elapsed())
        );
    }
    (taken, budget)
}

/// The backstop of the lost-webhook rows: 1h scaled down to 5m, so a sample takes minutes.
const LOST_BACKSTOP: Duration = Duration::from_secs(300);
const LOST_ROUNDS: u32 = 2;
const AFTER_FALLBACK_SAMPLES: u32 = 2;

/// Waits until cluster1's GitRepository polls every `want`.
async fn interval_becomes(client: &Client, ns: &str, want: &str, timeout: Duration) {
    eventually(
        &format!("the GitRepository's interval {want}"),
        timeout,
        || async {
            let now = field(
                client,
                ns,
                FluxKind::GitRepository,
                "cluster1",
                "/spec/interval",
            )
            .await;
            (now.as_deref() == Some(want)).then_some(())
        },
    )
    .await
}

/// Measure 1b: commit to deploy with every Git webhook lost (Webhook class, backstop 5m): the
/// first push after the loss waits for the backstop poll, which notices the missed webhook and
/// engages the fallback (1m); the next pushes wait at most that. Each round ends by restoring the
/// webhook for one push (the backstop returns) and losing it again. Returns the samples before and
/// after the fallback, and the budget's webhookLost before and after.
async fn commit_to_deploy_webhooks_lost(
    client: &Client,
    lp: &Loop,
) -> (Vec<Duration>, Vec<Duration>, String, String) {
    let fleet = Fleet::new(client, lp, "bench-commit-lost", 3, false).await;
    let spec = json!({
        "pollingClass": "Webhook",
        "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
        "intervals": {"source": "5m"},
    });
    let _op = fleet.tune(client, lp, spec).await;
    let (ns, repo) = (&fleet.ns, &fleet.repo);
    wait_revision(client, ns, 1, ONE_INTERVAL).await;
    let hook = webhook_url(client, lp, ns, "cluster1").await;
    let lost_budget = || async {
        let api: Api<FluxProfile> = Api::namespaced(client.clone(), ns);
        api.get("cluster1")
            .await
            .ok()
            .and_then(|p| p.status?.latency_budget?.webhook_lost)
            .unwrap_or_default()
    };
    let before_budget = lost_budget().await;
    let mut after_budget = String::new();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut revision = 1;
    let push = |revision: &mut u32| {
        repo.push_change("cluster1/configmap.yaml", |t| {
            t.replace(
                &format!("revision: \"{revision}\""),
                &format!("revision: \"{}\"", *revision + 1),
            )
        });
        *revision += 1;
        *revision
    };
    for round in 1..=LOST_ROUNDS {
        repo.remove_webhooks();
        // A random phase against the backstop poll (the last webhook reset its timer).
        tokio::time::sleep(random_pause(LOST_BACKSTOP)).await;
        let t0 = Instant::now();
        let r = push(&mut revision);
        wait_revision(client, ns, r, LOST_BACKSTOP * 2).await;
        before.push(t0.elapsed());
        eprintln!(
            "webhooks lost, round {round}, before the fallback: {}",
            secs(t0.elapsed())
        );
        // The fallback is on once the interval is: the missed webhook was judged.
        interval_becomes(client, ns, "1m", SETUP).await;
        after_budget = lost_budget().await;
        for i in 1..=AFTER_FALLBACK_SAMPLES {
            tokio::time::sleep(random_pause(Duration::from_secs(60))).await;
            let t0 = Instant::now();
            let r = push(&mut revision);
            wait_revision(client, ns, r, ONE_INTERVAL).await;
            after.push(t0.elapsed());
            eprintln!(
                "webhooks lost, round {round}, after the fallback {i}: {}",
                secs(t0.elapsed())
            );
        }
        // Back for one push: the webhook delivers it and the backstop returns.
        repo.add_webhook(&hook, flux_support::TOKEN);
        let r = push(&mut revision);
        wait_revision(client, ns, r, ONE_INTERVAL).await;
        interval_becomes(client, ns, "5m", ONE_INTERVAL).await;
    }
    (before, after, before_budget, after_budget)
}

/// Measure 2: Image to deploy with a profile: a new tag in the registry, no scan requested; the
/// time until the cluster's Deployment runs it. `spec` is the profile's tuning.
async fn image_to_deploy(
    client: &Client,
    lp: &Loop,
    test: &str,
    spec: Value,
    scan: Duration,
) -> (Vec<ImageSample>, String) {
    let fleet = Fleet::new(client, lp, test, 3, true).await;
    let (ns, image) = (&fleet.ns, &fleet.image);
    let mut spec = spec;
    spec.as_object_mut().unwrap().extend(image_spec(image));
    let _op = fleet.tune(client, lp, spec).await;
    let (_, budget) = budget(client, ns, "cluster1").await;
    let samples = image_samples(client, lp, ns, image, IMAGE_SAMPLES, scan, test).await;
    (samples, budget)
}

/// Measure 2 with a registry that sends webhooks: CNCF distribution notifies the profile's
/// registry Receiver (harbor type, static Authorization header); the scan interval is the 10m
/// backstop. Pushes follow each other after up to 5 s.
async fn image_to_deploy_registry_webhook(
    client: &Client,
    lp: &Loop,
) -> (Vec<ImageSample>, String) {
    let addr = flux_support::free_addr();
    let fleet = Fleet::on_registry(client, lp, "bench-registry-hook", 3, &addr).await;
    let (ns, image) = (&fleet.ns, &fleet.image);
    support::webhook_secret(client, ns, "registry-hook", "registry-token").await;
    let mut spec = json!({
        "pollingClass": "Webhook",
        "webhook": {"provider": "github", "secretRef": {"name": "hook"}},
        "registryWebhook": {"provider": "harbor", "secretRef": {"name": "registry-hook"},
                            "baseURL": format!("http://{}", lp.receiver)},
    });
    spec.as_object_mut().unwrap().extend(image_spec(image));
    let _op = fleet.tune(client, lp, spec).await;
    let hook = flux_support::registry_webhook_url(client, ns).await;
    let _registry = flux_support::Distribution::start(lp, &addr, &hook, "registry-token");
    lp.push_image(image, "1.0.0");
    let (_, budget) = budget(client, ns, "cluster1").await;
    let samples = image_samples(
        client,
        lp,
        ns,
        image,
        IMAGE_SAMPLES,
        Duration::from_secs(5),
        "registry webhook",
    )
    .await;
    (samples, budget)
}

/// Measure 2, untuned: the Flux defaults as users get them from `flux bootstrap` and the image
/// automation guide (GitRepository 1m, Kustomization 10m, ImageRepository 5m,
/// ImageUpdateAutomation 30m, no Receiver), hand-written, not rendered by fluxtune.
async fn image_to_deploy_defaults(client: &Client, lp: &Loop) -> Vec<ImageSample> {
    let fleet = Fleet::new(client, lp, "bench-defaults", 3, true).await;
    let (ns, image, repo) = (&fleet.ns, &fleet.image, &fleet.repo);
    let meta = |name: &str| json!({"name": name, "namespace": ns});
    for object in [
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": meta("flux-system"),
               "spec": {"interval": "1m0s", "url": repo.url, "ref": {"branch": "main"}}}),
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": meta("cluster1"),
               "spec": {"interval": "10m0s", "path": "./cluster1", "prune": true, "targetNamespace": ns,
                        "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}),
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository", "metadata": meta("cluster1-app"),
               "spec": {"image": image, "interval": "5m0s"}}),
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": meta("cluster1-app"),
               "spec": {"imageRepositoryRef": {"name": "cluster1-app"}, "policy": {"semver": {"range": ">=1.0.0"}}}}),
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageUpdateAutomation", "metadata": meta("flux-system"),
               "spec": {"interval": "30m0s", "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                        "git": {"checkout": {"ref": {"branch": "main"}},
                                "commit": {"author": {"name": "fluxcdbot", "email": "fluxcdbot@users.noreply.github.com"},
                                           "messageTemplate": "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}"},
                                "push": {"branch": "main"}},
                        "update": {"path": "./cluster1", "strategy": "Setters"}}}),
    ] {
        support::apply_as(client, "bench", &object).await.unwrap();
    }
    image_samples(
        client,
        lp,
        ns,
        image,
        DEFAULTS_SAMPLES,
        Duration::from_secs(300),
        "Flux defaults",
    )
    .await
}

/// One image-to-deploy sample, split where the registry scan first shows the new tag: before it,
/// the wait for the scan interval; after it, Flux's processing (policy, automation commit and push,
/// fetch, apply), the part fluxtune's budget calls `p`.
#[derive(Clone, Copy)]
struct ImageSample {
    total: Duration,
    processing: Duration,
}

/// Once 1.0.0 is deployed, pushes `samples` new tags of IMAGE (1.0.1, 1.0.2, ...), each after a random pause of up to one
/// scan interval so that pushes land at every phase of the scan, and times each until the
/// Deployment `app` runs it. The ImageRepository is `cluster1-app` in both setups.
async fn image_samples(
    client: &Client,
    lp: &Loop,
    ns: &str,
    image: &str,
    samples: u32,
    scan_interval: Duration,
    setup: &str,
) -> Vec<ImageSample> {
    let tags_seen = || {
        field_value(
            client,
            ns,
            FluxKind::ImageRepository,
            "cluster1-app",
            "/status/lastScanResult/tagCount",
        )
    };
    let first = format!("{image}:1.0.0");
    eventually(
        &format!("the first apply ({setup})"),
        ONE_INTERVAL,
        || async {
            (deployed_image(client, ns).await.as_deref() == Some(first.as_str())).then_some(())
        },
    )
    .await;
    eventually(
        &format!("ImagePolicy at 1.0.0 ({setup})"),
        ONE_INTERVAL,
        || {
            field(
                client,
                ns,
                FluxKind::ImagePolicy,
                "cluster1-app",
                "/status/latestRef/tag",
            )
        },
    )
    .await;
    let mut taken = Vec::new();
    for i in 1..=samples {
        tokio::time::sleep(random_pause(scan_interval)).await;
        let before = tags_seen().await.and_then(|v| v.as_u64());
        let tag = format!("1.0.{i}");
        let want = format!("{image}:{tag}");
        let t0 = Instant::now();
        lp.crane(&["tag", &first, &tag]);
        let mut scanned = None;
        let deadline = t0 + scan_interval * 3 + ONE_INTERVAL;
        let applied = loop {
            assert!(Instant::now() < deadline, "{want} not applied ({setup})");
            let now = Instant::now();
            if scanned.is_none() && tags_seen().await.and_then(|v| v.as_u64()) > before {
                scanned = Some(now);
            }
            if deployed_image(client, ns).await.as_deref() == Some(want.as_str()) {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let scanned = scanned.unwrap_or(applied);
        let sample = ImageSample {
            total: applied - t0,
            processing: applied - scanned,
        };
        eprintln!(
            "image to deploy ({setup}) sample {i}: {} (scan wait {}, processing {})",
            secs(sample.total),
            secs(scanned - t0),
            secs(sample.processing)
        );
        taken.push(sample);
    }
    taken
}

fn image_rows(setup: &str, samples: &[ImageSample], budget: &str) {
    let total: Vec<_> = samples.iter().map(|s| s.total).collect();
    let processing: Vec<_> = samples.iter().map(|s| s.processing).collect();
    row(&format!("image to deploy, {setup}"), &total, budget);
    row(
        &format!("  of which processing (scan saw the tag -> Deployment runs it), {setup}"),
        &processing,
        "-",
    );
}

/// Deterministic filler, different per file and line, so gzip does not fold all clusters into one.
fn hex(seed: &str, n: usize) -> String {
    let mut out = String::new();
    let mut i = 0u32;
    while out.len() < n {
        let d = Sha256::digest(format!("{seed}/{i}").as_bytes());
        out.extend(d.iter().map(|b| format!("{b:02x}")));
        i += 1;
    }
    out.truncate(n);
    out
}

/// Pads one manifest to a realistic size: labels and annotations as CI and policy tooling leave
/// them, an env list and resources on Deployments, more keys on ConfigMaps.
fn pad_manifest(path: &Path, rel: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let team = ["payments", "checkout", "search", "platform"][rel.len() % 4];
    let labels = format!(
        "    app.kubernetes.io/name: app\n    app.kubernetes.io/part-of: acme-shop\n    app.kubernetes.io/version: 1.0.0\n    app.kubernetes.io/component: backend\n    acme.io/team: {team}\n    acme.io/cost-center: cc-{}\n    acme.io/environment: production\n    acme.io/data-classification: internal\n",
        &hex(rel, 6)
    );
    let annotations = format!(
        "    acme.io/owner: {team}-oncall@acme.example.com\n    acme.io/runbook: https://runbooks.acme.example.com/{team}/{rel}\n    acme.io/repository: https://git.example.com/acme/kubeconf/blob/main/{rel}\n    acme.io/source-commit: {}\n    acme.io/config-checksum: sha256:{}\n    acme.io/change-ticket: CHG-{}\n    acme.io/description: >-\n      Generated by the platform team's templates for {rel}; edit the template, not this file.\n      See https://docs.acme.example.com/platform/kubeconf for the conventions this follows.\n    prometheus.io/scrape: \"true\"\n    prometheus.io/port: \"9090\"\n    policies.kyverno.io/last-applied-patches: require-labels.acme.io: added /metadata/labels/acme.io~1team\n",
        hex(&format!("{rel}/commit"), 40),
        hex(&format!("{rel}/checksum"), 64),
        &hex(&format!("{rel}/ticket"), 8)
    );
    let mut out = if text.contains("\nmetadata:\n  labels:\n") {
        text.replacen(
            "\nmetadata:\n  labels:\n",
            &format!("\nmetadata:\n  annotations:\n{annotations}  labels:\n{labels}"),
            1,
        )
    } else {
        text.replacen(
            "\nmetadata:\n",
            &format!("\nmetadata:\n  annotations:\n{annotations}  labels:\n{labels}"),
            1,
        )
    };
    if out.contains("\n          ports:\n") {
        let mut env = String::from("          env:\n");
        for (i, name) in [
            "LOG_LEVEL",
            "LOG_FORMAT",
            "HTTP_PORT",
            "METRICS_PORT",
            "DB_HOST",
            "DB_PORT",
            "DB_NAME",
            "DB_POOL_SIZE",
            "REDIS_URL",
            "KAFKA_BROKERS",
            "KAFKA_TOPIC",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_SERVICE_NAME",
            "FEATURE_NEW_CHECKOUT",
            "FEATURE_RECOMMENDATIONS",
            "CACHE_TTL",
            "REQUEST_TIMEOUT",
            "MAX_CONNECTIONS",
            "REGION",
            "TENANT_ID",
        ]
        .iter()
        .enumerate()
        {
            env.push_str(&format!(
                "            - name: {name}\n              value: \"{}\"\n",
                hex(&format!("{rel}/{name}"), 8 + i % 16)
            ));
        }
        env.push_str("          resources:\n            requests:\n              cpu: 100m\n              memory: 256Mi\n            limits:\n              memory: 512Mi\n");
        out = out.replacen(
            "\n          ports:\n",
            &format!("\n{env}          ports:\n"),
            1,
        );
    }
    if out.contains("\ndata:\n") {
        let mut data = String::from("\ndata:\n");
        for key in [
            "feature.flags",
            "upstream.endpoints",
            "rate.limits",
            "tls.ciphers",
        ] {
            data.push_str(&format!(
                "  {key}: \"{}\"\n",
                hex(&format!("{rel}/{key}"), 96)
            ));
        }
        out = out.replacen("\ndata:\n", &data, 1);
    }
    std::fs::write(path, out).unwrap();
}

fn pad_tree(root: &Path, dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if rel.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            pad_tree(root, &path);
        } else if rel.ends_with(".yaml") && !rel.ends_with("kustomization.yaml") {
            pad_manifest(&path, &rel);
        }
    }
}

/// Bytes of the tarball, files in it, bytes unpacked.
fn artifact_stats(url: &str) -> (u64, usize, u64) {
    let tarball = std::env::temp_dir().join(format!("fluxtune-bench-{}.tgz", std::process::id()));
    run(Command::new("curl").args(["-sSfo"]).arg(&tarball).arg(url));
    let bytes = std::fs::metadata(&tarball).unwrap().len();
    let listing = run(Command::new("tar").arg("tvzf").arg(&tarball));
    let _ = std::fs::remove_file(&tarball);
    let files: Vec<u64> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    (bytes, files.len(), files.iter().sum())
}

struct ArtifactRow {
    bytes: u64,
    files: usize,
    unpacked: u64,
    ready: Vec<Duration>,
}

/// Measure 3: cluster1 of a padded 50-cluster monorepo: fluxtune's GitRepository (ignore + sparse
/// checkout, copied from what the operator rendered) against a plain one, each created anew and
/// timed from creation to Ready at the head commit.
async fn artifacts(client: &Client, lp: &Loop) -> (ArtifactRow, ArtifactRow, u64, usize) {
    let fleet = Fleet::new(client, lp, "bench-artifact", 50, false).await;
    let (ns, repo) = (&fleet.ns, &fleet.repo);
    pad_tree(&repo.work, &repo.work);
    git(&repo.work, &["commit", "-qam", "realistic manifests"]);
    git(&repo.work, &["push", "-q", &repo.url, "main"]);
    let head = repo.head();
    let sizes = run(Command::new("bash").arg("-c").arg(
        "cd \"$0\" && git ls-files | wc -l && git ls-files -z | xargs -0 cat | wc -c && wc -c < cluster1/deployment.yaml",
    ).arg(&repo.work));
    let mut it = sizes.split_whitespace().map(|s| s.parse::<u64>().unwrap());
    let (repo_files, repo_bytes, deployment) =
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    eprintln!(
        "padded monorepo: {repo_files} files, {repo_bytes} bytes; cluster1/deployment.yaml {deployment} bytes"
    );

    let op = fleet
        .tune(client, lp, json!({"pollingClass": "Poll"}))
        .await;
    let rendered = eventually("fluxtune's GitRepository", SETUP, || async {
        let obj = get(client, ns, FluxKind::GitRepository, "cluster1").await?;
        obj.data.get("spec").cloned()
    })
    .await;
    assert!(rendered.get("ignore").is_some() && rendered.get("sparseCheckout").is_some());
    let plain =
        json!({"interval": rendered["interval"], "url": repo.url, "ref": {"branch": "main"}});
    // Suspend fluxtune's own: only the copies below reconcile while they are timed.
    drop(op);
    let api = support::dynamic_api(client, ns, FluxKind::GitRepository);
    let _ = api.delete("cluster1", &DeleteParams::default()).await;

    let mut rows = Vec::new();
    for (kind, spec) in [("tuned", &rendered), ("untuned", &plain)] {
        let mut ready = Vec::new();
        let mut url = String::new();
        for i in 1..=ARTIFACT_SAMPLES {
            let name = format!("{kind}-{i}");
            let obj: kube::api::DynamicObject = serde_json::from_value(json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            }))
            .unwrap();
            let t0 = Instant::now();
            api.create(&PostParams::default(), &obj).await.unwrap();
            url = eventually(&format!("{name} Ready at {head}"), SETUP, || async {
                let o = get(client, ns, FluxKind::GitRepository, &name).await?;
                let v: Value = serde_json::to_value(&o).ok()?;
                let ready = v
                    .pointer("/status/conditions")?
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                let rev = v.pointer("/status/artifact/revision")?.as_str()?;
                (ready && rev.ends_with(&head)).then(|| {
                    v.pointer("/status/artifact/url")?
                        .as_str()
                        .map(String::from)
                })?
            })
            .await;
            ready.push(t0.elapsed());
            eprintln!("{name}: Ready after {}", secs(t0.elapsed()));
        }
        let (bytes, files, unpacked) = artifact_stats(&url);
        rows.push(ArtifactRow {
            bytes,
            files,
            unpacked,
            ready,
        });
    }
    let untuned = rows.pop().unwrap();
    let tuned = rows.pop().unwrap();
    (tuned, untuned, repo_bytes, repo_files as usize)
}

#[tokio::main]
async fn main() {
    let lp = Loop::from_env();
    let client = support::client().await;

    println!(
        "| measure | samples | median | worst | fluxtune's budget (expected / worst) | all samples |"
    );
    println!("|---|---|---|---|---|---|");
    let (tuned, budget_tuned) = commit_to_deploy(&client, &lp, "Webhook").await;
    row(
        "commit to deploy, tuned (Webhook: Receiver, GitRepository 1h)",
        &tuned,
        &budget_tuned,
    );

    let (t, u, repo_bytes, repo_files) = artifacts(&client, &lp).await;
    for (name, r) in [
        ("tuned (ignore + sparseCheckout)", &t),
        ("untuned (plain GitRepository)", &u),
    ] {
        row(
            &format!(
                "cluster1 GitRepository creation to Ready, {name}: artifact {} bytes gzipped, {} files, {} bytes unpacked (repository: {repo_files} files, {repo_bytes} bytes)",
                r.bytes, r.files, r.unpacked
            ),
            &r.ready,
            "-",
        );
    }

    // The image paths side by side (and the Poll commit path): rows print as each finishes. The
    // Flux defaults wait on a 5-minute scan and take about an hour.
    let with_defaults = std::env::var("FLUXTUNE_BENCH_FLUX_DEFAULTS").map_or(true, |v| v != "0");
    tokio::join!(
        async {
            let (image, budget) = image_to_deploy_registry_webhook(&client, &lp).await;
            image_rows(
                "registry webhook (CNCF distribution -> harbor Receiver; imageScan 10m backstop)",
                &image,
                &budget,
            );
        },
        async {
            let (image, budget) = image_to_deploy(
                &client,
                &lp,
                "bench-image-poll",
                json!({"pollingClass": "Poll"}),
                Duration::from_secs(60),
            )
            .await;
            image_rows(
                "Poll class with fluxtune's push hand-on (imageScan 1m, GitRepository 1m, no Receiver)",
                &image,
                &budget,
            );
        },
        async {
            let (image, budget) = image_to_deploy(
                &client,
                &lp,
                "bench-image",
                json!({"pollingClass": "Webhook",
                       "webhook": {"provider": "github", "secretRef": {"name": "hook"}}}),
                Duration::from_secs(60),
            )
            .await;
            image_rows(
                "tuned (Webhook, imageScan 1m, no scan requested)",
                &image,
                &budget,
            );
        },
        async {
            let (before, after, before_budget, after_budget) =
                commit_to_deploy_webhooks_lost(&client, &lp).await;
            row(
                "commit to deploy, every Git webhook lost, before the fallback (Webhook, GitRepository backstop 5m: 1h scaled down)",
                &before,
                &format!("webhookLost {before_budget}"),
            );
            row(
                "commit to deploy, every Git webhook lost, after the fallback engaged (GitRepository 1m)",
                &after,
                &format!("webhookLost {after_budget}"),
            );
        },
        async {
            let (poll, budget) = commit_to_deploy(&client, &lp, "Poll").await;
            row(
                "commit to deploy, polling (Poll: GitRepository 1m, no Receiver)",
                &poll,
                &budget,
            );
        },
        async {
            if with_defaults {
                let defaults = image_to_deploy_defaults(&client, &lp).await;
                image_rows(
                    "Flux defaults (GitRepository 1m, Kustomization 10m, ImageRepository 5m, ImageUpdateAutomation 30m, no Receiver)",
                    &defaults,
                    "-",
                );
            }
        }
    );
}

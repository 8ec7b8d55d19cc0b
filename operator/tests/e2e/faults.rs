//! The fault tier: components of a throwaway control plane (never the shared one) killed and
//! restarted under a running operator. Each scenario asserts no lost or duplicated child (every
//! profile's Flux objects exist once, as rendered, owned by the profile's UID, and in its
//! inventory), no crash loop (the operator process still runs, or was restarted once by the test),
//! and no write storm (a quiet period after convergence with zero writes on the operator's own
//! request counter). Run by e2e/faults-check.sh, one test at a time; docs/faults.md has the numbers.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use fluxtune::{api::FluxProfile, capabilities, flux::FluxKind, render};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    operator::{TOKEN, apply_profile, children, condition, profile, webhook_spec},
    support::{self, ControlPlane, Operator, PATIENCE, Proxy, eventually},
};

/// The scenarios break the control plane they share: one at a time, whatever --test-threads says.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the operator must write nothing once converged.
const QUIET: Duration = Duration::from_secs(10);
/// A liveness bound for convergence after a fault: a restarted kube-apiserver takes 10-20 s on two
/// cores, and reconciles that failed meanwhile wait out their backoff.
const CONVERGE: Duration = Duration::from_secs(240);

async fn setup(test: &str) -> (Client, String) {
    let client = support::client().await;
    let ns = support::namespace(&client, test).await;
    support::webhook_secret(&client, &ns, "hook", TOKEN).await;
    (client, ns)
}

/// `count` profiles p0.. (eight Flux objects each), applied as fast as the test can.
async fn apply_profiles(client: &Client, ns: &str, range: std::ops::Range<usize>) {
    for i in range {
        apply_profile(client, &named(ns, i, webhook_spec())).await;
    }
}

fn named(ns: &str, i: usize, spec: Value) -> Value {
    let mut doc = profile(ns, spec);
    doc["metadata"]["name"] = json!(format!("p{i}"));
    doc["spec"]["cluster"]["name"] = json!(format!("cluster{i}"));
    doc
}

/// Profiles whose current generation is applied (Applied=True) and that wait for no retry: a
/// reconcile that failed after its children were written (a transport error while the API server
/// went away) is `Reconciling` (`ProgressingWithRetry`) and writes its status again on its backoff,
/// which is no storm and must not fall into the quiet period.
async fn applied(client: &Client, ns: &str) -> usize {
    let api: Api<FluxProfile> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                    && condition(p, "Applied") == Some(("True", "ReconciliationSucceeded"))
                    && condition(p, "Reconciling") != Some(("True", "ProgressingWithRetry"))
            })
            .count(),
        // The API server is down: nothing to count.
        Err(_) => 0,
    }
}

async fn wait_applied_count(client: &Client, ns: &str, at_least: usize, within: Duration) {
    eventually(
        &format!("{at_least} profiles applied in {ns}"),
        within,
        || async { (applied(client, ns).await >= at_least).then_some(()) },
    )
    .await;
}

/// Every profile in `ns` has exactly its rendered Flux objects (the specs as rendered, with the
/// capabilities of the installed CRDs), each owned by the profile's UID and listed in its
/// inventory, and there is no other Flux object in `ns`: nothing lost, nothing duplicated, nothing
/// left of a deleted profile. Waits until it holds (the garbage collector is asynchronous), then
/// returns the number of objects.
async fn exactly_as_rendered(client: &Client, ns: &str) -> usize {
    let caps = capabilities::detect(client)
        .await
        .expect("the Flux CRDs are readable")
        .caps;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match compare(client, ns, &caps).await {
            Ok(n) => return n,
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn compare(client: &Client, ns: &str, caps: &render::Capabilities) -> Result<usize, String> {
    let profiles = Api::<FluxProfile>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut want: BTreeMap<(String, String), (String, Value)> = BTreeMap::new();
    for p in &profiles {
        let uid = p.uid().unwrap();
        let rendered = render::render(p, caps);
        let inventory: BTreeSet<(String, String)> = p
            .status
            .iter()
            .flat_map(|s| &s.inventory)
            .map(|e| (e.kind.clone(), e.name.clone()))
            .collect();
        let mut names = BTreeSet::new();
        for object in &rendered.objects {
            let v = serde_json::to_value(object).unwrap();
            let key = (
                v["kind"].as_str().unwrap().to_string(),
                v["metadata"]["name"].as_str().unwrap().to_string(),
            );
            names.insert(key.clone());
            if want.insert(key.clone(), (uid.clone(), v)).is_some() {
                return Err(format!("two profiles render {key:?}"));
            }
        }
        if inventory != names {
            return Err(format!(
                "profile {}: inventory {inventory:?} is not what it renders {names:?}",
                p.name_any()
            ));
        }
    }
    let have = children(client, ns).await;
    let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).collect();
    if !extra.is_empty() || !missing.is_empty() {
        return Err(format!(
            "Flux objects in {ns}: {} missing {missing:?}, {} not rendered by any profile {extra:?}",
            missing.len(),
            extra.len()
        ));
    }
    for (key, (uid, rendered)) in &want {
        let object = serde_json::to_value(&have[key]).unwrap();
        let owners: Vec<_> = have[key]
            .owner_references()
            .iter()
            .filter(|o| o.controller == Some(true))
            .map(|o| o.uid.clone())
            .collect();
        if owners != [uid.clone()] {
            return Err(format!("{key:?}: controllers {owners:?}, want [{uid}]"));
        }
        for part in ["spec", "metadata"] {
            let want = if part == "metadata" {
                json!({"labels": rendered["metadata"]["labels"]})
            } else {
                rendered[part].clone()
            };
            if !subset(&want, &object[part]) {
                return Err(format!(
                    "{key:?}: {part} is not as rendered:\nrendered {want}\nstored {}",
                    object[part]
                ));
            }
        }
    }
    Ok(want.len())
}

/// Every field of `want` has the same value in `have` (which may hold defaults besides).
fn subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| v.is_null() || h.get(k).is_some_and(|hv| subset(v, hv))),
        _ => want == have,
    }
}

async fn writes(op: &Operator) -> u64 {
    let mut sum = 0;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        sum += support::metric_opt(
            &op.metrics().await,
            "fluxtune_kube_requests_total",
            &format!("method=\"{method}\""),
        )
        .unwrap_or(0);
    }
    // Read, so a zero below is a zero that was read.
    support::metric(&op.metrics().await, "fluxtune_reconciles_total", "");
    sum
}

/// No write storm: once converged, and once the writes of the last reconciles (their status and
/// Events) have settled (no write for 3 s; a storm never settles and times out), the operator
/// writes nothing for [`QUIET`].
async fn quiet(op: &Operator) {
    caches_current(op).await;
    let settle = Instant::now();
    let mut last = writes(op).await;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        assert!(
            settle.elapsed() < CONVERGE,
            "the operator's writes never settled:\n{}",
            op.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = writes(op).await;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    let before = writes(op).await;
    tokio::time::sleep(QUIET).await;
    let after = writes(op).await;
    assert_eq!(
        after - before,
        0,
        "the operator wrote {} times in a {QUIET:?} quiet period after converging:\n{}",
        after - before,
        op.metrics().await
    );
}

/// The operator's caches are current: every watch answered 410 Gone (its resourceVersion gone
/// with a restarted API server's watch cache, or compacted away) has listed again since, as it
/// logs (`listed_again` in controller.rs). Each watch retries on its own backoff, grown during the
/// fault; until its list, a profile's status computed from a cache lacking the objects created
/// during the fault ("not reported yet") is corrected by the reconciles the list triggers: one
/// status write per such profile, not a storm.
async fn caches_current(op: &Operator) {
    eventually(
        "every watch answered 410 Gone listed again",
        CONVERGE,
        || async {
            let mut relisting = BTreeSet::new();
            for line in op.logs().lines() {
                let Some(watch) = line
                    .split("watch=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                else {
                    continue;
                };
                if line.contains("watch error") && line.contains("Expired") {
                    relisting.insert(watch.to_string());
                } else if line.contains("watch listed again") {
                    relisting.remove(watch);
                }
            }
            relisting.is_empty().then_some(())
        },
    )
    .await;
}

/// No crash loop: the same process has run throughout.
fn still_running(op: &mut Operator) {
    assert!(op.is_running(), "the operator exited:\n{}", op.logs());
}

fn measured(what: &str, took: Duration) {
    println!("measured: {what}: {:.1} s", took.as_secs_f64());
}

#[tokio::test]
async fn kube_apiserver_killed_while_100_profiles_are_applied() {
    const PROFILES: usize = 100;
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::from_env();
    let (client, ns) = setup("apiserver-kill").await;
    let mut op = Operator::start(&ns, "op-a");
    op.wait_ready().await;
    let start = Instant::now();
    apply_profiles(&client, &ns, 0..PROFILES).await;
    // In the middle of applying: some profiles done, most not.
    wait_applied_count(&client, &ns, 10, CONVERGE).await;
    let before_kill = applied(&client, &ns).await;
    cp.kill("apiserver").await;
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cp.start("apiserver").await;
    let back = Instant::now();
    println!(
        "measured: kube-apiserver killed with {before_kill} of {PROFILES} profiles applied just before, down {:.1} s (2 s, then its start)",
        (back - killed).as_secs_f64()
    );
    wait_applied_count(&client, &ns, PROFILES, CONVERGE).await;
    measured(
        "all 100 applied after the API server was back",
        back.elapsed(),
    );
    measured("all 100 applied from the first apply", start.elapsed());
    assert_eq!(exactly_as_rendered(&client, &ns).await, PROFILES * 8);
    still_running(&mut op);
    quiet(&op).await;
    assert_eq!(exactly_as_rendered(&client, &ns).await, PROFILES * 8);
    still_running(&mut op);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn etcd_killed_while_profiles_are_applied() {
    const PROFILES: usize = 30;
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::from_env();
    let (client, ns) = setup("etcd-kill").await;
    let mut op = Operator::start(&ns, "op-a");
    op.wait_ready().await;
    apply_profiles(&client, &ns, 0..PROFILES).await;
    wait_applied_count(&client, &ns, 5, CONVERGE).await;
    let before_kill = applied(&client, &ns).await;
    cp.kill("etcd").await;
    // The API server stays up and answers errors meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cp.start("etcd").await;
    let back = Instant::now();
    println!("measured: etcd killed with {before_kill} of {PROFILES} profiles applied just before");
    wait_applied_count(&client, &ns, PROFILES, CONVERGE).await;
    measured("30 profiles applied after etcd was back", back.elapsed());
    assert_eq!(exactly_as_rendered(&client, &ns).await, PROFILES * 8);
    still_running(&mut op);
    quiet(&op).await;
    still_running(&mut op);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn deletions_while_the_watches_were_cut_are_noticed_after_a_410_re_list() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::from_env();
    let (client, ns) = setup("relist").await;
    // The operator reaches the API server through a proxy the test cuts. (SIGSTOP is not enough:
    // the events sent meanwhile wait in the stopped process's socket buffers and arrive at
    // SIGCONT, before the connection's end, so nothing is re-listed.)
    let proxy = Proxy::start(support::operator_kubeconfig_path(), &ns).await;
    // Pages of two: the re-list comes in pages, as a fleet's does in pages of a hundred, and
    // queued reconciles run between them, before the cache swaps the whole list in. The changed
    // and the created profile below must be reconciled from the new list, not the old cache.
    let mut op = Operator::start_as(
        proxy.kubeconfig.clone(),
        &ns,
        "op-a",
        &["--list-page-size", "2"],
    );
    op.wait_ready().await;
    apply_profiles(&client, &ns, 0..5).await;
    wait_applied_count(&client, &ns, 5, CONVERGE).await;
    let series = |i: usize| format!("profile=\"p{i}\"");
    for i in 0..5 {
        eventually("every profile's metric series", PATIENCE, || async {
            support::metric_opt(
                &op.metrics().await,
                "fluxtune_latency_budget_seconds",
                &series(i),
            )
            .map(|_| ())
        })
        .await;
    }
    let kustomizations = support::dynamic_api(&client, &ns, FluxKind::Kustomization);
    let old_uid = kustomizations.get("p2").await.unwrap().uid();

    // Every watch connection of the operator dropped, and no new one gets through.
    proxy.cut();
    let profiles: Api<FluxProfile> = Api::namespaced(client.clone(), &ns);
    for gone in ["p0", "p1"] {
        profiles
            .delete(gone, &DeleteParams::default())
            .await
            .unwrap();
    }
    kustomizations
        .delete("p2", &DeleteParams::default())
        .await
        .unwrap();
    let mut retuned = webhook_spec();
    retuned["pollingClass"] = json!("Poll");
    apply_profile(&client, &named(&ns, 3, retuned)).await;
    apply_profile(&client, &named(&ns, 5, webhook_spec())).await;
    // Nothing keeps the history the operator's watches would resume from: etcd is compacted at
    // its current revision, and the API server restarts (dropping every watch connection), so its
    // watch cache begins after the gap as well.
    let revision = cp.compact().await;
    cp.kill("apiserver").await;
    cp.start("apiserver").await;
    println!("measured: etcd compacted at revision {revision} while the operator was cut off");
    proxy.restore();
    let resumed = Instant::now();

    eventually(
        "a profile or Flux watch answered 410 Gone",
        CONVERGE,
        || async {
            op.logs()
                .lines()
                .any(|l| l.contains("watch error") && l.contains("too old resource version"))
                .then_some(())
        },
    )
    .await;
    // Each deletion noticed: the deleted profiles' metric series go, the Kustomization deleted
    // by hand is back (a new object), the profile changed meanwhile is retuned, the new one applied.
    // Liveness bounds only: each watch retries on its own backoff (up to 30 s).
    for i in [0, 1] {
        eventually(
            &format!("the series of p{i}, deleted during the gap, go"),
            CONVERGE,
            || async {
                support::metric_opt(
                    &op.metrics().await,
                    "fluxtune_latency_budget_seconds",
                    &series(i),
                )
                .is_none()
                .then_some(())
            },
        )
        .await;
    }
    eventually(
        "the Kustomization deleted by hand is back",
        CONVERGE,
        || async {
            let k = kustomizations.get_opt("p2").await.ok()??;
            (k.uid() != old_uid).then_some(())
        },
    )
    .await;
    wait_applied_count(&client, &ns, 4, CONVERGE).await;
    measured("converged after the 410 re-list", resumed.elapsed());
    let git = support::dynamic_api(&client, &ns, FluxKind::GitRepository)
        .get("p3")
        .await
        .unwrap();
    assert_eq!(git.data["spec"]["interval"], "1m", "p3 retuned to Poll");
    // p3 lost its Receiver with the Poll class.
    assert_eq!(exactly_as_rendered(&client, &ns).await, 3 * 8 + 7);
    still_running(&mut op);
    quiet(&op).await;
    still_running(&mut op);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn the_operator_killed_while_applying_converges_and_a_second_restart_writes_nothing() {
    const PROFILES: usize = 30;
    let _serial = SERIAL.lock().await;
    let (client, ns) = setup("op-kill").await;
    let mut op = Operator::start(&ns, "op-a");
    op.wait_ready().await;
    apply_profiles(&client, &ns, 0..PROFILES).await;
    wait_applied_count(&client, &ns, 5, CONVERGE).await;
    op.kill();
    let at_kill = applied(&client, &ns).await;
    op.start_again();
    let again = Instant::now();
    op.wait_ready().await;
    wait_applied_count(&client, &ns, PROFILES, CONVERGE).await;
    measured(
        &format!("{PROFILES} applied after the restart ({at_kill} were when it was killed)"),
        again.elapsed(),
    );
    assert_eq!(exactly_as_rendered(&client, &ns).await, PROFILES * 8);
    still_running(&mut op);

    // A second restart (graceful) reconciles every profile and writes nothing.
    op.restart();
    op.wait_ready().await;
    eventually("every profile reconciled again", CONVERGE, || async {
        (support::metric(
            &op.metrics().await,
            "fluxtune_reconciles_total",
            "result=\"ok\"",
        ) >= PROFILES as u64)
            .then_some(())
    })
    .await;
    assert_eq!(writes(&op).await, 0, "{}", op.metrics().await);
    quiet(&op).await;
    still_running(&mut op);
    assert_eq!(exactly_as_rendered(&client, &ns).await, PROFILES * 8);
    delete_namespace(&client, &ns).await;
}

/// Election flags for the two replicas: shorter than the defaults (15 s, 10 s), to keep the tier
/// short; the bound asserted is this lease duration.
const LEASE: Duration = Duration::from_secs(8);
const RENEW_DEADLINE: Duration = Duration::from_secs(5);
/// The takeover bound's margin over the lease duration: the standby polls the Lease when the
/// lease it last read expires, then waits up to 1 s before it takes it.
const TAKEOVER_MARGIN: Duration = Duration::from_secs(7);

fn election() -> Vec<String> {
    [
        "--leader-election",
        "true",
        "--lease-namespace",
        support::SYSTEM_NAMESPACE,
        "--lease-duration",
        &format!("{}s", LEASE.as_secs()),
        "--renew-deadline",
        &format!("{}s", RENEW_DEADLINE.as_secs()),
    ]
    .map(String::from)
    .to_vec()
}

async fn system_namespace(client: &Client) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = api
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": support::SYSTEM_NAMESPACE}}))
                .unwrap(),
        )
        .await;
}

/// The timestamp that starts the log line holding `needle` (RFC 3339, fixed width: comparable as
/// text across the processes of this machine).
fn logged_at(logs: &str, needle: &str) -> Option<String> {
    logs.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

/// The GitRepository CRD without `spec.sparseCheckout` (Flux before 2.6) until dropped: then as
/// it was.
struct OldGitRepositoryCrd {
    path: String,
    schema: Value,
}

impl OldGitRepositoryCrd {
    async fn install(client: &Client) -> OldGitRepositoryCrd {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd = crds.get(&FluxKind::GitRepository.crd_name()).await.unwrap();
        let version = FluxKind::GitRepository.api_resource().version;
        let i = crd
            .spec
            .versions
            .iter()
            .position(|v| v.name == version)
            .unwrap();
        let path = format!(
            "/spec/versions/{i}/schema/openAPIV3Schema/properties/spec/properties/sparseCheckout"
        );
        let crd = serde_json::to_value(&crd).unwrap();
        let schema = crd
            .pointer(&path)
            .expect("sparseCheckout in the CRD")
            .clone();
        Self::patch(client, json!([{"op": "remove", "path": path}])).await;
        OldGitRepositoryCrd { path, schema }
    }

    async fn patch(client: &Client, patch: Value) {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.patch(
            &FluxKind::GitRepository.crd_name(),
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(patch).unwrap()),
        )
        .await
        .unwrap();
    }

    /// Flux upgraded: the field is back.
    async fn upgrade(&self, client: &Client) {
        Self::patch(
            client,
            json!([{"op": "add", "path": self.path, "value": self.schema}]),
        )
        .await;
    }
}

#[tokio::test]
async fn the_leader_killed_the_standby_takes_over_within_the_lease_with_flux_as_it_is_then() {
    let _serial = SERIAL.lock().await;
    let (client, ns) = setup("takeover").await;
    system_namespace(&client).await;
    // Flux without sparse checkout while both replicas start.
    let old = OldGitRepositoryCrd::install(&client).await;
    let flags = election();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut a = Operator::start_with(&ns, "op-a", &flags);
    eventually("op-a leads", PATIENCE, || async {
        a.logs().contains("acquired the leader lease").then_some(())
    })
    .await;
    a.wait_ready().await;
    let b = Operator::start_with(&ns, "op-b", &flags);
    eventually("op-b waits as the standby", PATIENCE, || async {
        b.logs()
            .contains("waiting for the leader lease")
            .then_some(())
    })
    .await;
    b.wait_ready().await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied_count(&client, &ns, 1, PATIENCE).await;
    let git = support::dynamic_api(&client, &ns, FluxKind::GitRepository);
    assert!(
        git.get("cluster1").await.unwrap().data["spec"]
            .get("sparseCheckout")
            .is_none()
    );

    // The leader dies without releasing the lease; Flux is upgraded before the standby leads.
    a.kill();
    let killed = Instant::now();
    let killed_at = jiff_now();
    old.upgrade(&client).await;
    // /readyz of the standby, sampled until it has taken over and filled its caches.
    let mut samples = Vec::new();
    let took = loop {
        let sent = jiff_now();
        let code = b.status_of("/readyz").await;
        samples.push((sent, jiff_now(), code));
        let logs = b.logs();
        if logs.contains("acquired the leader lease") && logs.contains("caches filled: ready") {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < LEASE + TAKEOVER_MARGIN + PATIENCE,
            "op-b never took over:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let logs = b.logs();
    let acquired = logged_at(&logs, "acquired the leader lease").unwrap();
    let filled = logged_at(&logs, "caches filled: ready").unwrap();
    let takeover = since(&killed_at, &acquired);
    println!(
        "measured: takeover {:.1} s after the leader's SIGKILL (lease {LEASE:?}), caches filled {:.1} s after it (test saw both after {:.1} s)",
        takeover.as_secs_f64(),
        since(&killed_at, &filled).as_secs_f64(),
        took.as_secs_f64()
    );
    assert!(
        takeover <= LEASE + TAKEOVER_MARGIN,
        "took over {takeover:?} after the kill; the lease is {LEASE:?}"
    );
    // Never 200 while leading with caches not yet filled: a request answered 200 must have been
    // sent before the takeover or answered after the caches filled.
    for (sent, answered, code) in &samples {
        if *code == Some(200) {
            assert!(
                *sent < acquired || *answered > filled,
                "/readyz 200 between the takeover ({acquired}) and the caches filling ({filled}): sent {sent}, answered {answered}"
            );
        }
    }
    // Capabilities as they are at takeover: sparse checkout, which the standby's start did not see.
    eventually(
        "op-b renders the GitRepository with sparseCheckout",
        PATIENCE,
        || async {
            let g = git.get("cluster1").await.ok()?;
            (g.data["spec"]["sparseCheckout"] == json!(["cluster1/", "library/"])).then_some(())
        },
    )
    .await;
    assert_eq!(exactly_as_rendered(&client, &ns).await, 8);
    let mut b = b;
    still_running(&mut b);
    drop(a);
    drop(b);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_before_the_lease_can_pass_and_says_so() {
    let _serial = SERIAL.lock().await;
    let (client, ns) = setup("renew").await;
    system_namespace(&client).await;
    let flags = election();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // op-a reaches the API server through a proxy the test cuts; op-b directly.
    let proxy = Proxy::start(support::operator_kubeconfig_path(), &ns).await;
    let mut a = Operator::start_as(proxy.kubeconfig.clone(), &ns, "op-a", &flags);
    eventually("op-a leads", PATIENCE, || async {
        a.logs().contains("acquired the leader lease").then_some(())
    })
    .await;
    a.wait_ready().await;
    let mut b = Operator::start_with(&ns, "op-b", &flags);
    eventually("op-b waits as the standby", PATIENCE, || async {
        b.logs()
            .contains("waiting for the leader lease")
            .then_some(())
    })
    .await;
    apply_profile(&client, &profile(&ns, webhook_spec())).await;
    wait_applied_count(&client, &ns, 1, PATIENCE).await;

    proxy.cut();
    let cut_at = jiff_now();
    let deadline = Instant::now() + LEASE + PATIENCE;
    let code = loop {
        if let Some(code) = a.exited() {
            break code;
        }
        assert!(Instant::now() < deadline, "op-a still runs:\n{}", a.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, Some(1), "{}", a.logs());
    let a_logs = a.logs();
    let stopped = logged_at(
        &a_logs,
        "could not renew the leader lease within the renew deadline",
    )
    .unwrap_or_else(|| panic!("op-a does not say why it stopped:\n{a_logs}"));
    assert!(
        a_logs.contains("error: could not renew the leader lease within --renew-deadline (5s)"),
        "{a_logs}"
    );
    eventually("op-b takes over", LEASE + PATIENCE, || async {
        b.logs().contains("acquired the leader lease").then_some(())
    })
    .await;
    let acquired = logged_at(&b.logs(), "acquired the leader lease").unwrap();
    println!(
        "measured: op-a stopped {:.1} s after its API server was cut (renew deadline {RENEW_DEADLINE:?}), op-b took over {:.1} s after the cut (lease {LEASE:?})",
        since(&cut_at, &stopped).as_secs_f64(),
        since(&cut_at, &acquired).as_secs_f64()
    );
    assert!(
        stopped < acquired,
        "op-a stopped at {stopped}, after op-b took over at {acquired}"
    );
    // op-b reconciles from here: a change is applied, nothing is duplicated, and it stays quiet.
    let mut spec = webhook_spec();
    spec["pollingClass"] = json!("Poll");
    apply_profile(&client, &profile(&ns, spec)).await;
    let git = support::dynamic_api(&client, &ns, FluxKind::GitRepository);
    eventually("op-b retunes the GitRepository", PATIENCE, || async {
        (git.get("cluster1").await.ok()?.data["spec"]["interval"] == "1m").then_some(())
    })
    .await;
    wait_applied_count(&client, &ns, 1, PATIENCE).await;
    assert_eq!(exactly_as_rendered(&client, &ns).await, 7);
    still_running(&mut b);
    drop(a);
    drop(b);
    delete_namespace(&client, &ns).await;
}

/// Now as RFC 3339 with microseconds, as the operator's log lines begin.
fn jiff_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

fn since(from: &str, to: &str) -> Duration {
    let parse = |s: &str| s.parse::<k8s_openapi::jiff::Timestamp>().unwrap();
    let d = parse(to).duration_since(parse(from));
    Duration::try_from(d).unwrap_or_default()
}

async fn delete_namespace(client: &Client, ns: &str) {
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap();
}

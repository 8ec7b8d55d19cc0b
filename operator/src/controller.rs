//! `fluxtune run`: wires the watches, leader election, the HTTP endpoints and the reconciler.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    net::SocketAddr,
    sync::{Arc, OnceLock, atomic::Ordering},
    time::Duration,
};

use futures::{FutureExt, StreamExt, future, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Client, Config, ResourceExt,
    api::DynamicObject,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self as runtime_controller, Action},
        events::{Recorder, Reporter},
        reflector, watcher,
    },
};
use tracing::{info, warn};

use crate::{
    cache::ChildWriter,
    capabilities,
    error::{Error, Result},
    flux::FluxKind,
    http::{self, Health},
    leader::{Leadership, Lost, Renewals, Timing},
    metrics::{MethodLabels, Metrics},
    reconcile::{self, Context, Guarded},
    render::names,
};

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Watch one namespace instead of all.
    pub namespace: Option<String>,
    pub http_addr: SocketAddr,
    pub leader_election: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    /// The lease duration and renew deadline (`--lease-duration`, `--renew-deadline`).
    pub election: Timing,
    pub tenancy: crate::tenancy::Tenancy,
    /// At most this many profiles reconcile at once (kube-runtime's default is unbounded: a
    /// restart with many profiles would send all their requests at once).
    pub max_concurrent_reconciles: u16,
    /// Objects per page when a watch lists (`--list-page-size`).
    pub list_page_size: u32,
}

pub async fn run(opts: RunOptions) -> Result<()> {
    // First: a port in use ends the process with the reason before anything else starts.
    let listener = http::bind(opts.http_addr).await?;
    let metrics = Arc::new(Metrics::default());
    metrics
        .max_concurrent_reconciles
        .set(opts.max_concurrent_reconciles.into());
    let client = counting_client(metrics.clone(), None).await?;
    let health = Health {
        metrics: metrics.clone(),
        ready: Arc::default(),
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, health.clone(), async {
        let _ = http_stopped.await;
    }));

    // At start, so that missing CRDs end the process with the reason, on a standby too.
    let mut install = capabilities::detect(&client).await?;
    let leadership = if opts.leader_election {
        // A standby replica is healthy and ready; it only does not reconcile. Once it leads, it
        // is ready again only when its caches are filled (`controller`).
        health.ready.store(true, Ordering::Relaxed);
        // The lease manager's own client: its successful writes are the renewals that the renew
        // deadline counts from.
        let (renewals, renewed) = Renewals::new();
        let lease = Leadership::acquire(
            counting_client(metrics.clone(), Some(renewals)).await?,
            renewed,
            &opts.lease_namespace,
            &opts.lease_name,
            &opts.identity,
            opts.election,
        )
        .await?;
        // Not ready from the takeover until this leader's caches are filled.
        health.ready.store(false, Ordering::Relaxed);
        // Flux as it is now: it may have been installed or upgraded while this replica waited
        // (the CRD watch that follows changes compares kinds only, not the fields they have).
        install = capabilities::detect(&client).await?;
        Some(lease)
    } else {
        None
    };

    let controller = controllers(client, install, metrics, &opts, health.clone());
    let result = match leadership {
        Some(mut leadership) => {
            // Dropping the controller cancels every reconcile in flight: no write after this.
            let result = tokio::select! {
                r = controller => r,
                lost = leadership.lost() => Err(match lost {
                    Lost::Taken => Error::LostLeadership,
                    Lost::RenewDeadline => Error::RenewDeadline(opts.election.renew_deadline()),
                }),
            };
            leadership.release().await;
            result
        }
        None => controller.await,
    };
    let _ = stop_http.send(());
    let _ = server.await;
    result
}

/// The controller for the Flux install found, started afresh whenever the install changes (Flux
/// installed or upgraded after fluxtune): it watches and caches each installed kind, so a new
/// kind needs a new controller. Profiles are all reconciled again at the start; the ones already
/// as rendered cost no write. Failing to read the CRDs again never stops the running controller.
async fn controllers(
    client: Client,
    mut install: capabilities::FluxInstall,
    metrics: Arc<Metrics>,
    opts: &RunOptions,
    health: Health,
) -> Result<()> {
    loop {
        let running = controller(
            client.clone(),
            install.clone(),
            metrics.clone(),
            opts,
            health.clone(),
        );
        tokio::select! {
            result = running => return result,
            changed = install_changed(&client, &install) => {
                info!(
                    before = ?install.kinds,
                    after = ?changed.kinds,
                    sparse_checkout = changed.caps.sparse_checkout,
                    "the Flux CRDs changed: restarting the controller with them"
                );
                install = changed;
            }
        }
    }
}

/// The next Flux install that differs from `current`. Reading the CRDs again can fail (the API
/// server restarting, etcd unavailable, the operator's RBAC being edited): the controller then goes
/// on with the CRDs it knows, and they are read again with backoff until a read succeeds, since
/// the watch event that asked for the read is not seen again.
async fn install_changed(
    client: &Client,
    current: &capabilities::FluxInstall,
) -> capabilities::FluxInstall {
    loop {
        let mut error = match capabilities::changed(client, current).await {
            Ok(changed) => return changed,
            Err(e) => e,
        };
        let mut delay = CRD_RETRY_FIRST;
        loop {
            warn!(
                %error,
                retry_in = ?delay,
                "reading the Flux CRDs again failed; going on with the ones known"
            );
            tokio::time::sleep(delay).await;
            match capabilities::detect(client).await {
                Ok(install) if install != *current => return install,
                Ok(_) => break,
                Err(e) => {
                    error = e;
                    delay = (delay * 2).min(CRD_RETRY_MAX);
                }
            }
        }
        info!("read the Flux CRDs again: unchanged");
    }
}

const CRD_RETRY_FIRST: Duration = Duration::from_secs(1);
const CRD_RETRY_MAX: Duration = Duration::from_secs(60);

async fn controller(
    client: Client,
    install: capabilities::FluxInstall,
    metrics: Arc<Metrics>,
    opts: &RunOptions,
    health: Health,
) -> Result<()> {
    // Not ready until this controller's caches are filled: at the start, after a takeover, and
    // after a restart for new Flux CRDs (whose caches start empty).
    health.ready.store(false, Ordering::Relaxed);
    let profiles: Api<Guarded> = scoped(&client, &opts.namespace);
    // A profile deleted outright (no finalizer) is never reconciled again: its Delete event is
    // where its metric series go.
    let (profile_store, writer) = reflector::store();
    // What the context keeps of a deleted profile goes with it; the context is made after this
    // stream (it needs the child caches), and before it exists nothing was kept.
    let context: Arc<OnceLock<Arc<Context>>> = Arc::default();
    let forget = {
        let (metrics, context) = (metrics.clone(), context.clone());
        move |namespace: &str, name: &str| match context.get() {
            Some(ctx) => ctx.forget_profile(namespace, name),
            None => metrics.forget_profile(namespace, name),
        }
    };
    // Which caches have had their first complete list, seen on each watch stream right after
    // its reflector applied it (not with `Store::wait_until_ready`, whose readiness wakes one
    // waiter only: the controller's runner already waits on the profiles' store).
    let (listed, mut filled) = tokio::sync::watch::channel(BTreeSet::<&'static str>::new());
    let profiles_listed = listed.clone();
    let profile_events = watcher(
        profiles,
        watcher::Config::default()
            .any_semantic()
            .page_size(opts.list_page_size),
    )
    .default_backoff()
    .modify(|profile: &mut Guarded| match &mut profile.0 {
        Ok(profile) => forget_field_sets(&mut profile.metadata),
        Err(invalid) => forget_field_sets(&mut invalid.metadata),
    })
    .reflect(writer)
    .inspect(listed_again("FluxProfile"))
    .inspect({
        let mut known = Vanished::default();
        move |event| {
            let Ok(event) = event else { return };
            // Deleted, or (after a re-list) found deleted while the watch was cut.
            for (namespace, name) in known.follow(event, |_| ()).into_keys() {
                forget(namespace.as_deref().unwrap_or_default(), &name);
            }
            match event {
                watcher::Event::Delete(p) => {
                    forget(&p.namespace().unwrap_or_default(), &p.name_any());
                }
                watcher::Event::InitDone => mark_listed(&profiles_listed, "FluxProfile"),
                _ => {}
            }
        }
    })
    .flat_map({
        let mut held = UntilListed::default();
        move |event| stream::iter(held.profile_triggers(event))
    })
    .filter_map(|object| future::ready(retried("FluxProfile", object)));
    let mut controller = Controller::for_stream(profile_events, profile_store);

    let mut children = BTreeMap::new();
    for &kind in &install.kinds {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = match &opts.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let mut writer = ChildWriter::new(ar.clone());
        let reader = writer.reader();
        let config = watcher::Config::default()
            .labels(&format!(
                "{}={}",
                names::MANAGED_BY_LABEL,
                names::MANAGED_BY
            ))
            .any_semantic()
            .page_size(opts.list_page_size);
        let objects = watcher(api, config)
            .modify(|object: &mut DynamicObject| forget_field_sets(&mut object.metadata));
        let kind_listed = listed.clone();
        let stream = objects
            .inspect(move |event| {
                if let Ok(event) = event {
                    writer.apply(event);
                }
            })
            .inspect(listed_again(kind.kind()))
            .inspect(move |event| {
                if let Ok(watcher::Event::InitDone) = event {
                    mark_listed(&kind_listed, kind.kind());
                }
            })
            .default_backoff()
            .flat_map({
                let mut filter = only_changes_that_matter(kind);
                move |event| stream::iter(filter(event))
            });
        controller = controller.owns_stream_with(stream, ar);
        children.insert(kind, reader);
    }

    // The caches fill once the controller polls their watches; ready means filled. This waits
    // next to the controller, in the same task: it ends with this controller, so a controller
    // that was replaced can never mark its successor ready.
    drop(listed);
    let caches = children.len() + 1;
    let caches_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ready = caches_ready.clone();
    let fill = async move {
        if filled
            .wait_for(|listed| listed.len() == caches)
            .await
            .is_ok()
        {
            ready.store(true, Ordering::Relaxed);
            health.ready.store(true, Ordering::Relaxed);
            info!("caches filled: ready");
        }
    };

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "fluxtune".into(),
            instance: Some(opts.identity.clone()),
        },
    );
    let mut ctx = Context::new(client, install, children, metrics, recorder, caches_ready);
    ctx.tenancy = opts.tenancy.clone();
    let ctx = Arc::new(ctx);
    let _ = context.set(ctx.clone());
    info!(
        namespace = opts.namespace.as_deref().unwrap_or("<all>"),
        "reconciling FluxProfiles"
    );
    let profiles = controller.store();
    let run = controller
        .with_config(
            runtime_controller::Config::default().concurrency(opts.max_concurrent_reconciles),
        )
        .shutdown_on_signal()
        .run(
            move |profile, ctx| counted(profile, ctx, profiles.clone()),
            reconcile::error_policy,
            ctx,
        )
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile queue");
            }
            future::ready(())
        });
    tokio::select! {
        () = run => {}
        () = fill.then(|()| future::pending()) => {}
    }
    Ok(())
}

/// Keeps watch errors from the controller: each watch retries on its own backoff (the watcher's
/// `default_backoff`), while kube's controller pauses *every* watch for its trigger backoff after
/// an error of any one. After an API server restart each watch gets its 410 Gone in turn, and the
/// pauses added up to minutes before a profile deleted meanwhile was noticed (the fault tier's
/// re-list scenario). Logged here instead.
fn retried<K>(
    watch: &'static str,
    item: Result<K, watcher::Error>,
) -> Option<Result<K, watcher::Error>> {
    match item {
        Ok(object) => Some(Ok(object)),
        Err(error) => {
            warn!(watch, %error, "watch error: retrying with backoff");
            None
        }
    }
}

/// Says when a watch that failed has listed again: its cache is current from then on. After an
/// API server restart each watch retries on its own backoff (grown during the outage, up to
/// 30 s), and statuses computed meanwhile from a cache that lacks objects created during the
/// outage are corrected by the reconciles that re-list triggers (the fault tier waits for this
/// line before it counts writes).
fn listed_again<K>(watch: &'static str) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) {
    let mut failed = false;
    move |event| match event {
        Err(_) => failed = true,
        Ok(watcher::Event::InitDone) if failed => {
            failed = false;
            info!(
                watch,
                "watch listed again after errors: its cache is current"
            );
        }
        Ok(_) => {}
    }
}

/// Records that the cache `name` had its first complete list (a re-list changes nothing).
fn mark_listed(listed: &tokio::sync::watch::Sender<BTreeSet<&'static str>>, name: &'static str) {
    listed.send_if_modified(|caches| {
        let first = caches.insert(name);
        if first {
            tracing::debug!(cache = name, "cache filled");
        }
        first
    });
}

/// The reconcile, counted in `fluxtune_reconciles_in_flight` while it runs.
async fn counted(
    profile: Arc<Guarded>,
    ctx: Arc<Context>,
    profiles: reflector::Store<Guarded>,
) -> Result<Action> {
    let _running = ctx.metrics.reconcile_started();
    let result = reconcile::reconcile(profile.clone(), ctx.clone()).await;
    // A reconcile still running when its profile was deleted records the profile's series (and
    // backoff, status write...) after the Delete event forgot them, and they would stay for good.
    // The store loses the profile before that event is handled, so looking at it after recording
    // leaves none behind. Nor is a gone profile's failure retried: the error policy would count
    // a backoff for it again.
    if profiles
        .get(&reflector::ObjectRef::from_obj(&*profile))
        .is_none()
    {
        ctx.forget_profile(
            &profile.namespace().unwrap_or_default(),
            &profile.name_any(),
        );
        return Ok(Action::await_change());
    }
    result
}

/// What the caches keep of each object's managedFields: who wrote it, how and when
/// (reconcile/trigger.rs reads the times), not which fields. Those fieldsV1 trees are most of a
/// cached object's memory, and nothing sends a cached object back to the API server.
fn forget_field_sets(meta: &mut ObjectMeta) {
    for entry in meta.managed_fields.iter_mut().flatten() {
        entry.fields_v1 = None;
    }
}

fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Owned objects trigger their profile only when someone changes their spec (generation) or
/// metadata, or deletes them, or (a Receiver) notification-controller publishes its webhook path
/// or a Ready change: an ImageRepository's status changes every scan and must not.
/// (Not kube's `predicate_filter`: it sees objects, not events, so it would drop the Delete of an
/// object whose last state matches what it saw before, and it has no owner-references predicate.)
/// An object deleted while the watch was cut, which a re-list shows only by its absence, triggers
/// its profile as a Delete would (`Vanished`); what a re-list applies triggers once the list is
/// complete (`UntilListed`).
type WatchEvent = Result<watcher::Event<DynamicObject>, watcher::Error>;
type Trigger = Result<DynamicObject, watcher::Error>;

fn only_changes_that_matter(kind: FluxKind) -> impl FnMut(WatchEvent) -> Vec<Trigger> {
    let mut seen: HashMap<ObjectKey, u64> = HashMap::new();
    // What a Delete needs to find the profile: the owner references.
    let mut known = Vanished::default();
    let mut held = UntilListed::default();
    move |event| {
        let event = match event {
            Err(e) => return retried(kind.kind(), Err(e)).into_iter().collect(),
            Ok(event) => event,
        };
        let listing = matches!(event, watcher::Event::InitApply(_));
        let mut passed: Vec<Trigger> = known
            .follow(&event, owner_stub)
            .into_iter()
            .map(|(key, stub)| {
                seen.remove(&key);
                Ok(stub)
            })
            .collect();
        match event {
            watcher::Event::Delete(obj) => {
                seen.remove(&(obj.namespace(), obj.name_any()));
                passed.push(Ok(obj));
            }
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let mut h = DefaultHasher::new();
                obj.metadata.generation.hash(&mut h);
                obj.metadata.labels.hash(&mut h);
                obj.metadata.annotations.hash(&mut h);
                format!("{:?}", obj.metadata.owner_references).hash(&mut h);
                obj.metadata.deletion_timestamp.is_some().hash(&mut h);
                crate::reconcile::status_that_wakes(kind, &obj).hash(&mut h);
                let fingerprint = h.finish();
                let key = (obj.namespace(), obj.name_any());
                let changed = seen.insert(key, fingerprint) != Some(fingerprint);
                if changed && !(listing && held.hold(|| owner_stub(&obj))) {
                    passed.push(Ok(obj));
                }
            }
            watcher::Event::InitDone => passed.extend(held.release().map(Ok)),
            watcher::Event::Init => {}
        }
        passed
    }
}

/// Triggers from a re-list, held until the list is complete. The reflector (and `ChildWriter`)
/// swaps a re-list into its store only at InitDone, while the list arrives in pages
/// (`--list-page-size`) and the controller runs queued reconciles as the next page is fetched: a
/// reconcile triggered by an InitApply would read the store from before the watch was cut. A
/// profile created meanwhile would not be found (kube's controller drops such a request for
/// good), one changed meanwhile would be reconciled from its old spec, and nothing would trigger
/// either again. What is held is a stub with the keys a trigger needs, not the object.
/// The first list passes through: the controller waits for the profiles' store to fill, and a
/// reconcile for every cache's first list (`caches_ready`), while holding a fleet's triggers
/// would raise the start's memory peak.
struct UntilListed<T> {
    held: Vec<T>,
    listed_once: bool,
}

impl<T> Default for UntilListed<T> {
    fn default() -> Self {
        UntilListed {
            held: Vec::new(),
            listed_once: false,
        }
    }
}

impl<T> UntilListed<T> {
    /// Holds the trigger of an InitApply, or gives it back to pass on (the first list). A list
    /// that restarts (an error mid-list) keeps what it held: triggers are idempotent.
    fn hold(&mut self, trigger: impl FnOnce() -> T) -> bool {
        if self.listed_once {
            self.held.push(trigger());
        }
        self.listed_once
    }

    fn release(&mut self) -> impl Iterator<Item = T> + use<T> {
        self.listed_once = true;
        std::mem::take(&mut self.held).into_iter()
    }
}

impl UntilListed<Guarded> {
    /// `applied_objects()` for the profiles, with what a re-list applies triggered at its end.
    fn profile_triggers(
        &mut self,
        event: Result<watcher::Event<Guarded>, watcher::Error>,
    ) -> Vec<Result<Guarded, watcher::Error>> {
        match event {
            Ok(watcher::Event::Apply(profile)) => vec![Ok(profile)],
            Ok(watcher::Event::InitApply(profile)) => {
                if self.hold(|| profile_stub(&profile)) {
                    Vec::new()
                } else {
                    vec![Ok(profile)]
                }
            }
            Ok(watcher::Event::InitDone) => self.release().map(Ok).collect(),
            Ok(watcher::Event::Init | watcher::Event::Delete(_)) => Vec::new(),
            Err(e) => vec![Err(e)],
        }
    }
}

/// A profile's name and namespace, all its trigger needs (the controller keys requests by them
/// and reads the profile from the store). Carried as an undecodable object, which has nothing
/// but metadata.
fn profile_stub(profile: &Guarded) -> Guarded {
    kube::core::DeserializeGuard(Err(kube::core::error_boundary::InvalidObject {
        error: String::new(),
        metadata: ObjectMeta {
            name: Some(profile.name_any()),
            namespace: profile.namespace(),
            ..ObjectMeta::default()
        },
    }))
}

/// An object's name, namespace and owner references: enough to trigger its owner.
fn owner_stub(obj: &DynamicObject) -> DynamicObject {
    DynamicObject {
        types: obj.types.clone(),
        metadata: ObjectMeta {
            name: obj.metadata.name.clone(),
            namespace: obj.metadata.namespace.clone(),
            owner_references: obj.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        data: serde_json::Value::Null,
    }
}

type ObjectKey = (Option<String>, String);

/// The objects a watch knows, so that those deleted while it was not watching are noticed: after
/// a 410 Gone (the resourceVersion it resumes from was compacted away, or the API server restarted
/// and its watch cache begins later), kube's watcher lists again, and the list shows only what
/// exists. It emits no Delete for what vanished in between, and the store just swaps its contents.
struct Vanished<V> {
    known: HashMap<ObjectKey, V>,
    /// The keys of the list in progress (between Init and InitDone).
    listing: HashSet<ObjectKey>,
}

impl<V> Default for Vanished<V> {
    fn default() -> Self {
        Vanished {
            known: HashMap::new(),
            listing: HashSet::new(),
        }
    }
}

impl<V> Vanished<V> {
    /// Follows one watch event, keeping `keep(object)` per object; returns, at the end of a list,
    /// what was known before and is not in it: the objects deleted while nobody watched.
    fn follow<K: kube::Resource>(
        &mut self,
        event: &watcher::Event<K>,
        keep: impl Fn(&K) -> V,
    ) -> HashMap<ObjectKey, V> {
        let key = |obj: &K| {
            (
                obj.meta().namespace.clone(),
                obj.meta().name.clone().unwrap_or_default(),
            )
        };
        match event {
            watcher::Event::Init => self.listing.clear(),
            watcher::Event::InitApply(obj) => {
                self.listing.insert(key(obj));
                self.known.insert(key(obj), keep(obj));
            }
            watcher::Event::InitDone => {
                let listed = std::mem::take(&mut self.listing);
                let (kept, vanished) = std::mem::take(&mut self.known)
                    .into_iter()
                    .partition(|(key, _)| listed.contains(key));
                self.known = kept;
                return vanished;
            }
            watcher::Event::Apply(obj) => {
                self.known.insert(key(obj), keep(obj));
            }
            watcher::Event::Delete(obj) => {
                self.known.remove(&key(obj));
            }
        }
        HashMap::new()
    }
}

/// A client that counts every request by HTTP method, so "a no-op reconcile writes nothing" is
/// observable on /metrics; with `renewals` (the lease manager's client), one that also records
/// its successful writes.
async fn counting_client(metrics: Arc<Metrics>, renewals: Option<Renewals>) -> Result<Client> {
    let config = Config::infer()
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let count =
        tower::util::MapRequestLayer::new(move |req: ::http::Request<kube::client::Body>| {
            metrics
                .kube_requests
                .get_or_create(&MethodLabels {
                    method: req.method().to_string(),
                })
                .inc();
            req
        });
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| Error::Config(e.to_string()))?
        .with_layer(&count);
    Ok(match renewals {
        Some(renewals) => builder.with_layer(&renewals).build(),
        None => builder.build(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(name: &str, owner_uid: &str, generation: i64) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": "ns", "generation": generation,
                "ownerReferences": [{"apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
                    "name": "p", "uid": owner_uid, "controller": true}]},
            "spec": {"interval": "1h"}
        }))
        .unwrap()
    }

    fn names(triggers: Vec<Trigger>) -> Vec<String> {
        triggers
            .into_iter()
            .map(|t| t.unwrap().name_any())
            .collect()
    }

    #[test]
    fn a_child_deleted_while_the_watch_was_cut_triggers_its_profile_after_the_re_list() {
        use watcher::Event::*;
        let mut filter = only_changes_that_matter(FluxKind::GitRepository);
        let mut step = |event| names(filter(Ok(event)));
        assert!(step(Init).is_empty());
        // The first list passes through (the reconciles wait for the caches' first lists).
        assert_eq!(step(InitApply(child("a", "u1", 1))), ["a"]);
        assert_eq!(step(InitApply(child("b", "u2", 1))), ["b"]);
        assert!(step(InitDone).is_empty());
        assert_eq!(step(Apply(child("c", "u3", 1))), ["c"]);
        // 410 Gone: the watcher lists again; b and c were deleted meanwhile, a is unchanged.
        assert!(step(Init).is_empty());
        assert!(
            step(InitApply(child("a", "u1", 1))).is_empty(),
            "nothing new"
        );
        let mut vanished = filter(Ok(InitDone))
            .into_iter()
            .map(|t| t.unwrap())
            .collect::<Vec<_>>();
        vanished.sort_by_key(|o| o.name_any());
        assert_eq!(
            vanished
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        // Each with what the controller maps to the profile: its owner reference.
        assert_eq!(vanished[0].owner_references()[0].uid, "u2");
        assert_eq!(vanished[1].owner_references()[0].uid, "u3");
        // Created again with the same generation: a change, not a repeat.
        assert_eq!(names(filter(Ok(Apply(child("b", "u2", 1))))), ["b"]);
        // A later re-list finds nothing else gone.
        assert!(names(filter(Ok(Init))).is_empty());
        for name in ["a", "b"] {
            let uid = if name == "a" { "u1" } else { "u2" };
            assert!(names(filter(Ok(InitApply(child(name, uid, 1))))).is_empty());
        }
        assert!(names(filter(Ok(InitDone))).is_empty());
    }

    #[test]
    fn what_a_list_applies_triggers_once_the_list_is_complete() {
        use watcher::Event::*;
        // A child changed while the watch was cut, listed in two pages: its profile is
        // reconciled once the cache holds the whole list, with the owner reference it needs.
        let mut filter = only_changes_that_matter(FluxKind::GitRepository);
        for event in [Init, InitApply(child("a", "u1", 1)), InitDone] {
            filter(Ok(event));
        }
        assert!(names(filter(Ok(Init))).is_empty());
        assert!(names(filter(Ok(InitApply(child("a", "u1", 2))))).is_empty());
        // The list restarts after an error: what it held stays held (a is unchanged since).
        assert!(names(filter(Ok(Init))).is_empty());
        assert!(names(filter(Ok(InitApply(child("a", "u1", 2))))).is_empty());
        assert!(names(filter(Ok(InitApply(child("b", "u2", 1))))).is_empty());
        let released: Vec<DynamicObject> = filter(Ok(InitDone))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            released
                .iter()
                .map(|o| (o.name_any(), o.owner_references()[0].uid.clone()))
                .collect::<Vec<_>>(),
            [("a".into(), "u1".into()), ("b".into(), "u2".into())]
        );
        assert!(
            released.iter().all(|o| o.data.is_null()),
            "stubs, not objects"
        );

        // Profiles: a profile created while the watch was cut is triggered after the list.
        let profile = |name: &str| -> Guarded {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"cluster": name, "source": {"url": "https://example.com/r.git"}}
            }))
            .unwrap()
        };
        let mut held = UntilListed::default();
        let mut step = |event| -> Vec<ObjectKey> {
            held.profile_triggers(Ok(event))
                .into_iter()
                .map(|p| {
                    let p = p.unwrap();
                    (p.namespace(), p.name_any())
                })
                .collect()
        };
        let key = |n: &str| (Some("ns".to_string()), n.to_string());
        // The first list passes through: the controller waits for the store to fill.
        assert!(step(Init).is_empty());
        assert_eq!(step(InitApply(profile("p1"))), [key("p1")]);
        assert!(step(InitDone).is_empty());
        // A re-list is held until it is complete.
        assert!(step(Init).is_empty());
        assert!(step(InitApply(profile("p1"))).is_empty());
        assert!(step(InitApply(profile("p2"))).is_empty());
        assert_eq!(step(InitDone), [key("p1"), key("p2")]);
        assert_eq!(step(Apply(profile("p3"))), [key("p3")]);
        assert!(step(Delete(profile("p3"))).is_empty());
        assert!(step(InitDone).is_empty(), "released once");
    }

    #[test]
    fn a_deleted_object_seen_as_deleted_is_not_reported_again_by_the_re_list() {
        use watcher::Event::*;
        let mut known = Vanished::default();
        for event in [
            Init,
            InitApply(child("a", "u1", 1)),
            InitApply(child("b", "u2", 1)),
            InitDone,
        ] {
            assert!(known.follow(&event, |_| ()).is_empty());
        }
        assert!(
            known
                .follow(&Delete(child("b", "u2", 1)), |_| ())
                .is_empty()
        );
        assert!(known.follow(&Init::<DynamicObject>, |_| ()).is_empty());
        assert!(
            known
                .follow(&InitDone::<DynamicObject>, |_| ())
                .into_keys()
                .eq([(Some("ns".to_string()), "a".to_string())])
        );
    }

    #[test]
    fn cached_objects_keep_who_wrote_them_and_when_but_not_the_field_sets() {
        let mut object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "c1", "managedFields": [{
                "manager": "fluxtune", "operation": "Apply", "apiVersion": "v1",
                "time": "2026-12-03T01:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:interval": {}}}
            }]}
        }))
        .unwrap();
        forget_field_sets(&mut object.metadata);
        let entry = &object.metadata.managed_fields.unwrap()[0];
        assert_eq!(entry.manager.as_deref(), Some("fluxtune"));
        assert_eq!(
            entry.time.as_ref().map(|t| t.0.to_string()).as_deref(),
            Some("2026-12-03T01:00:00Z")
        );
        assert!(entry.fields_v1.is_none());
    }
}

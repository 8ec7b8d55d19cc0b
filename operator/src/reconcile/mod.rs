//! One FluxProfile reconcile, in the order it reads:
//! render -> apply -> prune -> hand on requests -> read the Receiver's webhook path -> status.
//! A profile being deleted is left alone: the garbage collector decides about its children.

pub mod apply;
pub mod blocker;
pub mod delivery;
mod events;
pub mod latency;
pub mod missed;
mod notes;
pub mod ownership;
mod prune;
pub mod request;
pub mod rescan;
pub mod status;
pub mod trigger;
mod unreadable;
pub mod webhook;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Client, Resource, ResourceExt,
    api::DynamicObject,
    core::DeserializeGuard,
    runtime::{controller::Action, events::Recorder, reflector::ObjectRef},
};
use tracing::{info, instrument, warn};

use crate::{
    api::{FluxProfile, InventoryEntry},
    cache::{self, ChildCache},
    capabilities::FluxInstall,
    error::{Error, Result},
    flux::FluxKind,
    metrics::Metrics,
    render,
};
pub use blocker::Blocker;
use status::Observation;
use webhook::{Hook, Webhook};

/// The backstop: drift and changes arrive as watch events, this only catches what a watch missed.
const RESYNC: Duration = Duration::from_secs(3600);
/// An object changed between the check and the write: look again shortly.
const RETRY_SOON: Duration = Duration::from_secs(5);

pub struct Context {
    pub client: Client,
    pub install: FluxInstall,
    /// Caches of the fluxtune-labelled objects of each installed Flux kind.
    pub children: BTreeMap<FluxKind, ChildCache>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Set once every cache in `children` is filled (one task waits for that: a store's
    /// readiness wakes a single waiter).
    pub caches_ready: Arc<std::sync::atomic::AtomicBool>,
    /// What profiles may point at, and the default service account (the operator's flags).
    pub tenancy: crate::tenancy::Tenancy,
    failures: Mutex<HashMap<ObjectRef<Guarded>, u32>>,
    /// Unreadable profiles already reported, by generation and error.
    unreadable: Mutex<HashMap<ObjectRef<Guarded>, Reported>>,
    /// The resourceVersion each profile had when this operator last wrote its status (status.rs).
    written: Mutex<HashMap<ObjectRef<FluxProfile>, String>>,
    /// The propagation guard's last look at each profile's sources, per kind (rescan.rs).
    rescans: Mutex<HashMap<(ObjectRef<FluxProfile>, FluxKind), rescan::Guard>>,
    /// Children last found to be someone else's (apply.rs): read before they are written. A
    /// create-only write would be refused on every recheck, each refusal a write request on
    /// another team's object that its admission webhooks and audit log see.
    foreign: Mutex<HashSet<ChildKey>>,
}

/// One rendered child of one profile: the profile, the child's kind and name.
type ChildKey = (ObjectRef<FluxProfile>, FluxKind, String);

impl Context {
    pub fn new(
        client: Client,
        install: FluxInstall,
        children: BTreeMap<FluxKind, ChildCache>,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        caches_ready: Arc<std::sync::atomic::AtomicBool>,
    ) -> Context {
        Context {
            client,
            install,
            children,
            metrics,
            recorder,
            caches_ready,
            tenancy: Default::default(),
            failures: Mutex::default(),
            unreadable: Mutex::default(),
            rescans: Mutex::default(),
            foreign: Mutex::default(),
            written: Mutex::default(),
        }
    }

    /// Forgets what this process kept of a profile: its metric series, its backoff, its last
    /// status write, the propagation guard's looks and its foreign children. For a profile that is
    /// deleting or gone; without this a fleet that creates and deletes profiles (preview
    /// environments, say) would grow these maps until a restart.
    pub fn forget_profile(&self, namespace: &str, name: &str) {
        self.metrics.forget_profile(namespace, name);
        let is = |ns: &Option<String>, n: &str| ns.as_deref() == Some(namespace) && n == name;
        let gone = |key: &ObjectRef<FluxProfile>| is(&key.namespace, &key.name);
        self.failures
            .lock()
            .unwrap()
            .retain(|k, _| !is(&k.namespace, &k.name));
        self.unreadable
            .lock()
            .unwrap()
            .retain(|k, _| !is(&k.namespace, &k.name));
        self.written.lock().unwrap().retain(|k, _| !gone(k));
        self.rescans.lock().unwrap().retain(|(k, _), _| !gone(k));
        self.foreign.lock().unwrap().retain(|(k, _, _)| !gone(k));
    }
}

/// The generation and decoding error last reported for an unreadable profile.
type Reported = (Option<i64>, String);

/// A profile as read from the API: one that does not deserialize (stored by another fluxtune
/// version, say) must not stop the watch of all the others.
pub type Guarded = DeserializeGuard<FluxProfile>;

/// Instruments and delegates.
#[instrument(skip_all, fields(profile = %guard.name_any(), namespace = guard.namespace()))]
pub async fn reconcile(guard: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action> {
    // Deciding "already applied" from a half-filled cache would rewrite objects at every start.
    // Waiting here would stall the controller, which stops polling the very watches that fill the
    // caches while this profile's reconcile runs: come back shortly instead (not a reconcile).
    if !ctx.caches_ready.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(Action::requeue(Duration::from_millis(250)));
    }
    // Our own last status write not seen yet: come back when it is (the watch brings it).
    if let Ok(profile) = &guard.0
        && status::stale(&ctx, profile)
    {
        return Ok(Action::requeue(Duration::from_millis(250)));
    }
    let started = Instant::now();
    let result = match &guard.0 {
        Ok(profile) => reconcile_profile(profile, &ctx).await,
        Err(invalid) => unreadable::report(&ctx, &guard, &invalid.error).await,
    };
    ctx.metrics.observe_reconcile(
        result.as_ref().err().map(Error::metric_label),
        started.elapsed(),
    );
    result
}

async fn reconcile_profile(profile: &FluxProfile, ctx: &Context) -> Result<Action> {
    if profile.meta().deletion_timestamp.is_some() {
        // The garbage collector now decides about the children (deletes them, or with
        // --cascade=orphan removes their ownerReferences): any write here would race it, and
        // putting back an ownerReference it just removed makes it delete the child after all.
        ctx.forget_profile(
            &profile.namespace().unwrap_or_default(),
            &profile.name_any(),
        );
        return Ok(Action::await_change());
    }
    if profile.spec.suspend {
        return suspended(ctx, profile).await;
    }
    let refusals = ctx.tenancy.refusals(profile);
    if !refusals.is_empty() {
        return blocked(ctx, profile, Blocker::NotAllowed(refusals)).await;
    }
    if let Some(cycle) = crate::api::dependency_cycle(&profile.spec.kustomizations) {
        return blocked(ctx, profile, Blocker::DependencyCycle(cycle)).await;
    }
    let defaulted = ctx.tenancy.with_defaults(profile);
    let profile = &defaulted;

    // Missed webhooks first: while one is missed its source renders with the fallback interval.
    let old = profile.status.clone().unwrap_or_default();
    let mut rendered = render::render_missed(
        profile,
        &ctx.install.caps,
        missed_kinds(&old.missed_webhooks),
    );
    let listening = missed::Listening {
        git: rendered.tuning.webhook && old.webhook.is_some(),
        registry: rendered.tuning.registry_webhook && old.registry_webhook.is_some(),
    };
    let before = cached_children(ctx, profile, &rendered.objects);
    let judged = missed::judge(old.delivery.as_ref(), &borrowed(&before));
    let missed = missed::update(&old.missed_webhooks, &judged, listening);
    if missed_kinds(&missed.missed) != missed_kinds(&old.missed_webhooks) {
        rendered = render::render_missed(profile, &ctx.install.caps, missed_kinds(&missed.missed));
    }

    let mut obs = Observation {
        generation: profile.meta().generation,
        class: Some(rendered.class),
        listening: Some(listening),
        ..Default::default()
    };
    let error = apply_and_prune(ctx, profile, &rendered, &mut obs).await;
    if obs.profile_gone {
        // Deleted (or replaced) since the reconcile began: the next event is its deletion.
        return Ok(Action::await_change());
    }
    if let Some(e) = &error {
        obs.error = Some(e.user_message());
    }
    // What notification-controller says of the Receiver: its path, or why it has none.
    // A Receiver that cannot be called (no token) leaves the backstop: the budget says so.
    let git = Hook::git(profile, rendered.receiver.as_deref());
    let (webhook, git_lost) = observe_hook(ctx, profile, git, &mut obs.blockers);
    obs.webhook = webhook;
    let registry = Hook::registry(profile, rendered.registry_receiver.as_deref());
    let (registry_webhook, registry_lost) = observe_hook(ctx, profile, registry, &mut obs.blockers);
    obs.registry_webhook = registry_webhook;
    let budget = rendered.budget_without(git_lost, registry_lost);
    let after = cached_children(ctx, profile, &rendered.objects);
    let mut health = delivery::health(&borrowed(&after));
    let seen = delivery::health(&borrowed(&before)).delivery;
    health.delivery = crate::api::Delivery {
        applied_revision: health.delivery.applied_revision,
        ..missed::recorded(old.delivery.as_ref(), seen, &judged)
    };
    let d = &health.delivery;
    let judged_pair = d
        .source_revision
        .as_deref()
        .zip(d.source_trigger.as_deref());
    let (latency, samples) = latency::merge(
        old.observed_latency.as_ref(),
        &latency::observe(&borrowed(&after), judged_pair),
    );
    obs.health = Some(health);
    obs.observed_latency = Some(latency);
    obs.latency_budget = Some(budget.status());
    obs.notes = notes::of(&rendered.tuning, &budget, listening, &missed, &samples);
    obs.missed = Some(missed.missed.clone());
    let new_status = status::compute(profile.status.as_ref(), &obs, &now());
    let ready = new_status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    events::publish(ctx, profile, &obs).await;
    match status::write_if_changed(ctx, profile, new_status).await {
        // Deleted since the reconcile began (a new profile's pass does not read it before its
        // writes): the next event is its deletion.
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
            return Ok(Action::await_change());
        }
        written => written?,
    };
    let (namespace, name) = (profile.namespace().unwrap_or_default(), profile.name_any());
    ctx.metrics.record_budget(&namespace, &name, &budget);
    let fallback = rendered.tuning.git_fallback || rendered.tuning.registry_fallback;
    ctx.metrics
        .record_delivery(&namespace, &name, ready, fallback);
    for (path, sample) in &samples {
        ctx.metrics
            .observe_latency(&namespace, &name, path, sample.took);
    }
    for m in &missed.new {
        ctx.metrics
            .missed_webhook(&namespace, &name, kind_label(&m.kind));
    }
    if let Some(e) = error {
        return Err(e);
    }
    Ok(next_check(ctx, profile, &obs))
}

/// Applies what can be applied even when something blocks the rest (a missing webhook Secret
/// still leaves the GitRepository and Kustomization correct), then prunes, then hands on a
/// reconcile request. Returns the transient error that cut the pass short, if any; the inventory
/// in `obs` is complete either way.
async fn apply_and_prune(
    ctx: &Context,
    profile: &FluxProfile,
    rendered: &render::Rendered,
    obs: &mut Observation,
) -> Option<Error> {
    let applied = apply::apply(ctx, profile, &rendered.objects).await;
    if applied.profile_gone {
        obs.profile_gone = true;
        return None;
    }
    obs.held = applied.held.clone();
    let missing = ctx.install.missing(applied.missing_kinds.iter().copied());
    if !missing.is_empty() {
        obs.blockers.push(Blocker::FluxCrdMissing(missing));
    }
    let named = |e: &InventoryEntry| format!("{}/{}", e.kind, e.name);
    if !applied.conflicts.is_empty() {
        obs.blockers.push(Blocker::NameConflict {
            conflicts: applied
                .conflicts
                .iter()
                .map(|(e, why)| (named(e), why.clone()))
                .collect(),
            blocked: applied.blocked.iter().map(named).collect(),
        });
    }
    if !applied.rejected.is_empty() {
        obs.blockers.push(Blocker::ApplyRejected(
            applied
                .rejected
                .iter()
                .map(|(e, message)| format!("{}: {message}", named(e)))
                .collect(),
        ));
    }
    obs.changed = applied.changed.clone();
    obs.adopted = applied.adopted.clone();

    // The inventory never loses an object: what this pass proved ours, plus what the previous
    // inventory held that this pass could not touch (rejected, blocked, or not reached).
    let rendered_entries: Vec<InventoryEntry> = rendered
        .objects
        .iter()
        .map(|o| o.inventory_entry())
        .collect();
    let previous = profile
        .status
        .as_ref()
        .map(|s| s.inventory.clone())
        .unwrap_or_default();
    let kept = |e: &InventoryEntry| {
        applied.owned.contains(e) || (previous.contains(e) && applied.untouched(e))
    };
    // In apply order, as always; then what only a failed pass keeps (not rendered any more, not
    // pruned yet).
    let mut inventory: Vec<InventoryEntry> = rendered_entries
        .iter()
        .filter(|e| kept(e))
        .cloned()
        .collect();
    if applied.error.is_some() {
        inventory.extend(
            previous
                .iter()
                .filter(|e| !rendered_entries.contains(e) && kept(e))
                .cloned(),
        );
    }
    if let Some(e) = applied.error {
        // Half a pass proves nothing about what left the profile: prune on the next one.
        obs.inventory = inventory;
        return Some(e);
    }
    // Only what the profile no longer renders is pruned, and only when proven its own; whatever
    // is not deleted stays in the inventory.
    let pruned = prune::prune(ctx, profile, &rendered_entries).await;
    inventory.extend(
        previous
            .iter()
            .filter(|e| !rendered_entries.contains(e) && !pruned.deleted.contains(e))
            .filter(|e| {
                pruned.error.is_some()
                    || pruned.skipped.contains(e)
                    || pruned.rejected.iter().any(|(r, _)| r == *e)
            })
            .cloned(),
    );
    obs.inventory = inventory;
    obs.pruned = pruned.deleted;
    obs.retry_soon = !pruned.skipped.is_empty();
    let mut refused: Vec<String> = pruned
        .rejected
        .iter()
        .map(|(e, message)| format!("delete {}: {message}", named(e)))
        .collect();
    if let Some(e) = pruned.error {
        return Some(e);
    }
    let owned: Vec<_> = rendered
        .objects
        .iter()
        .filter(|o| applied.owned.contains(&o.inventory_entry()))
        .cloned()
        .collect();
    match request::hand_on_push(ctx, profile, &owned).await {
        Ok(()) => {}
        Err(e) if e.is_permanent() => {
            refused.push(format!("automation push hand-on: {}", e.user_message()))
        }
        Err(e) => return Some(e),
    }
    match rescan::watch_over(ctx, profile, &owned).await {
        Ok(outcome) => {
            obs.rescan_in = outcome.wait;
            obs.rescans_gave_up = outcome.gave_up;
        }
        Err(e) if e.is_permanent() => refused.push(format!("rescan: {}", e.user_message())),
        Err(e) => return Some(e),
    }
    if let Some(requested) = request::pending(profile) {
        match request::hand_on(ctx, profile, &owned, &requested).await {
            Ok(()) => obs.handled_request = Some(requested),
            Err(e) if e.is_permanent() => {
                refused.push(format!("reconcile request: {}", e.user_message()))
            }
            Err(e) => return Some(e),
        }
    }
    if !refused.is_empty() {
        match obs
            .blockers
            .iter_mut()
            .find(|b| matches!(b, Blocker::ApplyRejected(_)))
        {
            Some(Blocker::ApplyRejected(list)) => list.extend(refused),
            _ => obs.blockers.push(Blocker::ApplyRejected(refused)),
        }
    }
    if !obs.changed.is_empty() || !obs.pruned.is_empty() {
        info!(
            applied = obs.changed.len(),
            pruned = obs.pruned.len(),
            "reconciled Flux objects"
        );
    }
    None
}

/// The profile's Flux objects as the caches hold them, in apply order (None: not cached yet).
fn cached_children(
    ctx: &Context,
    profile: &FluxProfile,
    objects: &[crate::flux::FluxObject],
) -> Vec<(FluxKind, String, Option<DynamicObject>)> {
    let namespace = profile.namespace().unwrap_or_default();
    objects
        .iter()
        .map(|o| {
            let kind = o.kind();
            let object = ctx
                .children
                .get(&kind)
                .and_then(|store| cache::get(store, kind, &namespace, &o.name()));
            (kind, o.name(), object)
        })
        .collect()
}

fn borrowed(
    children: &[(FluxKind, String, Option<DynamicObject>)],
) -> Vec<(FluxKind, String, Option<&DynamicObject>)> {
    children
        .iter()
        .map(|(kind, name, object)| (*kind, name.clone(), object.as_ref()))
        .collect()
}

/// Which webhooks status records as missed.
fn missed_kinds(missed: &[crate::api::MissedWebhook]) -> render::tuning::Missed {
    let has = |kind: FluxKind| missed.iter().any(|m| m.kind == kind.kind());
    render::tuning::Missed {
        git: has(FluxKind::GitRepository),
        registry: has(FluxKind::ImageRepository),
    }
}

/// The metric label of a missed webhook's source kind.
fn kind_label(kind: &str) -> &'static str {
    FluxKind::from_kind(kind).map_or("GitRepository", FluxKind::kind)
}

/// What notification-controller says of one Receiver: its path, or a blocker (and whether the
/// webhook is lost to the budget).
fn observe_hook(
    ctx: &Context,
    profile: &FluxProfile,
    hook: Option<Hook>,
    blockers: &mut Vec<Blocker>,
) -> (Option<crate::api::WebhookStatus>, bool) {
    match webhook::webhook_status(ctx, profile, hook) {
        Webhook::Ready(w) => (Some(w), false),
        Webhook::Blocked(blocker) => {
            blockers.insert(0, blocker);
            (None, true)
        }
        Webhook::Pending | Webhook::None => (None, false),
    }
}

/// While suspended nothing is written but status. The generation counts as observed only when
/// every child is already as this spec renders it (typically: the only change was `suspend`
/// itself); a spec change made while suspended is never reported as applied.
async fn suspended(ctx: &Context, profile: &FluxProfile) -> Result<Action> {
    let rendered = render::render(profile, &ctx.install.caps);
    let rendered_entries: Vec<InventoryEntry> = rendered
        .objects
        .iter()
        .map(|o| o.inventory_entry())
        .collect();
    // Every child as rendered, and nothing of the profile's left that it no longer renders.
    let in_place = rendered
        .objects
        .iter()
        .all(|o| apply::in_place(ctx, profile, o))
        && !ownership::candidates(ctx, profile)
            .iter()
            .filter(|c| !rendered_entries.contains(c))
            .any(|c| apply::cached_and_owned(ctx, profile, c));
    let kept = profile.status.clone().unwrap_or_default();
    let obs = Observation {
        generation: profile.meta().generation,
        suspended: Some(status::Suspended { in_place }),
        inventory: kept.inventory,
        webhook: kept.webhook,
        registry_webhook: kept.registry_webhook,
        ..Default::default()
    };
    status::write_if_changed(
        ctx,
        profile,
        status::compute(profile.status.as_ref(), &obs, &now()),
    )
    .await?;
    Ok(Action::requeue(RESYNC))
}

/// A profile only a person can fix before anything is rendered (the tenancy flags refuse it, or
/// its Kustomizations depend on each other in a cycle): Stalled, its existing objects left
/// exactly as they are (neither applied nor pruned), until a spec change.
async fn blocked(ctx: &Context, profile: &FluxProfile, blocker: Blocker) -> Result<Action> {
    let kept = profile.status.clone().unwrap_or_default();
    let obs = Observation {
        generation: profile.meta().generation,
        inventory: kept.inventory,
        webhook: kept.webhook,
        registry_webhook: kept.registry_webhook,
        latency_budget: kept.latency_budget,
        blockers: vec![blocker],
        ..Default::default()
    };
    events::publish(ctx, profile, &obs).await;
    status::write_if_changed(
        ctx,
        profile,
        status::compute(profile.status.as_ref(), &obs, &now()),
    )
    .await?;
    Ok(Action::await_change())
}

/// The parts of a child's status that change what its profile does or reports, so a change of
/// them wakes the profile (controller.rs); nothing else in a child's status does (an
/// ImageRepository's status changes every scan).
pub fn status_that_wakes(kind: FluxKind, child: &DynamicObject) -> Option<String> {
    let own = match kind {
        // The Receiver's published path and Ready (reconcile/webhook.rs).
        FluxKind::Receiver => webhook::status_that_matters(child).map(|s| format!("{s:?}")),
        // A new push is handed on to the GitRepository (reconcile/request.rs).
        FluxKind::ImageUpdateAutomation => child.data["status"]["lastPushCommit"]
            .as_str()
            .map(str::to_string),
        // A handled request or new tags (a new revision), for the propagation guard
        // (reconcile/rescan.rs); a periodic scan that finds the same tags changes neither.
        FluxKind::ImageRepository | FluxKind::GitRepository => {
            Some(format!("{:?}", rescan::Scan::of(kind, child)))
        }
        _ => None,
    };
    // Readiness and revisions, for the delivery status (reconcile/delivery.rs).
    Some(format!("{own:?}{}", delivery::fingerprint(kind, child)))
}

/// When to look again without a watch event.
fn next_check(ctx: &Context, profile: &FluxProfile, obs: &Observation) -> Action {
    let key = ObjectRef::new(&profile.name_any()).within(&profile.namespace().unwrap_or_default());
    let rejected = obs
        .blockers
        .iter()
        .any(|b| matches!(b, Blocker::ApplyRejected(_)));
    let mut next = obs
        .blockers
        .iter()
        .filter_map(Blocker::recheck)
        .min()
        .unwrap_or(RESYNC);
    if rejected {
        next = next.min(backoff(
            ctx,
            key,
            blocker::REJECTED_RETRY_FIRST,
            blocker::REJECTED_RETRY_MAX,
        ));
    } else {
        ctx.failures.lock().unwrap().remove(&key);
    }
    if obs.retry_soon {
        next = next.min(RETRY_SOON);
    }
    if let Some(rescan) = obs.rescan_in {
        next = next.min(rescan);
    }
    Action::requeue(next)
}

/// Per-profile exponential backoff after a transient error: 5s, 10s, 20s ... capped at 5 minutes.
pub fn error_policy(profile: Arc<Guarded>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = backoff(
        &ctx,
        ObjectRef::from_obj(&*profile),
        Duration::from_secs(5),
        Duration::from_secs(300),
    );
    warn!(profile = %profile.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// `first` doubled per consecutive failure of this profile, capped at `max`; the count resets
/// when a reconcile ends without one (`next_check`).
fn backoff(ctx: &Context, key: ObjectRef<Guarded>, first: Duration, max: Duration) -> Duration {
    let mut failures = ctx.failures.lock().unwrap();
    let n = failures.entry(key).or_insert(0);
    *n = n.saturating_add(1);
    (first * (1u32 << (*n - 1).min(10))).min(max)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

//! One FluxProfile reconcile, in the order it reads:
//! dereference (webhook Secret) -> render -> apply -> prune -> hand on requests -> status.

pub mod apply;
mod prune;
pub mod request;
pub mod status;
mod webhook;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
    core::DeserializeGuard,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
        reflector::{ObjectRef, Store},
    },
};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::{
    api::FluxProfile,
    capabilities::FluxInstall,
    error::{Error, Result},
    flux::FluxKind,
    metrics::{BudgetLabels, Metrics},
    render,
};
use status::Observation;

/// The backstop: drift and changes arrive as watch events, this only catches what a watch missed.
const RESYNC: Duration = Duration::from_secs(3600);
/// A missing Flux CRD needs an install, which restarts the controller (controller.rs
/// `controllers`); until then, look again rarely, never in a hot loop.
const CRD_MISSING_RECHECK: Duration = Duration::from_secs(600);

pub struct Context {
    pub client: Client,
    pub install: FluxInstall,
    /// Caches of the fluxtune-labelled objects of each installed Flux kind.
    pub children: BTreeMap<FluxKind, Store<DynamicObject>>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Set once every cache in `children` is filled (one task waits for that: a store's
    /// readiness wakes a single waiter).
    pub caches_ready: Arc<std::sync::atomic::AtomicBool>,
    failures: Mutex<HashMap<ObjectRef<Guarded>, u32>>,
    /// Unreadable profiles already reported, by generation and error.
    unreadable: Mutex<HashMap<ObjectRef<Guarded>, Reported>>,
}

impl Context {
    pub fn new(
        client: Client,
        install: FluxInstall,
        children: BTreeMap<FluxKind, Store<DynamicObject>>,
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
            failures: Mutex::default(),
            unreadable: Mutex::default(),
        }
    }
}

/// The generation and decoding error last reported for an unreadable profile.
type Reported = (Option<i64>, String);

/// Problems only the user can fix; reported as Stalled conditions, never as errors to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    WebhookSecretNotFound(String),
    WebhookTokenMissing(String),
    FluxCrdMissing(Vec<String>),
    NameConflict(Vec<String>),
}

impl Blocker {
    pub fn reason(&self) -> &'static str {
        match self {
            Blocker::WebhookSecretNotFound(_) => "WebhookSecretNotFound",
            Blocker::WebhookTokenMissing(_) => "WebhookTokenMissing",
            Blocker::FluxCrdMissing(_) => "FluxCRDMissing",
            Blocker::NameConflict(_) => "NameConflict",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Blocker::WebhookSecretNotFound(s) => {
                format!(
                    "webhook Secret {s:?} not found in the profile's namespace; create it with a \"token\" key"
                )
            }
            Blocker::WebhookTokenMissing(s) => format!("webhook Secret {s:?} has no \"token\" key"),
            Blocker::FluxCrdMissing(crds) => format!(
                "Flux CRDs not installed: {}; install them (fluxtune picks them up without a restart)",
                crds.join(", ")
            ),
            Blocker::NameConflict(objects) => format!(
                "{} already exist and are not managed by this profile; fluxtune leaves them untouched",
                objects.join(", ")
            ),
        }
    }
}

/// A profile as read from the API: one that does not deserialize (stored by another fluxtune
/// version, say) must not stop the watch of all the others.
pub type Guarded = DeserializeGuard<FluxProfile>;

/// Instruments and delegates.
#[instrument(skip_all, fields(profile = %guard.name_any(), namespace = guard.namespace()))]
pub async fn reconcile(guard: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = match &guard.0 {
        Ok(profile) => reconcile_profile(profile, &ctx).await,
        Err(invalid) => report_unreadable(&ctx, &guard, &invalid.error).await,
    };
    ctx.metrics.observe_reconcile(
        result.as_ref().err().map(Error::metric_label),
        started.elapsed(),
    );
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap()
            .remove(&ObjectRef::from_obj(&*guard));
    }
    result
}

/// Stalled with the decoding error, written without the typed status (the object does not
/// decode); nothing is applied or pruned until the spec is fixed.
async fn report_unreadable(ctx: &Context, guard: &Guarded, error: &str) -> Result<Action> {
    // The status write is itself a watch event on the profile: report each generation once, or
    // the fresh transition time would make every reconcile write again.
    let key = ObjectRef::from_obj(guard);
    let seen = (guard.meta().generation, error.to_string());
    if ctx.unreadable.lock().unwrap().get(&key) == Some(&seen) {
        return Ok(Action::await_change());
    }
    warn!(error, "FluxProfile cannot be read; fix its spec");
    let ar = kube::api::ApiResource::erase::<FluxProfile>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &guard.namespace().unwrap_or_default(),
        &ar,
    );
    let message = format!("the spec cannot be read by this fluxtune: {error}");
    let condition = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "InvalidSpec", "message": message,
               "observedGeneration": guard.meta().generation, "lastTransitionTime": now()})
    };
    let patch = json!({
        "apiVersion": ar.api_version, "kind": ar.kind,
        "status": {"observedGeneration": guard.meta().generation,
                   "conditions": [condition("Ready", "False"), condition("Stalled", "True")]}
    });
    api.patch_status(
        &guard.name_any(),
        &PatchParams::apply(status::STATUS_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.unreadable.lock().unwrap().insert(key, seen);
    Ok(Action::await_change())
}

async fn reconcile_profile(profile: &FluxProfile, ctx: &Context) -> Result<Action> {
    // Deciding "already applied" from a half-filled cache would rewrite objects at every start.
    // Waiting here would stall the controller, which stops polling the very watches that fill the
    // caches while this profile's reconcile runs: come back shortly instead.
    if !ctx.caches_ready.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(Action::requeue(Duration::from_millis(250)));
    }
    let generation = profile.meta().generation;
    if profile.spec.suspend {
        let kept = profile.status.clone().unwrap_or_default();
        let obs = Observation {
            generation,
            suspended: true,
            inventory: kept.inventory,
            webhook: kept.webhook,
            ..Default::default()
        };
        status::write_if_changed(
            ctx,
            profile,
            status::compute(profile.status.as_ref(), &obs, &now()),
        )
        .await?;
        return Ok(Action::requeue(RESYNC));
    }

    let rendered = render::render(profile, &ctx.install.caps);
    let webhook = webhook::webhook_status(ctx, profile, rendered.receiver.as_deref()).await?;
    let mut obs = Observation {
        generation,
        class: Some(rendered.class),
        latency_budget: Some(rendered.latency_budget.status()),
        ..Default::default()
    };
    match webhook {
        Some(Ok(w)) => obs.webhook = Some(w),
        Some(Err(blocker)) => obs.blockers.push(blocker),
        None => {}
    }

    let outcome = apply_and_prune(ctx, profile, &rendered, &mut obs).await;
    if let Err(e) = &outcome {
        obs.error = Some(e.to_string());
    }
    let new_status = status::compute(profile.status.as_ref(), &obs, &now());
    publish_events(ctx, profile, &obs).await;
    status::write_if_changed(ctx, profile, new_status).await?;
    record_budget(ctx, profile, &rendered);
    outcome?;

    if obs
        .blockers
        .iter()
        .any(|b| matches!(b, Blocker::FluxCrdMissing(_)))
    {
        return Ok(Action::requeue(CRD_MISSING_RECHECK));
    }
    Ok(Action::requeue(RESYNC))
}

/// Applies what can be applied even when something blocks the rest: a missing webhook Secret
/// still leaves the GitRepository and Kustomization correct.
async fn apply_and_prune(
    ctx: &Context,
    profile: &FluxProfile,
    rendered: &render::Rendered,
    obs: &mut Observation,
) -> Result<()> {
    let applied = apply::apply(ctx, profile, &rendered.objects).await?;
    let missing = ctx.install.missing(applied.missing_kinds.iter().copied());
    if !missing.is_empty() {
        obs.blockers.push(Blocker::FluxCrdMissing(missing));
    }
    if !applied.conflicts.is_empty() {
        let names = applied
            .conflicts
            .iter()
            .map(|c| format!("{}/{}", c.kind, c.name))
            .collect();
        obs.blockers.push(Blocker::NameConflict(names));
    }
    let ours: Vec<_> = rendered
        .objects
        .iter()
        .filter(|o| {
            ctx.children.contains_key(&o.kind())
                && !applied.conflicts.contains(&o.inventory_entry())
        })
        .cloned()
        .collect();
    obs.inventory = ours.iter().map(|o| o.inventory_entry()).collect();

    let pruned = prune::prune(ctx, profile, &obs.inventory).await?;
    if let Some(requested) = request::pending(profile) {
        request::hand_on(ctx, profile, &ours, &requested).await?;
        obs.handled_request = Some(requested);
    }
    if !applied.changed.is_empty() || !pruned.is_empty() {
        info!(
            applied = applied.changed.len(),
            pruned = pruned.len(),
            "reconciled Flux objects"
        );
    }
    obs.changed = applied.changed;
    obs.pruned = pruned;
    Ok(())
}

/// Events only for real changes: objects written or deleted, or a new blocker.
async fn publish_events(ctx: &Context, profile: &FluxProfile, obs: &Observation) {
    let mut events = Vec::new();
    let list = |entries: &[crate::api::InventoryEntry]| {
        entries
            .iter()
            .map(|e| format!("{}/{}", e.kind, e.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !obs.changed.is_empty() {
        events.push((
            EventType::Normal,
            "Applied",
            "Apply",
            format!("applied {}", list(&obs.changed)),
        ));
    }
    if !obs.pruned.is_empty() {
        events.push((
            EventType::Normal,
            "Pruned",
            "Delete",
            format!("deleted {}", list(&obs.pruned)),
        ));
    }
    if let Some(blocker) = obs.blockers.first() {
        let old_reason = profile
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == "Stalled" && c.status == "True")
            })
            .map(|c| c.reason.clone());
        if old_reason.as_deref() != Some(blocker.reason()) {
            events.push((
                EventType::Warning,
                blocker.reason(),
                "Reconcile",
                blocker.message(),
            ));
        }
    }
    let reference = profile.object_ref(&());
    for (type_, reason, action, note) in events {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %e, "could not publish event");
        }
    }
}

fn record_budget(ctx: &Context, profile: &FluxProfile, rendered: &render::Rendered) {
    let b = &rendered.latency_budget;
    let set = |path: &'static str, bound: &'static str, value: Duration| {
        let labels = BudgetLabels {
            namespace: profile.namespace().unwrap_or_default(),
            profile: profile.name_any(),
            path,
            bound,
        };
        ctx.metrics
            .latency_budget
            .get_or_create(&labels)
            .set(value.as_secs_f64());
    };
    set("image_to_deploy", "expected", b.image_to_deploy.expected);
    set("image_to_deploy", "worst", b.image_to_deploy.worst);
    set("commit_to_deploy", "expected", b.commit_to_deploy.expected);
    set("commit_to_deploy", "worst", b.commit_to_deploy.worst);
}

/// Per-profile exponential backoff: 5s, 10s, 20s ... capped at 5 minutes.
pub fn error_policy(profile: Arc<Guarded>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().unwrap();
    let n = failures.entry(ObjectRef::from_obj(&*profile)).or_insert(0);
    *n = n.saturating_add(1);
    let delay = Duration::from_secs(5 << (*n - 1).min(6)).min(Duration::from_secs(300));
    warn!(profile = %profile.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

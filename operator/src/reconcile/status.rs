//! Status: computed purely from what the reconcile observed, written only when it changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::ObjectRef,
};

use super::{Blocker, Context};
use crate::{
    api::{
        FluxProfile, FluxProfileStatus, InventoryEntry, LatencyBudget, PollingClass, WebhookStatus,
    },
    error::Result,
};

pub const STATUS_MANAGER: &str = "fluxtune-status";

/// What one reconcile found.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub generation: Option<i64>,
    pub class: Option<PollingClass>,
    pub latency_budget: Option<LatencyBudget>,
    pub webhook: Option<WebhookStatus>,
    pub registry_webhook: Option<WebhookStatus>,
    pub inventory: Vec<InventoryEntry>,
    /// Problems only the user can fix: Stalled, so health checks fail fast.
    pub blockers: Vec<Blocker>,
    /// A transient failure the controller retries.
    pub error: Option<String>,
    pub handled_request: Option<String>,
    /// Set while `spec.suspend` is true: nothing was applied.
    pub suspended: Option<Suspended>,
    /// Objects written, adopted or deleted by this reconcile (for events, not status).
    pub changed: Vec<InventoryEntry>,
    pub adopted: Vec<InventoryEntry>,
    pub pruned: Vec<InventoryEntry>,
    /// Suspended because what they act on became someone else's.
    pub held: Vec<InventoryEntry>,
    /// Something changed under a write's precondition: look again shortly.
    pub retry_soon: bool,
    /// The profile was being deleted when checked before the first write: nothing to report.
    pub profile_gone: bool,
    /// What the Flux objects report (reconcile/delivery.rs); None keeps the stored delivery.
    pub health: Option<super::delivery::Health>,
    /// The propagation guard's next rescan is due in (reconcile/rescan.rs).
    pub rescan_in: Option<std::time::Duration>,
    /// Which Receivers listen (None: not judged in this reconcile; the condition stays as it was).
    pub listening: Option<super::missed::Listening>,
    /// status.missedWebhooks after this reconcile; None keeps the stored list.
    pub missed: Option<Vec<crate::api::MissedWebhook>>,
    /// None keeps the stored samples.
    pub observed_latency: Option<crate::api::ObservedLatency>,
    /// Events the observations call for (reconcile/notes.rs).
    pub notes: Vec<super::notes::Note>,
    /// The propagation guard gave up: each Event's reason and message.
    pub rescans_gave_up: Vec<(&'static str, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suspended {
    /// Every child is already as this generation renders it.
    pub in_place: bool,
}

pub fn compute(
    old: Option<&FluxProfileStatus>,
    obs: &Observation,
    now: &Time,
) -> FluxProfileStatus {
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let condition = |type_: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" }.to_string();
        // Keep the transition time while the status stays the same.
        let last_transition_time = old_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: obs.generation,
            last_transition_time,
        }
    };

    // A suspended profile observes its generation only if its children already match it; else
    // kstatus must keep reading it as in progress, with the old generation.
    let observed = match obs.suspended {
        Some(Suspended { in_place: false }) => None,
        _ => obs.generation,
    };
    let conditions = if let Some(Suspended { in_place }) = obs.suspended {
        if in_place {
            old_conditions
                .iter()
                .cloned()
                .map(|c| Condition {
                    observed_generation: obs.generation,
                    ..c
                })
                .collect()
        } else {
            let applied = old.and_then(|s| s.observed_generation).unwrap_or(-1);
            let message = format!(
                "spec.suspend is true: generation {} is not applied; the Flux objects are as generation {applied} left them",
                obs.generation.unwrap_or_default()
            );
            vec![Condition {
                observed_generation: old.and_then(|s| s.observed_generation),
                ..condition("Ready", false, "Suspended", message)
            }]
        }
    } else if let Some(first) = obs.blockers.first() {
        let message = obs
            .blockers
            .iter()
            .map(Blocker::message)
            .collect::<Vec<_>>()
            .join("; ");
        vec![
            condition("Applied", false, first.reason(), message.clone()),
            condition("Ready", false, first.reason(), message.clone()),
            condition("Stalled", true, first.reason(), message),
        ]
    } else if let Some(error) = &obs.error {
        vec![
            condition("Applied", false, "ReconciliationFailed", error.clone()),
            condition("Ready", false, "ReconciliationFailed", error.clone()),
            condition(
                "Reconciling",
                true,
                "ProgressingWithRetry",
                format!("retrying after: {error}"),
            ),
        ]
    } else {
        let applied = format!("{} Flux objects up to date", obs.inventory.len());
        let mut conditions = vec![condition(
            "Applied",
            true,
            "ReconciliationSucceeded",
            applied.clone(),
        )];
        // Ready means delivered: every Flux object Ready for its generation.
        match obs.health.as_ref().and_then(|h| h.not_ready.as_ref()) {
            Some(n) => {
                conditions.push(condition("Ready", false, n.reason, n.message.clone()));
                if n.stalled {
                    conditions.push(condition("Stalled", true, n.reason, n.message.clone()));
                } else {
                    let reason = if n.failed {
                        "ProgressingWithRetry"
                    } else {
                        "Progressing"
                    };
                    conditions.push(condition("Reconciling", true, reason, n.message.clone()));
                }
            }
            None => {
                let delivered = obs
                    .health
                    .as_ref()
                    .and_then(|h| h.delivery.applied_revision.as_ref())
                    .map_or(applied.clone(), |r| format!("delivered {r}; {applied}"));
                conditions.push(condition(
                    "Ready",
                    true,
                    "ReconciliationSucceeded",
                    delivered,
                ));
            }
        }
        conditions
    };

    let missed = obs
        .missed
        .clone()
        .unwrap_or_else(|| old.map(|s| s.missed_webhooks.clone()).unwrap_or_default());
    let mut conditions = conditions;
    match obs.listening {
        Some(l) if obs.suspended.is_none() && (l.git || l.registry) => {
            conditions.push(match missed.as_slice() {
                [] => condition(
                    "WebhookDegraded",
                    false,
                    "WebhooksDelivering",
                    "no change was found by a poll while a webhook was expected".into(),
                ),
                missed => condition(
                    "WebhookDegraded",
                    true,
                    "WebhookMissed",
                    missed
                        .iter()
                        .map(|m| {
                            format!(
                                "{} {} was found by a poll at {}, not by its webhook",
                                m.kind, m.revision, m.found_at.0
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            })
        }
        // Not judged this time (a blocked profile): the condition stands as it was.
        None if obs.suspended.is_none() => conditions.extend(
            old_conditions
                .iter()
                .filter(|c| c.type_ == "WebhookDegraded")
                .cloned(),
        ),
        _ => {}
    }

    FluxProfileStatus {
        observed_generation: observed.or(old.and_then(|s| s.observed_generation)),
        conditions,
        observed_latency: obs
            .observed_latency
            .clone()
            .filter(|l| *l != Default::default())
            .or_else(|| old.and_then(|s| s.observed_latency.clone())),
        missed_webhooks: missed,
        last_handled_reconcile_at: obs
            .handled_request
            .clone()
            .or_else(|| old.and_then(|s| s.last_handled_reconcile_at.clone())),
        polling_class: obs.class.or(old.and_then(|s| s.polling_class)),
        webhook: obs.webhook.clone(),
        registry_webhook: obs.registry_webhook.clone(),
        latency_budget: obs
            .latency_budget
            .clone()
            .or_else(|| old.and_then(|s| s.latency_budget.clone())),
        delivery: match &obs.health {
            Some(h) => Some(h.delivery.clone()).filter(|d| *d != Default::default()),
            None => old.and_then(|s| s.delivery.clone()),
        },
        inventory: obs.inventory.clone(),
    }
}

/// Equal but for condition transition times, which alone never justify a write.
pub fn same(a: &FluxProfileStatus, b: &FluxProfileStatus) -> bool {
    let strip = |s: &FluxProfileStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Default::default());
        }
        s
    };
    strip(a) == strip(b)
}

/// Writes the status through the status subresource, only when it changed. Returns whether it wrote.
pub async fn write_if_changed(
    ctx: &Context,
    profile: &FluxProfile,
    new: FluxProfileStatus,
) -> Result<bool> {
    if profile.status.as_ref().is_some_and(|old| same(old, &new)) {
        return Ok(false);
    }
    let api: Api<FluxProfile> =
        Api::namespaced(ctx.client.clone(), &profile.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "fluxtune.dev/v1alpha1",
        "kind": "FluxProfile",
        "status": new,
    });
    api.patch_status(
        &profile.name_any(),
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    if let Some(version) = profile.resource_version() {
        ctx.written
            .lock()
            .unwrap()
            .insert(ObjectRef::from_obj(profile), version);
    }
    Ok(true)
}

/// Whether the cache still holds the profile as it was before this operator's last status write.
/// The watch event of a write can arrive after the next reconcile starts; a reconcile from that
/// copy would judge again what the write recorded (a missed webhook, a latency sample) and write
/// the older status back over it. Status is this controller's memory: it waits for its own write.
pub fn stale(ctx: &Context, profile: &FluxProfile) -> bool {
    let mut written = ctx.written.lock().unwrap();
    let key = ObjectRef::from_obj(profile);
    match written.get(&key) {
        Some(before) if profile.resource_version().as_ref() == Some(before) => true,
        Some(_) => {
            written.remove(&key);
            false
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn ready(status: &FluxProfileStatus) -> (&str, &str) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn success_is_ready_and_current() {
        let obs = Observation {
            generation: Some(3),
            ..Default::default()
        };
        let s = compute(None, &obs, &at(1));
        assert_eq!(ready(&s), ("True", "ReconciliationSucceeded"));
        assert_eq!(s.observed_generation, Some(3));
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            ["Applied", "Ready"],
            "no Reconciling or Stalled left behind"
        );
    }

    fn not_ready(failed: bool, stalled: bool) -> Observation {
        Observation {
            generation: Some(1),
            health: Some(crate::reconcile::delivery::Health {
                delivery: Default::default(),
                not_ready: Some(crate::reconcile::delivery::NotReady {
                    reason: "SourceNotReady",
                    message: "GitRepository/c: GitOperationFailed: authentication required".into(),
                    failed,
                    stalled,
                }),
            }),
            ..Default::default()
        }
    }

    fn has(s: &FluxProfileStatus, type_: &str, status: &str, reason: &str) -> bool {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
    }

    #[test]
    fn applied_but_not_delivered_is_not_ready_with_the_childs_words() {
        let s = compute(None, &not_ready(true, false), &at(1));
        assert!(has(&s, "Applied", "True", "ReconciliationSucceeded"));
        assert_eq!(ready(&s), ("False", "SourceNotReady"));
        assert!(
            has(&s, "Reconciling", "True", "ProgressingWithRetry"),
            "kstatus: in progress"
        );
        let message = &s
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .message;
        assert!(message.contains("authentication required"), "{message}");
        let s = compute(None, &not_ready(true, true), &at(1));
        assert!(
            has(&s, "Stalled", "True", "SourceNotReady"),
            "kstatus: failed"
        );
        let s = compute(None, &not_ready(false, false), &at(1));
        assert!(has(&s, "Reconciling", "True", "Progressing"));
    }

    #[test]
    fn delivered_names_the_applied_revision() {
        let obs = Observation {
            generation: Some(1),
            health: Some(crate::reconcile::delivery::Health {
                delivery: crate::api::Delivery {
                    applied_revision: Some("main@sha1:abc".into()),
                    ..Default::default()
                },
                not_ready: None,
            }),
            ..Default::default()
        };
        let s = compute(None, &obs, &at(1));
        assert_eq!(ready(&s), ("True", "ReconciliationSucceeded"));
        let c = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert!(
            c.message.starts_with("delivered main@sha1:abc"),
            "{}",
            c.message
        );
        assert_eq!(
            s.delivery.unwrap().applied_revision.as_deref(),
            Some("main@sha1:abc")
        );
    }

    #[test]
    fn a_blocker_stalls_so_health_checks_fail_fast() {
        let obs = Observation {
            generation: Some(1),
            blockers: vec![Blocker::WebhookSecretNotFound("hook".into())],
            ..Default::default()
        };
        let s = compute(None, &obs, &at(1));
        assert_eq!(ready(&s), ("False", "WebhookSecretNotFound"));
        let stalled = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(stalled.status, "True");
        assert!(stalled.message.contains("\"hook\""), "{}", stalled.message);
    }

    #[test]
    fn recomputing_an_unchanged_outcome_later_is_the_same_status() {
        let obs = Observation {
            generation: Some(1),
            ..Default::default()
        };
        let first = compute(None, &obs, &at(1));
        let second = compute(Some(&first), &obs, &at(500));
        assert!(same(&first, &second));
        assert_eq!(first, second, "transition times are kept too");
    }

    #[test]
    fn a_transition_gets_a_new_time() {
        let ok = compute(None, &Observation::default(), &at(1));
        let failed = compute(
            Some(&ok),
            &Observation {
                error: Some("boom".into()),
                ..Default::default()
            },
            &at(9),
        );
        assert!(!same(&ok, &failed));
        assert_eq!(failed.conditions[0].last_transition_time, at(9));
    }

    #[test]
    fn a_spec_change_while_suspended_is_not_observed() {
        let applied = compute(
            None,
            &Observation {
                generation: Some(2),
                ..Default::default()
            },
            &at(1),
        );
        let suspended_in_place = compute(
            Some(&applied),
            &Observation {
                generation: Some(3),
                suspended: Some(Suspended { in_place: true }),
                ..Default::default()
            },
            &at(2),
        );
        assert_eq!(suspended_in_place.observed_generation, Some(3));
        assert_eq!(
            ready(&suspended_in_place),
            ("True", "ReconciliationSucceeded")
        );
        let changed = compute(
            Some(&suspended_in_place),
            &Observation {
                generation: Some(4),
                suspended: Some(Suspended { in_place: false }),
                ..Default::default()
            },
            &at(3),
        );
        assert_eq!(
            changed.observed_generation,
            Some(3),
            "generation 4 was never applied"
        );
        assert_eq!(ready(&changed), ("False", "Suspended"));
    }
}

//! Events on the profile, only for real changes: objects written, adopted or deleted, or a new
//! blocker. A reconcile that changes nothing publishes nothing.

use kube::{
    Resource,
    runtime::events::{Event, EventType},
};
use tracing::warn;

use super::{Context, status::Observation};
use crate::api::{FluxProfile, InventoryEntry};

pub async fn publish(ctx: &Context, profile: &FluxProfile, obs: &Observation) {
    let mut events = Vec::new();
    let list = |entries: &[InventoryEntry]| {
        entries
            .iter()
            .map(|e| format!("{}/{}", e.kind, e.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !obs.adopted.is_empty() {
        events.push((
            EventType::Normal,
            "Adopted",
            "Apply",
            format!(
                "adopted {}: labelled for this profile and controlled by nobody",
                list(&obs.adopted)
            ),
        ));
    }
    if !obs.held.is_empty() {
        events.push((
            EventType::Warning,
            "Suspended",
            "Suspend",
            format!(
                "suspended {}: they would act on an object that is not this profile's; resumed when the conflict clears",
                list(&obs.held)
            ),
        ));
    }
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
    for (reason, message) in &obs.rescans_gave_up {
        // A Git host calls for pushes to every branch: one that changes nothing here is normal.
        let type_ = if *reason == "GitEventUnanswered" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        events.push((type_, *reason, "Rescan", message.clone()));
    }
    for note in &obs.notes {
        let type_ = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events.push((type_, note.reason, "Observe", note.message.clone()));
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

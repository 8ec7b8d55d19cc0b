//! A stored profile this version cannot decode (written for another fluxtune version, say): it is
//! reported Stalled with the decoding error, and nothing is applied or pruned until the spec is
//! fixed. The watch of every other profile goes on.

use kube::{
    Api, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{controller::Action, reflector::ObjectRef},
};
use serde_json::{Value, json};
use tracing::warn;

use super::{Context, Guarded, now, status::STATUS_MANAGER};
use crate::{api::FluxProfile, error::Result};

pub async fn report(ctx: &Context, guard: &Guarded, error: &str) -> Result<Action> {
    // The status write is itself a watch event on the profile: report each generation once, or
    // the fresh transition time would make every reconcile write again.
    let key = ObjectRef::from_obj(guard);
    let seen = (guard.meta().generation, error.to_string());
    if ctx.unreadable.lock().unwrap().get(&key) == Some(&seen) {
        return Ok(Action::await_change());
    }
    warn!(error, "FluxProfile cannot be read; fix its spec");
    let ar = ApiResource::erase::<FluxProfile>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &guard.namespace().unwrap_or_default(),
        &ar,
    );
    // Server-side apply of status replaces every field the status manager set before: start from
    // the stored status (read raw, it does not decode either), so the inventory, the webhook and
    // the budget survive; only the generation and the conditions change.
    let Some(stored) = api.get_opt(&guard.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let message = format!("the spec cannot be read by this fluxtune: {error}");
    let status = stalled_status(
        stored.data.get("status"),
        guard.meta().generation,
        &message,
        &serde_json::to_value(now()).expect("a timestamp serializes"),
    );
    let patch = json!({"apiVersion": ar.api_version, "kind": ar.kind, "status": status});
    api.patch_status(
        &guard.name_any(),
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.unreadable.lock().unwrap().insert(key, seen);
    Ok(Action::await_change())
}

/// The stored status with Ready=False and Stalled=True (reason InvalidSpec) for `generation`;
/// Reconciling goes, every other field stays.
fn stalled_status(
    stored: Option<&Value>,
    generation: Option<i64>,
    message: &str,
    now: &Value,
) -> Value {
    let mut status = stored.cloned().unwrap_or_else(|| json!({}));
    let old: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let condition = |type_: &str, value: &str| {
        let since = old
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == value)
            .map_or_else(|| now.clone(), |c| c["lastTransitionTime"].clone());
        json!({"type": type_, "status": value, "reason": "InvalidSpec", "message": message,
               "observedGeneration": generation, "lastTransitionTime": since})
    };
    status["observedGeneration"] = json!(generation);
    status["conditions"] = json!([condition("Ready", "False"), condition("Stalled", "True")]);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_other_status_field_is_kept() {
        let stored = json!({
            "observedGeneration": 1,
            "inventory": [{"apiVersion": "v1", "kind": "K", "name": "n"}],
            "webhook": {"path": "/hook/x"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "ok", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"},
                           {"type": "Reconciling", "status": "True", "reason": "r", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        });
        let s = stalled_status(
            Some(&stored),
            Some(2),
            "bad",
            &json!("2026-02-02T00:00:00Z"),
        );
        assert_eq!(s["inventory"], stored["inventory"]);
        assert_eq!(s["webhook"], stored["webhook"]);
        assert_eq!(s["observedGeneration"], 2);
        let types: Vec<_> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].clone())
            .collect();
        assert_eq!(types, [json!("Ready"), json!("Stalled")]);
        assert_eq!(
            s["conditions"][0]["lastTransitionTime"],
            "2026-02-02T00:00:00Z"
        );
    }
}

//! What made a source fetch a new revision (or a scan find new tags): a webhook, a request, a spec
//! change, or its periodic poll. Read from the object alone: the `requestedAt` value it handled
//! last says who asked and when, its managed fields say when its spec last changed, and a poll is
//! whatever neither explains. A new revision found by a poll while a Receiver is listening means a
//! webhook was missed (reconcile/missed.rs).

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::DynamicObject;
use serde_json::Value;

use super::request::REQUEST_MANAGER;

/// The `requestedAt` values fluxtune writes for the propagation guard:
/// `fluxtune-rescan-<attempt>-<unix millis>`.
pub const RESCAN_PREFIX: &str = "fluxtune-rescan-";
/// The `requestedAt` value of the automation's push handed on: `fluxtune-push-<commit>`.
pub const PUSH_PREFIX: &str = "fluxtune-push-";

/// How long a fetch may take after what asked for it: a trigger older than this did not cause it.
/// Never more than three quarters of the object's interval: Flux requeues a reconcile one interval
/// (jittered by at most 5 %, `--interval-jitter-percentage`) after the last one ended, so the next
/// poll after a request comes later than that and is not taken for its answer, while a busy
/// controller's queue (seconds under load) still counts as the request's own fetch.
const FETCH_WINDOW: SignedDuration = SignedDuration::from_secs(60);
/// Clock skew between the controllers (and metav1.Time's whole seconds).
const SKEW: SignedDuration = SignedDuration::from_secs(2);

/// Who asked for the reconcile an object handled last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// notification-controller's Receiver: Go's `time.Time.String()`, e.g.
    /// `2026-12-02 13:38:53.522879823 +0000 UTC m=+0.000069173` (`flux reconcile` writes RFC 3339,
    /// with a `T`).
    Receiver,
    /// The propagation guard's attempt N (reconcile/rescan.rs).
    Rescan(u32),
    /// A person, `flux reconcile`, or fluxtune's hand-on of a profile request or a push.
    Other,
}

pub fn origin(requested: &str) -> Origin {
    if let Some(rest) = requested.strip_prefix(RESCAN_PREFIX) {
        return rest
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .map_or(Origin::Other, Origin::Rescan);
    }
    if go_time(requested).is_some() {
        Origin::Receiver
    } else {
        Origin::Other
    }
}

/// Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST m=+0.1`.
fn go_time(value: &str) -> Option<Timestamp> {
    let mut parts = value.split(' ');
    let (date, time, offset) = (parts.next()?, parts.next()?, parts.next()?);
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || offset.len() != 5 {
        return None;
    }
    let (sign_hours, minutes) = offset.split_at(3);
    format!("{date}T{time}{sign_hours}:{minutes}").parse().ok()
}

/// When a `requestedAt` value was written, where the value says: the Receiver's Go time, RFC 3339
/// (`flux reconcile`), Unix seconds (`date +%s`), or the guard's milliseconds.
pub fn requested_time(value: &str) -> Option<Timestamp> {
    if let Some(rest) = value.strip_prefix(RESCAN_PREFIX) {
        let millis = rest.split('-').nth(1)?.parse().ok()?;
        return Timestamp::from_millisecond(millis).ok();
    }
    go_time(value)
        .or_else(|| value.parse().ok())
        .or_else(|| Timestamp::from_second(value.parse().ok()?).ok())
}

/// What brought a new revision or new tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A Receiver's request: the webhook arrived.
    Webhook,
    /// The propagation guard's rescan after a webhook: the webhook arrived first.
    Guard,
    /// A person, `flux reconcile`, or fluxtune handing on a request or the automation's push.
    Request,
    /// The object's spec changed.
    SpecChange,
    /// The periodic interval: nothing asked.
    Poll,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Webhook => "Webhook",
            Trigger::Guard => "WebhookRescan",
            Trigger::Request => "Request",
            Trigger::SpecChange => "SpecChange",
            Trigger::Poll => "Poll",
        }
    }

    /// A webhook started it (directly, or through the guard that followed one).
    pub fn by_webhook(self) -> bool {
        matches!(self, Trigger::Webhook | Trigger::Guard)
    }
}

/// The trigger of what `object` found at `found` (a GitRepository's artifact time, an
/// ImageRepository's scan time), and when that trigger fired when known.
pub fn trigger(object: &DynamicObject, found: Timestamp) -> (Trigger, Option<Timestamp>) {
    let window = object.data["spec"]["interval"]
        .as_str()
        .and_then(|i| i.parse::<kube::core::Duration>().ok())
        .and_then(|i| SignedDuration::try_from(std::time::Duration::from(i)).ok())
        .map_or(FETCH_WINDOW, |i| (i * 3 / 4).clamp(SKEW, FETCH_WINDOW));
    let caused = |at: Timestamp| at - SKEW <= found && found <= at + window;
    let status = &object.data["status"];
    if let Some(handled) = status["lastHandledReconcileAt"]
        .as_str()
        .filter(|h| !h.is_empty())
    {
        if let Some(commit) = handled.strip_prefix(PUSH_PREFIX) {
            let revision = status["artifact"]["revision"].as_str().unwrap_or_default();
            if !commit.is_empty() && revision.ends_with(commit) {
                return (Trigger::Request, None);
            }
        }
        if let Some(at) = requested_time(handled).filter(|at| caused(*at)) {
            let trigger = match origin(handled) {
                Origin::Receiver => Trigger::Webhook,
                Origin::Rescan(_) => Trigger::Guard,
                Origin::Other => Trigger::Request,
            };
            return (trigger, Some(at));
        }
    }
    if spec_changed(object).is_some_and(caused) {
        return (Trigger::SpecChange, None);
    }
    (Trigger::Poll, None)
}

/// The last change of the object by anyone but its controller's status writes and fluxtune's
/// `requestedAt` hand-on: an apply that changed the spec, or a person's edit.
fn spec_changed(object: &DynamicObject) -> Option<Timestamp> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref().unwrap_or_default() != "status")
        .filter(|m| m.manager.as_deref() != Some(REQUEST_MANAGER))
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
}

/// When an ImageRepository's scan last found a different set of tags, if it says: its Ready
/// message names the tag count and checksum, and Flux moves a condition's transition time when
/// its message changes, so later scans that find the same tags leave it. (`lastScanResult.scanTime`
/// moves with every scan; an ImagePolicy selects the new tag seconds after the scan, on its own
/// reconcile, so its Ready time is too late to judge the scan's trigger by.)
pub fn tags_changed_at(repository: &DynamicObject) -> Option<Timestamp> {
    repository.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .and_then(|c| timestamp(&c["lastTransitionTime"]))
}

/// When the scan that found an image selected at `selected_at` ran: the repository's last change
/// of tags, when it came before the selection, else the selection itself.
pub fn found_by_scan(repository: &DynamicObject, selected_at: Timestamp) -> Timestamp {
    tags_changed_at(repository)
        .filter(|at| *at <= selected_at)
        .unwrap_or(selected_at)
}

/// A metav1.Time field.
pub fn timestamp(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use serde_json::json;

    pub const RECEIVER: &str = "2026-12-02 13:38:53.522879823 +0000 UTC m=+0.000069173";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn source(handled: &str, revision: &str) -> DynamicObject {
        let mut o = DynamicObject::new("c", &crate::flux::FluxKind::GitRepository.api_resource());
        o.data = json!({"status": {"lastHandledReconcileAt": handled,
                                   "artifact": {"revision": revision}}});
        o
    }

    #[test]
    fn origins_are_told_apart_by_the_value_alone() {
        assert_eq!(origin(RECEIVER), Origin::Receiver);
        assert_eq!(origin("2026-12-02 13:38:53 +0000 UTC"), Origin::Receiver);
        assert_eq!(
            origin("2026-12-02T13:38:53.5Z"),
            Origin::Other,
            "flux reconcile"
        );
        assert_eq!(origin("fluxtune-rescan-3-17"), Origin::Rescan(3));
        assert_eq!(origin("fluxtune-push-abc"), Origin::Other);
        assert_eq!(origin("now"), Origin::Other);
    }

    #[test]
    fn request_times_are_read_from_every_format() {
        assert_eq!(
            requested_time(RECEIVER),
            Some(at("2026-12-02T13:38:53.522879823Z"))
        );
        assert_eq!(
            requested_time("2026-12-02 14:38:53.5 +0100 CET m=+1"),
            Some(at("2026-12-02T13:38:53.5Z"))
        );
        assert_eq!(
            requested_time("2026-12-02T13:38:53Z"),
            Some(at("2026-12-02T13:38:53Z"))
        );
        assert_eq!(
            requested_time("1796218733"),
            Some(Timestamp::from_second(1796218733).unwrap())
        );
        assert_eq!(
            requested_time("fluxtune-rescan-2-1796218733500"),
            Some(Timestamp::from_millisecond(1796218733500).unwrap())
        );
        assert_eq!(requested_time("fluxtune-push-abc"), None);
        assert_eq!(requested_time("soon"), None);
    }

    #[test]
    fn a_fetch_right_after_a_request_was_caused_by_it() {
        let fetched = at("2026-12-02T13:38:54Z");
        let (t, when) = trigger(&source(RECEIVER, "main@sha1:1"), fetched);
        assert_eq!(t, Trigger::Webhook);
        assert!(when.is_some());
        assert_eq!(
            trigger(&source("2026-12-02T13:38:53Z", "main@sha1:1"), fetched).0,
            Trigger::Request
        );
        assert_eq!(
            trigger(
                &source("fluxtune-rescan-1-1796218733000", "x"),
                at("2026-12-02T13:38:55Z")
            )
            .0,
            Trigger::Guard
        );
        assert_eq!(
            trigger(&source("fluxtune-push-abc", "main@sha1:abc"), fetched).0,
            Trigger::Request,
            "the automation's push handed on"
        );
    }

    #[test]
    fn a_fetch_long_after_the_last_request_is_a_poll() {
        let later = at("2026-12-02T14:00:00Z");
        assert_eq!(
            trigger(&source(RECEIVER, "main@sha1:2"), later).0,
            Trigger::Poll
        );
        assert_eq!(
            trigger(&source("fluxtune-push-abc", "main@sha1:def"), later).0,
            Trigger::Poll,
            "a push already fetched says nothing of the next revision"
        );
        assert_eq!(trigger(&source("", "x"), later).0, Trigger::Poll);
    }

    #[test]
    fn the_next_poll_after_a_request_is_a_poll() {
        let mut o = source("2026-12-02T13:38:00Z", "main@sha1:2");
        o.data["spec"] = json!({"interval": "30s"});
        assert_eq!(trigger(&o, at("2026-12-02T13:38:10Z")).0, Trigger::Request);
        assert_eq!(
            trigger(&o, at("2026-12-02T13:38:20Z")).0,
            Trigger::Request,
            "a request queued behind others for 20 s"
        );
        assert_eq!(
            trigger(&o, at("2026-12-02T13:38:29Z")).0,
            Trigger::Poll,
            "the next poll, 5 % early"
        );
    }

    #[test]
    fn a_fetch_right_after_a_spec_change_is_not_a_poll() {
        let mut o = source(RECEIVER, "main@sha1:2");
        let entry = |manager: &str, time: &str, subresource: Option<&str>| ManagedFieldsEntry {
            manager: Some(manager.into()),
            time: Some(Time(at(time))),
            subresource: subresource.map(str::to_string),
            ..Default::default()
        };
        o.metadata.managed_fields = Some(vec![
            entry("fluxtune", "2026-12-02T13:59:50Z", None),
            entry("source-controller", "2026-12-02T14:00:00Z", Some("status")),
        ]);
        let fetched = at("2026-12-02T14:00:00Z");
        assert_eq!(trigger(&o, fetched).0, Trigger::SpecChange);
        o.metadata.managed_fields = Some(vec![
            entry(REQUEST_MANAGER, "2026-12-02T13:59:59Z", None),
            entry("source-controller", "2026-12-02T14:00:00Z", Some("status")),
        ]);
        assert_eq!(
            trigger(&o, fetched).0,
            Trigger::Poll,
            "a requestedAt patch is not a spec change"
        );
    }
}

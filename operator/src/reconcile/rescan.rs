//! The propagation guard. A webhook can arrive a moment before what it announces is visible: CNCF
//! distribution sends the push event before it writes the tag link (distribution#2625), and a Git
//! host can call before its replicas serve the new commit. The scan or fetch the event triggered
//! then finds nothing new, and the change would wait for the backstop interval. When a Receiver's
//! request leaves every source of one kind (the profile's ImageRepositories, or its GitRepository)
//! as it was, fluxtune asks again after 2 s, doubling to 30 s, and after the last attempt gives up
//! with an Event (a push that changes nothing here ends there too: a moved `latest` tag, a push
//! to another branch).
//!
//! What was seen before the request is not in any object: the guard keeps its last look per
//! profile and kind in memory. After a restart the first look only records, so a race in that
//! moment waits for the backstop as it would without fluxtune.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use kube::{ResourceExt, api::DynamicObject, runtime::reflector::ObjectRef};
use tracing::info;

use super::{
    Context,
    request::REQUESTED_AT,
    trigger::{Origin, RESCAN_PREFIX, origin},
};
use crate::{
    api::FluxProfile,
    error::Result,
    flux::{FluxKind, FluxObject},
};

const FIRST_DELAY: Duration = Duration::from_secs(2);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// 2 + 4 + 8 + 16 + 30 s: a minute of rescans before the guard gives up.
pub const ATTEMPTS: u32 = 5;
/// A Receiver request this soon after new tags were found repeats the same push (a `helm push`
/// sends two manifest events; registries retry a slow delivery): not a race to guard.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10);

pub fn request_value(attempt: u32, now_millis: u128) -> String {
    format!("{RESCAN_PREFIX}{attempt}-{now_millis}")
}

/// What one source says of its last scan or fetch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scan {
    /// `status.lastHandledReconcileAt`: the last request the controller acted on.
    pub handled: Option<String>,
    /// An ImageRepository's `status.lastScanResult.revision` (changes exactly when the tag list
    /// does), a GitRepository's artifact revision.
    pub revision: Option<String>,
}

/// The sources the guard watches over, with the Event that says it gave up.
pub const GUARDED: [(FluxKind, &str); 2] = [
    (FluxKind::ImageRepository, "RegistryEventUnanswered"),
    (FluxKind::GitRepository, "GitEventUnanswered"),
];

impl Scan {
    pub fn of(kind: FluxKind, repository: &DynamicObject) -> Scan {
        let status = &repository.data["status"];
        let revision = match kind {
            FluxKind::GitRepository => &status["artifact"]["revision"],
            _ => &status["lastScanResult"]["revision"],
        };
        let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        // A request still pending (annotation not handled yet) is not a scan to judge.
        let handled = text(&status["lastHandledReconcileAt"])
            .filter(|h| repository.annotations().get(REQUESTED_AT) == Some(h));
        Scan {
            handled,
            revision: text(revision),
        }
    }
}

/// The scans of a profile's ImageRepositories, by name.
pub type Scans = BTreeMap<String, Scan>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to judge: no new request handled, or not one the guard follows.
    Nothing,
    /// A handled request found new tags somewhere: the announcement arrived.
    Answered,
    /// A handled request found nothing new: request attempt N.
    Rescan(u32),
    /// The last attempt found nothing new either.
    GiveUp,
}

/// Compares two looks at the same profile's ImageRepositories. One registry Receiver targets all of
/// them, so a push to one image scans all: the request counts as answered if any found new tags.
pub fn judge(before: &Scans, now: &Scans) -> Verdict {
    let mut origins = now.iter().filter_map(|(name, scan)| {
        let old = before.get(name)?;
        (scan.handled.is_some() && scan.handled != old.handled)
            .then(|| origin(scan.handled.as_deref().unwrap_or_default()))
    });
    let first = origins.next();
    let Some(first) = first else {
        return Verdict::Nothing;
    };
    let changed = now.iter().any(|(name, scan)| {
        before
            .get(name)
            .is_some_and(|old| old.revision != scan.revision)
    });
    if changed {
        return Verdict::Answered;
    }
    let all: Vec<Origin> = std::iter::once(first).chain(origins).collect();
    if all.contains(&Origin::Receiver) {
        return Verdict::Rescan(1);
    }
    match all
        .iter()
        .filter_map(|o| match o {
            Origin::Rescan(n) => Some(*n),
            _ => None,
        })
        .max()
    {
        Some(n) if n >= ATTEMPTS => Verdict::GiveUp,
        Some(n) => Verdict::Rescan(n + 1),
        None => Verdict::Nothing,
    }
}

pub fn delay(attempt: u32) -> Duration {
    (FIRST_DELAY * (1u32 << attempt.saturating_sub(1).min(8))).min(MAX_DELAY)
}

/// One profile's guard: the last look, and the rescan waiting for its time.
#[derive(Debug, Default)]
pub struct Guard {
    seen: Option<Scans>,
    due: Option<(u32, Instant)>,
    /// When the sequence started, for the give-up message.
    since: Option<Instant>,
    /// When new tags were last found.
    answered: Option<Instant>,
}

/// What to do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<G = Duration> {
    Idle,
    /// Look again after this long.
    WaitFor(Duration),
    /// Request scan attempt N now.
    Request(u32),
    /// The guard gave up after this long.
    GaveUp(G),
}

impl Guard {
    pub fn step(&mut self, scans: Scans, now: Instant) -> Step {
        let verdict = match &self.seen {
            Some(before) => judge(before, &scans),
            None => Verdict::Nothing,
        };
        self.seen = Some(scans);
        match verdict {
            Verdict::Answered => {
                self.due = None;
                self.since = None;
                self.answered = Some(now);
            }
            Verdict::Rescan(1)
                if self
                    .answered
                    .is_some_and(|at| now.saturating_duration_since(at) < DUPLICATE_WINDOW) => {}
            Verdict::Rescan(n) => {
                if n == 1 {
                    self.since = Some(now);
                }
                self.due = Some((n, now + delay(n)));
            }
            Verdict::GiveUp => {
                self.due = None;
                let since = self.since.take().unwrap_or(now);
                return Step::GaveUp(now.saturating_duration_since(since));
            }
            Verdict::Nothing => {}
        }
        match self.due {
            Some((n, at)) if at <= now => {
                // Waits for the scan this request triggers.
                self.due = None;
                Step::Request(n)
            }
            Some((_, at)) => Step::WaitFor(at - now),
            None => Step::Idle,
        }
    }
}

/// What the guard did in one reconcile.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Look again after this long (a rescan is waiting for its time).
    pub wait: Option<Duration>,
    /// The Events' reasons and messages, for each kind the guard gave up on.
    pub gave_up: Vec<(&'static str, String)>,
}

/// Looks at the profile's owned sources (from the cache), kind by kind, and asks for a rescan
/// when one is due: a merge patch of `requestedAt` on each, as a Receiver would.
pub async fn watch_over(
    ctx: &Context,
    profile: &FluxProfile,
    owned: &[FluxObject],
) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for (kind, reason) in GUARDED {
        let step = watch_kind(ctx, profile, owned, kind).await?;
        match step {
            Some(Step::WaitFor(wait)) => {
                outcome.wait = Some(outcome.wait.map_or(wait, |w| w.min(wait)))
            }
            Some(Step::GaveUp(message)) => outcome.gave_up.push((reason, message)),
            _ => {}
        }
    }
    Ok(outcome)
}

/// One kind's step, with the give-up message in place of the duration.
async fn watch_kind(
    ctx: &Context,
    profile: &FluxProfile,
    owned: &[FluxObject],
    kind: FluxKind,
) -> Result<Option<Step<String>>> {
    let key = (ObjectRef::from_obj(profile), kind);
    let sources: Vec<&FluxObject> = owned.iter().filter(|o| o.kind() == kind).collect();
    if sources.is_empty() {
        ctx.rescans.lock().unwrap().remove(&key);
        return Ok(None);
    }
    let namespace = profile.namespace().unwrap_or_default();
    let scans: Scans = sources
        .iter()
        .filter_map(|o| {
            let cached = crate::cache::get(ctx.children.get(&kind)?, kind, &namespace, &o.name())?;
            Some((o.name(), Scan::of(kind, &cached)))
        })
        .collect();
    let step = ctx
        .rescans
        .lock()
        .unwrap()
        .entry(key)
        .or_default()
        .step(scans, Instant::now());
    Ok(Some(match step {
        Step::Idle => Step::Idle,
        Step::WaitFor(wait) => Step::WaitFor(wait),
        Step::Request(attempt) => {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            let value = request_value(attempt, millis);
            for source in &sources {
                super::request::request(ctx, profile, source, &value).await?;
            }
            info!(
                attempt,
                kind = kind.kind(),
                "a webhook's request found nothing new: asking again"
            );
            Step::Request(attempt)
        }
        Step::GaveUp(tried) => {
            let names: Vec<String> = sources.iter().map(|o| o.name()).collect();
            let (event, nothing) = match kind {
                FluxKind::GitRepository => (
                    "a Git host's webhook",
                    "a new revision (a push to another branch ends here too)",
                ),
                _ => ("a registry event", "a new tag"),
            };
            Step::GaveUp(format!(
                "{event} was followed by {ATTEMPTS} requests over {} s and none found {nothing} in {} {}; a change pushed then waits for the backstop interval",
                tried.as_secs(),
                kind.kind(),
                names.join(", ")
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scans(entries: &[(&str, &str, &str)]) -> Scans {
        entries
            .iter()
            .map(|(name, handled, revision)| {
                (
                    name.to_string(),
                    Scan {
                        handled: (!handled.is_empty()).then(|| handled.to_string()),
                        revision: Some(revision.to_string()),
                    },
                )
            })
            .collect()
    }
    const RECEIVER: &str = "2026-12-02 13:38:53.522879823 +0000 UTC m=+0.000069173";
    const RECEIVER2: &str = "2026-12-02 13:40:00.1 +0000 UTC m=+66.5";

    #[test]
    fn a_receiver_request_that_finds_nothing_new_is_rescanned_with_backoff() {
        let before = scans(&[("app", "", "r1")]);
        assert_eq!(
            judge(&before, &scans(&[("app", RECEIVER, "r1")])),
            Verdict::Rescan(1)
        );
        assert_eq!(
            judge(&before, &scans(&[("app", RECEIVER, "r2")])),
            Verdict::Answered
        );
        assert_eq!(
            judge(&before, &scans(&[("app", "", "r1")])),
            Verdict::Nothing
        );
        let delays: Vec<u64> = (1..=ATTEMPTS).map(|n| delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 30]);
    }

    #[test]
    fn any_image_with_new_tags_answers_the_request() {
        let before = scans(&[("api", "", "a1"), ("web", "", "w1")]);
        let now = scans(&[("api", RECEIVER, "a2"), ("web", RECEIVER2, "w1")]);
        assert_eq!(judge(&before, &now), Verdict::Answered);
    }

    #[test]
    fn only_receiver_and_own_requests_are_followed() {
        let before = scans(&[("app", "", "r1")]);
        let by_hand = scans(&[("app", "2026-12-02T13:38:53Z", "r1")]);
        assert_eq!(judge(&before, &by_hand), Verdict::Nothing);
        let last = scans(&[("app", &request_value(ATTEMPTS, 1), "r1")]);
        assert_eq!(judge(&before, &last), Verdict::GiveUp);
        let second = scans(&[("app", &request_value(1, 1), "r1")]);
        assert_eq!(judge(&before, &second), Verdict::Rescan(2));
    }

    #[test]
    fn the_guard_requests_when_due_then_gives_up_after_the_last_attempt() {
        let t0 = Instant::now();
        let mut guard = Guard::default();
        assert_eq!(
            guard.step(scans(&[("app", "", "r1")]), t0),
            Step::Idle,
            "first look records"
        );
        assert_eq!(
            guard.step(scans(&[("app", RECEIVER, "r1")]), t0),
            Step::WaitFor(Duration::from_secs(2))
        );
        let mut t = t0;
        for n in 1..=ATTEMPTS {
            t += delay(n);
            let handled = if n == 1 {
                RECEIVER.to_string()
            } else {
                request_value(n - 1, 0)
            };
            assert_eq!(
                guard.step(scans(&[("app", &handled, "r1")]), t),
                Step::Request(n)
            );
            let next = guard.step(scans(&[("app", &request_value(n, 0), "r1")]), t);
            if n < ATTEMPTS {
                assert_eq!(next, Step::WaitFor(delay(n + 1)));
            } else {
                assert_eq!(next, Step::GaveUp(t - t0));
            }
        }
        assert_eq!(
            guard.step(scans(&[("app", &request_value(ATTEMPTS, 0), "r1")]), t),
            Step::Idle
        );
    }

    #[test]
    fn a_tag_found_by_a_rescan_ends_the_sequence() {
        let t0 = Instant::now();
        let mut guard = Guard::default();
        guard.step(scans(&[("app", "", "r1")]), t0);
        guard.step(scans(&[("app", RECEIVER, "r1")]), t0);
        let t = t0 + delay(1);
        assert_eq!(
            guard.step(scans(&[("app", RECEIVER, "r1")]), t),
            Step::Request(1)
        );
        assert_eq!(
            guard.step(scans(&[("app", &request_value(1, 0), "r2")]), t),
            Step::Idle
        );
    }

    #[test]
    fn a_repeated_event_right_after_new_tags_is_not_guarded() {
        let t0 = Instant::now();
        let mut guard = Guard::default();
        guard.step(scans(&[("app", "", "r1")]), t0);
        assert_eq!(
            guard.step(scans(&[("app", RECEIVER, "r2")]), t0),
            Step::Idle
        );
        let soon = t0 + Duration::from_secs(1);
        assert_eq!(
            guard.step(scans(&[("app", RECEIVER2, "r2")]), soon),
            Step::Idle
        );
        let later = t0 + DUPLICATE_WINDOW;
        assert_eq!(
            guard.step(scans(&[("app", RECEIVER, "r2")]), later),
            Step::WaitFor(delay(1)),
            "a new event later is guarded again"
        );
    }

    #[test]
    fn after_a_restart_the_first_look_only_records() {
        let mut guard = Guard::default();
        assert_eq!(
            guard.step(scans(&[("app", RECEIVER, "r1")]), Instant::now()),
            Step::Idle
        );
    }
}

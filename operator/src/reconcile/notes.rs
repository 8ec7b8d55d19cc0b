//! The Events a reconcile's observations call for: a missed webhook, the fallback switching on or
//! off, and an observed latency over the budget's worst case. Pure: events.rs publishes them.

use std::time::Duration;

use super::{latency::Sample, missed};
use crate::{
    flux::FluxKind,
    render::{
        budget::{Budget, go_duration},
        tuning::Tuning,
    },
};

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

fn who(kind: &str) -> (&'static str, &'static str) {
    match FluxKind::from_kind(kind) {
        Some(FluxKind::ImageRepository) => ("the registry's webhook", "scan"),
        _ => ("the Git host's webhook", "fetch"),
    }
}

pub fn of(
    tuning: &Tuning,
    budget: &Budget,
    listening: missed::Listening,
    missed: &missed::Outcome,
    samples: &[(&'static str, Sample)],
) -> Vec<Note> {
    let mut notes = Vec::new();
    for m in &missed.new {
        let (hook, _) = who(&m.kind);
        let (fallback, interval) = match FluxKind::from_kind(&m.kind) {
            Some(FluxKind::ImageRepository) => (tuning.registry_fallback, &tuning.image_scan),
            _ => (tuning.git_fallback, &tuning.source),
        };
        let then = if fallback {
            format!("polling every {interval} until a change arrives by webhook again")
        } else {
            format!("the fallback is off: the interval stays {interval}")
        };
        notes.push(Note {
            warning: true,
            reason: "WebhookMissed",
            message: format!(
                "{} {} was found by a periodic poll at {}, not announced by {hook} (check its delivery log); {then}",
                m.kind, m.revision, m.found_at.0
            ),
        });
    }
    for kind in &missed.restored {
        let (hook, _) = who(kind.kind());
        let interval = match kind {
            FluxKind::ImageRepository => &tuning.image_scan,
            _ => &tuning.source,
        };
        notes.push(Note {
            warning: false,
            reason: "WebhookRestored",
            message: format!(
                "a change arrived by {hook} again: the {} interval is back to {interval}",
                kind.kind()
            ),
        });
    }
    for (path, sample) in samples {
        // A poll while a Receiver listens is reported as a missed webhook already.
        let worst = match *path {
            "commit_to_deploy" if sample.trigger == "Poll" && listening.git => None,
            "commit_to_deploy" => Some(budget.commit_to_deploy.worst),
            _ if sample.trigger == "Scan" && listening.registry => None,
            _ => Some(budget.image_to_deploy.worst),
        };
        if let Some(worst) = worst.filter(|w| sample.took > *w && *w > Duration::ZERO) {
            notes.push(Note {
                warning: true,
                reason: "LatencyOverBudget",
                message: format!(
                    "{} took {} ({path}, started by {}), over the budget's worst case {}",
                    sample.revision,
                    go_duration(sample.took),
                    sample.trigger,
                    go_duration(worst)
                ),
            });
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::MissedWebhook, render::tuning};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn webhook_tuning(missed: bool) -> Tuning {
        let spec: crate::api::FluxProfileSpec = serde_json::from_value(serde_json::json!({
            "cluster": {"name": "c"},
            "source": {"url": "https://git.example.com/fleet.git"},
            "webhook": {"provider": "github", "secretRef": {"name": "w"}},
        }))
        .unwrap();
        tuning::tuning(
            &spec,
            tuning::Missed {
                git: missed,
                registry: false,
            },
        )
    }

    #[test]
    fn a_miss_says_what_happens_next() {
        let t = webhook_tuning(true);
        assert_eq!(t.source, "1m");
        let outcome = missed::Outcome {
            new: vec![MissedWebhook {
                kind: "GitRepository".into(),
                revision: "main@sha1:b".into(),
                found_at: Time("2026-12-02T11:00:00Z".parse().unwrap()),
            }],
            ..Default::default()
        };
        let budget = crate::render::budget::latency_budget(&t);
        let notes = of(&t, &budget, Default::default(), &outcome, &[]);
        assert_eq!(notes[0].reason, "WebhookMissed");
        assert!(
            notes[0].message.contains("polling every 1m"),
            "{}",
            notes[0].message
        );
    }

    #[test]
    fn only_latency_over_the_worst_case_is_reported() {
        let t = webhook_tuning(false);
        let budget = crate::render::budget::latency_budget(&t);
        let sample = |secs, trigger| Sample {
            revision: "main@sha1:a".into(),
            took: Duration::from_secs(secs),
            trigger,
            applied_at: "2026-12-02T11:00:00Z".parse().unwrap(),
        };
        let listening = missed::Listening {
            git: true,
            registry: false,
        };
        let notes = |s| {
            of(
                &t,
                &budget,
                listening,
                &Default::default(),
                &[("commit_to_deploy", s)],
            )
        };
        assert!(notes(sample(3, "Webhook")).is_empty());
        assert_eq!(notes(sample(30, "Webhook"))[0].reason, "LatencyOverBudget");
        assert!(notes(sample(1800, "Poll")).is_empty(), "reported as missed");
    }
}

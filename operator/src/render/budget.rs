//! The latency a rendered configuration should achieve (status.latencyBudget).
//!
//! Only the image scan (and, without a webhook, the Git poll) waits on an interval; every later
//! step reacts to an event. Flux jitters intervals by up to 5%, so a poll waits on average half an
//! interval and at worst 1.05 intervals. With `scan`, `source` the rendered intervals and `p` the
//! processing allowance:
//!
//! | path | expected | worst |
//! |---|---|---|
//! | image to deploy | scan/2 + p | 1.05 scan + p |
//! | image to deploy, registry webhook | p | p |
//! | registry webhook call lost | | 1.05 scan + p |
//! | commit to deploy, webhook | p | p |
//! | commit to deploy, no webhook | source/2 + p | 1.05 source + p |
//! | webhook call lost | | 1.05 source + p |
//!
//! The image path never waits for the Git poll: fluxtune hands the automation's push on to the
//! GitRepository at once (reconcile/request.rs), with or without the Git host's webhook.

use std::time::Duration;

use crate::api::{LatencyBudget, LatencyRange};

use super::tuning::Tuning;

/// Processing allowance `p`: everything after the one wait on an interval (policy, automation
/// commit and push, webhook, fetch, build, apply). The Flux-in-the-loop benchmark measures it on
/// loopback at 0.4-0.55 s for the image and the commit path (docs/benchmarks.md); a real setup
/// adds four remote hops on the image path (the automation's clone and push, the Git host's
/// webhook delivery, source-controller's fetch). 10 s allows 2 s for each hop plus the measured
/// processing, rounded up.
pub const PROCESSING_ALLOWANCE: Duration = Duration::from_secs(10);

/// A latency range: the expected and the worst case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    pub expected: Duration,
    pub worst: Duration,
}

/// The budget as durations; `status()` is what `status.latencyBudget` and `render` print.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Budget {
    pub image_to_deploy: Range,
    pub commit_to_deploy: Range,
    /// Only with a webhook.
    pub webhook_lost: Option<Duration>,
    /// Only with a registry webhook: a lost registry event waits for the backstop scan.
    pub registry_webhook_lost: Option<Duration>,
    pub processing: Duration,
}

impl Budget {
    pub fn status(&self) -> LatencyBudget {
        let range = |r: Range| LatencyRange {
            expected: go_duration(r.expected),
            worst: go_duration(r.worst),
        };
        LatencyBudget {
            image_to_deploy: range(self.image_to_deploy),
            commit_to_deploy: range(self.commit_to_deploy),
            webhook_lost: self.webhook_lost.map(go_duration),
            registry_webhook_lost: self.registry_webhook_lost.map(go_duration),
            processing: go_duration(self.processing),
        }
    }
}

pub fn latency_budget(t: &Tuning) -> Budget {
    let p = PROCESSING_ALLOWANCE;
    let scan = parse(&t.image_scan);
    let source = parse(&t.source);
    let jittered = |d: Duration| d.mul_f64(1.05);
    let (poll_expected, poll_worst) = if t.webhook {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (source / 2, jittered(source))
    };
    // With a registry webhook the scan starts when the tag is pushed; else it waits on the interval.
    let (scan_expected, scan_worst) = if t.registry_webhook {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (scan / 2, jittered(scan))
    };
    Budget {
        image_to_deploy: Range {
            expected: scan_expected + p,
            worst: scan_worst + p,
        },
        registry_webhook_lost: t.registry_webhook.then(|| jittered(scan) + p),
        commit_to_deploy: Range {
            expected: poll_expected + p,
            worst: poll_worst + p,
        },
        webhook_lost: t.webhook.then(|| jittered(source) + p),
        processing: p,
    }
}

/// Durations were validated as Flux durations; anything unparsable counts as zero rather than
/// failing a status computation.
fn parse(flux: &str) -> Duration {
    flux.parse::<kube::core::Duration>()
        .map(Duration::from)
        .unwrap_or_default()
}

/// Formats like Go's `time.Duration.String()` at millisecond precision: `1h0m0s`, `1m3.5s`, `250ms`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut seconds = s.to_string();
    if frac > 0 {
        seconds.push_str(format!(".{frac:03}").trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go() {
        let cases = [
            (0, "0s"),
            (250, "250ms"),
            (1_000, "1s"),
            (30_000, "30s"),
            (63_500, "1m3.5s"),
            (90_000, "1m30s"),
            (3_600_000, "1h0m0s"),
            (3_780_000, "1h3m0s"),
            (3_795_000, "1h3m15s"),
        ];
        for (ms, want) in cases {
            assert_eq!(go_duration(Duration::from_millis(ms)), want, "{ms}ms");
        }
    }
}

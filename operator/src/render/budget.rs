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

/// The longest duration Go, and so Flux, can read: 2562047h47m16.854775807s.
pub const GO_MAX: Duration = Duration::new(9_223_372_036, 854_775_807);

/// A Flux duration (number+unit pairs, units ms, s, m, h), read the way Go reads it, in integer
/// nanoseconds. Durations were validated as Flux durations; anything unparsable counts as zero
/// rather than failing a status computation, and anything longer than Go can read as [`GO_MAX`]
/// (kube's parser panicked on those: found writing the fuzz targets, docs/fuzzing.md).
pub fn parse(flux: &str) -> Duration {
    let mut nanos: u128 = 0;
    let mut rest = flux;
    while !rest.is_empty() {
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (whole, tail) = rest.split_at(digits(rest));
        let (fraction, tail) = match tail.strip_prefix('.') {
            Some(t) => t.split_at(digits(t)),
            None => ("", tail),
        };
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Duration::ZERO,
        };
        if whole.is_empty() && fraction.is_empty() {
            return Duration::ZERO;
        }
        // Past 2^127 ns is past GO_MAX anyway: saturate.
        let number = |s: &str| -> u128 {
            s.parse()
                .unwrap_or(if s.is_empty() { 0 } else { u128::MAX })
        };
        // Nanoseconds need at most 13 fractional digits of an hour; more cannot change the sum.
        let fraction = &fraction[..fraction.len().min(18)];
        let scale = 10u128.pow(fraction.len() as u32);
        nanos = nanos
            .saturating_add(number(whole).saturating_mul(unit))
            .saturating_add(number(fraction) * unit / scale);
        rest = tail;
    }
    let max = GO_MAX.as_nanos();
    let nanos = nanos.min(max) as u64;
    Duration::from_nanos(nanos)
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
    fn parse_reads_flux_durations_like_go() {
        for (flux, ms) in [
            ("1m", 60_000),
            ("30s", 30_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("500ms", 500),
            ("0.7m", 42_000),
            ("1m3.5s", 63_500),
            ("0s", 0),
        ] {
            assert_eq!(parse(flux), Duration::from_millis(ms), "{flux}");
        }
        assert_eq!(parse("0.0000000001h"), Duration::from_nanos(360));
        assert_eq!(parse("1d"), Duration::ZERO);
        assert_eq!(parse(""), Duration::ZERO);
    }

    /// Found writing the fuzz targets (profile_structured crashes on it): kube's parser panicked
    /// on durations past what std's Duration holds, so `render` and a reconcile panicked.
    #[test]
    fn durations_longer_than_go_reads_saturate() {
        assert_eq!(parse("99999999999999999999h"), GO_MAX);
        assert_eq!(parse("18446744073709551615s"), GO_MAX);
        assert_eq!(parse("2562047h47m16.854775807s"), GO_MAX);
        assert!(parse("2562047h") < GO_MAX);
        let b = latency_budget(&crate::render::tuning::tuning(
            &serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"},
                "source": {"url": "https://git.example.com/r.git"},
                "intervals": {"source": "99999999999999999999h", "imageScan": "99999999999999999999h"},
            }))
            .unwrap(),
            Default::default(),
        ));
        assert!(b.commit_to_deploy.worst > GO_MAX);
    }

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

//! Polling classes and the intervals they stand for.

use super::budget::parse;
use crate::api::{FluxProfileSpec, PollingClass, WebhookFallback};

/// The intervals and timeouts one profile renders, after class defaults and overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuning {
    pub class: PollingClass,
    /// Whether a Receiver makes Git pushes event-driven.
    pub webhook: bool,
    /// Whether a Receiver makes registry pushes event-driven (the scan is then a backstop).
    pub registry_webhook: bool,
    pub source: String,
    pub apply: String,
    pub image_scan: String,
    pub image_update: String,
    /// Kustomization timeout and retryInterval: always emitted, because Flux derives them from a
    /// one-hour interval otherwise and a failed apply would wait an hour for its retry.
    pub apply_timeout: String,
    pub apply_retry: String,
    /// The fallback interval replaced the source's backstop (its webhook is missed).
    pub git_fallback: bool,
    /// The fallback interval replaced the scan's backstop (the registry's webhook is missed).
    pub registry_fallback: bool,
}

/// Which webhooks are missed (reconcile/missed.rs): their sources poll at the fallback interval,
/// unless the profile turned the fallback off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Missed {
    pub git: bool,
    pub registry: bool,
}

/// The Poll class's interval: what a missed webhook falls back to by default.
pub const FALLBACK_INTERVAL: &str = "1m";

/// The fallback interval for a missed webhook, or None when it does not apply.
fn fallback(missed: bool, spec: Option<&WebhookFallback>, configured: &str) -> Option<String> {
    let spec = spec.cloned().unwrap_or_default();
    if !missed || spec.enabled == Some(false) {
        return None;
    }
    let interval = spec.interval.map_or(FALLBACK_INTERVAL.to_string(), |d| d.0);
    // Never lengthens a configured interval that is already shorter.
    (parse(&interval) < parse(configured)).then_some(interval)
}

/// Default: Webhook when a webhook is configured, else Poll.
pub fn effective_class(spec: &FluxProfileSpec) -> PollingClass {
    spec.polling_class.unwrap_or(if spec.webhook.is_some() {
        PollingClass::Webhook
    } else {
        PollingClass::Poll
    })
}

pub fn tuning(spec: &FluxProfileSpec, missed: Missed) -> Tuning {
    let class = effective_class(spec);
    let (source, image_scan) = match class {
        PollingClass::Webhook => ("1h", "1m"),
        PollingClass::Poll => ("1m", "1m"),
        PollingClass::Relaxed => ("10m", "10m"),
    };
    // With registry events the scan only catches a lost one: ten minutes bounds that wait while
    // keeping a registry's API calls per image to six an hour (Docker Hub and GHCR rate-limit).
    let registry_webhook = spec.registry_webhook.is_some();
    let image_scan = if registry_webhook { "10m" } else { image_scan };
    let webhook = match class {
        PollingClass::Webhook => true,
        PollingClass::Poll => false,
        PollingClass::Relaxed => spec.webhook.is_some(),
    };
    let overrides = spec.intervals.clone().unwrap_or_default();
    let apply = spec.apply.clone().unwrap_or_default();
    let pick = |o: Option<crate::api::FluxDuration>, default: &str| {
        o.map(|d| d.0).unwrap_or_else(|| default.to_string())
    };
    let source = pick(overrides.source, source);
    let image_scan = pick(overrides.image_scan, image_scan);
    let git_fallback = fallback(
        missed.git && webhook,
        spec.webhook.as_ref().and_then(|w| w.fallback.as_ref()),
        &source,
    );
    let registry_fallback = fallback(
        missed.registry && registry_webhook,
        spec.registry_webhook
            .as_ref()
            .and_then(|w| w.fallback.as_ref()),
        &image_scan,
    );
    Tuning {
        class,
        webhook,
        registry_webhook,
        git_fallback: git_fallback.is_some(),
        registry_fallback: registry_fallback.is_some(),
        source: git_fallback.unwrap_or(source),
        apply: pick(overrides.apply, "1h"),
        image_scan: registry_fallback.unwrap_or(image_scan),
        image_update: pick(overrides.image_update, "1h"),
        apply_timeout: pick(apply.timeout, "3m"),
        apply_retry: pick(apply.retry_interval, "2m"),
    }
}

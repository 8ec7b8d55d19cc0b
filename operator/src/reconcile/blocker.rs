//! Problems only a person can fix: each is a Stalled condition with its reason and message (so a
//! Flux health check over profiles fails fast), never an error retried in a hot loop.

use std::time::Duration;

/// A missing Flux CRD needs an install, which restarts the controller (controller.rs); until then,
/// look again rarely.
pub const CRD_MISSING_RECHECK: Duration = Duration::from_secs(600);
/// A foreign object is not in the label-filtered caches, so its deletion wakes nothing: look
/// again this often, so a conflict clears within a minute or two of its cause going away.
pub const CONFLICT_RECHECK: Duration = Duration::from_secs(60);
/// A rejected apply is retried on a spec change or a reconcile request at once, and otherwise on
/// this slow backoff (doubling per attempt, capped at an hour): a policy may be lifted.
pub const REJECTED_RETRY_FIRST: Duration = Duration::from_secs(300);
pub const REJECTED_RETRY_MAX: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    WebhookSecretNotFound(String),
    WebhookTokenMissing(String),
    FluxCrdMissing(Vec<String>),
    /// Objects with a child's name that belong to someone else (`Kind/name`, why), and the
    /// children not applied because they would act on them.
    NameConflict {
        conflicts: Vec<(String, String)>,
        blocked: Vec<String>,
    },
    /// Objects the API server refused (admission policy, RBAC, validation): `Kind/name: message`.
    ApplyRejected(Vec<String>),
    /// Fields the operator's tenancy flags refuse (tenancy.rs): nothing is applied or pruned.
    NotAllowed(Vec<String>),
    /// spec.kustomizations' dependsOn form a cycle (`a -> b -> a`), which the CRD's rules cannot
    /// catch: nothing is applied or pruned until the profile is changed.
    DependencyCycle(Vec<String>),
}

impl Blocker {
    pub fn reason(&self) -> &'static str {
        match self {
            Blocker::WebhookSecretNotFound(_) => "WebhookSecretNotFound",
            Blocker::WebhookTokenMissing(_) => "WebhookTokenMissing",
            Blocker::FluxCrdMissing(_) => "FluxCRDMissing",
            Blocker::NameConflict { .. } => "NameConflict",
            Blocker::ApplyRejected(_) => "ApplyRejected",
            Blocker::NotAllowed(_) => "NotAllowed",
            Blocker::DependencyCycle(_) => "DependencyCycle",
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
            Blocker::NameConflict { conflicts, blocked } => {
                let mut m = conflicts
                    .iter()
                    .map(|(object, why)| format!("{object} already exists and {why}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                m += "; fluxtune leaves it untouched";
                if !blocked.is_empty() {
                    m += &format!(
                        " and does not apply what would act on it: {}",
                        blocked.join(", ")
                    );
                }
                m + "; delete or rename the conflicting object, or rename the profile"
            }
            Blocker::NotAllowed(refusals) => format!(
                "this fluxtune does not allow {}; nothing is applied or pruned until the profile is changed",
                refusals.join("; ")
            ),
            Blocker::DependencyCycle(cycle) => format!(
                "spec.kustomizations: {}; nothing is applied or pruned until the profile is changed",
                crate::api::cycle_message(cycle)
            ),
            Blocker::ApplyRejected(rejections) => format!(
                "the API server refused {}; fix the cause (policy, RBAC or spec), then edit the profile or request a reconcile",
                rejections.join("; ")
            ),
        }
    }

    /// When to look again without a watch event.
    pub fn recheck(&self) -> Option<Duration> {
        match self {
            Blocker::FluxCrdMissing(_) => Some(CRD_MISSING_RECHECK),
            Blocker::NameConflict { .. } => Some(CONFLICT_RECHECK),
            // The Secret is watched; rejections have their own backoff (mod.rs).
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_names_the_chain_and_waits_for_a_spec_change() {
        let b = Blocker::DependencyCycle(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(b.reason(), "DependencyCycle");
        assert_eq!(
            b.message(),
            "spec.kustomizations: dependsOn forms a cycle: a -> b -> a; Flux would wait on it forever, remove one of its dependsOn; nothing is applied or pruned until the profile is changed"
        );
        assert_eq!(b.recheck(), None);
    }

    #[test]
    fn a_conflict_names_the_foreign_and_the_blocked_objects() {
        let b = Blocker::NameConflict {
            conflicts: vec![(
                "GitRepository/c1".into(),
                "was not created by fluxtune".into(),
            )],
            blocked: vec!["Kustomization/c1".into(), "Receiver/c1".into()],
        };
        let m = b.message();
        assert!(
            m.starts_with("GitRepository/c1 already exists and was not created by fluxtune;"),
            "{m}"
        );
        assert!(
            m.contains("does not apply what would act on it: Kustomization/c1, Receiver/c1"),
            "{m}"
        );
    }
}

//! ImageRepository and ImagePolicy per image, and the ImageUpdateAutomation that commits updates.

use crate::{
    api::{self, FluxProfile, ImageSpec, SortOrder},
    flux::{
        CommitAuthor, CommitSpec, CrossRef, GitSpec, ImagePolicy, ImagePolicyChoice,
        ImagePolicySpec, ImageRepository, ImageRepositorySpec, ImageUpdateAutomation,
        ImageUpdateAutomationSpec, LabelSelector, LocalRef, OrderPolicy, PushSpec, SemverPolicy,
        TagFilter, UpdateStrategy,
    },
};

use super::{Context, names};

pub fn image_name(cx: &Context, image: &ImageSpec) -> String {
    names::child_name(&cx.profile, Some(&image.name))
}

pub fn image_repository(cx: &Context, image: &ImageSpec) -> ImageRepository {
    ImageRepository {
        metadata: cx.meta(image_name(cx, image)),
        spec: ImageRepositorySpec {
            image: image.repository.clone(),
            interval: cx.tuning.image_scan.clone(),
            secret_ref: image.secret_ref.as_ref().map(|s| LocalRef {
                name: s.name.clone(),
            }),
            insecure: image.insecure,
        },
    }
}

pub fn image_policy(cx: &Context, image: &ImageSpec) -> ImagePolicy {
    let order = |o: &api::OrderPolicy| OrderPolicy {
        order: o.order.map(|o| {
            match o {
                SortOrder::Asc => "asc",
                SortOrder::Desc => "desc",
            }
            .to_string()
        }),
    };
    ImagePolicy {
        metadata: cx.meta(image_name(cx, image)),
        spec: ImagePolicySpec {
            image_repository_ref: LocalRef {
                name: image_name(cx, image),
            },
            policy: ImagePolicyChoice {
                semver: image.policy.semver.as_ref().map(|s| SemverPolicy {
                    range: s.range.clone(),
                }),
                alphabetical: image.policy.alphabetical.as_ref().map(order),
                numerical: image.policy.numerical.as_ref().map(order),
            },
            filter_tags: image.filter_tags.as_ref().map(|f| TagFilter {
                pattern: f.pattern.clone(),
                extract: f.extract.clone(),
            }),
        },
    }
}

/// Scoped to the cluster's folder, because the automation clones the whole repository itself and
/// ignores the GitRepository's rules; and to this profile's policies by label.
pub fn image_update_automation(
    cx: &Context,
    profile: &FluxProfile,
) -> Option<ImageUpdateAutomation> {
    let update = profile.spec.image_update.as_ref()?;
    if profile.spec.images.is_empty() {
        return None;
    }
    Some(ImageUpdateAutomation {
        metadata: cx.meta(cx.source_name()),
        spec: ImageUpdateAutomationSpec {
            interval: cx.tuning.image_update.clone(),
            source_ref: CrossRef {
                kind: "GitRepository".into(),
                name: cx.source_name(),
            },
            git: GitSpec {
                commit: CommitSpec {
                    author: CommitAuthor {
                        name: update.author.name.clone(),
                        email: update.author.email.clone(),
                    },
                    message_template: update.message_template.clone(),
                },
                push: update
                    .push_branch
                    .clone()
                    .filter(|b| !b.is_empty())
                    .map(|branch| PushSpec { branch }),
            },
            update: UpdateStrategy {
                path: format!("./{}", cx.cluster_path),
                strategy: "Setters".into(),
            },
            policy_selector: Some(LabelSelector {
                match_labels: [(names::PROFILE_LABEL.to_string(), cx.profile.clone())].into(),
            }),
        },
    })
}

//! The GitRepository: the monorepo, narrowed to the cluster's folders.

use crate::{
    api::FluxProfile,
    flux::{GitRepository, GitRepositoryRef, GitRepositorySpec, LocalRef},
};

use super::{Capabilities, Context, ignore};

pub fn git_repository(cx: &Context, profile: &FluxProfile, caps: &Capabilities) -> GitRepository {
    let source = &profile.spec.source;
    let kept = ignore::kept_folders(cx.folders());
    let r = &source.r#ref;
    GitRepository {
        metadata: cx.meta(cx.source_name()),
        spec: GitRepositorySpec {
            interval: cx.tuning.source.clone(),
            url: source.url.clone(),
            r#ref: Some(GitRepositoryRef {
                branch: r.branch.clone(),
                tag: r.tag.clone(),
                semver: r.semver.clone(),
                commit: r.commit.clone(),
            }),
            secret_ref: source.secret_ref.as_ref().map(|s| LocalRef {
                name: s.name.clone(),
            }),
            ignore: Some(ignore::ignore_rules(cx.folders())),
            sparse_checkout: if caps.sparse_checkout {
                ignore::sparse_checkout(&kept)
            } else {
                Vec::new()
            },
        },
    }
}

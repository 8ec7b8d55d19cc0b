//! fluxtune: declarative Flux tuning for Git monorepos of many clusters.

pub mod api;
pub mod cli;
pub mod flux;
pub mod render;

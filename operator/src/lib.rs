//! fluxtune: declarative Flux tuning for Git monorepos of many clusters.

pub mod api;
pub mod cache;
pub mod capabilities;
pub mod cli;
pub mod controller;
pub mod error;
pub mod flux;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod telemetry;
pub mod tenancy;

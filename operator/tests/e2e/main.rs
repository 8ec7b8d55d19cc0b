//! The e2e tier: against the real kube-apiserver that e2e/controlplane.sh builds and starts, with
//! the real Flux CRDs installed. Run it with `bash e2e/test-all.sh`.

#[path = "../cases/mod.rs"]
mod cases;
mod faults;
mod flux;
mod flux_install;
mod flux_support;
mod gitops;
mod migrate;
mod monitoring;
mod operator;
mod rbac;
mod safety;
mod schemas;
mod support;
mod tenancy;
mod upgrade;

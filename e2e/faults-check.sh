#!/usr/bin/env bash
# The fault tier (operator/tests/e2e/faults.rs, docs/faults.md): kube-apiserver, etcd, the
# operator and the leader killed under load, watches cut into a 410 re-list, a leader cut off from
# the API server. On a throwaway control plane of its own, since the tests kill its components
# (controlplane.sh kill|start|compact); one test at a time. Needs the e2e build (cargo build
# --features e2e), which test-all.sh makes before.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=e2e/throwaway.sh
source e2e/throwaway.sh
throwaway_controlplane faults
export FLUXTUNE_E2E_CONTROLPLANE_DIR=$state
# --nocapture: each scenario prints what it measured (convergence and takeover times).
cargo test --locked --features e2e --test e2e -- faults:: --test-threads=1 --nocapture

#!/usr/bin/env bash
# The operator benchmark on a fresh local control plane (results: docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash e2e/controlplane.sh build
state=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-bench.XXXXXX")
trap 'bash e2e/controlplane.sh down "$state"; rm -rf "$state"' EXIT
bash e2e/controlplane.sh up "$state"
FLUXTUNE_E2E_KUBECONFIG="$state/kubeconfig" cargo bench --locked --features e2e --bench operator

#!/usr/bin/env bash
# The Flux-in-the-loop benchmark (results: docs/benchmarks.md): a fresh local control plane, deploy/
# applied and its ServiceAccount's token for the operator, the five Flux controllers, the Git host
# and the registry; then `cargo bench --features e2e --bench flux`. Everything stops on exit.
# Not part of CI: it takes several minutes, most of it waiting on 1-minute intervals.
# FLUXTUNE_BENCH_FLUX_DEFAULTS=1 adds image-to-deploy with Flux's defaults (5-minute scan): up to
# 20 minutes more.
set -euo pipefail
cd "$(dirname "$0")/.."

bash e2e/controlplane.sh build
bash e2e/controlplane.sh build-flux
state=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-bench-flux.XXXXXX")
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then bash e2e/controlplane.sh logs "$state" || true; fi
  bash e2e/controlplane.sh down "$state" || true
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
bash e2e/controlplane.sh up "$state"

# deploy/ applied server-side; the operator under test runs as its ServiceAccount (as in
# e2e/test-all.sh).
# shellcheck disable=SC1091
source "$state/env"
# It also writes a kubeconfig with a TokenRequest token of deploy/'s ServiceAccount: every operator
# process started from here has exactly the permissions deploy/ grants, no more.
bash e2e/deploy-check.sh "$state/kubeconfig" "$FLUXTUNE_KUBECTL" "$state/operator.kubeconfig" >/dev/null

bash e2e/controlplane.sh flux-up "$state"
set -a
# shellcheck disable=SC1091
source "$state/env"
set +a
FLUXTUNE_E2E_KUBECONFIG="$state/kubeconfig" FLUXTUNE_E2E_OPERATOR_KUBECONFIG="$state/operator.kubeconfig" \
  cargo bench --locked --features e2e --bench flux

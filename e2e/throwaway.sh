# shellcheck shell=bash
# A throwaway control plane for the scripts that test or measure against one (test-all.sh,
# bench.sh, bench-flux.sh): source this file from the repository root, then call the functions.

# throwaway_controlplane NAME: builds the control plane (cached) and starts it in a new temporary
# directory, stopped and removed when the script exits (its logs printed first if the script
# fails); applies deploy/ as users do and checks its RBAC (e2e/deploy-check.sh), which also
# writes a kubeconfig with a TokenRequest token of deploy/'s ServiceAccount: every operator the
# tests and benchmarks start has exactly the permissions deploy/ grants, no more.
# Sets `state` (the directory) and exports FLUXTUNE_E2E_KUBECONFIG and
# FLUXTUNE_E2E_OPERATOR_KUBECONFIG, which the e2e tests and benchmarks read.
throwaway_controlplane() {
  bash e2e/controlplane.sh build
  state=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-$1.XXXXXX")
  trap _throwaway_stop EXIT
  bash e2e/controlplane.sh up "$state"
  # shellcheck disable=SC1091
  source "$state/env"
  bash e2e/deploy-check.sh "$state/kubeconfig" "$FLUXTUNE_KUBECTL" "$state/operator.kubeconfig" >/dev/null
  export FLUXTUNE_E2E_KUBECONFIG="$state/kubeconfig"
  export FLUXTUNE_E2E_OPERATOR_KUBECONFIG="$state/operator.kubeconfig"
}

# throwaway_flux: the five Flux controllers (built if not cached), the Git host and the registry
# on that control plane; exports their addresses (FLUXTUNE_RECEIVER_ADDR, FLUXTUNE_GIT_URL, ...).
throwaway_flux() {
  bash e2e/controlplane.sh build-flux
  bash e2e/controlplane.sh flux-up "$state"
  set -a
  # shellcheck disable=SC1091
  source "$state/env"
  set +a
}

_throwaway_stop() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then bash e2e/controlplane.sh logs "$state" || true; fi
  bash e2e/controlplane.sh down "$state" || true
  rm -rf "$state"
  # The caller's own exit work (test-all.sh's summary), which this trap replaced.
  if [[ -n ${throwaway_after:-} ]]; then "$throwaway_after" "$rc"; fi
  exit "$rc"
}

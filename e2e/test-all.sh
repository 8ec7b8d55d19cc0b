#!/usr/bin/env bash
# Every test tier, in order of cost: lint, unit + golden + property tests, then the e2e tier against
# a real control plane built from the Go module proxy (cached under ~/.cache/fluxtune) and stopped
# afterwards. The e2e tier cannot be skipped: if the control plane cannot start, this fails.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n=== %s\n' "$*"; }

section "lint"
cargo fmt --all --check
cargo clippy --all-targets --all-features --locked -- -D warnings

section "unit, golden, property and real-git tests"
cargo test --locked

section "the previous release, for the upgrade test"
read -r previous_commit previous_name < <(grep -v '^#' e2e/previous-release)
previous_src=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-previous.XXXXXX")
git worktree add --detach --force "$previous_src" "$previous_commit" >/dev/null
# Its own target directory: the current build's artefacts stay as they are.
cargo build --locked --quiet --manifest-path "$previous_src/Cargo.toml" --target-dir target/previous -p fluxtune
previous_bin=$PWD/target/previous/debug/fluxtune
# Its samples: profiles written for that release must stay valid under the current CRD.
previous_samples=$PWD/target/previous/samples
rm -rf "$previous_samples"
cp -r "$previous_src/samples" "$previous_samples"
git worktree remove --force "$previous_src"
echo "built $previous_name ($previous_commit)"

section "control plane"
bash e2e/controlplane.sh build
bash e2e/controlplane.sh build-flux
state=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-e2e.XXXXXX")
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then bash e2e/controlplane.sh logs "$state" || true; fi
  bash e2e/controlplane.sh down "$state" || true
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
bash e2e/controlplane.sh up "$state"

section "deploy/: applied server-side; the operator under test runs as its ServiceAccount"
# shellcheck disable=SC1091
source "$state/env"
# Applies deploy/ as users do and asks the API server (`auth can-i`) every grant it must and
# must not have.
# It also writes a kubeconfig with a TokenRequest token of deploy/'s ServiceAccount: every operator
# process started from here has exactly the permissions deploy/ grants, no more.
bash e2e/deploy-check.sh "$state/kubeconfig" "$FLUXTUNE_KUBECTL" "$state/operator.kubeconfig" >/dev/null

export FLUXTUNE_E2E_KUBECONFIG="$state/kubeconfig" FLUXTUNE_E2E_OPERATOR_KUBECONFIG="$state/operator.kubeconfig"
e2e() { cargo test --locked --features e2e --test e2e -- "$@"; }

section "e2e, one at a time: tests that change CRDs every other test uses"
# upgrade::: the previous release with its CRD, then the current CRD and build, under live
# profiles; flux_install::: a Flux CRD deleted, then installed while the operator runs.
FLUXTUNE_E2E_PREVIOUS_BIN="$previous_bin" FLUXTUNE_E2E_PREVIOUS_SAMPLES="$previous_samples" \
  e2e upgrade:: flux_install:: --test-threads=1

section "e2e: the real kube-apiserver, the real Flux CRDs, fluxtune run as a process"
e2e --skip upgrade:: --skip flux_install:: --skip flux:: --skip gitops::

section "Flux in the loop: the five Flux controllers, a Git host with webhooks, an OCI registry"
bash e2e/controlplane.sh flux-up "$state"
set -a
# shellcheck disable=SC1091
source "$state/env"
set +a
# flux::: fluxtune's objects driven by Flux; gitops::: fluxtune installed and upgraded by Flux.
e2e flux:: gitops::

#!/usr/bin/env bash
# Every test tier, in order of cost: lint, unit + golden + property tests, then the e2e tier against
# a real control plane built from the Go module proxy (cached under ~/.cache/fluxtune) and stopped
# afterwards. The e2e tier cannot be skipped: if the control plane cannot start, this fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each section's wall time and every cached build reused or made, printed at the end whether
# the run passed or not, so a slow or failed CI run explains itself.
FLUXTUNE_BUILD_REPORT=$(mktemp "${TMPDIR:-/tmp}/fluxtune-builds.XXXXXX")
export FLUXTUNE_BUILD_REPORT
timings=()
current=
started=$SECONDS
section() {
  [[ -z $current ]] || timings+=("$(printf '%5ds  %s' $((SECONDS - section_start)) "$current")")
  current=$*
  section_start=$SECONDS
  printf '\n=== %s\n' "$*"
}
summary() {
  local rc=${1:-$?}
  section_start=${section_start:-$SECONDS}
  [[ -z $current ]] || timings+=("$(printf '%5ds  %s' $((SECONDS - section_start)) "$current")")
  printf '\n=== time per tier (total %ds, exit %d)\n' $((SECONDS - started)) "$rc"
  printf '%s\n' "${timings[@]}"
  printf '\n=== cached builds\n'
  cat "$FLUXTUNE_BUILD_REPORT"
  rm -f "$FLUXTUNE_BUILD_REPORT"
}
# Rust crates compiled by a cargo command (0 when target/ was warm), for the build report.
cargo_counted() {
  local what=$1 log n
  shift
  log=$(mktemp)
  "$@" 2>&1 | tee "$log" >&2
  n=$(grep -c '^ *Compiling ' "$log" || true)
  rm -f "$log"
  echo "rust $what: compiled $n crates$([[ $n == 0 ]] && echo ' (target/ reused)')" >>"$FLUXTUNE_BUILD_REPORT"
}

trap summary EXIT
# throwaway.sh's EXIT trap replaces this one and calls summary after stopping the control plane.
throwaway_after=summary

section "dependencies beyond Rust, Go and git"
# shellcheck source=e2e/deps.sh
source e2e/deps.sh
deps_test
# The same step with the tools hidden from PATH and an empty cache, as on a fresh machine.
bash e2e/deps.sh selftest

section "build (Rust: the operator, its tests and benchmarks)"
cargo_counted current cargo build --locked --all-targets --features e2e

section "lint"
cargo fmt --all --check
cargo clippy --all-targets --all-features --locked -- -D warnings
shellcheck -x e2e/*.sh e2e/flux/*.sh e2e/tools/*/*.sh .ci/run

section "unit, golden, property and real-git tests"
cargo test --locked

section "harness: the control plane tool's own tests (PKI, ports, supervision, files, arguments)"
# e2e/tools/controlplane, which every later tier runs through e2e/controlplane.sh. A failure here
# stops the run: the tiers after it would test the harness, not the operator.
(
  cd e2e/tools/controlplane
  export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=
  unformatted=$(gofmt -l .)
  [[ -z $unformatted ]] || { echo "harness: gofmt: $unformatted" >&2; exit 1; }
  go vet ./...
  go test -count=1 ./...
) || { echo "=== FAILED: the control plane tool's tests (e2e/tools/controlplane)" >&2; exit 1; }

section "fuzzing: validator, renderer and fluxtune render, 30 s per target (cargo fuzz, nightly)"
# operator/fuzz (docs/fuzzing.md): each target from the committed seed corpus; a crash fails the
# run with the input and the command that reproduces it. deps_fuzz installs nightly and cargo-fuzz.
bash e2e/fuzz-check.sh

section "alerts: promtool checks the rules and runs their unit tests"
# promtool built from the Go module proxy (e2e/tools/promtool); a failed build fails the tier.
# The metrics the dashboard and alerts query are checked on a live /metrics in the e2e tier.
bash e2e/monitoring-check.sh

section "the previous release, for the upgrade test"
read -r previous_commit previous_name < <(grep -v '^#' e2e/previous-release)
previous_src=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-previous.XXXXXX")
git worktree add --detach --force "$previous_src" "$previous_commit" >/dev/null
# Its own target directory: the current build's artefacts stay as they are. Line tables only,
# as the workspace's dev profile has them now: full debug information for a second build of
# every dependency took gigabytes a CI machine's disk did not have.
CARGO_PROFILE_DEV_DEBUG=line-tables-only cargo_counted "previous release" cargo build --locked --manifest-path "$previous_src/Cargo.toml" --target-dir target/previous -p fluxtune
previous_bin=$PWD/target/previous/debug/fluxtune
# Its samples: profiles written for that release must stay valid under the current CRD.
previous_samples=$PWD/target/previous/samples
rm -rf "$previous_samples"
cp -r "$previous_src/samples" "$previous_samples"
git worktree remove --force "$previous_src"
echo "built $previous_name ($previous_commit)"

section "the Tilt dev loop without Tilt: the Tiltfile in Starlark, every mode, its commands on a control plane"
# Neither Tilt nor Docker can run here: the Tiltfile is evaluated with Tilt's builtins
# (e2e/tools/tiltcheck), then its commands run on a throwaway control plane of its own
# (cargo build --release among them; docs/tilt-check.md).
bash e2e/tilt-check.sh

section "Helm chart: lint, schema, template vs deploy/, install, upgrade, uninstall, Flux's helm-controller"
# helm v4.3.2 and helm-controller v1.4.0 built from the Go module proxy (e2e/tools/helm,
# e2e/tools/helm-controller); its own throwaway control plane with the Flux tier's controllers.
bash e2e/helm-check.sh

section "control plane; deploy/ applied server-side, its RBAC checked (auth can-i)"
# shellcheck source=e2e/throwaway.sh
source e2e/throwaway.sh
# The operators under test run as deploy/'s ServiceAccount.
throwaway_controlplane e2e
e2e() { cargo test --locked --features e2e --test e2e -- "$@"; }

section "e2e, one at a time: tests that change CRDs every other test uses"
# upgrade::: the previous release with its CRD, then the current CRD and build, under live
# profiles; flux_install::: a Flux CRD deleted, then installed while the operator runs.
FLUXTUNE_E2E_PREVIOUS_BIN="$previous_bin" FLUXTUNE_E2E_PREVIOUS_SAMPLES="$previous_samples" \
  e2e upgrade:: flux_install:: --test-threads=1

section "Flux in the loop: the five Flux controllers, a Git host with webhooks, an OCI registry"
# From here on the Flux controllers run: notification-controller publishes every Receiver's
# webhook path, which fluxtune reports (it has no access to the Secret holding the token).
throwaway_flux

section "e2e: the real kube-apiserver, the real Flux CRDs, fluxtune run as a process"
e2e --skip upgrade:: --skip flux_install:: --skip flux:: --skip gitops:: --skip faults:: --skip migrate::

section "faults: kube-apiserver, etcd, the operator and the leader killed; watches cut into a 410 re-list; a leader cut off"
# Its own throwaway control plane, whose components the tests kill and start again (docs/faults.md).
bash e2e/faults-check.sh

section "e2e with Flux: fluxtune's objects driven by Flux, fluxtune installed and upgraded by Flux"
e2e flux:: gitops:: migrate::

section "the main job: e2e/run.sh on a local control plane, with Flux and without"
# The README's first command, as a newcomer runs it without a cluster, but stopping after the
# demonstration (a commit and an image tag delivered live) instead of waiting for Ctrl-C.
for mode in "" --operator-only; do
  FLUXTUNE_LOCAL_DIR=$state/run-local FLUXTUNE_HTTP_PORT=$((20000 + RANDOM % 10000)) \
    bash e2e/run.sh --local --exit $mode
done

#!/usr/bin/env bash
# The fuzz tier (docs/fuzzing.md): the cargo fuzz targets of operator/fuzz, each run for a short
# time from the committed seed corpus. A crash fails the run with the input that caused it and
# the command that reproduces it; a target that cannot be built or run fails it too.
#
#   bash e2e/fuzz-check.sh [--seconds N] [TARGET...]
#
# --seconds (default 30, or FLUXTUNE_FUZZ_SECONDS) is each target's time; the targets run one
# after the other (libFuzzer takes a core each). What libFuzzer adds to the corpus goes to
# operator/fuzz/corpus-run/ (git-ignored, kept between runs); the committed seeds in
# operator/fuzz/corpus/ are only read. Needs the nightly toolchain and cargo-fuzz, which
# deps_fuzz (e2e/deps.sh) installs when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[fuzz] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

seconds=${FLUXTUNE_FUZZ_SECONDS:-30}
targets=()
while (($#)); do
  case $1 in
  --seconds)
    [[ ${2:-} =~ ^[0-9]+$ ]] || die "--seconds needs a number of seconds"
    seconds=$2
    shift 2
    ;;
  -*) die "unknown option $1 (usage: $0 [--seconds N] [TARGET...])" ;;
  *)
    targets+=("$1")
    shift
    ;;
  esac
done

# shellcheck source=e2e/deps.sh
source e2e/deps.sh
deps_test
deps_fuzz
toolchain=+$FLUXTUNE_FUZZ_TOOLCHAIN
FUZZ=operator/fuzz
# The fuzz crate's builds (stable for clippy and its tests, nightly for the targets) outside the
# clone, as the Go tools are: a fresh clone on the same machine (CI) rebuilds only this crate and
# fluxtune's, not their dependencies three times over.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${FLUXTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxtune}/fuzz-target}
# Cargo never collects garbage: each clone path and commit leaves its own fluxtune artifacts in
# this shared directory (it had grown to 13 GiB and filled a CI machine's disk). Incremental
# data is no use to a clone built once; past the cap the directory starts over (a rebuild of the
# dependencies, about three minutes).
export CARGO_INCREMENTAL=0
cap_mib=6144
if [[ -d $CARGO_TARGET_DIR ]] && (($(du -sm "$CARGO_TARGET_DIR" | cut -f1) > cap_mib)); then
  log "$CARGO_TARGET_DIR holds more than $cap_mib MiB of old builds: starting it over"
  rm -rf "$CARGO_TARGET_DIR"
fi
fuzz() { cargo "$toolchain" fuzz "$1" --fuzz-dir "$FUZZ" --sanitizer none "${@:2}"; }

# The pinned Flux CRDs (as e2e/controlplane.sh installs them): every object an accepted profile
# renders must pass their schemas. `go mod download` fills the module cache from go.sum.
mods=$(awk '$1 ~ /^github\.com\/fluxcd\/[a-z-]+-controller$/ && $2 ~ /^v/ { print $1 }' e2e/tools/flux/go.mod)
[[ -n $mods ]] || die "no Flux controllers pinned in e2e/tools/flux/go.mod"
# shellcheck disable=SC2086 # one module per word
FLUXTUNE_FLUX_CRDS=$(cd e2e/tools/flux && go mod download $mods && go list -m -f '{{.Dir}}/config/crd/bases' $mods | paste -sd:) ||
  die "cannot find the Flux CRDs of e2e/tools/flux/go.mod in the Go module cache"
export FLUXTUNE_FLUX_CRDS

log "the fuzz crate's own checks: formatting, clippy, its tests (the seed corpus is current, the in-process .gitignore matcher walks like git)"
cargo fmt --manifest-path "$FUZZ/Cargo.toml" --check
cargo clippy --manifest-path "$FUZZ/Cargo.toml" --locked --all-targets -- -D warnings
cargo test --manifest-path "$FUZZ/Cargo.toml" --locked

# No sanitizer: the code under test is safe Rust, and a panic (every property is an assertion)
# is caught without one; ASan would halve the executions. Debug assertions and overflow checks
# are on (cargo fuzz's default).
log "building the targets with cargo fuzz ($(rustc "$toolchain" --version))"
fuzz build
mapfile -t all < <(cargo "$toolchain" fuzz list --fuzz-dir "$FUZZ")
((${#all[@]} > 0)) || die "cargo fuzz lists no target in $FUZZ"
((${#targets[@]} > 0)) || targets=("${all[@]}")

summary=()
for target in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $target "* ]] || die "no fuzz target $target (there are: ${all[*]})"
  seeds=$FUZZ/corpus/$target
  run=$FUZZ/corpus-run/$target
  artifacts=$FUZZ/artifacts/$target
  if [[ ! -d $seeds ]] || (($(find "$seeds" -type f | wc -l) == 0)); then die "$target has no seed corpus in $seeds"; fi
  mkdir -p "$run" "$artifacts"
  out=$(mktemp "${TMPDIR:-/tmp}/fluxtune-fuzz-$target.XXXXXX")
  log "$target: ${seconds} s from $(find "$seeds" -type f | wc -l) seeds and $(find "$run" -type f | wc -l) inputs of earlier runs"
  # New inputs go to the first directory ($run); the seeds are only read. -timeout turns an
  # input that takes over 10 s into a failure, as a crash is.
  if ! fuzz run "$target" "$run" "$seeds" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$out" 2>&1; then
    tail -n 60 "$out" >&2
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out" | tail -n 1)
    rm -f "$out"
    [[ -n $crash ]] || die "$target failed without writing its input (output above)"
    die "$target crashed on $crash; reproduce with: bash e2e/fuzz-check.sh builds it, then CARGO_TARGET_DIR=$CARGO_TARGET_DIR FLUXTUNE_FLUX_CRDS=$FLUXTUNE_FLUX_CRDS cargo $toolchain fuzz run --fuzz-dir $FUZZ --sanitizer none $target $crash"
  fi
  final_stat() { sed -n "s/^stat::$1: *//p" "$out" | tail -n 1; }
  runs=$(final_stat number_of_executed_units)
  [[ ${runs:-0} -gt 0 ]] || {
    tail -n 30 "$out" >&2
    rm -f "$out"
    die "$target ran no input"
  }
  summary+=("$(printf '%-20s %9d runs  %6d/s  %4d inputs in the corpus (%d new)  peak RSS %s MB  no crash' \
    "$target" "$runs" "$(final_stat average_exec_per_sec)" "$(($(find "$seeds" -type f | wc -l) + $(find "$run" -type f | wc -l)))" \
    "$(final_stat new_units_added)" "$(final_stat peak_rss_mb)")")
  rm -f "$out"
done
printf '%s\n' "${summary[@]}"
